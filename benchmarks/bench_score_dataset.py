"""Scoring a Parquet dataset partition-wise (`mlops-nb score DATASET --out DIR`) against scoring it in one process.

The same rows, the same registered model (a logistic regression on six ads features, two of them categorical):
`score_dataset` on a 2-worker LocalCluster (one Parquet file per partition, one batch with the merged profile in the
prediction log) against today's `score` of the whole table read into memory (one SQLite row per prediction). Each
way runs in a fresh process; reported: wall time, peak memory (the one process; for the cluster the client process —
which also holds the scheduler — plus the sum of the workers' own peak RSS), and what the prediction log grew by.
"""
from __future__ import annotations

import _common
_common.set_threads()

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = ['hour', 'position', 'ad_quality', 'bid', 'device', 'placement']


def _peak_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(root:Path, rows:int, parts:int, seed:int) -> tuple[Path, Path]:
    "A project with a registered champion, and a Parquet dataset of `rows` rows in `parts` files."
    import numpy as np
    import pandas as pd
    os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
    sys.path.insert(0, str(HERE.parent / 'tests'))
    from test_score_dataset import _toy_run  # the small logged model the tests use
    from mlops_nb.deploy import promote
    from mlops_nb.demo import simulate_ads
    from mlops_nb.runner import init_project
    proj = init_project(root / 'loop'); promote(proj, _toy_run(proj), force=True)
    data = root / 'data'; data.mkdir()
    per = rows // parts
    for i in range(parts):
        df = simulate_ads(rows=per, days=7, prevalence=0.1, seed=seed + i)[['impression_id', 'timestamp'] + FEATURES]
        df['impression_id'] = np.arange(i * per, (i + 1) * per)
        df.to_parquet(data / f'part-{i:03d}.parquet', index=False)
    return proj, data


def _child(way:str, proj:str, data:str, out:str, workers:int) -> dict:
    "One way, in this (fresh) process: its time, peak memory and what the log grew by."
    log = Path(proj) / 'monitoring' / 'predictions.db'
    size0 = log.stat().st_size if log.exists() else 0
    if way == 'memory':
        import pandas as pd
        from mlops_nb.scoring import score
        t = time.perf_counter()
        res = score(proj, pd.read_parquet(data))
        r = dict(seconds=time.perf_counter() - t, rows=len(res), peak_mb=_peak_mb(), workers_peak_mb=0.0)
    else:
        from mlops_nb.cluster import dask_client
        from mlops_nb.score_dataset import score_dataset
        t0 = time.perf_counter()
        with dask_client(workers=workers) as c:
            t = time.perf_counter()
            res = score_dataset(proj, data, out, client=c)
            secs = time.perf_counter() - t
            peaks = c.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        r = dict(seconds=secs, with_cluster_start=time.perf_counter() - t0, rows=res.n_rows, peak_mb=_peak_mb(),
                 workers_peak_mb=float(sum(peaks.values())), model_loads=res.model_loads)
    wal = Path(str(log) + '-wal')
    r['log_growth_mb'] = ((log.stat().st_size if log.exists() else 0) - size0
                          + (wal.stat().st_size if wal.exists() else 0)) / 2**20
    return r


def _run(way:str, proj:Path, data:Path, out:Path, workers:int, threads:int) -> dict:
    cmd = [sys.executable, __file__, '--child', way, '--project', str(proj), '--data', str(data),
           '--dest', str(out), '--workers', str(workers), '--threads', str(threads), '--no-write']
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    if p.returncode: raise SystemExit(f"{way} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = _common.bench_parser(__doc__, HERE / 'results' / 'score_dataset.md', repeat_help='rounds, the ways interleaved')
    ap.add_argument('--rows', type=int, default=2_000_000, help='rows of the dataset (default: 2M)')
    ap.add_argument('--parts', type=int, default=16, help='Parquet files (partitions) (default: 16)')
    ap.add_argument('--workers', type=int, default=2, help='LocalCluster workers (default: 2)')
    ap.add_argument('--child', default=None, help=argparse_hidden())
    ap.add_argument('--project', default=None, help=argparse_hidden())
    ap.add_argument('--data', default=None, help=argparse_hidden())
    ap.add_argument('--dest', default=None, help=argparse_hidden())
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.project, a.data, a.dest, a.workers))); return
    root = Path(tempfile.mkdtemp(prefix='bench-score-'))
    t = time.perf_counter()
    proj, data = _setup(root, a.rows, a.parts, a.seed)
    gen = time.perf_counter() - t
    rounds = []
    for k in range(a.repeat):
        rounds.append(dict(memory=_run('memory', proj, data, root / f'out-m{k}', a.workers, a.threads),
                           dataset=_run('dataset', proj, data, root / f'out-d{k}', a.workers, a.threads)))
    best = {w: min((r[w] for r in rounds), key=lambda x: x['seconds']) for w in ('memory', 'dataset')}
    m, d = best['memory'], best['dataset']
    d_total = d['peak_mb'] + d['workers_peak_mb']
    text = f"""# Scoring a Parquet dataset: partition-wise on a LocalCluster vs one process

{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · {os.cpu_count()} cores ·
load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} · `{' '.join(['python'] + sys.argv)}`

{a.rows:,} rows × {len(FEATURES)} features (+ id, time) in {a.parts} Parquet files (generated in {gen:.0f} s with the
project and its model); a logistic regression on the six features; best of {a.repeat} interleaved rounds, each way in a
fresh process, `--threads {a.threads}`.

| way | time (s) | peak memory (MB) | prediction log grew by (MB) |
|---|---:|---:|---:|
| `score` of the table read into memory (one process, one SQLite row per prediction) | {m['seconds']:.1f} | {m['peak_mb']:.0f} | {m['log_growth_mb']:.1f} |
| `score_dataset`, {a.workers}-worker LocalCluster (client + scheduler {d['peak_mb']:.0f} MB, workers {d['workers_peak_mb']:.0f} MB) | {d['seconds']:.1f} | {d_total:.0f} | {d['log_growth_mb']:.2f} |

- time ratio dataset / memory: **{d['seconds'] / m['seconds']:.2f}** (the cluster's start, {d['with_cluster_start'] - d['seconds']:.1f} s, not included)
- peak memory ratio memory / dataset (all processes): **{m['peak_mb'] / d_total:.2f}**; per worker
  {d['workers_peak_mb'] / a.workers:.0f} MB, bounded by one partition ({a.rows // a.parts:,} rows) plus the imports
- the model was loaded {d['model_loads']} time(s) (once per worker)
"""
    _common.publish(text, a.out, a.no_write)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == '__main__': main()
