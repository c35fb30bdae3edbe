"End-to-end: real papermill runs of the loop notebooks into run folders, tracked in a real MLflow SQLite store."
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from mlops_nb.core import ParamError
from mlops_nb.batch import run_batch
from mlops_nb.runner import RunDir, RunError, init_project, list_runs, run_loop, show_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    return init_project(tmp_path_factory.mktemp('proj') / 'loop')


@pytest.fixture(scope='module')
def first_run(project, small_sets):
    return run_loop(project, sets=small_sets + ['model.kind=logistic'], progress=False)


def test_run_folder_is_complete(first_run):
    rd = first_run
    assert rd.status == 'complete' and not rd.path.name.startswith('.tmp-')
    for f in ['params.yaml', 'run.json', 'metrics.json', 'data.json', 'scope.json', 'features.json', 'model.skops']:
        assert (rd.path / f).exists(), f
    for st in rd.params.stages:
        nb = nbformat.read(rd.path / 'notebooks' / f'{st}.ipynb', as_version=4)
        assert any('injected-parameters' in c.metadata.get('tags', []) for c in nb.cells), st
    m = rd.read_json('metrics.json')
    assert m['scoped']['name'] == 'pr_auc' and 0 < m['scoped']['test'] <= 1
    assert rd.params.model.kind == 'logistic'
    info = rd.info
    assert info['code_version']['mlops_nb'] and len(rd.read_json('data.json')['version']) == 16


def test_run_is_in_mlflow_sqlite_store(project, first_run):
    import mlflow
    uri = f"sqlite:///{project / 'mlflow.db'}"
    assert (project / 'mlflow.db').exists()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[project.name], filter_string=f"tags.`mlops_nb.run_id` = '{first_run.id}'")
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row['params.model.kind'] == 'logistic'
    assert abs(row['metrics.test_pr_auc'] - first_run.read_json('metrics.json')['test']['pr_auc']) < 1e-9
    assert row['tags.mlops_nb.data_version'] == first_run.read_json('data.json')['version']


def test_list_and_show(project, first_run):
    df = list_runs(project)
    assert first_run.id in df.run.tolist()
    assert df.set_index('run').loc[first_run.id, 'status'] == 'complete'
    s = show_run(project, first_run.id[:15])
    assert s['params']['model']['kind'] == 'logistic' and s['metrics']['scoped']['test'] > 0


def test_invalid_params_fail_before_any_notebook(project):
    before = set((project / 'runs').iterdir())
    with pytest.raises(ParamError, match=r"model\.kind.*hgb.*logistic"):
        run_loop(project, sets=['model.kind=nonsense'], progress=False)
    with pytest.raises(ParamError, match='scenario.rows'):
        run_loop(project, sets=['scenario.rows=lots'], progress=False)
    bad = project / 'bad.yaml'
    bad.write_text('model:\n  kind: hgb\n  depth: 3\n')
    with pytest.raises(ParamError, match=r"bad\.yaml.*model\.depth"):
        run_loop(project, params_file=bad, progress=False)
    bad.write_text('split:\n  test_days: seven\n')
    with pytest.raises(ParamError, match=r"split\.test_days.*integer"):
        run_loop(project, params_file=bad, progress=False)
    assert set((project / 'runs').iterdir()) == before


def test_cli_nonsense_model_kind(project):
    r = subprocess.run([sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())',
                        'run', '-C', str(project), '--set', 'model.kind=nonsense'],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert 'model.kind' in r.stderr and 'hgb' in r.stderr and 'logistic' in r.stderr
    assert 'Traceback' not in r.stderr


def test_notebook_without_parameters_cell(tmp_path):
    proj = init_project(tmp_path / 'p')
    nbp = proj / 'loop' / 'data.ipynb'
    nb = nbformat.read(nbp, as_version=4)
    for c in nb.cells: c.metadata['tags'] = []
    nbformat.write(nb, nbp)
    with pytest.raises(RunError, match=r"data\.ipynb has no cell tagged 'parameters'"):
        run_loop(proj, progress=False)
    assert not any((proj / 'runs').iterdir())


def test_existing_run_folder_is_refused(project, first_run):
    with pytest.raises(RunError, match='already exists'):
        run_loop(project, run_id=first_run.id, progress=False)


