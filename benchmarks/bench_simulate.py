"""Time `simulate_ads` against a plain-numpy baseline and record the result in benchmarks/results/simulate.md.

The baseline draws as many random columns as the simulated frame has (20 float64 columns of `rows` values) with
the same generator: the floor any simulator of that size pays. The ratio simulate / baseline says how much the
structure (the world, the ground truth, the string ids, the DataFrame) costs on top of drawing the numbers.
"""
from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import time
import tracemalloc
from pathlib import Path

from _common import bench_parser, publish
import numpy as np
import pandas as pd

from mlops_nb.demo import simulate_ads

RESULTS = Path(__file__).resolve().parent / 'results' / 'simulate.md'


def baseline(rows:int, n_cols:int, seed:int=0) -> list[np.ndarray]:
    "Plain numpy: `n_cols` columns of `rows` uniform random floats."
    rng = np.random.default_rng(seed)
    return [rng.random(rows) for _ in range(n_cols)]


def best_of(fn, repeat:int) -> float:
    "Best wall time of `repeat` calls of `fn`, in seconds."
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)


def peak_mib(fn) -> float:
    "Peak memory traced by tracemalloc while `fn` runs, in MiB (numpy and Python allocations)."
    gc.collect(); tracemalloc.start()
    try: fn(); return tracemalloc.get_traced_memory()[1] / 2**20
    finally: tracemalloc.stop()


def with_arrow_peak(fn):
    "`fn()` and the peak of pyarrow's memory pool so far, in MiB (the string columns live there; tracemalloc does not see them)."
    try: import pyarrow as pa
    except ImportError: return fn(), None
    out = fn()
    return out, pa.default_memory_pool().max_memory() / 2**20


def main(argv=None):
    ap = bench_parser(__doc__, RESULTS, threads=False, repeat_help='timing runs; the best is reported')
    ap.add_argument('--rows', type=int, default=1_000_000, help='impressions to simulate (default: 1,000,000)')
    a = ap.parse_args(argv)
    if a.rows < 1: ap.error('--rows must be >= 1')
    if a.repeat < 1: ap.error('--repeat must be >= 1')

    sim = lambda: simulate_ads(a.rows, seed=a.seed)
    df, m_arrow = with_arrow_peak(sim)  # first call of the process: the pool's peak is this call's
    n_cols = df.shape[1]
    frame_mib = df.memory_usage(deep=True).sum() / 2**20
    del df
    base = lambda: baseline(a.rows, n_cols, a.seed)
    base()  # warm up
    t_sim, t_base = best_of(sim, a.repeat), best_of(base, a.repeat)
    m_sim, m_base = peak_mib(sim), peak_mib(base)
    ratio = t_sim / t_base

    import pyarrow
    now = dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    lines = [
        '# Benchmark: `simulate_ads`', '',
        f'Measured {now} by `python benchmarks/bench_simulate.py --rows {a.rows} --repeat {a.repeat}`.', '',
        f'Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"}), '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, '
        f'pyarrow {pyarrow.__version__}. Load average (1 min) when the run ended: {os.getloadavg()[0]:.2f}'
        ' (other processes on the machine slow both timings).', '',
        f'| | rows | columns | best of {a.repeat} (s) | rows / s | peak memory, tracemalloc (MiB) |',
        '|---|---:|---:|---:|---:|---:|',
        f'| `simulate_ads` | {a.rows:,} | {n_cols} | {t_sim:.3f} | {a.rows / t_sim:,.0f} | {m_sim:,.0f} |',
        f'| numpy baseline (`rng.random` × {n_cols} columns) | {a.rows:,} | {n_cols} | {t_base:.3f} | {a.rows / t_base:,.0f} | {m_base:,.0f} |',
        '',
        f'**Ratio simulate / baseline: {ratio:.1f}×** (time).', '',
        f'The resulting frame takes {frame_mib:,.0f} MiB (`memory_usage(deep=True)`). tracemalloc sees numpy and Python',
        'allocations only; the string columns live in pyarrow\'s memory pool'
        + (f', whose peak during one call was {m_arrow:,.0f} MiB.' if m_arrow is not None else '.'), '',
    ]
    text = '\n'.join(lines)
    publish(text, a.out, a.no_write)


if __name__ == '__main__':
    main()
