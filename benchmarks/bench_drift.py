"""Time `mlops_nb.drift.analyze_drift` against a bare numpy pass (1M rows) and against Evidently's DataDriftPreset (100k rows).

a) `--rows` (default 1,000,000) rows × 50 mixed columns, reference and current drawn with a shift in 8 known
   columns. Next to `analyze_drift` runs the floor any per-column drift check pays: for each numeric column (float,
   int, datetime) 100 quantile bins of the reference (`np.quantile` on 101 edges) and `np.histogram` of both sides;
   for each string/bool column `value_counts` of both sides. Time: best of `--repeat`, the two ways interleaved
   (alternating which goes first) so that other processes on the machine slow both alike. Peak memory: one fresh
   subprocess per way (data drawn, warm-up, then the peak RSS is reset via /proc/self/clear_refs and read back from
   VmHWM after one call; and, in a second call, tracemalloc's peak). Goal: analyze_drift / bare ≤ 2×.

b) `--evidently-rows` (default 100,000) rows of the same data, written to Parquet; `analyze_drift` is timed in this
   process on the frames read back from those files, Evidently 0.7's `Report([DataDriftPreset()]).run(current,
   reference)` in a separate interpreter (`--evidently-python`, a virtual environment with `evidently==0.7.*` and
   `pandas<3`) by benchmarks/_evidently_runner.py, one subprocess per repeat, interleaved. Goal: Evidently /
   analyze_drift ≥ 30×. The results also say which columns each one found drifted, next to the truth.

OMP_NUM_THREADS (and OPENBLAS/MKL_NUM_THREADS) are set to `--threads` before numpy is imported, for this process and
every subprocess (both ways and Evidently alike). Writes benchmarks/results/drift.md (unless `--no-write`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results' / 'drift.md'
RUNNER = HERE / '_evidently_runner.py'


def _parser() -> argparse.ArgumentParser:
    ap = bench_parser(__doc__, RESULTS, repeat_help='timed runs per way in part a; the best is reported')
    ap.add_argument('--rows', type=int, default=1_000_000, help='rows of each side for part a (default: 1,000,000)')
    ap.add_argument('--evidently-rows', type=int, default=100_000, help='rows of each side for part b (default: 100,000)')
    ap.add_argument('--evidently-repeat', type=int, default=3, help='timed runs per way in part b (default: 3)')
    ap.add_argument('--evidently-python', type=Path, default=None,
                    help='python of a virtual environment with evidently==0.7.* and pandas<3 (and pyarrow); '
                         'without it part b is skipped (e.g. /tmp/evidently-venv/bin/python)')
    ap.add_argument('--parts', default='abc', help="which parts to run, any of 'a', 'b', 'c' (default: abc)")
    ap.add_argument('--sizes', default='500,2000,5000,50000', help='part c: rows a side, comma-separated (default: 500,2000,5000,50000)')
    ap.add_argument('--sens-repeat', type=int, default=10, help='part c: seeds per size and condition (default: 10)')
    ap.add_argument('--trivia-rows', type=int, default=1_000_000, help='part c: rows a side of the trivia case (0 = none; default: 1,000,000)')
    ap.add_argument('--evidently-trivia', action='store_true', help='part c: run Evidently on the trivia case too (slow)')
    ap.add_argument('--evidently-seeds', type=int, default=3, help='part c: Evidently runs on the first this many seeds only (default: 3)')
    ap.add_argument('--before-ref', default='55c3e7b', help="part c: git commit of the 'before' analyze_drift (default: 55c3e7b)")
    ap.add_argument('--_sens', default=None, help=argparse.SUPPRESS)  # internal: part c's cases in a subprocess
    ap.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses of part a')
    ap.add_argument('--_child', default=None, help=argparse.SUPPRESS)  # internal: measure one way's peak memory
    return ap




from _common import bench_parser, publish, set_threads  # noqa: E402
if __name__ == '__main__': set_threads()

import numpy as np  # noqa: E402  (after the thread variables)
import pandas as pd  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------- data
SHIFTED = ['f00', 'f01', 'f20', 'lo0', 'po0', 's0', 'b0', 't0']  # the columns drawn differently in current


def make_frames(n:int, seed:int=0) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Reference and current: 50 columns of `n` rows; the columns in SHIFTED are shifted in current, the rest are not."
    rng = np.random.default_rng(seed)
    cats = np.array([f'cat_{i:02d}' for i in range(20)])
    p_cat = 1 / np.arange(1, 21); p_cat /= p_cat.sum()
    ids = np.array([f'u{i:05d}' for i in range(50_000)])  # high cardinality: 50k values, power-law frequencies
    p_id = 1 / np.arange(1, 50_001) ** 0.8; p_id /= p_id.sum()
    t_start = np.datetime64('2026-01-01T00:00:00', 's')

    def side(shift:bool) -> pd.DataFrame:
        d = {}
        for i in range(20):  # normal; f00 mean +0.25 sd, f01 scale ×1.3; 5% NaN in f02, f03
            x = rng.normal(0.25 if shift and i == 0 else 0.0, 1.3 if shift and i == 1 else 1.0, n)
            if i in (2, 3): x[rng.random(n) < 0.05] = np.nan
            d[f'f{i:02d}'] = x
        for i in range(20, 25): d[f'f{i:02d}'] = rng.lognormal(0.3 if shift and i == 20 else 0.0, 1.0, n)  # heavy right tail
        for i in range(25, 30): d[f'f{i:02d}'] = rng.standard_t(2.5, n)  # heavy tails on both sides
        for i in range(5):  # 5 distinct values (categorical for analyze_drift); lo0 tilted
            d[f'lo{i}'] = rng.choice(5, n, p=[.3, .25, .2, .15, .1] if shift and i == 0 else [.2] * 5)
        for i in range(5): d[f'po{i}'] = rng.poisson((3 + 5 * i) * (1.2 if shift and i == 0 else 1.0), n)  # counts
        for i in range(4):  # 20 categories, Zipf; s0 mixed with uniform
            d[f's{i}'] = cats[rng.choice(20, n, p=0.5 * p_cat + 0.5 / 20 if shift and i == 0 else p_cat)]
        d['s4'] = ids[rng.choice(len(ids), n, p=p_id)]
        for i in range(3): d[f'b{i}'] = rng.random(n) < (0.5 if shift and i == 0 else 0.3)
        for i in range(2):  # 60 days of timestamps; t0 3 days later
            off = rng.integers(0, 60 * 86400, n) + (3 * 86400 if shift and i == 0 else 0)
            d[f't{i}'] = (t_start + off.astype('timedelta64[s]')).astype('datetime64[ns]')
        return pd.DataFrame(d)

    return side(False), side(True)


# ---------------------------------------------------------------------------------------------------------------- ways
def bare(ref:pd.DataFrame, cur:pd.DataFrame) -> int:
    "The bare numpy pass: quantile bins + two histograms per numeric column, two value_counts per other column."
    edges_q = np.linspace(0, 1, 101)
    out = 0
    for c in ref.columns:
        a, b = ref[c], cur[c]
        if a.dtype.kind in 'fiuM':
            x = a.to_numpy().view('int64') if a.dtype.kind == 'M' else a.to_numpy()
            y = b.to_numpy().view('int64') if b.dtype.kind == 'M' else b.to_numpy()
            x, y = x.astype('float64'), y.astype('float64')
            if a.dtype.kind == 'f': x, y = x[~np.isnan(x)], y[~np.isnan(y)]
            e = np.quantile(x, edges_q)
            out += np.histogram(x, e)[0][0] + np.histogram(y, e)[0][0]
        else:
            out += len(a.value_counts()) + len(b.value_counts())
    return int(out)


def ours(ref:pd.DataFrame, cur:pd.DataFrame):
    from mlops_nb.drift import analyze_drift
    return analyze_drift(ref, cur)


WAYS = {'analyze_drift': ours, 'bare numpy': bare}


def _status() -> dict:
    s = open('/proc/self/status').read()
    return {k: int(re.search(k + r':\s+(\d+)', s).group(1)) / 1024 for k in ('VmHWM', 'VmRSS')}  # MiB


def child(way:str, rows:int, seed:int) -> dict:
    "In a fresh process: draw the data, warm up, then one call's peak RSS above the data, and one call's tracemalloc peak."
    import resource
    fn = WAYS[way]
    ref, cur = make_frames(rows, seed)
    fn(ref.head(5000), cur.head(5000))  # imports (scipy, ...) and first-call costs out of the way
    gc.collect()
    out = {}
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')  # reset the peak RSS (VmHWM) to the current RSS
        s0 = _status(); fn(ref, cur); s1 = _status()
        out['rss_peak_mib'] = s1['VmHWM'] - s0['VmRSS']
        out['rss_method'] = 'VmHWM after clear_refs − VmRSS before'
    except OSError:  # no clear_refs: ru_maxrss delta (an underestimate when drawing the data peaked higher)
        m0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; fn(ref, cur)
        out['rss_peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - m0
        out['rss_method'] = 'ru_maxrss delta'
    gc.collect(); tracemalloc.start()
    try: fn(ref, cur); out['tracemalloc_peak_mib'] = tracemalloc.get_traced_memory()[1] / 2**20
    finally: tracemalloc.stop()
    return out


MMAP_THRESHOLD = 128 * 1024


def run_child(way:str, rows:int, seed:int, threads:int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), '--_child', way, '--rows', str(rows), '--seed', str(seed),
           '--threads', str(threads)]
    # a fixed glibc mmap threshold: large arrays are mapped and unmapped, not recycled in the heap, so the RSS
    # peak of the call is its own (with the default dynamic threshold, freed heap pages from drawing the data hide it)
    env = {**os.environ, 'PYTHONPATH': _pythonpath(), 'MALLOC_MMAP_THRESHOLD_': str(MMAP_THRESHOLD)}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode: return {'error': p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f'exit {p.returncode}'}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _pythonpath() -> str:
    "The repository root first, so that subprocesses import this checkout's mlops_nb."
    return os.pathsep.join([str(HERE.parent)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])


def interleaved(fns:dict, repeat:int) -> dict:
    "Best wall time of each function over `repeat` rounds; each round calls every function, alternating the order."
    times = {k: [] for k in fns}
    for r in range(repeat):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            gc.collect()
            t = time.perf_counter(); fns[k](); times[k].append(time.perf_counter() - t)
    return times


# ---------------------------------------------------------------------------------------------------------------- parts
def part_a(a) -> tuple[list[str], dict]:
    ref, cur = make_frames(a.rows, a.seed)
    mib = (ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()) / 2**20
    for f in WAYS.values(): f(ref.head(5000), cur.head(5000))  # warm up
    times = interleaved({k: (lambda f=f: f(ref, cur)) for k, f in WAYS.items()}, a.repeat)
    r = ours(ref, cur)
    del ref, cur; gc.collect()
    mem = {k: ({} if a.no_memory else run_child(k, a.rows, a.seed, a.threads)) for k in WAYS}
    best = {k: min(v) for k, v in times.items()}
    ratio = best['analyze_drift'] / best['bare numpy']
    t = r.columns
    found = sorted(r.drifted_columns)
    tests = t.groupby('stat_test').size().to_dict()
    lines = [
        f'## a) `analyze_drift` vs a bare numpy pass — {a.rows:,} rows × {t.shape[0]} columns per side', '',
        f'Data: `make_frames({a.rows}, seed={a.seed})` in this script — 20 normal floats (5% NaN in two), 5 lognormal, '
        '5 Student-t(2.5), 5 integers with 5 values, 5 Poisson counts, 4 strings with 20 Zipf categories, one string '
        'with 50,000 power-law values, 3 bools, 2 datetimes; current shifted in ' + ', '.join(f'`{c}`' for c in SHIFTED) +
        f'. Both frames: {mib:,.0f} MiB (`memory_usage(deep=True)`).', '',
        f'| way | best of {a.repeat} (s) | all runs (s) | peak RSS above the data (MiB) | tracemalloc peak (MiB) |',
        '|---|---:|---|---:|---:|',
    ]
    for k in WAYS:
        m = mem[k]
        rss = f"{m['rss_peak_mib']:,.0f}" if 'rss_peak_mib' in m else m.get('error', 'not measured')
        tm = f"{m['tracemalloc_peak_mib']:,.0f}" if 'tracemalloc_peak_mib' in m else '—'
        lines.append(f"| `{k}` | {best[k]:.2f} | {', '.join(f'{x:.2f}' for x in times[k])} | {rss} | {tm} |")
    mr = ''
    if all('rss_peak_mib' in mem[k] for k in WAYS) and mem['bare numpy']['rss_peak_mib'] > 0:
        mr = f", peak RSS {mem['analyze_drift']['rss_peak_mib'] / mem['bare numpy']['rss_peak_mib']:.1f}×"
    lines += ['', f'**RATIO analyze_drift / bare numpy: {ratio:.2f}× (time){mr}** — goal ≤ 2×: '
              f'{"met" if ratio <= 2 else "NOT met"}.', '',
              f'analyze_drift chose {", ".join(f"{v} × {k}" for k, v in tests.items())}; it found {len(found)} drifted '
              f'column(s): {", ".join(f"`{c}`" for c in found) or "none"} (shifted by construction: '
              f'{", ".join(f"`{c}`" for c in SHIFTED)}).', '']
    if mem['analyze_drift'].get('rss_method'):
        lines += [f"Peak memory: each way in a fresh subprocess (with `MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}`, so that "
                  "freed heap pages left by drawing the data do not hide the call's peak) after drawing the data and a "
                  f"warm-up call; RSS = {mem['analyze_drift']['rss_method']} around one call (includes pyarrow's string "
                  "buffers); tracemalloc = a second call traced (numpy and Python allocations only).", '']
    return lines, dict(best=best, ratio=ratio, mem=mem, drifted=found)


def _evidently_drifted(res:dict) -> dict:
    "column → (method, threshold, score, drifted) from the runner's JSON."
    out = {}
    for c, m in res['columns'].items():
        p_value = 'p_value' in m['method']
        out[c] = (m['method'], m['threshold'], m['value'], m['value'] < m['threshold'] if p_value else m['value'] >= m['threshold'])
    return out


HIGH_CARD = 's4'  # the high-cardinality string column: by far Evidently's slowest; timed with and without it


def part_b(a) -> tuple[list[str], dict]:
    from mlops_nb.drift import analyze_drift
    head = [f'## b) `analyze_drift` vs Evidently `DataDriftPreset` — {a.evidently_rows:,} rows × 50 columns per side', '']
    if a.evidently_python is None:
        return head + ['Skipped: no `--evidently-python` given (a virtual environment with `evidently==0.7.*` and '
                       '`pandas<3`).', ''], {}
    tmp = Path(tempfile.mkdtemp(prefix='bench_drift_'))
    r0, c0 = make_frames(a.evidently_rows, a.seed)
    r0.to_parquet(tmp / 'reference.parquet', index=False); c0.to_parquet(tmp / 'current.parquet', index=False)
    del r0, c0
    ref, cur = pd.read_parquet(tmp / 'reference.parquet'), pd.read_parquet(tmp / 'current.parquet')
    ref_x, cur_x = ref.drop(columns=HIGH_CARD), cur.drop(columns=HIGH_CARD)
    analyze_drift(ref.head(5000), cur.head(5000))  # warm up
    env = {**os.environ}; env.pop('PYTHONPATH', None)
    cmd = [str(a.evidently_python), str(RUNNER), str(tmp / 'reference.parquet'), str(tmp / 'current.parquet')]
    variants = {'all': [], 'x': ['--drop', HIGH_CARD]}
    times = {(w, v): [] for w in ('ours', 'ev') for v in variants}
    res, reps, err = {}, {}, None
    for r in range(a.evidently_repeat):
        order = [(w, v) for v in variants for w in ('ours', 'ev')]
        for w, v in (order if r % 2 == 0 else order[::-1]):
            if w == 'ours':
                x, y = (ref, cur) if v == 'all' else (ref_x, cur_x)
                gc.collect(); t = time.perf_counter(); reps[v] = analyze_drift(x, y); times[w, v].append(time.perf_counter() - t)
            elif err is None:
                p = subprocess.run(cmd + variants[v], capture_output=True, text=True, env=env)
                if p.returncode:
                    err = (p.stderr.strip() or f'exit code {p.returncode}')[-3000:]
                    continue
                res[v] = json.loads(p.stdout.strip().splitlines()[-1]); times[w, v].append(res[v]['seconds'])
    for f in tmp.iterdir(): f.unlink()
    tmp.rmdir()
    lines = head + [f'Data: the same generator as in part a (`make_frames({a.evidently_rows}, seed={a.seed})`), written to '
                    'Parquet and read back: analyze_drift runs in this process on the frames read back; Evidently runs '
                    f'in `{a.evidently_python}` via `benchmarks/_evidently_runner.py` (one subprocess per repeat, reading the '
                    'same files, one warm-up `run` on 2,000 rows, then one timed `Report([DataDriftPreset()]).run(current, '
                    'reference)` on all rows, column types inferred by Evidently; interpreter start, imports and file '
                    f'reading are not timed). Each repeat runs the four measurements below in turn (order reversed every '
                    f'other repeat). Second pair: the same without `{HIGH_CARD}`, the string column with 50,000 values, '
                    "which is most of Evidently's time.", '']
    best = {k: min(v) for k, v in times.items() if v}
    if err is not None:
        return lines + ['Evidently failed; its error:', '', '```', err, '```', '',
                        f"analyze_drift: best of {len(times['ours', 'all'])} {best['ours', 'all']:.3f} s.", ''], {'error': err}
    ratio = best['ev', 'all'] / best['ours', 'all']; ratio_x = best['ev', 'x'] / best['ours', 'x']
    fmt = lambda k: f"| {best[k]:.3f} | {', '.join(f'{x:.3f}' for x in times[k])} |"
    ev0 = res['all']
    lines += [f"Evidently {ev0['evidently_version']} with pandas {ev0['pandas_version']}, numpy "
              f"{ev0['numpy_version']}, scipy {ev0['scipy_version']}.", '',
              f'| way | columns | best of {a.evidently_repeat} (s) | all runs (s) |', '|---|---|---:|---|',
              '| `analyze_drift` | all 50 ' + fmt(('ours', 'all')),
              '| Evidently `DataDriftPreset` | all 50 ' + fmt(('ev', 'all')),
              f'| `analyze_drift` | 49, without `{HIGH_CARD}` ' + fmt(('ours', 'x')),
              f'| Evidently `DataDriftPreset` | 49, without `{HIGH_CARD}` ' + fmt(('ev', 'x')), '',
              f'**RATIO Evidently / analyze_drift: {ratio:.1f}× (time, all 50 columns)** — goal ≥ 30×: '
              f'{"met" if ratio >= 30 else "NOT met"}. Without `{HIGH_CARD}`: {ratio_x:.1f}× '
              f'({"met" if ratio_x >= 30 else "NOT met"}).', '']
    ev = _evidently_drifted(ev0)
    rep = reps['all']; t = rep.columns
    rows, agree, n_both = [], 0, 0
    for c in t.index:
        o = bool(t.at[c, 'drifted'])
        e = ev.get(c)
        if e is not None:
            n_both += 1; agree += o == e[3]
        rows.append(f"| `{c}` | {'yes' if c in SHIFTED else 'no'} | {t.at[c, 'stat_test']} {t.at[c, 'score']:.3g} | "
                    f"{'**drift**' if o else 'no'} | " +
                    (f"{e[0]} {e[2]:.3g} | {'**drift**' if e[3] else 'no'} |" if e else 'not tested | — |'))
    ev_found = sorted(c for c, v in ev.items() if v[3])
    ours_found = sorted(rep.drifted_columns)
    def score(found):
        tp = len(set(found) & set(SHIFTED)); return tp, len(found) - tp, len(SHIFTED) - tp
    (otp, ofp, ofn), (etp, efp, efn) = score(ours_found), score(ev_found)
    untested = [c for c in SHIFTED if c not in ev]
    disagree = [c for c in t.index if c in ev and bool(t.at[c, 'drifted']) != ev[c][3]]
    lines += [f'Agreement on which columns drifted (all 50 columns): **{agree} of {n_both}** columns both tested agree'
              + (f" (they differ on {', '.join(f'`{c}`' for c in disagree)})" if disagree else '') +
              f'. Evidently tested {len(ev)} columns (it leaves out datetime columns), analyze_drift {len(t)}. '
              f"Evidently's dataset drift: {ev0['dataset_drift']} ({ev0['drifted_count']:.0f} columns, share "
              f"{ev0['drifted_share']:.2f}); analyze_drift's: {rep.dataset_drift} ({rep.n_drifted}, share {rep.share_drifted:.2f}).", '',
              f'Against the truth (shifted by construction: {", ".join(f"`{c}`" for c in SHIFTED)}): analyze_drift {otp} found, '
              f'{ofp} false alarm(s), {ofn} missed; Evidently {etp} found, {efp} false alarm(s), {efn} missed'
              + (f" ({', '.join(f'`{c}`' for c in untested)} not tested)" if untested else '') + '.', '',
              '| column | shifted | analyze_drift test, score | analyze_drift | Evidently method, score | Evidently |',
              '|---|---|---|---|---|---|', *rows, '']
    return lines, dict(best=best, ratio=ratio, ratio_x=ratio_x, agree=agree, n_both=n_both,
                       ours_found=ours_found, ev_found=ev_found)


# ---------------------------------------------------------------------------------------------------------------- part c
LOGNORMAL_SD = float(np.sqrt((np.exp(0.75 ** 2) - 1) * np.exp(0.75 ** 2)))
SENS_NUMERIC = {  # name: (draw(rng, n), true standard deviation)
    'normal': (lambda g, n: g.normal(0, 1, n), 1.0),
    'lognormal': (lambda g, n: g.lognormal(0, 0.75, n), LOGNORMAL_SD),
    'student_t3': (lambda g, n: g.standard_t(3, n), float(np.sqrt(3))),
    'poisson4': (lambda g, n: g.poisson(4, n).astype(float), 2.0),
    'uniform': (lambda g, n: g.random(n), float(1 / np.sqrt(12))),
}
_zipf = lambda k, s=1.0: (lambda p: p / p.sum())(1 / np.arange(1, k + 1) ** s)
SENS_CATEGORICAL = {  # name: (shares, labels)
    'zipf20': (_zipf(20), np.array([f'c{i:02d}' for i in range(20)])),
    'flat10': (np.full(10, 0.1), np.array([f'v{i}' for i in range(10)])),
    'flag': (np.array([0.8, 0.2]), np.array([False, True])),
    'int5': (np.array([0.4, 0.15, 0.15, 0.15, 0.15]), np.arange(5)),
    'ids1000': (_zipf(1000, 0.8), np.array([f'u{i:04d}' for i in range(1000)])),
}
MOVES = {'moderate': (0.5, 0.5), 'trivia': (0.03, 0.98)}  # (numeric mean shift in sd, factor on the top share)


def _top_scaled(p:np.ndarray, factor:float) -> np.ndarray:
    "Shares with the most frequent one multiplied by `factor`, the others rescaled to keep the sum 1."
    i = int(np.argmax(p)); top = p[i] * factor
    rest = np.delete(p, i); return np.insert(rest * (1 - top) / rest.sum(), i, top)


def sens_frame(g, n:int, move:tuple|None=None) -> pd.DataFrame:
    "`n` rows of the part-c columns; `move` = (mean shift in sd, factor on the top share) shifts every column."
    d = {k: f(g, n) + (move[0] * sd if move else 0.0) for k, (f, sd) in SENS_NUMERIC.items()}
    for k, (p, labels) in SENS_CATEGORICAL.items(): d[k] = labels[g.choice(len(p), n, p=_top_scaled(p, move[1]) if move else p)]
    return pd.DataFrame(d)


def sens_cases(sizes:list, repeat:int, trivia_rows:int, seed:int):
    "(case name, reference, current): moderate shifts and random halves at each size, `repeat` seeds; trivia once."
    for n in sizes:
        for r in range(repeat):
            g = np.random.default_rng([seed, n, r])
            yield f'moderate-{n}-{r}', sens_frame(g, n), sens_frame(g, n, MOVES['moderate'])
            both = sens_frame(g, 2 * n); half = g.permutation(2 * n) < n
            yield f'halves-{n}-{r}', both[half].reset_index(drop=True), both[~half].reset_index(drop=True)
    if trivia_rows:
        g = np.random.default_rng([seed, trivia_rows])
        yield f'trivia-{trivia_rows}-0', sens_frame(g, trivia_rows), sens_frame(g, trivia_rows, MOVES['trivia'])


def sens_child(spec:dict) -> dict:
    "In a subprocess (PYTHONPATH = the code measured): each case's drifted columns and dataset drift."
    from mlops_nb.drift import analyze_drift
    out = {}
    for case, ref, cur in sens_cases(spec['sizes'], spec['repeat'], spec['trivia_rows'], spec['seed']):
        r = analyze_drift(ref, cur)
        out[case] = dict(drifted={c: bool(v) for c, v in r.columns['drifted'].items()}, dataset=bool(r.dataset_drift))
    return out


def _before_tree(ref:str) -> Path:
    "The package as it was at commit `ref`, extracted into a temporary folder (for the 'before' column)."
    tmp = Path(tempfile.mkdtemp(prefix='bench_drift_before_'))
    arch = subprocess.run(['git', '-C', str(HERE.parent), 'archive', ref, 'mlops_nb'], capture_output=True, check=True)
    subprocess.run(['tar', '-x', '-C', str(tmp)], input=arch.stdout, check=True)
    return tmp


def _run_sens(pythonpath:str, spec:dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), '--_sens', json.dumps(spec), '--threads', os.environ['OMP_NUM_THREADS']]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': pythonpath})
    if p.returncode: raise RuntimeError(p.stderr.strip()[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def _run_evidently_cases(a, spec:dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix='bench_drift_cases_'))
    for case, ref, cur in sens_cases(spec['sizes'], min(spec['repeat'], a.evidently_seeds),
                                     spec['trivia_rows'] if a.evidently_trivia else 0, spec['seed']):
        ref.to_parquet(tmp / f'{case}.ref.parquet', index=False); cur.to_parquet(tmp / f'{case}.cur.parquet', index=False)
    env = {**os.environ}; env.pop('PYTHONPATH', None)
    p = subprocess.run([str(a.evidently_python), str(HERE / '_evidently_cases.py'), str(tmp)], capture_output=True,
                       text=True, env=env)
    for f in tmp.iterdir(): f.unlink()
    tmp.rmdir()
    if p.returncode: raise RuntimeError((p.stderr.strip() or f'exit {p.returncode}')[-3000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    cases = {k: dict(drifted={c: v[3] for c, v in _evidently_drifted(dict(columns=c_['columns'])).items()},
                     dataset=c_['dataset_drift']) for k, c_ in res['cases'].items()}
    return dict(cases=cases, version=res['evidently_version'], pandas=res['pandas_version'])


def _rates(cases:dict, cond:str, n:int, cols:list) -> tuple:
    "Share of (repeat, column) pairs that drifted, the number of cases, of dataset alarms, and columns not tested."
    cs = [v for k, v in cases.items() if k.startswith(f'{cond}-{n}-')]
    if not cs: return np.nan, 0, 0, cols
    hits = [v['drifted'][c] for v in cs for c in cols if c in v['drifted']]
    untested = [c for c in cols if c not in cs[0]['drifted']]
    return (float(np.mean(hits)) if hits else np.nan), len(cs), sum(v['dataset'] for v in cs), untested


def part_c(a) -> tuple[list[str], dict]:
    sizes = [int(x) for x in a.sizes.split(',')]
    spec = dict(sizes=sizes, repeat=a.sens_repeat, trivia_rows=a.trivia_rows, seed=a.seed)
    cols = list(SENS_NUMERIC) + list(SENS_CATEGORICAL)
    before = _before_tree(a.before_ref)
    t0 = time.perf_counter()
    ways = {'before': _run_sens(str(before), spec)}
    subprocess.run(['rm', '-rf', str(before)], check=True)
    ways['after'] = _run_sens(_pythonpath(), spec)
    seconds = time.perf_counter() - t0
    ev_note = 'Evidently: not run (no `--evidently-python`).'
    if a.evidently_python is not None:
        try:
            ev = _run_evidently_cases(a, spec); ways['Evidently'] = ev['cases']
            ev_note = (f"Evidently {ev['version']} (pandas {ev['pandas']}) `DataDriftPreset()` with its defaults, column "
                       f"types inferred, on the same frames written to Parquet, in `_evidently_cases.py`, on the first "
                       f"{min(a.sens_repeat, a.evidently_seeds)} seeds"
                       + (' (not on the trivia case)' if not a.evidently_trivia else '') + '.')
        except RuntimeError as e: ev_note = f'Evidently failed: `{str(e).splitlines()[-1]}`'
    lines = [f'## c) Sensitivity by sample size: recall on moderate shifts, false alarms on random halves', '',
             'Data: `sens_frame` in this script, ten columns of different shapes — numbers: ' +
             ', '.join(f'`{c}`' for c in SENS_NUMERIC) + '; categories: ' + ', '.join(f'`{c}`' for c in SENS_CATEGORICAL) +
             ' (20 Zipf strings, 10 equally common strings, a bool with 20 % True, 5 integers with shares '
             '.4/.15/.15/.15/.15, 1000 power-law strings). **Moderate shift** (recall): every numeric column moved by '
             '+0.5 of its standard deviation, every categorical column with the share of its most frequent value halved '
             '(the others rescaled). **Random halves** (false alarms): 2n rows of the unshifted columns split at random. '
             f'**Trivia** ({a.trivia_rows:,} rows a side): +0.03 sd, the top share × 0.98. {a.sens_repeat} seeds per size '
             f'and condition; rates are over seeds × columns.', '',
             f'Ways: **before** = `analyze_drift` at commit `{a.before_ref}` (Evidently-style: KS / chi² p < 0.05 up to '
             '1000 rows a side, else normalized Wasserstein / Jensen–Shannon > 0.1 with p < 0.05), **after** = this '
             'checkout (Wasserstein / sd and Cohen\'s h above `min_effect` = 0.1, with p below 0.05 / number of columns), '
             f'both with their defaults, each in a subprocess ({seconds:.0f} s for both). {ev_note}', '',
             '| rows a side | way | recall, numbers | recall, categories | recall, all | false-alarm rate (halves) '
             '| dataset alarms (halves) |', '|---:|---|---:|---:|---:|---:|---:|']
    summary = {}
    for n in sizes:
        for w, cases in ways.items():
            rn, _, _, _ = _rates(cases, 'moderate', n, list(SENS_NUMERIC))
            rc, _, _, un = _rates(cases, 'moderate', n, list(SENS_CATEGORICAL))
            ra, k, _, unt = _rates(cases, 'moderate', n, cols)
            fa, kh, dh, _ = _rates(cases, 'halves', n, cols)
            summary[w, n] = dict(recall=ra, false_alarm=fa, dataset_alarms=dh)
            note = f" ({', '.join(f'`{c}`' for c in unt)} not tested)" if unt else ''
            lines.append(f'| {n:,} | {w}{note} | {rn:.0%} | {rc:.0%} | {ra:.0%} | {fa:.1%} | {dh} of {kh} |')
    lines += ['', 'Recall per column (share of seeds where the moderate shift was found):', '',
              '| rows a side | way | ' + ' | '.join(f'`{c}`' for c in cols) + ' |', '|---:|---|' + '---:|' * len(cols)]
    for n in sizes:
        for w, cases in ways.items():
            cells = [_rates(cases, 'moderate', n, [c])[0] for c in cols]
            lines.append(f'| {n:,} | {w} | ' + ' | '.join('—' if np.isnan(x) else f'{x:.0%}' for x in cells) + ' |')
    if a.trivia_rows:
        lines += ['', f'Trivia at {a.trivia_rows:,} rows a side (columns alarmed; dataset drift):', '']
        for w, cases in ways.items():
            v = cases.get(f'trivia-{a.trivia_rows}-0')
            if v: lines.append(f"- {w}: {sum(v['drifted'].values())} of {len(v['drifted'])} columns"
                               + (f" ({', '.join(f'`{c}`' for c, d in v['drifted'].items() if d)})" if any(v['drifted'].values()) else '')
                               + f"; dataset drift {v['dataset']}")
    return lines + [''], summary


def main(argv=None):
    ap = _parser()
    a = ap.parse_args(argv)
    if a._child:
        print(json.dumps(child(a._child, a.rows, a.seed))); return
    if a._sens:
        print(json.dumps(sens_child(json.loads(a._sens)))); return
    if a.rows < 10_000 or a.evidently_rows < 10_000: ap.error('--rows and --evidently-rows must be >= 10,000')
    if a.repeat < 1 or a.evidently_repeat < 1: ap.error('--repeat and --evidently-repeat must be >= 1')
    if not set(a.parts) <= {'a', 'b', 'c'} or not a.parts: ap.error("--parts must be letters among 'a', 'b', 'c'")
    if a.evidently_python is not None and not a.evidently_python.exists(): ap.error(f'{a.evidently_python} does not exist')
    import scipy, sklearn
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    body, summary = [], {}
    if 'a' in a.parts:
        lines, summary['a'] = part_a(a); body += lines
    if 'b' in a.parts:
        lines, summary['b'] = part_b(a); body += lines
    if 'c' in a.parts:
        lines, summary['c'] = part_c(a); body += lines
    load1 = os.getloadavg()
    cmd = 'python benchmarks/bench_drift.py ' + ' '.join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    ratios = []
    if summary.get('a'): ratios.append(f"analyze_drift / bare numpy at {a.rows:,} rows = **{summary['a']['ratio']:.2f}×** (goal ≤ 2×)")
    if summary.get('b', {}).get('ratio'):
        ratios.append(f"Evidently / analyze_drift at {a.evidently_rows:,} rows = **{summary['b']['ratio']:.1f}×** (goal ≥ 30×; "
                      f"{summary['b']['ratio_x']:.1f}× without the high-cardinality string column)")
    if summary.get('c'):
        c = summary['c']
        for n in (x for x in (2000, 5000, 50000) if ('after', x) in c):
            ratios.append(f"recall on moderate shifts at {n:,} rows a side **{c['before', n]['recall']:.0%} → "
                          f"{c['after', n]['recall']:.0%}**, false alarms on random halves {c['before', n]['false_alarm']:.1%} → "
                          f"{c['after', n]['false_alarm']:.1%}" + (f" (Evidently {c['Evidently', n]['recall']:.0%}, "
                          f"{c['Evidently', n]['false_alarm']:.1%})" if ('Evidently', n) in c else ''))
    text = '\n'.join([
        '# Benchmark: `analyze_drift`', '',
        f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `{cmd.strip()}` (run from the repository root).", '',
        f'Machine: nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}, '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, '
        f'scipy {scipy.__version__}, scikit-learn {sklearn.__version__}. Load average (1, 5, 15 min): '
        f'{", ".join(f"{x:.2f}" for x in load0)} at the start, {", ".join(f"{x:.2f}" for x in load1)} at the end '
        '(other processes on the machine slow both ways; the interleaving spreads that over both).', '',
        f"OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS')} for this process "
        'and every subprocess (both ways, the memory probes and Evidently).', '',
        'RATIO: ' + ('; '.join(ratios) if ratios else 'none measured') + '.', '',
        *body])
    publish(text, a.out, a.no_write)


if __name__ == '__main__':
    main()