def test_failed_run_is_kept_and_marked(project, small_sets):
    with pytest.raises(RunError, match=r"failed.*stage 'data'.*does not exist"):
        run_loop(project, sets=small_sets + ['data.source=no_such_file.csv'], run_id='will-fail', progress=False)
    rd = RunDir(project / 'runs' / 'will-fail')
    assert rd.status == 'failed' and 'no_such_file.csv' in rd.info['error']
    assert not (rd.path / 'metrics.json').exists()
    assert list_runs(project).set_index('run').loc['will-fail', 'status'] == 'failed'
    with pytest.raises(RunError, match='only complete runs'):
        run_loop(project, from_run='will-fail', progress=False)


@pytest.mark.parametrize('mutate, message', [
    (lambda df: df.drop(columns='clicked'), r"\['clicked'\] not in the table"),
    (lambda df: df.assign(clicked=df.index % 3), 'expected a binary target'),
    (lambda df: df.assign(clicked=1), 'all labels are 1'),
    (lambda df: df.assign(clicked=df.clicked.astype(float).where(df.index != 7)), 'missing labels'),
    (lambda df: df.assign(timestamp=df.timestamp.astype(str).where(df.index != 3, 'yesterday-ish')), 'do not parse'),
])
def test_bad_data_fails_the_run_clearly(project, mutate, message, tmp_path):
    from mlops_nb.demo import simulate_ads
    df = mutate(simulate_ads(3000, days=28, seed=3))
    f = project / 'data' / f'bad-{tmp_path.name}.csv'
    df.to_csv(f, index=False)
    rid = f'bad-{tmp_path.name}'
    with pytest.raises(RunError, match=message):
        run_loop(project, sets=[f'data.source=data/{f.name}'], run_id=rid, progress=False)
    assert RunDir(project / 'runs' / rid).status == 'failed'


def test_empty_training_window(project, small_sets):
    with pytest.raises(RunError, match='training window is empty'):
        run_loop(project, sets=small_sets + ['split.valid_days=40'], run_id='empty-window', progress=False)


def test_batch_one_failure_does_not_lose_the_others(project, small_sets, tmp_path):
    spec = dict(set={k: yaml.safe_load(v) for k, v in (s.split('=', 1) for s in small_sets)},
                runs=[{'model.kind': 'logistic', 'analysis.enabled': []}, {'data.source': 'missing.parquet'}])  # no analyses is fine too
    f = tmp_path / 'batch.yaml'; f.write_text(yaml.safe_dump(spec))
    df = run_batch(project, f, workers=2, progress=False)
    assert df.status.tolist() == ['complete', 'failed']
    assert 'missing.parquet' in df.error.iloc[1]
    assert df.value.iloc[0] > 0


def test_batch_rejects_invalid_sets_before_running(project, tmp_path):
    f = tmp_path / 'batch.yaml'; f.write_text(yaml.safe_dump({'grid': {'model.kind': ['hgb', 'nonsense']}}))
    n = len(list_runs(project))
    with pytest.raises(ParamError, match='nonsense'):
        run_batch(project, f, workers=2, progress=False)
    assert len(list_runs(project)) == n



@pytest.mark.parametrize('content, message', [(b'grid: {model.kind: [hgb, logistic]\n', 'is not valid YAML at line'),
                                               (b'set: {scope.kpi: caf\xe9}\n', 'is not UTF-8 text'),
                                               (None, 'does not exist or is not a file')])
def test_batch_file_that_cannot_be_read_is_one_line(project, tmp_path, content, message):
    f = tmp_path / 'batch.yaml'
    if content is None: f.mkdir()
    else: f.write_bytes(content)
    n = len(list_runs(project))
    with pytest.raises(RunError, match=message):
        run_batch(project, f, workers=1, progress=False)
    assert len(list_runs(project)) == n

