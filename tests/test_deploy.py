"""End-to-end deployment: real papermill runs registered in a real MLflow store, the promotion gate, rollback, batch
scoring into the prediction log, and `mlops-nb serve` in a subprocess answering with the right version."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mlops_nb.cli import main
from mlops_nb.deploy import promote, register_run, rollback
from mlops_nb.model_registry import DeployError, deployment_history, list_versions, model_dir
from mlops_nb.prediction_log import PredictionLog
from mlops_nb.runner import find_run, init_project, run_loop
from mlops_nb.scoring import InputError, load_deployed, score

pytestmark = pytest.mark.slow

# a clear difference for the gate: ROC AUC on a scenario with 10 % clicks; the weak model sees only the hour
SETS = ['scope.metric=roc_auc', 'scenario.prevalence=0.1', 'model.kind=logistic']


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    return init_project(tmp_path_factory.mktemp('deploy') / 'ads-loop')


@pytest.fixture(scope='module')
def weak(project, small_sets):
    return run_loop(project, sets=small_sets + SETS + ['data.features=[hour]', 'stages=[scoping, data, features, train]'],
                    progress=False)


@pytest.fixture(scope='module')
def strong(project, small_sets):
    return run_loop(project, sets=small_sets + SETS, progress=False)


@pytest.fixture(scope='module')
def batch(strong):
    "Unlabelled rows to score: the strong run's test split without its outcome columns."
    return strong.load_split('test').drop(columns=['clicked', 'true_label']).head(200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _http(url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'}, method='GET' if body is None else 'POST')
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, dict(e.headers), json.loads(e.read())


def test_nothing_to_promote_against_or_roll_back(project, weak):
    with pytest.raises(DeployError, match=r"has no champion yet.*--force"):
        promote(project, weak)
    with pytest.raises(DeployError, match='no champion: nothing to roll back'):
        rollback(project)
    with pytest.raises(DeployError, match="no 'champion' version"):
        load_deployed(project)
    assert main(['rollback', '-C', str(project)]) == 2


def test_register_once_with_model_card(project, strong, capsys):
    v = register_run(project, strong)
    assert register_run(project, strong.id) == v  # idempotent
    latest = find_run(project, 'latest').id
    assert main(['register', 'latest', '-C', str(project)]) == 0
    assert capsys.readouterr().out.startswith(f"registered run {latest} as ads-loop v")  # the run id, not 'latest'
    assert list_versions(project).run_id.tolist().count(strong.id) == 1
    card = (model_dir(project, 'ads-loop', v) / 'model_card.md').read_text()
    data = strong.read_json('data.json')
    assert card.startswith(f'# Model card: ads-loop v{v}') and data['version'] in card
    assert '| `scope.metric` | roc_auc |' in card and '| `model.kind` | logistic |' in card
    assert '## Known issues (error analysis)' in card and '**imbalance**:' in card  # headline findings of the reports
    m = strong.read_json('metrics.json')
    assert f"{m['scoped']['test']:.4g}" in card


def test_gate_pass_refusal_and_rollback(project, weak, strong, capsys):
    first = promote(project, weak, force=True)
    assert first.passed and first.forced
    r = promote(project, strong)
    assert r.passed and not r.forced and r.metric == 'roc_auc' and r.rows > 500 and r.positives > 20
    assert r.challenger_value > r.champion_value + 0.05, r.reason  # the gate compared real numbers
    assert f"{r.challenger_value:.4f}" in r.reason and f"{r.champion_value:.4f}" in r.reason
    v_weak, v_strong = r.champion_version, r.challenger_version
    # the weak run again: refused, with the numbers, the champion unchanged; the CLI exits 1
    assert main(['promote', weak.id, '-C', str(project)]) == 1
    out = capsys.readouterr().out
    assert out.startswith('REFUSED') and 'does not beat' in out and f"{r.challenger_value:.4f}" in out
    assert load_deployed(project).version == v_strong
    assert main(['rollback', '-C', str(project)]) == 0
    assert load_deployed(project).version == v_weak
    with pytest.raises(DeployError, match='first deployment'):
        rollback(project)
    # promoting the champion again with a missing --data file: the file is the error (exit 2), not "already the champion"
    capsys.readouterr()
    assert main(['promote', weak.id, '-C', str(project), '--data', str(project / 'nope.csv')]) == 2
    out, err = capsys.readouterr()
    assert 'nope.csv does not exist' in err and 'already the champion' not in out + err
    hist = deployment_history(project)
    assert hist.action.tolist() == ['promote', 'promote', 'refused', 'rollback']
    assert hist.forced.tolist() == [True, False, False, False]
    assert main(['models', '-C', str(project)]) == 0
    assert 'champion' in capsys.readouterr().out


def test_score_and_bad_input_write_nothing(project, weak, strong, batch, tmp_path):
    promote(project, strong, force=True)  # the champion: the model that one-hot encodes `device`
    assert load_deployed(project).profile is not None  # the train stage's reference profile came with the version
    log = PredictionLog(project)
    n0 = len(log.batches())
    out = score(project, batch)
    assert len(out) == len(batch) and out.attrs['batch_id'] is not None and (out.model_version == load_deployed(project).version).all()
    assert list(out.columns) == ['impression_id', 'timestamp', 'score', 'prediction', 'model_version']
    assert len(log.batches()) == n0 + 1 and len(log.predictions(out.attrs['batch_id'])) == len(batch)
    with pytest.raises(InputError, match=r"missing feature column\(s\) \['bid'\]"):
        score(project, batch.drop(columns='bid'))
    with pytest.raises(InputError, match=r"unknown column\(s\) \['colour'\]"):
        score(project, batch.assign(colour='red'))
    f = tmp_path / 'new_device.csv'
    batch.assign(device='toaster').to_csv(f, index=False)
    with pytest.raises(InputError, match=r"device: new value\(s\) 'toaster' never seen in training"):
        score(project, f)
    assert main(['score', str(f), '-C', str(project)]) == 2
    assert len(log.batches()) == n0 + 1  # no rejected batch wrote anything
    good = tmp_path / 'batch.parquet'; batch.to_parquet(good)
    dest = tmp_path / 'scores.csv'
    assert main(['score', str(good), '-C', str(project), '--out', str(dest)]) == 0
    assert dest.exists() and len(log.batches()) == n0 + 2


def test_serve_answers_with_the_current_champion(project, weak, strong, batch):
    promote(project, weak, force=True)  # the weak model answers first
    v_weak = load_deployed(project).version
    port = _free_port()
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())',
                             'serve', '-C', str(project), '--port', str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        url = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _, health = _http(url + '/health'); break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, 'server did not start in 90 s'
                time.sleep(0.3)
        assert status == 200 and health['model_version'] == v_weak and health['run_id'] == weak.id
        records = json.loads(batch.head(5).to_json(orient='records', date_format='iso'))
        log = PredictionLog(project); n0 = len(log.batches())
        status, headers, body = _http(url + '/predict', {'records': records})
        assert status == 200 and body['model_version'] == v_weak and headers['x-model-version'] == str(v_weak)
        assert [p['impression_id'] for p in body['predictions']] == batch.impression_id.head(5).tolist()
        r = promote(project, strong)  # while the server runs
        assert r.passed
        deadline = time.monotonic() + 60  # the server re-resolves the alias every second, in the background
        while _http(url + '/health')[2]['model_version'] != r.challenger_version:
            assert time.monotonic() < deadline, 'the server did not follow the promotion in 60 s'
            time.sleep(0.2)
        status, headers, body = _http(url + '/predict', {'records': records})
        assert status == 200 and body['model_version'] == r.challenger_version and body['run_id'] == strong.id
        assert headers['x-model-version'] == str(r.challenger_version)
        assert len(log.batches()) == n0 + 2
        # bad requests: a 4xx with the clear message, nothing logged
        status, _, body = _http(url + '/predict', {'records': [dict(records[0], device='toaster')]})
        assert status == 422 and "device: new value(s) 'toaster'" in body['error']
        status, _, body = _http(url + '/predict', {'records': [{k: v for k, v in records[0].items() if k != 'bid'}]})
        assert status == 422 and "missing feature column(s) ['bid']" in body['error']
        status, _, body = _http(url + '/predict', {'records': [dict(records[0], hour=[1, 2])]})
        assert status == 422 and 'hour: record(s) 0 hold a list or an object' in body['error']
        status, _, body = _http(url + '/predict', {'records': [dict(records[0], bid=float('inf'))]})  # sent as Infinity
        assert status == 422 and 'bid: non-finite number(s) inf' in body['error']
        status, _, body = _http(url + '/predict', {'records': [records[0], {k: v for k, v in records[1].items() if k != 'hour'}]})
        assert status == 422 and "'hour' is missing from record(s) 1" in body['error']
        status, _, body = _http(url + '/predict', {'rows': records})
        assert status == 400 and 'records' in body['error']
        assert len(log.batches()) == n0 + 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no process of the server's group is left


def test_every_command_has_help(capsys):
    for cmd in ('register', 'promote', 'rollback', 'models', 'score', 'serve'):
        with pytest.raises(SystemExit) as e:
            main([cmd, '--help'])
        assert e.value.code == 0
        assert '--project' in capsys.readouterr().out
    helps = {}
    for cmd in ('score', 'serve', 'promote'):
        with pytest.raises(SystemExit):
            main([cmd, '--help'])
        helps[cmd] = ' '.join(capsys.readouterr().out.split())
    assert 'unknown extra column is rejected' in helps['score']
    assert '{"records": [{"column": value, ...}, ...]}' in helps['serve'] and '"predictions"' in helps['serve']
    assert 'Exit status: 0 promoted; 1 refused' in helps['promote'] and '2 error' in helps['promote']


def test_serve_on_a_busy_port_is_one_clear_error(project, strong, capsys):
    promote(project, strong, force=True)
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0)); busy.listen()
        assert main(['serve', '-C', str(project), '--port', str(busy.getsockname()[1])]) == 2
    out, err = capsys.readouterr()
    assert 'serving' not in out and 'already in use' in err and len(err.strip().splitlines()) == 1
