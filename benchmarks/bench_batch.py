"""`mlops-nb batch` of N runs on a 2-worker Dask LocalCluster against the process pool it replaced, whole processes.

Both ways run the same command, `mlops-nb batch FILE --workers 2`, on the same batch file (N small loop iterations
that differ by seed), each in a project of its own made by its own code: today's code (this checkout: a Dask task per
set on a LocalCluster) and the code before it (`--before REV`, default c966b05: a `ProcessPoolExecutor` of spawned
processes), unpacked from git into a temporary folder and put first on PYTHONPATH. One untimed batch per way first
(it creates the project's MLflow store), then the timed batches interleaved A B A B …; wall time of the whole
command and the CPU time of it and its children. Goal (issue 10): Dask / process pool ≤ 1.0 (no slower).
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results' / 'batch.md'
CLI = 'import sys; from mlops_nb.cli import main; sys.exit(main())'


def _env(code: Path, threads: int) -> dict:
    env = {**os.environ, 'PYTHONPATH': str(code), 'MLFLOW_DISABLE_TELEMETRY': 'true', 'OMP_NUM_THREADS': str(threads)}
    env.pop('DASK_SCHEDULER_ADDRESS', None); env.pop('MLFLOW_TRACKING_URI', None)
    return env


def _batch_file(path: Path, runs: int, rows: int, seed: int) -> Path:
    import yaml
    path.write_text(yaml.safe_dump({'set': {'scenario.rows': rows, 'scenario.days': 35, 'model.kind': 'logistic',
                                            'analysis.enabled': []},
                                    'grid': {'seed': list(range(seed, seed + runs))}}))
    return path


def _timed(cmd, env) -> tuple[float, float, str]:
    "Wall and CPU seconds (the command and its waited-for children) of one command; its stdout."
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0: raise SystemExit(f'{cmd}: exit {r.returncode}\n{r.stderr[-3000:]}')
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r.stdout


def main():
    ap = bench_parser(__doc__, RESULTS)
    ap.add_argument('--runs', type=int, default=8, help='parameter sets in the batch (default 8)')
    ap.add_argument('--workers', type=int, default=2, help='--workers of both ways (default 2)')
    ap.add_argument('--rows', type=int, default=3000, help='scenario.rows of each run (default 3000)')
    ap.add_argument('--before', default='c966b05', help='git revision of the process-pool batch (default c966b05)')
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix='bench-batch-'))
    try:
        before = root / 'before'; before.mkdir()
        arc = subprocess.run(['git', '-C', str(ROOT), 'archive', a.before, 'mlops_nb'], capture_output=True, check=True)
        subprocess.run(['tar', '-x', '-C', str(before)], input=arc.stdout, check=True)
        ways = {'dask': ROOT, 'pool': before}
        projects = {}
        for name, code in ways.items():
            projects[name] = root / f'project-{name}'
            subprocess.run([sys.executable, '-c', 'import sys; from mlops_nb.project import init_project; '
                            'init_project(sys.argv[1])', str(projects[name])], env=_env(code, a.threads), check=True)
        f = _batch_file(root / 'batch.yaml', a.runs, a.rows, a.seed)
        warm = _batch_file(root / 'warm.yaml', a.workers, a.rows, a.seed)
        cmd = lambda name, file: [sys.executable, '-c', CLI, 'batch', str(file), '-C', str(projects[name]),
                                  '--workers', str(a.workers)]
        for name, code in ways.items(): _timed(cmd(name, warm), _env(code, a.threads))  # the MLflow store, imports
        res = {n: [] for n in ways}
        for _ in range(a.repeat):
            for name, code in ways.items():
                wall, cpu, out = _timed(cmd(name, f), _env(code, a.threads))
                done = sum(' complete ' in l for l in out.splitlines()[1:])
                if done != a.runs: raise SystemExit(f'{name}: {done} of {a.runs} runs complete\n{out}')
                res[name].append((wall, cpu))
        load = os.getloadavg()[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratios = [d[0] / p[0] for d, p in zip(res['dask'], res['pool'])]
    med = lambda xs: statistics.median(xs)
    row = lambda n, label: (f"| {label} | {' · '.join(f'{w:.1f}' for w, _ in res[n])} | {min(w for w, _ in res[n]):.1f} | "
                            f"{med([w for w, _ in res[n]]):.1f} | {med([c for _, c in res[n]]):.1f} |")
    import distributed, mlops_nb, papermill
    verdict = 'met' if med(ratios) <= 1.0 else 'missed'
    txt = f"""# Benchmark: `batch` on a Dask LocalCluster against the process pool

Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `python benchmarks/bench_batch.py --runs {a.runs} \
--workers {a.workers} --rows {a.rows} --repeat {a.repeat} --before {a.before}`.

Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, distributed \
{distributed.__version__}, papermill {papermill.__version__}, mlops_nb {mlops_nb.__version__}. Load average (1 min) at \
the end: {load:.2f} (a shared machine: other work ran beside it).

`mlops-nb batch FILE --workers {a.workers}` with {a.runs} parameter sets (the loop on {a.rows} simulated rows, a logistic
model, no analyses; they differ by seed), each way in its own project made by its own code; the whole command timed
(cluster start and stop included), the ways interleaved after one untimed batch each. Dask: this checkout (a Dask task
per set on a LocalCluster of {a.workers} single-threaded worker processes). Process pool: the code at {a.before}
(`ProcessPoolExecutor`, {a.workers} spawned processes).

| way | wall s per batch | best | median | CPU s (median, with children) |
|---|---|---|---|---|
{row('dask', 'Dask LocalCluster')}
{row('pool', f'process pool ({a.before})')}

Dask / process pool, wall time pair by pair: {' · '.join(f'{r:.2f}' for r in ratios)}; median **{med(ratios):.2f}**
(goal ≤ 1.00: {verdict}).
"""
    publish(txt, a.out, a.no_write)


if __name__ == '__main__':
    main()