def _cli(*args):
    return subprocess.run([sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())', *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_compare_a_run_with_itself(project, first_run):
    from mlops_nb.runner import compare_runs
    df = compare_runs(project, first_run.id, first_run.id)
    assert list(df.columns) == [f'{first_run.id} (A)', f'{first_run.id} (B)', 'change']
    ch = df.xs('metric').change.dropna()
    assert (ch == 0).all() and len(ch) > 3
    r = _cli('compare', '-C', project, first_run.id, first_run.id)
    assert r.returncode == 0 and 'test.pr_auc' in r.stdout, r.stderr


def test_unsafe_run_ids_are_refused(project):
    before = sorted(p.name for p in (project / 'runs').iterdir())
    for bad in ('../../evil', str(project.parent / 'abs'), '.hidden', 'a/b', '..'):
        r = _cli('run', '-C', project, '--run-id', bad)
        assert r.returncode == 2 and 'not allowed' in r.stderr and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    assert sorted(p.name for p in (project / 'runs').iterdir()) == before
    assert not (project.parent / 'evil').exists() and not (project.parent / 'abs').exists()


def test_run_from_prints_the_decisions_applied(project, small_sets):
    # scoped by pr_auc (first_run) the small scenario's imbalance remedy is vetted out: its pr_auc gain is inside the
    # noise; scoped by recall, which its threshold moves, it beats the params beyond noise and is recommended
    rd = run_loop(project, sets=small_sets + ['model.kind=logistic', 'scope.metric=recall'], run_id='by-recall',
                  progress=False)
    recs = rd.recommendations()
    assert recs, 'the small scenario scoped by recall should give at least one recommendation'
    r = _cli('run', '-C', project, '-q', '--from', rd.id, '--policy', 'auto', '--run-id', 'child-auto')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"from run {rd.id} (auto): {len(recs)} decision{'s' * (len(recs) != 1)} applied"
    assert lines[1:1 + len(recs)] == [f"  - {d.what}  (source: {d.source or 'unknown'})" for d in recs]
    assert lines[1 + len(recs)].startswith('run child-auto complete: recall (test) = ')
    assert lines[2 + len(recs)].startswith(f'  better than its parent {rd.id}: recall'), r.stdout


def test_run_without_metrics_prints_no_none(project, small_sets):
    r = _cli('run', '-C', project, '-q', '--run-id', 'scope-only', '--set', 'stages=[scoping]', *[a for s in small_sets for a in ('--set', s)])
    assert r.returncode == 0, r.stderr
    assert 'None' not in r.stdout and r.stdout.startswith('run scope-only complete: no test metric (stages run: scoping)'), r.stdout


def test_jupyter_checkpoints_stay_out_of_the_run_folder(project, first_run):
    "A real Jupyter server saves a notebook's checkpoint (as JupyterLab does on open): nothing is written into the run."
    import json, os, secrets, socket, time, urllib.request
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    token = secrets.token_hex(8)
    def tree():
        return sorted(str(Path(d, f).relative_to(first_run.path)) for d, ds, fs in os.walk(first_run.path) for f in fs + ds)
    before = tree()
    srv = subprocess.Popen([sys.executable, '-m', 'jupyter_server', '--no-browser', '--allow-root', f'--port={port}', '--ServerApp.port_retries=0',
                            f'--ServerApp.root_dir={project}', f'--IdentityProvider.token={token}'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f'http://127.0.0.1:{port}/api/contents/runs/{first_run.id}/notebooks/data.ipynb/checkpoints'
        hdr = {'Authorization': f'token {token}'}
        for _ in range(120):
            try: urllib.request.urlopen(urllib.request.Request(f'http://127.0.0.1:{port}/api/status', headers=hdr), timeout=2); break
            except OSError: time.sleep(0.5)
        with urllib.request.urlopen(urllib.request.Request(url, method='POST', headers=hdr), timeout=30) as r:
            assert r.status == 201 and json.loads(r.read())['id'] == 'checkpoint'
        with urllib.request.urlopen(urllib.request.Request(url, headers=hdr), timeout=30) as r:
            assert [c['id'] for c in json.loads(r.read())] == ['checkpoint']
    finally:
        srv.terminate(); srv.wait(timeout=30)
    assert tree() == before
    assert (project / 'runs' / '.checkpoints' / first_run.id / 'data-checkpoint.ipynb').is_file()


def test_a_kernel_per_stage(project, small_sets):
    rd = run_loop(project, sets=small_sets + ['stages=[scoping, data]'], run_id='own-kernels', progress=False, shared_kernel=False)
    assert rd.status == 'complete' and sorted(rd.info['stage_seconds']) == ['data', 'scoping']
    assert (rd.path / 'notebooks' / 'data.ipynb').exists() and (rd.path / 'data' / 'train.parquet').exists()
