"""Many processes on one project, and processes killed at the worst moment: real processes, a real MLflow SQLite store.

Each test starts its processes together and checks what the store and the run folders hold afterwards.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_nb.runner import RunDir, RunError, _start_kernel, init_project, find_run, tracking_uri_for

CLI = [sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())']


def cli(*args, timeout=600):
    "Run `mlops-nb ARGS` in a new process; the CompletedProcess."
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def mlflow_runs(project) -> list:
    "Every active MLflow run of the project's experiment, read with a fresh client."
    from mlflow.tracking import MlflowClient
    c = MlflowClient(tracking_uri_for(project))
    exp = c.get_experiment_by_name(Path(project).name)
    return c.search_runs([exp.experiment_id]) if exp else []


def store_health(db:Path) -> tuple:
    "(alembic revisions, leftover _alembic_tmp_ tables) of a SQLite store."
    con = sqlite3.connect(db)
    try:
        revs = [r[0] for r in con.execute('select version_num from alembic_version')]
        tmp = [r[0] for r in con.execute("select name from sqlite_master where type='table' and name like '_alembic_tmp_%'")]
    finally: con.close()
    return revs, tmp


HAMMER = r'''
import sys, time
from pathlib import Path
project, start = Path(sys.argv[1]), float(sys.argv[2])
from mlops_nb.runner import _mlflow
while time.time() < start: time.sleep(0.002)
m = _mlflow(project)
c = m.MlflowClient()
exp = c.get_experiment_by_name(project.name)
r = c.create_run(exp.experiment_id, run_name=sys.argv[3]); c.set_terminated(r.info.run_id)
c.search_registered_models()
print('ok', exp.experiment_id)
'''


def test_store_creation_hammered(tmp_path):
    "Several processes open a store that does not exist yet at the same instant: one creates it, all use it."
    project = tmp_path / 'fresh'; project.mkdir()
    start = time.time() + 6  # every process has imported mlflow by then
    procs = [subprocess.Popen([sys.executable, '-c', HAMMER, str(project), str(start), f'p{i}'], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1][-2000:] for o in outs]
    assert len({o[0].split()[-1] for o in outs}) == 1  # one experiment, not one per process
    from mlflow.store.db.utils import _get_latest_schema_revision
    assert store_health(project / 'mlflow.db') == ([_get_latest_schema_revision()], [])
    assert sorted(r.info.run_name for r in mlflow_runs(project)) == ['p0', 'p1', 'p2', 'p3']


def test_damaged_store_is_one_clear_line(tmp_path):
    "A store that two first runs of an older version migrated at once is refused in one line that says what to do."
    project = init_project(tmp_path / 'dmg')
    subprocess.run([sys.executable, '-c', 'import sys; from mlops_nb.runner import _mlflow; _mlflow(sys.argv[1])', str(project)],
                   check=True, timeout=300)
    con = sqlite3.connect(project / 'mlflow.db')  # what such a race left: a migration half done, its temporary table
    con.execute("update alembic_version set version_num = '7ac759974ad8'")
    con.execute('create table _alembic_tmp_tags (key text)'); con.commit(); con.close()
    r = cli('models', '-C', project, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert 'mlflow.db' in r.stderr and 'mlops-nb log' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.slow
def test_three_concurrent_first_runs_all_logged(tmp_path, small_sets):
    "Three first runs at once in a new project: all complete, all in MLflow, and the store healthy afterwards."
    project = init_project(tmp_path / 'busy')
    sets = [a for s in small_sets for a in ('--set', s)]
    procs = [subprocess.Popen(CLI + ['run', '-C', str(project), '-q', '--run-id', f'c{i}'] + sets,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-3000:] for o in outs]
    assert [RunDir(project / 'runs' / f'c{i}').status for i in range(3)] == ['complete'] * 3
    logged = {r.data.tags['mlops_nb.run_id']: r for r in mlflow_runs(project)}
    assert sorted(logged) == ['c0', 'c1', 'c2'] and {r.info.status for r in logged.values()} == {'FINISHED'}
    for i in range(3): assert RunDir(project / 'runs' / f'c{i}').info['mlflow_run_id'] == logged[f'c{i}'].info.run_id
    from mlflow.store.db.utils import _get_latest_schema_revision
    assert store_health(project / 'mlflow.db') == ([_get_latest_schema_revision()], [])
    # the store still takes runs, and every command that reads it works
    r = cli('run', '-C', project, '-q', '--run-id', 'c3', *sets)
    assert r.returncode == 0, r.stderr
    assert sorted(r.data.tags['mlops_nb.run_id'] for r in mlflow_runs(project)) == ['c0', 'c1', 'c2', 'c3']
    r = cli('runs', '-C', project, '--json')
    assert r.returncode == 0 and {x['run']: x['status'] for x in json.loads(r.stdout)} == {f'c{i}': 'complete' for i in range(4)}
    assert cli('models', '-C', project).returncode == 0


KILLED = r'''
import os, signal, sys
from mlops_nb import runner
def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)
where, project, run_id, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if where == 'stage':  # while the first stage would run
    import papermill; papermill.execute_notebook = die
    runner.run_loop(project, sets=sets, run_id=run_id, progress=False)
elif where == 'rename':  # right after the folder rename, before anything is logged
    runner.log_to_mlflow = die
    runner.run_loop(project, sets=sets, run_id=run_id, progress=False)
elif where == 'logging':  # halfway through logging: the MLflow run exists, its artifacts do not
    from mlflow.tracking import MlflowClient; MlflowClient.log_artifact = die
    runner.log_run(project, run_id)
'''


def kill_at(where, project, run_id, sets=()):
    "Run `KILLED` in a process that SIGKILLs itself at `where`; asserts it was killed."
    r = subprocess.run([sys.executable, '-c', KILLED, where, str(project), run_id, *sets], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-3000:])


@pytest.mark.slow
def test_killed_runs_never_look_complete(tmp_path, small_sets):
    "SIGKILL during a stage, right after the rename and halfway through logging: never `complete` until logged, once."
    project = init_project(tmp_path / 'kill')
    # killed during a stage: an interrupted run, shown, refused by --from, its id reusable
    kill_at('stage', project, 'r1', small_sets)
    assert (project / 'runs' / '.tmp-r1').is_dir()
    r = cli('runs', '-C', project, '--json')
    assert r.returncode == 0 and [(x['run'], x['status']) for x in json.loads(r.stdout)] == [('r1', 'interrupted')]
    r = cli('show', '-C', project, 'r1')
    assert r.returncode == 0 and json.loads(r.stdout)['status'] == 'interrupted'
    r = cli('run', '-C', project, '--from', 'r1')
    assert r.returncode == 2 and "'interrupted'" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    # the id is reused (the stale folder moved aside), and this run is killed right after its rename
    kill_at('rename', project, 'r1', small_sets)
    assert not (project / 'runs' / '.tmp-r1').exists() and len(list((project / 'runs' / '.interrupted').iterdir())) == 1
    rd = RunDir(project / 'runs' / 'r1')
    assert rd.status == 'unlogged' and (rd.path / 'metrics.json').exists() and 'mlflow_run_id' not in rd.info
    assert mlflow_runs(project) == []
    with pytest.raises(RunError, match='mlops-nb log'): find_run(project, 'latest')
    r = cli('runs', '-C', project)
    assert r.returncode == 0 and 'unlogged' in r.stdout and 'mlops-nb log' in r.stdout
    assert json.loads(cli('show', '-C', project, 'r1').stdout)['status'] == 'unlogged'
    r = cli('run', '-C', project, '--from', 'r1')
    assert r.returncode == 2 and 'mlops-nb log r1' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # `mlops-nb log` repairs it, once
    r = cli('log', '-C', project, 'r1')
    assert r.returncode == 0 and 'logged to MLflow' in r.stdout, r.stderr
    assert rd.status == 'complete' and find_run(project, 'latest').id == 'r1'
    r = cli('log', '-C', project, 'r1')
    assert r.returncode == 0 and 'already' in r.stdout
    runs = mlflow_runs(project)
    assert [(x.data.tags['mlops_nb.run_id'], x.info.status, x.info.run_id) for x in runs] == [('r1', 'FINISHED', rd.info['mlflow_run_id'])]
    # killed halfway through logging (a copy of r1 under another id): the partial MLflow run is replaced, not kept
    shutil.copytree(rd.path, project / 'runs' / 'r2', symlinks=True)
    r2 = RunDir(project / 'runs' / 'r2')
    info = r2.info; info.pop('mlflow_run_id'); r2.write_json('run.json', {**info, 'id': 'r2', 'status': 'unlogged'})
    kill_at('logging', project, 'r2')
    assert r2.status == 'unlogged'
    assert [x.info.status for x in mlflow_runs(project) if x.data.tags['mlops_nb.run_id'] == 'r2'] == ['RUNNING']
    assert cli('log', '-C', project, 'r2').returncode == 0
    r2_runs = [x for x in mlflow_runs(project) if x.data.tags['mlops_nb.run_id'] == 'r2']
    assert [(x.info.status, x.info.run_id) for x in r2_runs] == [('FINISHED', r2.info['mlflow_run_id'])] and r2.status == 'complete'
    from mlflow.tracking import MlflowClient
    arts = [a.path for a in MlflowClient(tracking_uri_for(project)).list_artifacts(r2.info['mlflow_run_id'], 'run')]
    assert 'run/model.skops' in arts and 'run/run.json' in arts


@pytest.mark.slow
def test_reused_id_of_a_running_run_is_refused(tmp_path):
    "The id of a run whose process is alive is one clear line, and its folder is left alone."
    project = init_project(tmp_path / 'live')
    tmp = project / 'runs' / '.tmp-busy'; tmp.mkdir(parents=True)
    RunDir(tmp).write_json('run.json', dict(id='busy', status='running', pid=os.getpid()))
    r = cli('run', '-C', project, '--run-id', 'busy')
    assert r.returncode == 2 and 'being written by process' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert RunDir(tmp).info['pid'] == os.getpid() and not (project / 'runs' / '.interrupted').exists()


def _busy_port() -> socket.socket:
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
    return s


def test_kernel_start_retries_on_a_taken_port(tmp_path, monkeypatch):
    "A kernel whose port was taken between the pick and the bind dies; the next attempt, on fresh ports, starts."
    import jupyter_client.manager as jm
    from jupyter_core.utils import run_sync
    busy, made = _busy_port(), []

    class Racy(jm.AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            made.append(self)
            if len(made) == 1:  # another run's kernel got this port first
                self.cache_ports, self.shell_port = False, busy.getsockname()[1]
    monkeypatch.setattr(jm, 'AsyncKernelManager', Racy)
    try:
        km = _start_kernel(tmp_path)
        try: assert len(made) == 2 and run_sync(km.is_alive)() and km.shell_port != busy.getsockname()[1]
        finally: run_sync(km.shutdown_kernel)(now=True)
        made.clear()
        with pytest.raises(RunError, match='did not start in 1 attempts'): _start_kernel(tmp_path, attempts=1)
    finally: busy.close()
