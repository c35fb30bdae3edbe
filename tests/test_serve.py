"""`mlops-nb serve` as a client sees it: a real uvicorn on 127.0.0.1 (a free port), started and stopped by each test.
Malformed records are 422s naming the record and field and the keep-alive connection stays usable; a too large body
is a 413; an unexpected error is a short 500; unseen categories are refused or scored as missing (and counted);
concurrent requests are all answered and every answered prediction is in the log, also after a SIGKILL under load."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from mlops_nb.cli import main
from mlops_nb.core import LoopParams
from mlops_nb.demo import simulate_ads
from mlops_nb.deploy import promote
from mlops_nb.features import infer_roles
from mlops_nb.prediction_log import PredictionLog
from mlops_nb.profile import Profile
from mlops_nb.runner import RunDir, init_project, log_to_mlflow, new_run_id
from mlops_nb.scoring import InputError, load_deployed, score
from mlops_nb.train import LoopClassifier, save_model

FEATURES = ['ad_id', 'placement', 'device', 'hour', 'user_age', 'ad_quality', 'bid', 'position', 'past_ctr']


def _deployed_project(folder:Path) -> Path:
    "A project whose champion is a small HistGradientBoosting model (id-like, low-cardinality and numeric features)."
    project = init_project(folder)
    p = LoopParams().override(['scenario.rows=4000', 'scenario.days=14', 'scenario.prevalence=0.1', f"data.features={json.dumps(FEATURES)}"])
    df = simulate_ads(rows=4000, days=14, prevalence=0.1, seed=7)
    cut = df.timestamp.max().normalize() - pd.Timedelta(days=4)
    train, test = df[df.timestamp < cut].reset_index(drop=True), df[df.timestamp >= cut].reset_index(drop=True)
    rd = RunDir(project / 'runs' / new_run_id()); (rd.path / 'reports').mkdir(parents=True)
    p.to_yaml(rd.path / 'params.yaml')
    model = LoopClassifier('hgb', {'max_iter': 30}, threshold=0.2).fit(train[FEATURES], train.clicked)
    save_model(model, rd.path / 'model.skops')
    rd.write_json('metrics.json', {'scoped': dict(name='pr_auc', test=0.0)})
    rd.write_json('features.json', dict(features=FEATURES, roles=infer_roles(train[FEATURES])))
    rd.write_json('data.json', dict(version='serve0000000001', rows=len(df)))
    Profile.from_frame(train[FEATURES], score=model.predict_proba(train[FEATURES])[:, 1]).save(rd.path / 'reference_profile.json')
    rd.save_split(test=test)
    rd.write_json('run.json', dict(id=rd.id, status='complete', finished='-', decisions_applied=[]))
    log_to_mlflow(project, rd)
    promote(project, rd, force=True)
    return project


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    return _deployed_project(tmp_path_factory.mktemp('serve') / 'ads-serve')


@pytest.fixture(scope='module')
def records(project):
    "Test rows as a client sends them (features, id, time), ids made unique per use by `_fresh`."
    rd = RunDir(next((project / 'runs').iterdir()))
    t = rd.load_split('test')[['impression_id', 'timestamp'] + FEATURES].head(400)
    return json.loads(t.to_json(orient='records', date_format='iso'))


_NEXT_ID = [10_000_000]

def _fresh(rec:dict) -> dict:
    "`rec` with an id no other request of these tests used."
    _NEXT_ID[0] += 1
    return dict(rec, impression_id=_NEXT_ID[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _set_deploy(project, **knobs):
    "Write `deploy.*` knobs into the project's params.yaml (the server reads them when it starts)."
    import yaml
    f = project / 'params.yaml'
    d = yaml.safe_load(f.read_text()) or {}
    d.setdefault('deploy', {}).update(knobs)
    f.write_text(yaml.safe_dump(d, sort_keys=False))


class Server:
    "`mlops-nb serve` in its own process group; `stop()` ends it and checks nothing of it is left."
    def __init__(self, project, *args):
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())',
                                      'serve', '-C', str(project), '--port', str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, 'OMP_NUM_THREADS': '1'}, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                c = self.connect(); c.request('GET', '/health'); r = c.getresponse(); r.read(); c.close()
                if r.status == 200: break
            except (ConnectionError, OSError): pass
            assert self.proc.poll() is None, self.proc.stdout.read()
            assert time.monotonic() < deadline, 'server did not start in 120 s'
            time.sleep(0.3)

    def connect(self, timeout:float=60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        try: os.killpg(self.proc.pid, sig)
        except ProcessLookupError: pass
        try: self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while True:  # no process of the server's group is left (workers included)
            try: os.killpg(self.proc.pid, 0)
            except ProcessLookupError: break
            assert time.monotonic() < deadline, 'a process of the server outlived it'
            time.sleep(0.2)
        return self.proc.stdout.read()


def _post(conn, body) -> tuple[int, dict, dict]:
    "POST /predict on `conn` (kept open): status, headers, JSON answer."
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request('POST', '/predict', body=data, headers={'Content-Type': 'application/json'})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), json.loads(r.read())


@pytest.fixture
def server(project):
    s = Server(project)
    yield s
    s.stop()


def test_malformed_records_are_422s_and_the_connection_stays_usable(server, records):
    conn = server.connect()
    good = lambda: {'records': [_fresh(records[0])]}
    status, _, body = _post(conn, good())
    assert status == 200 and len(body['predictions']) == 1
    sock = conn.sock
    rec = records[1]
    big = json.dumps({'records': [_fresh(rec)]}).replace(f'"bid": {json.dumps(rec["bid"])}', '"bid": 1' + '0' * 400).encode()
    assert b'0' * 400 in big
    cases = [({'records': [_fresh(rec), dict(_fresh(rec), impression_id=None)]}, "impression_id: missing (null) in record(s) 1"),
             ({'records': [dict(_fresh(rec), timestamp='not a time')]}, "timestamp: expected times, got 'not a time' in record(s) 0"),
             (big, 'bid: number(s) too large for a float in record(s) 0'),
             ({'records': [dict(_fresh(rec), device='\ud800')]}, 'device: record(s) 0 hold text that is not valid Unicode'),
             ({'records': [dict(_fresh(rec), ad_id='\ud800')]}, 'ad_id: record(s) 0 hold text that is not valid Unicode'),
             ({'records': [dict(_fresh(rec), hour=[1, 2])]}, 'hour: record(s) 0 hold a list or an object'),
             ({'records': [dict(_fresh(rec), bid=float('inf'))]}, 'bid: non-finite number(s) inf in record(s) 0'),
             ({'records': [dict(_fresh(rec), hour=True)]}, 'hour: expected numbers, got true/false in record(s) 0'),
             ({'records': [dict(_fresh(rec), hour='noon')]}, "hour: expected numbers, got 'noon' in record(s) 0"),
             ({'records': [dict(_fresh(rec), device='toaster')]}, "device: new value(s) 'toaster' never seen in training"),
             ({'records': [dict(_fresh(rec), colour='red')]}, "unknown column(s) ['colour']"),
             ({'records': [{k: v for k, v in _fresh(rec).items() if k != 'bid'}]}, "missing feature column(s) ['bid']"),
             ({'records': [_fresh(rec), {k: v for k, v in _fresh(rec).items() if k != 'hour'}]}, "'hour' is missing from record(s) 1")]
    log = PredictionLog(server_project(server))
    n0 = len(log.predictions())
    for body, msg in cases:
        status, headers, answer = _post(conn, body)
        assert status == 422 and msg in answer['error'], (msg, status, answer)
        assert '\n' not in answer['error'] and headers.get('x-model-version') == '1'
        status, _, answer = _post(conn, good())  # the same keep-alive connection
        assert status == 200 and len(answer['predictions']) == 1, (msg, status, answer)
    for body, status_wanted in ((b'{"records": [1', 400), (b'\xff\xfe', 400), ({'rows': []}, 400), ([], 400)):
        assert _post(conn, body)[0] == status_wanted
        assert _post(conn, good())[0] == 200
    assert conn.sock is sock  # never reconnected
    assert len(log.predictions()) == n0 + len(cases) + 4  # the good requests only


def server_project(server) -> Path:
    "The project a Server serves (from its command line)."
    args = server.proc.args
    return Path(args[args.index('-C') + 1])


def test_a_too_large_body_is_a_413(project, records):
    _set_deploy(project, max_body_bytes=20_000)
    try:
        s = Server(project)
        try:
            many = {'records': [_fresh(records[i % len(records)]) for i in range(200)]}
            status, headers, body = _post(s.connect(), many)
            assert status == 413 and 'larger than 20,000 bytes (deploy.max_body_bytes)' in body['error']
            conn = s.connect()  # chunked, without a length: refused while reading
            conn.putrequest('POST', '/predict'); conn.putheader('Content-Type', 'application/json')
            conn.putheader('Transfer-Encoding', 'chunked'); conn.endheaders()
            data = json.dumps(many).encode()
            for i in range(0, len(data), 4096):
                piece = data[i:i + 4096]
                try: conn.send(b'%x\r\n' % len(piece) + piece + b'\r\n')
                except (BrokenPipeError, ConnectionResetError): break
            try: conn.send(b'0\r\n\r\n')
            except (BrokenPipeError, ConnectionResetError): pass
            r = conn.getresponse()
            assert r.status == 413
            assert _post(s.connect(), {'records': [_fresh(records[0])]})[0] == 200
        finally: s.stop()
    finally: _set_deploy(project, max_body_bytes=1_000_000)


def test_an_unexpected_error_is_a_short_500_and_the_connection_stays(project, records):
    "In-process uvicorn (so the test can break the model): the 500 is JSON, the next request on the connection works."
    import uvicorn
    from mlops_nb.serve import make_app
    app = make_app(project, refresh=0)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='critical'))
    t = threading.Thread(target=srv.run, daemon=True); t.start()
    try:
        deadline = time.monotonic() + 60
        while not srv.started:
            assert time.monotonic() < deadline; time.sleep(0.05)
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        assert _post(conn, {'records': [_fresh(records[0])]})[0] == 200
        dep = app.state.live.current()
        def boom(*a, **k): raise RuntimeError('a bug')
        dep._scores = boom
        status, _, body = _post(conn, {'records': [_fresh(records[0])]})
        assert status == 500 and body['error'] == 'internal error while scoring (RuntimeError); logged by the server'
        del dep._scores
        sock = conn.sock
        assert _post(conn, {'records': [_fresh(records[0])]})[0] == 200 and conn.sock is sock
    finally:
        srv.should_exit = True; t.join(timeout=30)
    assert not t.is_alive()


def test_unknown_categories_reject_or_as_missing(project, records, tmp_path):
    frame = pd.DataFrame([_fresh(r) for r in records[:20]]).assign(device=['toaster'] * 3 + [None] * 2 + ['mobile'] * 15)
    with pytest.raises(InputError, match="device: new value\\(s\\) 'toaster' never seen"):
        score(project, frame)
    out = score(project, frame, unknown_categories='as_missing')
    assert out.attrs['unseen'] == {'device': 3} and len(out) == 20
    as_none = score(project, frame.assign(device=frame.device.where(frame.device != 'toaster')), log=False)
    assert out.score.tolist() == pytest.approx(as_none.score.tolist())  # scored as missing
    log = PredictionLog(project)
    assert log.batches().set_index('batch_id').loc[out.attrs['batch_id'], 'unseen'] == {'device': 3}
    # the command line says so in its one line
    f = tmp_path / 'new.csv'; frame.to_csv(f, index=False)
    _set_deploy(project, unknown_categories='as_missing')
    try:
        assert main(['score', str(f), '-C', str(project)]) == 0
        s = Server(project)
        try:
            conn = s.connect()
            recs = [_fresh(records[0]), dict(_fresh(records[1]), device='toaster'), dict(_fresh(records[2]), placement='moon')]
            status, _, body = _post(conn, {'records': recs})
            assert status == 200 and [p['impression_id'] for p in body['predictions']] == [r['impression_id'] for r in recs]
            bid = body['batch_id']
        finally: s.stop()  # closes the open batch
        assert log.batches().set_index('batch_id').loc[bid, 'unseen'] == {'device': 1, 'placement': 1}
    finally: _set_deploy(project, unknown_categories='reject')


def test_a_full_disk_during_score_is_one_line(project, records, monkeypatch, capsys, tmp_path):
    import mlops_nb.prediction_log as pl
    f = tmp_path / 'rows.csv'; pd.DataFrame([_fresh(r) for r in records[:300]]).to_csv(f, index=False)
    n0 = len(PredictionLog(project).predictions())
    connect = pl.PredictionLog._connect
    def full(self, write=False):  # SQLite's page limit stands in for a full disk
        con = connect(self, write)
        if write: con.execute(f"PRAGMA max_page_count = {con.execute('PRAGMA page_count').fetchone()[0]}")
        return con
    monkeypatch.setattr(pl.PredictionLog, '_connect', full)
    assert main(['score', str(f), '-C', str(project)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'database or disk is full' in err and 'nothing was logged' in err, err
    monkeypatch.undo()
    assert len(PredictionLog(project).predictions()) == n0


@pytest.mark.parametrize('workers', [1, 2])
def test_concurrent_requests_are_all_answered_and_logged(project, records, workers):
    s = Server(project, '--workers', str(workers))
    sent, answered, errors = [], [], []
    def client(k):
        conn = s.connect()
        try:
            for i in range(25):
                recs = [_fresh(records[(k * 25 + i) % len(records)]) for _ in range(1 + i % 3)]
                sent.extend(r['impression_id'] for r in recs)
                status, _, body = _post(conn, {'records': recs})
                if status != 200: errors.append((status, body)); continue
                answered.extend(p['impression_id'] for p in body['predictions'])
                assert [p['impression_id'] for p in body['predictions']] == [r['impression_id'] for r in recs]
        except Exception as e: errors.append(repr(e))
    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads: t.start()
        for t in threads: t.join(timeout=300)
    finally: s.stop()
    assert not errors, errors[:3]
    assert sorted(answered) == sorted(sent) and len(sent) == 8 * sum(1 + i % 3 for i in range(25))
    logged = PredictionLog(project).predictions()
    mine = logged[logged['id'].isin({str(i) for i in sent})]
    assert sorted(mine['id'].astype(int)) == sorted(sent)  # each answered prediction logged once
    b = PredictionLog(project).batches().set_index('batch_id')
    for bid in mine['batch_id'].unique():  # closed on shutdown, with the profile of its rows
        assert PredictionLog(project).profile(int(bid)).n_rows == int(b.loc[bid, 'n_rows'])


@pytest.mark.parametrize('workers', [1, 2])
def test_sigkill_under_load_loses_no_acknowledged_prediction(project, records, workers):
    s = Server(project, '--workers', str(workers))
    acked, stop = [], threading.Event()
    def client(k):
        conn = s.connect(timeout=30)
        i = 0
        while not stop.is_set():
            rec = _fresh(records[(k * 50 + i) % len(records)]); i += 1
            try: status, _, body = _post(conn, {'records': [rec]})
            except (ConnectionError, OSError, http.client.HTTPException, ValueError): return
            if status == 200: acked.append(rec['impression_id'])
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads: t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 200:
        assert time.monotonic() < deadline and s.proc.poll() is None, 'no load reached the server'
        time.sleep(0.05)
    s.stop(signal.SIGKILL)
    stop.set()
    for t in threads: t.join(timeout=60)
    logged = set(PredictionLog(project).predictions()['id'])
    missing = [i for i in acked if str(i) not in logged]
    assert len(acked) >= 200 and not missing, f"{len(missing)} of {len(acked)} acknowledged predictions are not in the log"
