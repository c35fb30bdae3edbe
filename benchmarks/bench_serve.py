"""Serving throughput: single-record `POST /predict` at a fixed concurrency against `mlops-nb serve` (every prediction logged), MLflow's scoring server on the same fitted pipeline, and the in-process single-row floor.

Setup (in a temporary folder, removed at the end unless `--keep`): `mlops-nb init P`, `mlops-nb run --set
scenario.rows=20000`, `mlops-nb promote latest --force` (with `--project-pythonpath`, default the checkout holding this
script; or copy an existing promoted project with `--project`). The champion's `model.skops` is loaded with
`mlops_nb.train.load_model` and logged with `mlflow.sklearn.log_model(..., pyfunc_predict_fn='predict_proba')` into a
SQLite MLflow store the benchmark creates, by the python of `--mlflow-python`: a virtual environment with the full
`mlflow` package (mlflow-skinny has no scoring server), where mlops_nb is importable so the pipeline unpickles:

    python -m venv --system-site-packages /work/bench-venv && /work/bench-venv/bin/pip install "mlflow==3.17.2"

Contenders, interleaved in `--repeat` rounds (A, B, C, ..., A, B, C, ...; each server started fresh on a free port of
127.0.0.1 for its turn and stopped after it):
- `mlops-nb serve` once per `--pythonpath DIR` (repeatable; default the checkout holding this script), with the
  extra flags of the `--serve-args` at the same position (e.g. `--serve-args "--workers 2"`). Request:
  `{"records": [{one row of the test split: features, id, time}]}`, every request with a new id. The prediction log
  starts empty for each turn; its row count is checked against the count of 200 answers that name
  `model_version`, and its growth is reported in bytes per logged prediction (after a WAL checkpoint).
- `mlflow models serve -m <uri> --env-manager local` (`--mlflow-workers`, default 1). Request:
  `{"dataframe_split": {"columns": [features], "data": [[one row]]}}`. It logs no predictions.
- the floor: `predict_proba` of one row in a loop in this process (calls/s, ms per call), and of 8-row batches
  (rows/s: what batching the 8 concurrent requests could reach at most).

Each --pythonpath's `mlops_nb` package is copied at the start (unless `--no-freeze`), so every round serves the same
code while its checkout changes; the report names the commit and whether it had uncommitted changes.

Load: wrk (`-c --concurrency`, `-d --duration`, after `--warmup` seconds not counted), its Lua script written by the
benchmark; latency percentiles from wrk (closed loop: each connection sends its next request when answered).
Then the SIGKILL check, once per `mlops-nb serve` contender: a Python client (`--concurrency` threads, `http.client`,
keep-alive) records the ids of every 200 answer; after `--kill-after` seconds the server's process group is
SIGKILLed; every acknowledged id must be in the prediction log.

Goal (issue 8): `mlops-nb serve` >= 500 requests/s and p99 <= 50 ms at concurrency 8 on this 2-core machine, > 10x
MLflow's server, the log growing by the predictions (bytes, not kilobytes, per request), nothing acknowledged missing
after a SIGKILL. Writes benchmarks/results/serve.md (unless `--no-write` or `--quick`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / 'results' / 'serve.md'
HOST = '127.0.0.1'
MLOPS_NB = [sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.argv[0] = "mlops-nb"; sys.exit(main())']  # `mlops-nb` of PYTHONPATH's mlops_nb


def _parser() -> argparse.ArgumentParser:
    ap = bench_parser(__doc__, RESULTS, repeat_help='interleaved rounds of all contenders; medians and min-max are reported')
    ap.add_argument('--duration', type=float, default=20, help='seconds of measured load per contender and round (default: 20)')
    ap.add_argument('--concurrency', type=int, default=8, help='open connections (wrk -c) and client threads (default: 8)')
    ap.add_argument('--warmup', type=float, default=3, help='seconds of load before each measurement, not counted (default: 3)')
    ap.add_argument('--wrk-threads', type=int, default=1, help='wrk threads (default: 1; it needs little CPU, the servers need it all)')
    ap.add_argument('--floor-seconds', type=float, default=5, help='seconds of the in-process loops per round (default: 5)')
    ap.add_argument('--kill-after', type=float, default=5, help='seconds of load before the SIGKILL of each mlops-nb server (default: 5; 0 = no SIGKILL check)')
    ap.add_argument('--rows', type=int, default=20_000, help='scenario.rows of the benchmark project (default: 20000)')
    ap.add_argument('--pythonpath', action='append', default=None, metavar='DIR',
                    help='checkout whose mlops_nb `mlops-nb serve` runs (PYTHONPATH of the server); repeat for several '
                         'contenders (default: the checkout holding this script)')
    ap.add_argument('--serve-args', action='append', default=None, metavar='ARGS',
                    help='extra `mlops-nb serve` flags for the --pythonpath at the same position, e.g. "--workers 2" '
                         '(write --serve-args=--flag for a single flag without a value)')
    ap.add_argument('--serve-params', action='append', default=None, metavar='SETS',
                    help='space-separated KEY=VALUE settings written into the project\'s params.yaml while the --pythonpath at the '
                         'same position serves, e.g. "deploy.workers=2 deploy.batch_wait_ms=5" (restored after each turn)')
    ap.add_argument('--project-pythonpath', type=Path, default=REPO,
                    help='checkout that makes the project (init, run, promote) and logs the model to MLflow (default: %(default)s)')
    ap.add_argument('--project', type=Path, default=None,
                    help='copy this already-promoted project (without its monitoring/ folder) instead of making one')
    ap.add_argument('--mlflow-python', type=Path, default=Path('/work/bench-venv/bin/python'),
                    help='python of the environment with the full mlflow package (default: %(default)s); "none" skips MLflow')
    ap.add_argument('--mlflow-workers', default='1', help='mlflow models serve --workers; a comma list is one contender each, '
                    'the first is the one ratios are taken to (default: 1, its default)')
    ap.add_argument('--quick', action='store_true',
                    help='try it: 1 round of 3 s (1 s warm-up, 1 s floor, SIGKILL after 2 s) unless those options are given; nothing written unless --out is given')
    ap.add_argument('--no-freeze', action='store_true',
                    help="serve each --pythonpath as it is at each server start; by default its mlops_nb package is copied once at the "
                         "start, so every round runs the same code while the checkout changes")
    ap.add_argument('--keep', action='store_true', help='keep the temporary folder (project, logs, Lua script) and print its path')
    ap.add_argument('--startup-timeout', type=float, default=180, help='seconds a server may take to answer its health check (default: 180)')
    return ap


from _common import bench_parser, publish, set_threads  # noqa: E402
if __name__ == '__main__': set_threads()

# ------------------------------------------------------------------------------------------------------------ processes
class Processes:
    "The processes the benchmark started, each in its own process group; all of them are killed on exit or error."
    def __init__(self): self.live: list[subprocess.Popen] = []

    def start(self, cmd, *, env, log:Path, cwd=None) -> subprocess.Popen:
        f = open(log, 'ab')
        try: p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally: f.close()
        self.live.append(p)
        return p

    def stop(self, p:subprocess.Popen, sig=signal.SIGTERM, wait:float=15):
        "Signal `p`'s process group, wait for it, SIGKILL the group if it lingers."
        for s, w in ((sig, wait), (signal.SIGKILL, 5)):
            try: os.killpg(p.pid, s)
            except ProcessLookupError: pass
            try: p.wait(w); break
            except subprocess.TimeoutExpired: continue
        try: os.killpg(p.pid, signal.SIGKILL)  # workers the leader left behind
        except ProcessLookupError: pass
        if p in self.live: self.live.remove(p)

    def stop_all(self):
        for p in list(self.live): self.stop(p, wait=5)

    def __enter__(self): return self
    def __exit__(self, *exc): self.stop_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0)); return s.getsockname()[1]


def group_cpu(pgid:int) -> float:
    "CPU seconds (user + system) used so far by the live processes of process group `pgid`."
    tick, total = os.sysconf('SC_CLK_TCK'), 0
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: f = (d / 'stat').read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError): continue
        if int(f[2]) == pgid: total += int(f[11]) + int(f[12])
    return total / tick


def _tail(path:Path, n:int=25) -> str:
    try: return '\n'.join(path.read_text(errors='replace').splitlines()[-n:])
    except OSError: return '(no log)'


def run_checked(cmd, *, env, cwd, log:Path, what:str, timeout:float=900) -> str:
    "Run a setup command to the end; RuntimeError with its output's tail if it fails."
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    with open(log, 'a') as f: f.write(f'$ {shlex.join(map(str, cmd))}\n{r.stdout}{r.stderr}\n')
    if r.returncode: raise RuntimeError(f'{what} failed (exit {r.returncode}):\n' + '\n'.join((r.stdout + r.stderr).splitlines()[-25:]))
    return r.stdout


def env_for(pythonpath, threads:int) -> dict:
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY='true', PYTHONUNBUFFERED='1')
    if pythonpath is not None: env['PYTHONPATH'] = str(pythonpath)
    for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): env[v] = str(threads)
    return env


def http_json(port:int, method:str, path:str, body=None, timeout:float=30) -> tuple[int, dict|str]:
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        c.request(method, path, body=data, headers={'Content-Type': 'application/json'} if data else {})
        r = c.getresponse(); raw = r.read()
        try: return r.status, json.loads(raw)
        except ValueError: return r.status, raw.decode(errors='replace')
    finally: c.close()


def wait_ready(p:subprocess.Popen, port:int, path:str, log:Path, timeout:float, what:str):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if p.poll() is not None: raise RuntimeError(f'{what} exited ({p.returncode}) before answering:\n{_tail(log)}')
        try:
            if http_json(port, 'GET', path, timeout=5)[0] == 200: return time.monotonic() - t
        except OSError: pass
        time.sleep(0.2)
    raise RuntimeError(f'{what} did not answer {path} within {timeout:.0f} s:\n{_tail(log)}')


def checkout_info(d) -> str:
    "Which code a path is: `path (branch @ commit[, uncommitted changes])`."
    d = Path(d)
    def git(*a):
        r = subprocess.run(['git', '-C', str(d), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ''
    head = git('rev-parse', '--short', 'HEAD')
    if not head: return str(d)
    dirty = ', uncommitted changes' if git('status', '--porcelain', '--untracked-files=no') else ''
    return f"{d} ({git('rev-parse', '--abbrev-ref', 'HEAD')} @ {head}{dirty})"

# ---------------------------------------------------------------------------------------------------------------- wrk
WRK_LUA = r'''-- written by benchmarks/bench_serve.py: one POST per request, a new id in each; counts answers that carry MARKER
local threads, count = {}, 0
function setup(thread)
  thread:set("tid", count); count = count + 1; table.insert(threads, thread)
end
function init(args)
  n, ok, bad = 0, 0, 0
  headers = {["Content-Type"] = "application/json"}
end
function request()
  n = n + 1
  local body = PREFIX
  if SUFFIX ~= nil then body = PREFIX .. string.format("%d", BASE + tid * 100000000 + n) .. SUFFIX end
  return wrk.format("POST", PATH, headers, body)
end
function response(status, hdrs, body)
  if status == 200 and string.find(body, MARKER, 1, true) then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local ok_t, bad_t = 0, 0
  for _, t in ipairs(threads) do ok_t = ok_t + t:get("ok"); bad_t = bad_t + t:get("bad") end
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests": %d, "duration_us": %d, "ok": %d, "bad": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}\n',
    summary.requests, summary.duration, ok_t, bad_t, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
'''


def _lua_str(s:str) -> str:
    eq = '=' * 4
    assert f']{eq}]' not in s
    return f'[{eq}[{s}]{eq}]'


def write_lua(path:Path, *, url_path:str, body:str, marker:str, placeholder:str|None, base:int):
    "A wrk script sending `body` to `url_path`; with `placeholder`, each request puts a new integer id in its place."
    prefix, suffix = body.split(placeholder) if placeholder else (body, None)
    head = (f'PATH = {_lua_str(url_path)}\nPREFIX = {_lua_str(prefix)}\nSUFFIX = {_lua_str(suffix) if suffix is not None else "nil"}\n'
            f'MARKER = {_lua_str(marker)}\nBASE = {base}\n')
    path.write_text(head + WRK_LUA)


def run_wrk(port:int, lua:Path, *, seconds:float, conns:int, threads:int, procs:Processes, log:Path) -> dict:
    cmd = ['wrk', '-t', str(min(threads, conns)), '-c', str(conns), '-d', f'{max(1, round(seconds))}s', '--timeout', '10s',
           '-s', str(lua), f'http://{HOST}:{port}']
    out = log.with_suffix('.wrk.txt')
    p = procs.start(cmd, env=dict(os.environ), log=out)
    try: p.wait(seconds + 60)
    finally: procs.stop(p, wait=5)
    lines = [l for l in out.read_text(errors='replace').splitlines() if l.startswith('BENCH_JSON ')]
    out.unlink()
    if not lines: raise RuntimeError(f'wrk printed no result: {shlex.join(cmd)}')
    r = json.loads(lines[-1].removeprefix('BENCH_JSON '))
    r['rps'] = r['ok'] / (r['duration_us'] / 1e6)  # answers that count, per second
    r['errors'] = r['bad'] + r['connect'] + r['read'] + r['write'] + r['timeout']
    return r

# ------------------------------------------------------------------------------------------------------- prediction log
def log_state(db:Path, server_running:bool=False) -> dict:
    "Rows, batches and bytes of a prediction log; the bytes after a WAL checkpoint, one that never waits while the server runs."
    if not db.exists(): return dict(rows=0, batches=0, bytes=0)
    con = sqlite3.connect(db, timeout=60)
    try:
        busy, frames, done = con.execute(f"PRAGMA wal_checkpoint({'PASSIVE' if server_running else 'TRUNCATE'})").fetchone()
        rows = con.execute('SELECT COUNT(*) FROM predictions').fetchone()[0]
        batches = con.execute('SELECT COUNT(*) FROM batches').fetchone()[0]
    finally: con.close()
    files = [db] if frames == done else [db, db.with_name(db.name + '-wal')]  # -1, -1 when not in WAL mode
    return dict(rows=rows, batches=batches, bytes=sum(p.stat().st_size for p in files if p.exists()))


def settled_log(db:Path, quiet:float=0.7, timeout:float=30) -> dict:
    "The log's state, while the server runs, once its row count stopped changing for `quiet` seconds (requests in flight have landed)."
    t, last = time.monotonic(), log_state(db, True)
    while time.monotonic() - t < timeout:
        time.sleep(quiet)
        now = log_state(db, True)
        if now['rows'] == last['rows']: return now
        last = now
    return last


def logged_ids(db:Path) -> set:
    con = sqlite3.connect(db, timeout=60)
    try: return {r[0] for r in con.execute('SELECT row_id FROM predictions')}
    finally: con.close()


def fresh_log(db:Path):
    for p in db.parent.glob(db.name + '*'): p.unlink()

# ------------------------------------------------------------------------------------------------------------- servers
class ParamsEdit:
    "Within the block, `sets` (dotted key -> value) are written into the project's params.yaml; the file is put back after."
    def __init__(self, project:Path, sets:dict): self.path, self.sets, self.saved = project / 'params.yaml', sets, None

    def __enter__(self):
        if not self.sets: return self
        import yaml
        self.saved = self.path.read_text()
        tree = yaml.safe_load(self.saved) or {}
        for key, value in self.sets.items():
            *parents, leaf = key.split('.')
            node = tree
            for k in parents: node = node.setdefault(k, {})
            node[leaf] = value
        self.path.write_text(yaml.safe_dump(tree, sort_keys=False))
        return self

    def __exit__(self, *exc):
        if self.saved is not None: self.path.write_text(self.saved)


def parse_sets(text:str) -> dict:
    "'a.b=1 c=x' -> {'a.b': 1, 'c': 'x'} (values read as YAML)."
    import yaml
    out = {}
    for item in shlex.split(text or ''):
        key, eq, value = item.partition('=')
        if not eq or not key: raise SystemExit(f'bench_serve: --serve-params wants KEY=VALUE items, got {item!r}')
        out[key] = yaml.safe_load(value)
    return out


@dataclass
class Contender:
    label: str
    kind: str  # 'mlops' | 'mlflow'
    cmd: list = field(default_factory=list)  # without host/port
    env: dict = field(default_factory=dict)
    health: str = '/health'
    predict: str = '/predict'
    marker: str = '"model_version"'
    body: str = ''
    placeholder: str|None = None
    logs: bool = False
    code: str = ''
    params: dict = field(default_factory=dict)  # dotted key -> value, written into params.yaml for this contender's turns
    check_body: str = ''  # one request of many test rows, sent once per turn; its scores are compared with the in-process ones

    def command(self, port:int) -> list:
        return self.cmd + (['--host', HOST, '--port', str(port)] if self.kind == 'mlops' else ['-h', HOST, '-p', str(port)])


def serve_turn(c:Contender, *, a, project:Path, work:Path, procs:Processes, turn:int) -> dict:
    "One contender's turn: a fresh server (and, for mlops-nb, a fresh prediction log), warm-up, measured load, stop."
    db = project / 'monitoring' / 'predictions.db'
    if c.logs: fresh_log(db)
    port, log = free_port(), work / f'turn{turn:02d}-{c.kind}.log'
    t0 = time.monotonic()
    with ParamsEdit(project, c.params):
        return _serve_turn(c, a=a, project=project, work=work, procs=procs, turn=turn, db=db, port=port, log=log, t0=t0)


def _serve_turn(c:Contender, *, a, project, work, procs, turn, db, port, log, t0) -> dict:
    p = procs.start(c.command(port), env=c.env, log=log, cwd=project)
    try:
        startup = wait_ready(p, port, c.health, log, a.startup_timeout, c.label)
        first = http_json(port, 'POST', c.predict, json.loads(c.check_body))
        lua = work / f'turn{turn:02d}.lua'
        write_lua(lua, url_path=c.predict, body=c.body, marker=c.marker, placeholder=c.placeholder, base=turn * 10_000_000_000)
        if a.warmup > 0: run_wrk(port, lua, seconds=a.warmup, conns=a.concurrency, threads=a.wrk_threads, procs=procs, log=log)
        before = settled_log(db) if c.logs else None
        write_lua(lua, url_path=c.predict, body=c.body, marker=c.marker, placeholder=c.placeholder, base=turn * 10_000_000_000 + 5_000_000_000)
        cpu0 = group_cpu(p.pid)
        r = run_wrk(port, lua, seconds=a.duration, conns=a.concurrency, threads=a.wrk_threads, procs=procs, log=log)
        r['cpu_ms'] = 1000 * (group_cpu(p.pid) - cpu0) / max(r['ok'], 1)  # server CPU per counted answer
        r['load'] = os.getloadavg()[0]
        if p.poll() is not None: raise RuntimeError(f'{c.label} died during the load:\n{_tail(log)}')
        if c.logs: settled_log(db)
    finally: procs.stop(p)
    if c.logs:
        after = log_state(db)
        r.update(logged=after['rows'] - before['rows'], batches=after['batches'] - before['batches'], grew=after['bytes'] - before['bytes'],
                 db_rows=after['rows'], db_bytes=after['bytes'], db_batches=after['batches'])
    r['startup'], r['turn_s'], r['first'] = startup, time.monotonic() - t0, first
    return r


def kill_check(c:Contender, *, a, project:Path, work:Path, procs:Processes, record:dict, id_col:str) -> dict:
    "Load `c` from Python threads that record every acknowledged id, SIGKILL its process group, look for the ids in the log."
    db = project / 'monitoring' / 'predictions.db'
    fresh_log(db)
    port, log = free_port(), work / f"kill-{re.sub(r'[^A-Za-z0-9.=-]+', '_', c.label)[:80]}.log"
    with ParamsEdit(project, c.params): return _kill_check(c, a=a, project=project, procs=procs, record=record, id_col=id_col, db=db, port=port, log=log)


def _kill_check(c:Contender, *, a, project, procs, record, id_col, db, port, log) -> dict:
    p = procs.start(c.command(port), env=c.env, log=log, cwd=project)
    acked, failures, sent = [], [], [0]
    stop, lock = threading.Event(), threading.Lock()

    def client(k:int):
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        i = 0
        while not stop.is_set():
            i += 1
            rid = 9_000_000_000_000 + k * 100_000_000 + i
            body = json.dumps({'records': [{**record, id_col: rid}]}).encode()
            try:
                conn.request('POST', c.predict, body=body, headers={'Content-Type': 'application/json'})
                with lock: sent[0] += 1
                r = conn.getresponse(); raw = r.read()
            except (OSError, http.client.HTTPException):
                break  # the server is gone
            if r.status == 200:
                ids = [str(x[id_col]) for x in json.loads(raw)['predictions']]
                with lock: acked.extend(ids)
            else:
                with lock: failures.append(r.status)
        conn.close()

    try:
        wait_ready(p, port, c.health, log, a.startup_timeout, c.label)
        ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(a.concurrency)]
        for t in ts: t.start()
        time.sleep(a.kill_after)
        with lock: n_at_kill = len(acked)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        stop.set()
        for t in ts: t.join(40)
    finally:
        stop.set(); procs.stop(p, signal.SIGKILL)
    have = logged_ids(db) if db.exists() else set()
    missing = [i for i in acked if i not in have]
    return dict(acked=len(acked), acked_at_kill=n_at_kill, sent=sent[0], non200=len(failures), logged=len(have),
                missing=len(missing), missing_ids=missing[:5], unacked_logged=len(have - set(acked)))

# ----------------------------------------------------------------------------------------------------------- the floor
def floor_turn(model, one_rows:list, eight_rows:list, seconds:float) -> dict:
    "predict_proba of one row (and of 8-row batches) in a loop for `seconds` each."
    out = {}
    for key, frames, rows in (('one', one_rows, 1), ('eight', eight_rows, 8)):
        n, t, cpu = 0, time.perf_counter(), time.process_time()
        while True:
            model.predict_proba(frames[n % len(frames)]); n += 1
            el = time.perf_counter() - t
            if el >= seconds: break
        out[key] = dict(calls=n, seconds=el, calls_s=n / el, ms=1000 * el / n, rows_s=rows * n / el,
                        cpu_ms=1000 * (time.process_time() - cpu) / n)
    return out

# -------------------------------------------------------------------------------------------------------------- MLflow
MLFLOW_LOG = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import importlib.metadata as md
import mlflow, mlflow.sklearn
from mlops_nb.train import load_model
skops_path, store, row = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
exp = mlflow.create_experiment("bench-serve", artifact_location=f"file://{store}/artifacts")
model = load_model(skops_path)
with mlflow.start_run(experiment_id=exp):
    info = mlflow.sklearn.log_model(model, name="model", pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle")
import pandas as pd
pf = mlflow.pyfunc.load_model(info.model_uri)
print("BENCH_JSON " + json.dumps(dict(uri=info.model_uri, mlflow=md.version("mlflow"), skinny=md.version("mlflow-skinny"),
      score=float(pd.DataFrame(pf.predict(pd.DataFrame([row]))).iloc[0, -1]))))
'''


def mlflow_contenders(a, *, skops:Path, row:dict, check_rows:list, features:list, work:Path, log:Path) -> tuple[list, dict]:
    py = str(a.mlflow_python)
    chk = subprocess.run([py, '-c', 'import importlib.metadata as m; m.distribution("mlflow"); import mlflow.pyfunc.scoring_server'],
                         capture_output=True, text=True, env=env_for(a.project_pythonpath, a.threads))
    if chk.returncode:
        raise RuntimeError(f'{py} has no full mlflow package (mlflow-skinny has no scoring server): create it with\n'
                           f'  python -m venv --system-site-packages /work/bench-venv && /work/bench-venv/bin/pip install mlflow\n'
                           + chk.stderr[-600:])
    store = work / 'mlflow-store'; store.mkdir()
    env = env_for(a.project_pythonpath, a.threads)
    out = run_checked([py, '-c', MLFLOW_LOG, str(skops), str(store), json.dumps(row)], env=env, cwd=work, log=log,
                      what='logging the pipeline to MLflow')
    info = json.loads([l for l in out.splitlines() if l.startswith('BENCH_JSON ')][-1].removeprefix('BENCH_JSON '))
    env['MLFLOW_TRACKING_URI'] = f'sqlite:///{store}/mlflow.db'
    body = json.dumps({'dataframe_split': {'columns': features, 'data': [[row[f] for f in features]]}})
    cs = [Contender(label=f'mlflow models serve --workers {w}', kind='mlflow',
                    cmd=[py, '-m', 'mlflow', 'models', 'serve', '-m', info['uri'], '--env-manager', 'local', '-w', str(w)],
                    env=env, health='/ping', predict='/invocations', marker='"predictions"', body=body, logs=False,
                    check_body=json.dumps({'dataframe_split': {'columns': features, 'data': [[r[f] for f in features] for r in check_rows]}}),
                    code=f'mlflow {info["mlflow"]}, {py} (mlops_nb from {a.project_pythonpath})')
          for w in [int(x) for x in str(a.mlflow_workers).split(',')]]
    return cs, info

def check_answer(c:Contender, first, want) -> tuple[bool, str]:
    "Does a contender's answer to the check request name the version and give the in-process scores? (ok, what it said)"
    import numpy as np
    status, body = first
    if status != 200 or not isinstance(body, dict): return False, f'HTTP {status} {str(body)[:200]!r}'
    try:
        preds = body['predictions']
        got = np.array([float(x[-1]) if c.kind == 'mlflow' else float(x['score']) for x in preds])
        who = '' if c.kind == 'mlflow' else f"v{body['model_version']}, "
    except (KeyError, IndexError, TypeError, ValueError): return False, f'unexpected answer {json.dumps(body)[:200]}'
    if len(got) != len(want): return False, f'{who}{len(got)} scores for {len(want)} rows'
    diff = float(np.max(np.abs(got - want)))
    return diff < 1e-9, f'{who}{len(got)} scores, max |difference| {diff:.1e}'

# -------------------------------------------------------------------------------------------------------------- report
def _med(xs): return statistics.median(xs) if xs else float('nan')
def _spread(xs, f='{:.0f}'): return f'{f.format(min(xs))}–{f.format(max(xs))}' if len(xs) > 1 else '—'
def _ms(us): return us / 1000


def report(a, *, argv, contenders, results, floors, kills, info, load0, load1, started, sanity) -> str:
    import pandas, sklearn, uvicorn
    mlf = next((c for c in contenders if c.kind == 'mlflow'), None)
    mlf_rps = [r['rps'] for r in results[mlf.label]] if mlf else []
    lines = [f'# Benchmark: serving single-record requests', '',
             f'Measured {started:%Y-%m-%d %H:%M} UTC by `{shlex.join(["python", "benchmarks/bench_serve.py", *argv])}`.', '',
             f'Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, pandas {pandas.__version__}, '
             f'scikit-learn {sklearn.__version__}, uvicorn {uvicorn.__version__}' + (f', mlflow {info["mlflow"]} (full package, in {a.mlflow_python.parent.parent})' if info else '')
             + f'. Load average (1 min) at the start {load0:.2f}, at the end {load1:.2f}; the machine is shared, so every figure is '
             f'the median of {a.repeat} interleaved rounds with its min–max, and the ratios are taken round by round.', '',
             f'Load: wrk, {a.concurrency} connections, {a.duration:g} s per contender and round after {a.warmup:g} s of warm-up; one '
             f'record per request (the ads scenario, {a.rows:,} rows, default params; a row of the run\'s test split). '
             f'req/s counts 200 answers that carry a prediction; latencies are wrk\'s (closed loop).', '',
             f'| contender | code | req/s | × {mlf.label if mlf else "MLflow"} | p50 ms | p90 ms | p99 ms | server CPU ms / request | errors / non-2xx | log rows − 200s | log bytes / prediction | predictions / logged batch |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for c in contenders:
        rs = results[c.label]
        rps = [r['rps'] for r in rs]
        ratio = [r['rps'] / m for r, m in zip(rs, mlf_rps)] if mlf and c is not mlf else []
        cells = [c.label, c.code, f'{_med(rps):.1f} ({_spread(rps, "{:.1f}")})',
                 f'{_med(ratio):.2f}× ({_spread(ratio, "{:.2f}")})' if ratio else ('1' if c is mlf else '—')]
        for k in ('p50', 'p90', 'p99'):
            v = [_ms(r[k]) for r in rs]; cells.append(f'{_med(v):.1f} ({_spread(v, "{:.1f}")})')
        v = [r['cpu_ms'] for r in rs]; cells.append(f'{_med(v):.1f} ({_spread(v, "{:.1f}")})')
        cells.append(f"{sum(r['errors'] for r in rs)} / {sum(r['status'] for r in rs)}")
        if c.logs:
            diff = [r['logged'] - r['ok'] for r in rs]
            cells += [', '.join(f'{d:+d}' for d in diff), f"{_med([r['grew'] / max(r['logged'], 1) for r in rs]):,.0f}",
                      f"{_med([r['logged'] / max(r['batches'], 1) for r in rs]):,.0f}"]
        else: cells += ['not logged', '—', '—']
        lines.append('| ' + ' | '.join(cells) + ' |')
    one, eight = [f['one'] for f in floors], [f['eight'] for f in floors]
    import mlops_nb
    here = f'this process (mlops_nb of {Path(mlops_nb.__file__).parent.parent})'
    for what, xs, unit in (('one row', one, 'calls/s'), ('8-row batches', eight, 'rows/s')):
        per = [x['calls_s'] if unit == 'calls/s' else x['rows_s'] for x in xs]
        ms, cpu = [x['ms'] for x in xs], [x['cpu_ms'] for x in xs]
        ratio = f"{_med([v / m for v, m in zip(per, mlf_rps)]):.2f}×" if mlf else '—'
        lines.append(f"| in-process `predict_proba`, {what} | {here} | {_med(per):.1f} ({_spread(per, '{:.1f}')}) {unit} | {ratio} | "
                     f"{_med(ms):.2f} per call ({_spread(ms, '{:.2f}')}) | | | {_med(cpu):.2f} per call | | | | |")
    lines += ['', '"log rows − 200s", per round: rows the prediction log gained during the measured load minus the 200 answers wrk '
              f'counted. wrk keeps {a.concurrency} requests outstanding and stops without reading their answers, so 0 to +{a.concurrency} '
              f'is every counted answer logged (+{a.concurrency} when the server still answers and logs all of the abandoned requests); '
              'negative would be answered predictions missing from the log (the SIGKILL check below looks them up one by one). '
              '"log bytes / prediction": growth of the SQLite file (after a WAL checkpoint) per logged row; '
              '"predictions / logged batch": rows logged during the measured load per batch (one profile each) the log gained (a batch '
              'opened before it and still filling counts as one). "server CPU ms / request": user + system CPU '
              'time of the server\'s process group during the measured load per counted answer (less sensitive to the other '
              'processes on the machine than req/s).',
              '', 'A server with several workers (uvicorn processes sharing one listening socket) gets wrk\'s connections, opened once '
              'and kept alive, in whatever split the kernel hands them out: a round where most land on one worker measures about one worker.',
              '', 'MLflow\'s scoring server does not log predictions: it only answers. The in-process rows are the floor a one-row-at-a-time '
              'server cannot beat on one core (req/s equivalent = calls/s) and what 8-row batches would allow.']
    if a.repeat > 1:
        lines += ['', 'Per round (req/s, and the 1-minute load average at the end of the turn; the in-process rows: calls/s):', '', '| contender | ' + ' | '.join(f'round {i + 1}' for i in range(a.repeat)) + ' |',
                  '|---|' + '---:|' * a.repeat]
        lines += [f"| {c.label} | " + ' | '.join(f"{r['rps']:.1f} (load {r['load']:.1f})" for r in results[c.label]) + ' |' for c in contenders]
        lines += [f"| in-process, one row | " + ' | '.join(f"{x['calls_s']:.1f}" for x in one) + ' |',
                  f"| in-process, 8-row batches (rows/s) | " + ' | '.join(f"{x['rows_s']:.0f}" for x in eight) + ' |']
    if sanity: lines += ['', sanity]
    if kills:
        lines += ['', f'## SIGKILL under load', '',
                  f'{a.concurrency} client threads (`http.client`, keep-alive, a new id per request) for {a.kill_after:g} s, then SIGKILL of the '
                  'server\'s process group; every id acknowledged with a 200 is looked up in the prediction log afterwards.', '',
                  '| contender | requests sent | acknowledged (200) | non-200 | rows in the log | acknowledged but missing | logged, not acknowledged (in flight) |',
                  '|---|---:|---:|---:|---:|---:|---:|']
        for label, k in kills.items():
            miss = f"**{k['missing']}**" + (f" (e.g. {', '.join(k['missing_ids'])})" if k['missing'] else '')
            lines.append(f"| {label} | {k['sent']:,} | {k['acked']:,} | {k['non200']} | {k['logged']:,} | {miss} | {k['unacked_logged']} |")
    ours = [c for c in contenders if c.kind == 'mlops']
    if ours:
        ok = lambda b: 'met' if b else '**not met**'
        lines += ['', '## Against the goal (issue 8)', '',
                  '≥ 500 req/s and p99 ≤ 50 ms at concurrency 8, > 10× MLflow\'s server (ratios round by round), the log growing by the '
                  'predictions, nothing acknowledged missing after a SIGKILL.', '']
        for c in ours:
            rs = results[c.label]; rps = _med([r['rps'] for r in rs]); p99 = _med([_ms(r['p99']) for r in rs])
            parts = [f'{rps:.0f} req/s ({ok(rps >= 500)})', f'p99 {p99:.1f} ms ({ok(p99 <= 50)})']
            for m in (x for x in contenders if x.kind == 'mlflow'):
                ratio = _med([r['rps'] / q['rps'] for r, q in zip(rs, results[m.label])])
                parts.append(f'{ratio:.1f}× {m.label}' + (f' ({ok(ratio > 10)})' if m is mlf else ''))
            if c.logs: parts.append(f"{_med([r['grew'] / max(r['logged'], 1) for r in rs]):,.0f} log bytes per prediction")
            if c.label in kills: parts.append(f"{kills[c.label]['missing']} of {kills[c.label]['acked']:,} acknowledged missing after SIGKILL "
                                              f"({ok(kills[c.label]['missing'] == 0)})")
            lines.append(f'- {c.label}: ' + '; '.join(parts) + '.')
    return '\n'.join(lines) + '\n'

# ---------------------------------------------------------------------------------------------------------------- main
def make_project(a, work:Path) -> Path:
    env, log = env_for(a.project_pythonpath, a.threads), work / 'setup.log'
    if a.project is not None:
        dest = work / a.project.resolve().name
        shutil.copytree(a.project, dest, ignore=shutil.ignore_patterns('monitoring'), symlinks=True)
        return dest
    run_checked([*MLOPS_NB, 'init', 'P'], env=env, cwd=work, log=log, what='mlops-nb init')
    project = work / 'P'
    run_checked([*MLOPS_NB, 'run', '--set', f'scenario.rows={a.rows}', *(['--set', f'seed={a.seed}'] if a.seed else [])], env=env, cwd=project, log=log, what='mlops-nb run')
    run_checked([*MLOPS_NB, 'promote', 'latest', '--force'], env=env, cwd=project, log=log, what='mlops-nb promote')
    return project


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = _parser().parse_args(argv)
    if a.quick:  # shorter defaults; options given explicitly keep their values
        given = lambda opt: any(x == opt or x.startswith(opt + '=') for x in argv)
        for opt, v in (('--repeat', 1), ('--duration', 3), ('--warmup', 1), ('--floor-seconds', 1), ('--kill-after', 2)):
            if not given(opt): setattr(a, opt[2:].replace('-', '_'), v)
        if not given('--out'): a.no_write = True
    if shutil.which('wrk') is None: sys.exit('bench_serve: wrk is not installed (apt-get install -y wrk)')
    paths = [Path(p).resolve() for p in (a.pythonpath or [REPO])]
    extra, psets = list(a.serve_args or []), list(a.serve_params or [])
    if len(extra) > len(paths) or len(psets) > len(paths): sys.exit('bench_serve: more --serve-args or --serve-params than --pythonpath')
    extra += [''] * (len(paths) - len(extra)); psets = [parse_sets(x) for x in psets + [''] * (len(paths) - len(psets))]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop the servers,
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background, where SIGINT is ignored

    import pandas as pd
    from mlops_nb.serve import load_deployed
    started, load0 = dt.datetime.now(dt.timezone.utc), os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix='bench-serve-'))
    try:
        with Processes() as procs:
            print(f'making the project in {work} ...', file=sys.stderr, flush=True)
            project = make_project(a, work)
            dep = load_deployed(project)
            d = dep.params.data
            test = next(iter(sorted((project / 'runs' / dep.run_id / 'data').glob('test.parquet'))), None)
            test = pd.read_parquet(test) if test is not None else None
            if test is None or not len(test): raise RuntimeError(f'run {dep.run_id} has no test split to take request rows from')
            rec = json.loads(test[[d.id_col, d.time_col, *dep.features]].head(1).to_json(orient='records', date_format='iso'))[0]
            rec[d.time_col] = rec[d.time_col].removesuffix('Z').removesuffix('.000')
            X = test[dep.features]
            good = []  # test rows the model accepts one by one (the baseline refuses a whole request with one unseen category)
            for i in range(min(len(test), 1000)):
                try: dep.check_input(test.iloc[[i]]); good.append(i)
                except ValueError: pass
                if len(good) == 200: break
            check = test.iloc[good]
            want = dep.model.predict_proba(check[dep.features])[:, 1]
            check_recs = json.loads(check[[d.id_col, d.time_col, *dep.features]].to_json(orient='records', date_format='iso'))
            for r in check_recs: r[d.time_col] = r[d.time_col].removesuffix('Z').removesuffix('.000')
            placeholder = '987654321987'
            body = json.dumps({'records': [{**rec, d.id_col: int(placeholder)}]})
            contenders = []
            frozen = {}
            for i, pp in enumerate(dict.fromkeys(paths)):
                if a.no_freeze or not (pp / 'mlops_nb').is_dir(): frozen[pp] = (pp, checkout_info(pp)); continue
                dest = work / f'code-{i}'
                shutil.copytree(pp / 'mlops_nb', dest / 'mlops_nb', ignore=shutil.ignore_patterns('__pycache__'))
                frozen[pp] = (dest, checkout_info(pp) + ', copied at the start')
            for pp, (run_from, _) in frozen.items():  # the server must import the mlops_nb it is said to run
                got = subprocess.run([sys.executable, '-c', 'import mlops_nb; print(mlops_nb.__file__)'], capture_output=True, text=True,
                                     env=env_for(run_from, a.threads), cwd=work).stdout.strip()
                if not got.startswith(str(run_from) + os.sep): raise RuntimeError(f'PYTHONPATH={run_from} imports mlops_nb from {got or "nowhere"}')
            for pp, ex, sets in zip(paths, extra, psets):
                flags, (run_from, code) = shlex.split(ex), frozen[pp]
                label = 'mlops-nb serve' + (f' {ex}' if ex else '') + ''.join(f' {k}={v}' for k, v in sets.items()) + f' [{pp.name}]'
                contenders.append(Contender(label=label, kind='mlops', params=sets,
                                            cmd=[*MLOPS_NB, 'serve', *flags], env=env_for(run_from, a.threads),
                                            body=body, placeholder=placeholder, logs='--no-log' not in flags, code=code,
                                            check_body=json.dumps({'records': check_recs})))
            if len({c.label for c in contenders}) < len(contenders): sys.exit('bench_serve: two contenders with the same checkout and flags')
            info, sanity = None, ''
            if str(a.mlflow_python).lower() != 'none':
                print('logging the pipeline to MLflow ...', file=sys.stderr, flush=True)
                cs, info = mlflow_contenders(a, skops=dep.path / 'model.skops', row={f: rec[f] for f in dep.features}, check_rows=check_recs,
                                           features=dep.features, work=work, log=work / 'setup.log')
                contenders += cs
            ours = float(dep.model.predict_proba(X.head(1))[:, 1][0])
            if info: sanity = (f"Same fitted pipeline: the request row scores {ours:.6f} in process and {info['score']:.6f} through "
                               f"MLflow's pyfunc ({'equal' if abs(ours - info['score']) < 1e-9 else 'DIFFERENT'}).")
            ones = [X.iloc[[i]] for i in range(min(200, len(X)))]
            eights = [X.iloc[i:i + 8] for i in range(0, min(1600, len(X) - 7), 8)]
            results, floors, turn = {c.label: [] for c in contenders}, [], 0
            for rnd in range(a.repeat):
                for c in contenders:
                    turn += 1
                    print(f'round {rnd + 1}/{a.repeat}: {c.label} ...', file=sys.stderr, flush=True)
                    r = serve_turn(c, a=a, project=project, work=work, procs=procs, turn=turn)
                    results[c.label].append(r)
                    print(f"  {r['rps']:.1f} req/s, p50 {_ms(r['p50']):.1f} ms, p99 {_ms(r['p99']):.1f} ms, errors {r['errors']}, non-2xx {r['status']}"
                          + (f", logged {r['logged']} for {r['ok']} answers" if c.logs else ''), file=sys.stderr, flush=True)
                print(f'round {rnd + 1}/{a.repeat}: in-process floor ...', file=sys.stderr, flush=True)
                floors.append(floor_turn(dep.model, ones, eights, a.floor_seconds))
            checks = {c.label: [check_answer(c, r['first'], want) for r in results[c.label]] for c in contenders}
            sanity += (f' A request of {len(want)} test rows, sent to each server at the start of each turn, against `predict_proba` '
                       'in process: ' + '; '.join(f"{c.label}: {'equal' if all(ok for ok, _ in checks[c.label]) else 'DIFFERENT'} "
                                                   f"({checks[c.label][0][1]})" for c in contenders) + '.')
            kills = {}
            if a.kill_after > 0:
                for c in contenders:
                    if c.kind != 'mlops' or not c.logs: continue
                    print(f'SIGKILL check: {c.label} ...', file=sys.stderr, flush=True)
                    kills[c.label] = k = kill_check(c, a=a, project=project, work=work, procs=procs, record=rec, id_col=d.id_col)
                    print(f"  {k['acked']} acknowledged, {k['missing']} missing from the log", file=sys.stderr, flush=True)
            text = report(a, argv=argv, contenders=contenders, results=results, floors=floors, kills=kills, info=info,
                          load0=load0, load1=os.getloadavg()[0], started=started, sanity=sanity)
        publish(text, a.out, a.no_write)
    finally:
        if a.keep: print(f'kept {work}', file=sys.stderr)
        else: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    try: main()
    except KeyboardInterrupt: sys.exit('bench_serve: interrupted; the servers it started are stopped')
