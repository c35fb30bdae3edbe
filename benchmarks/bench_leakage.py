"""Time the loop's leakage step against the slices step on the same inputs, and record it in results/leakage.md.

Both steps run on the newest holdout of the built-in scenario with the loop's fitted model, as the error-analysis
stage calls them (`ANALYSES[name].run(LoopInputs(...))`); both explain the model with SHAP, so slices is the natural
yardstick of what an analysis of the loop costs. Scenarios: the default (clean: no suspect, nothing refitted) and the
same world with its leak (`scenario.leak=true`: one suspect, checked by two refits). The goal: the leakage step
≤ ~3 s on the default scenario. The model's training time is printed beside them for scale.
"""
from __future__ import annotations

from _common import bench_parser, publish, set_threads

set_threads()
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results' / 'leakage.md'


def best_of(fn, repeat:int) -> tuple[float, object]:
    "Best wall time of `repeat` calls of `fn` (seconds) and its last result."
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    ap = bench_parser(__doc__, RESULTS)
    ap.add_argument('--rows', type=int, default=100_000, help='scenario rows (default: 100,000, the loop default)')
    a = ap.parse_args(argv)
    warnings.filterwarnings('ignore')
    import shap  # noqa: F401  (imported once, as in a loop run where slices imports it too)
    from mlops_nb.data import prepare
    from mlops_nb.params import LoopParams
    from mlops_nb.registry import ANALYSES, LoopInputs
    from mlops_nb.train import model_from_params
    rows = []
    for name, sets in (('default (clean)', []), ('leak', ['scenario.leak=true'])):
        p = LoopParams().override([f'scenario.rows={a.rows}', f'seed={a.seed}', *sets])
        prep = prepare(p)
        t = time.perf_counter()
        m = model_from_params(p).fit(prep.train[prep.features], prep.train[p.data.target])
        t_fit = time.perf_counter() - t
        test = prep.test.assign(score=m.predict_proba(prep.test[prep.features])[:, 1])
        inputs = LoopInputs(p, prep.train, test, prep.features, model=m)
        step = lambda k: (lambda: ANALYSES[k].run(inputs))
        ANALYSES['leakage'].run(inputs); ANALYSES['slices'].run(inputs)  # warm up
        t_leak, rep = best_of(step('leakage'), a.repeat)
        t_sl, _ = best_of(step('slices'), a.repeat)
        rows.append((name, rep.n, rep.positives, ', '.join(rep.leaks) or '—', int((rep.features.signs != '').sum()),
                     t_leak, t_sl, t_fit))
    load = os.getloadavg() if hasattr(os, 'getloadavg') else ('?',) * 3
    now = dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    lines = ['# Benchmark: the leakage step in the loop', '',
             f'Measured {now} by `python benchmarks/bench_leakage.py --rows {a.rows} --repeat {a.repeat}` '
             f'(threads {os.environ.get("OMP_NUM_THREADS")}).', '',
             f'Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; load average '
             f'{", ".join(f"{x:.1f}" if isinstance(x, float) else x for x in load)} at the end.', '',
             '| scenario | holdout rows | positives | flagged | suspects refitted | leakage step (s) | slices step (s) '
             '| leakage / slices | model fit (s) |', '|---|---|---|---|---|---|---|---|---|']
    for name, n, pos, leaks, sus, tl, ts, tf in rows:
        lines.append(f'| {name} | {n:,} | {pos:,} | {leaks} | {sus} | {tl:.2f} | {ts:.2f} | {tl / ts:.2f} | {tf:.1f} |')
    lines += ['', 'Best of the repeats; both steps on the same inputs in the same process, interleaved by scenario.']
    publish('\n'.join(lines) + '\n', a.out, a.no_write)


if __name__ == '__main__':
    main()
