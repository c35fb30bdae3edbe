"""`mlops-nb batch` on Dask distributed: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1, and the
default LocalCluster through the command; every run complete and in MLflow, a failing set reported without losing the
others, a kernel that never starts retried as a Dask task and then reported, and the store a remote worker may use."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlops_nb.batch import KERNEL_START_RETRIES, _worker_view, run_batch, store_refusal
from mlops_nb.cluster import ClusterError, remote_workers
from mlops_nb.runner import RunDir, init_project, list_runs
from mlops_nb.tracking import tracking_uri_for

pytestmark = pytest.mark.slow

TINY = {'scenario.rows': 3000, 'scenario.days': 35, 'model.kind': 'logistic', 'analysis.enabled': []}
SETS = [{'seed': 1}, {'seed': 2}, {'data.source': 'missing.parquet'}, {'model.kind': 'hgb'}]  # the third fails


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    p = init_project(tmp_path_factory.mktemp('batch') / 'loop')
    (p / 'batch.yaml').write_text(yaml.safe_dump({'set': TINY, 'runs': SETS}))
    return p


def _free_port(lo=18300, hi=18400) -> int:
    for port in range(lo, hi):
        with socket.socket() as s:
            try: s.bind(('127.0.0.1', port)); return port
            except OSError: continue
    raise RuntimeError('no free port in 18300-18399')


def _stop(procs):
    "Stop the processes we started (and their children: each is the leader of its own session)."
    for p in procs:
        if p.poll() is None:
            try: os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError: pass
    for p in procs:
        try: p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try: os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError: pass
            p.wait(timeout=5)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    "A real scheduler and two single-threaded workers, as a team would start them; stopped at the end."
    from distributed import Client
    addr = f'tcp://127.0.0.1:{_free_port()}'
    logs = tmp_path_factory.mktemp('dask-logs')
    def start(name, *args):
        out = open(logs / f'{name}.log', 'w')
        return subprocess.Popen([sys.executable, '-m', 'distributed.cli.' + args[0], *args[1:]], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=logs)
    procs = [start('scheduler', 'dask_scheduler', '--host', '127.0.0.1', '--port', addr.rsplit(':', 1)[1],
                   '--no-dashboard', '--dashboard-address', '127.0.0.1:0')]  # its HTTP server on loopback too
    try:
        for i in range(2):
            procs.append(start(f'worker{i}', 'dask_worker', addr, '--nthreads', '1', '--nworkers', '1',
                               '--host', '127.0.0.1', '--no-dashboard', '--dashboard-address', '127.0.0.1:0',
                               '--name', f'w{i}'))
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=90)
            workers = sorted(c.scheduler_info()['workers'])
        yield dict(address=addr, workers=workers, logs=logs)
    finally:
        _stop(procs)


def _in_mlflow(project, run_ids) -> set:
    from mlflow.tracking import MlflowClient  # a client of its own: mlflow.set_tracking_uri would export the URI
    c = MlflowClient(tracking_uri_for(project))
    exp = c.get_experiment_by_name(project.name)
    runs = c.search_runs([exp.experiment_id]) if exp else []
    return {r.data.tags.get('mlops_nb.run_id') for r in runs} & set(run_ids)


def _check_batch(project, df):
    "Every good set a complete run logged to MLflow; the failing one a row saying why."
    assert len(df) == 4 and df.status.tolist() == ['complete', 'complete', 'failed', 'complete']
    assert 'missing.parquet' in df.error.iloc[2] and df.error.drop(index=2).isna().all()
    good = df.run.drop(index=2).tolist()
    assert len(set(good)) == 3 and all(RunDir(project / 'runs' / r).status == 'complete' for r in good)
    assert (df.value.drop(index=2) > 0).all()
    assert RunDir(project / 'runs' / df.run.iloc[2]).status == 'failed'  # kept, marked failed
    assert _in_mlflow(project, good) == set(good)
    assert 'seed=1' in df.set.iloc[0] and 'data.source=missing.parquet' in df.set.iloc[2]  # in the order of the file


def test_batch_on_a_dask_scheduler_and_two_workers(project, cluster):
    seen = []
    df = run_batch(project, project / 'batch.yaml', scheduler=cluster['address'], progress=False,
                   on_run=lambda row, done, total: seen.append((dict(row), done, total)))
    _check_batch(project, df)
    assert [d for _, d, _ in seen] == [1, 2, 3, 4] and {t for *_, t in seen} == {4}  # a call per finished run
    assert {r['worker'] for r, *_ in seen} <= set(cluster['workers'])  # ran on the cluster's workers ...
    assert os.getpid() not in {r['pid'] for r, *_ in seen}  # ... not in this process
    assert sorted(r['run'] for r, *_ in seen) == sorted(df.run)


def test_the_command_on_the_default_local_cluster(project):
    before = {r.name for r in (project / 'runs').iterdir()}
    r = subprocess.run([sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())', 'batch',
                        str(project / 'batch.yaml'), '--project', str(project), '--workers', '2'],
                       capture_output=True, text=True, timeout=600, env={**os.environ, 'DASK_SCHEDULER_ADDRESS': ''})
    assert r.returncode == 1, r.stderr[-2000:]  # one run failed
    new = {p.name for p in (project / 'runs').iterdir()} - before
    assert len(new) == 4  # one folder per set: the failing set was not tried again
    table = r.stdout.splitlines()
    assert table[0].split()[:5] == ['set', 'run', 'status', 'value', 'error']
    assert sum(' complete ' in l for l in table[1:]) == 3 and sum(' failed ' in l for l in table[1:]) == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith('[')]
    assert sorted(l.split(']')[0] for l in lines) == ['[1/4', '[2/4', '[3/4', '[4/4']  # a line per finished run
    assert any('missing.parquet' in l and ' failed' in l for l in lines)
    good = {p for p in new if RunDir(project / 'runs' / p).status == 'complete'}
    assert len(good) == 3 and _in_mlflow(project, good) == good


def test_a_kernel_that_never_starts_is_retried_then_reported(project, tmp_path, monkeypatch):
    "A python3 kernelspec whose kernel cannot start: the task is tried 1 + KERNEL_START_RETRIES times, then a row."
    spec = tmp_path / 'jupyter' / 'kernels' / 'python3'; spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({'argv': [str(tmp_path / 'no-such-python'), '{connection_file}'],
                                                  'display_name': 'broken', 'language': 'python'}))
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))  # the workers inherit it
    f = tmp_path / 'one.yaml'; f.write_text(yaml.safe_dump({'set': TINY, 'runs': [{'seed': 5}]}))
    before = set(list_runs(project).run)
    df = run_batch(project, f, workers=1, progress=False)
    assert df.status.tolist() == ['failed'] and 'KernelStartFailed' in df.error.iloc[0]
    assert 'did not start' in df.error.iloc[0]
    tried = list_runs(project).pipe(lambda d: d[~d.run.isin(before)])
    assert len(tried) == 1 + KERNEL_START_RETRIES and (tried.status == 'failed').all()


def test_workers_here_may_log_to_the_project_store(project, cluster):
    from distributed import Client
    with Client(cluster['address'], timeout=30) as c:
        assert remote_workers(c) == []  # both on 127.0.0.1
        assert store_refusal(tracking_uri_for(project), remote_workers(c)) is None
        probe = '.probe-test'; (project / probe).write_text('')
        try: seen = c.run(_worker_view, str(project), probe)
        finally: (project / probe).unlink()
        assert set(seen) == set(cluster['workers']) and all(v == dict(same=True, writable=True) for v in seen.values())
        assert not any(v['same'] for v in c.run(_worker_view, str(project), '.no-such-probe').values())


@pytest.mark.parametrize('uri, refused', [(None, 'is a file on this machine'), ('file:///srv/mlruns', 'is a file'),
                                          ('http://127.0.0.1:5000', 'loopback'), ('http://10.1.2.3:5000', None)])
def test_a_local_store_is_refused_for_remote_workers(project, uri, refused):
    why = store_refusal(tracking_uri_for(project, uri), ['tcp://10.9.8.7:40000'])
    assert (why is None) if refused is None else (refused in why and 'tcp://10.9.8.7:40000' in why)
    assert store_refusal(tracking_uri_for(project, uri), []) is None


def test_bad_worker_options_are_one_clear_error(project):
    n = len(list_runs(project))
    with pytest.raises(ClusterError, match='is for a local cluster'):
        run_batch(project, project / 'batch.yaml', workers=2, scheduler='tcp://127.0.0.1:1', progress=False)
    with pytest.raises(ClusterError, match='workers must be a whole number'):
        run_batch(project, project / 'batch.yaml', workers=0, progress=False)
    assert len(list_runs(project)) == n
