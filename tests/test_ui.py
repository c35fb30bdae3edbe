"""`mlops-nb ui` in a subprocess: MLflow's server on the project's store; a run logged through it with --tracking-uri,
registered and promoted with the existing commands; Chromium (Debian's, driven by Playwright) reads the experiment,
the run and the registered model with its alias in MLflow's UI. Ctrl-C stops the server and everything it started.
Never runs `playwright install`: it uses /usr/bin/chromium."""
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
CLI = [sys.executable, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main())']

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed (pip install playwright)')

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f'{CHROMIUM} is not installed (apt-get install chromium)'),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def cli_env() -> dict:
    "The environment of a command: the same mlops_nb as this test (installed or not), telemetry off."
    import mlops_nb
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY='true')
    env['PYTHONPATH'] = os.pathsep.join([str(Path(mlops_nb.__file__).resolve().parents[1])] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def descendants(pid:int) -> list[int]:
    "Every process below `pid` (Linux /proc), children first."
    kids = {}
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try: kids.setdefault(int((p / 'stat').read_text().rsplit(')', 1)[1].split()[1]), []).append(int(p.name))
        except (OSError, IndexError, ValueError): continue
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []): out.append(k); todo.append(k)
    return out


def alive(pid:int) -> bool:
    try: return (Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]) != 'Z'
    except (OSError, IndexError): return False


class Served:
    "A `mlops-nb` command that serves, its output lines so far, and its exit status once stopped."
    def __init__(self, args, cwd):
        self.proc = subprocess.Popen(CLI + list(args), cwd=cwd, env=cli_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines, self.code, self._q = [], None, queue.Queue()
        threading.Thread(target=lambda: [self._q.put(l) for l in self.proc.stdout] + [self._q.put(None)], daemon=True).start()

    def wait_for(self, text:str, timeout:float) -> str:
        "The first output line holding `text` (an AssertionError with the output if the command ends or time runs out)."
        deadline = time.time() + timeout
        while (hit := next((l for l in self.lines if text in l), None)) is None:
            try: line = self._q.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty: line = ''
            if line is None or time.time() > deadline:
                raise AssertionError(f"no {text!r} from `mlops-nb {' '.join(self.proc.args[3:])}`; output:\n" + ''.join(self.lines))
            self.lines.append(line)
        return hit.strip()

    def stop(self, sig=signal.SIGINT, timeout:float=60):
        "Send `sig` (Ctrl-C by default), wait for the command to end, collect the rest of its output."
        if self.proc.poll() is None: self.proc.send_signal(sig)
        try: self.code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill(); self.code = self.proc.wait()
        while (line := self._q.get(timeout=10)) is not None: self.lines.append(line)


@contextlib.contextmanager
def serving(args, cwd, sig=signal.SIGINT):
    "Run `mlops-nb ARGS` for the block; stop it with `sig` after, and make sure nothing it started is left running."
    s = Served(args, cwd)
    try: yield s
    finally:
        kids = descendants(s.proc.pid)
        s.stop(sig)
        deadline = time.time() + 10
        while (left := [p for p in kids if alive(p)]) and time.time() < deadline: time.sleep(0.2)
        for p in left: os.kill(p, signal.SIGKILL)  # do not leave them to the other tests
        s.left = left


@contextlib.contextmanager
def browser_page():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.set_default_timeout(90_000)
            yield page
        finally:
            browser.close()


def shot(page, path:Path) -> Path:
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000, f"{path} is {path.stat().st_size} bytes: an empty page?"
    return path


def test_ui_shows_runs_logged_through_it_and_the_registered_model(tmp_path, small_sets):
    from mlflow import MlflowClient
    from mlops_nb.cli import main
    from mlops_nb.runner import init_project
    from mlops_nb.tracking import tracking_uri_for
    project = init_project(tmp_path / 'ui-loop')
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    with serving(['ui', '-C', str(project), '--port', str(port)], tmp_path) as ui:
        assert ui.wait_for('MLflow UI of ui-loop', 240) == f'MLflow UI of ui-loop: {url}'
        runs_url = ui.wait_for('its runs', 5).split()[-1]
        assert runs_url.startswith(f'{url}/#/experiments/') and runs_url.endswith('/runs')
        assert ui.wait_for('Ctrl-C stops it', 5)

        # the port is taken: a second `ui` says so in one line, exit status 2, and starts nothing
        r = subprocess.run(CLI + ['ui', '-C', str(project), '--port', str(port)], env=cli_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f'port {port} on 127.0.0.1 is in use' in r.stderr and 'Traceback' not in r.stderr

        # the team's way: a run logged through the server, registered and promoted with the existing commands
        sets = [a for s in small_sets + ['model.kind=logistic', 'stages=[scoping, data, features, train]'] for a in ('--set', s)]
        assert main(['run', '-C', str(project), '-q', '--tracking-uri', url, '--run-id', 'first', *sets]) == 0
        assert main(['register', 'first', '-C', str(project), '--tracking-uri', url]) == 0
        assert main(['promote', 'first', '--force', '-C', str(project), '--tracking-uri', url]) == 0

        # it landed in the project's store (read directly, not through the server)
        store = MlflowClient(tracking_uri_for(project))
        exp = store.get_experiment_by_name('ui-loop')
        assert [r.info.run_name for r in store.search_runs([exp.experiment_id])] == ['first']
        assert {k: int(v) for k, v in store.get_registered_model('ui-loop').aliases.items()} == {'champion': 1}
        assert runs_url.endswith(f'/#/experiments/{exp.experiment_id}/runs')

        with browser_page() as page:
            page.goto(f'{url}/#/experiments')
            page.get_by_text('ui-loop', exact=True).first.wait_for()
            shot(page, tmp_path / 'experiments.png')
            page.goto(runs_url)
            page.get_by_text('first', exact=True).first.wait_for()
            assert '1 matching run' in page.locator('body').inner_text()
            shot(page, tmp_path / 'runs.png')
            page.goto(f'{url}/#/models')
            page.get_by_text('Version 1').first.wait_for()
            listing = page.locator('body').inner_text()
            assert 'ui-loop' in listing and 'champion' in listing, listing[:2000]
            page.goto(f'{url}/#/models/ui-loop')
            page.get_by_text('Model card: ui-loop v1').first.wait_for()  # the card register wrote as its description
            text = page.locator('body').inner_text()
            assert 'champion' in text and 'mlops_nb.run_id' in text and 'first' in text, text[:2000]
            shot(page, tmp_path / 'model.png')
    assert ui.code == 0 and any('stopped MLflow server' in l for l in ui.lines), ''.join(ui.lines)
    assert not ui.left, f"left running after Ctrl-C: {ui.left}"
    from mlops_nb.tracking_server import check_port
    check_port('127.0.0.1', port)  # the port is free again: a new server could listen on it


def test_ui_refuses_a_server_uri_and_a_folder_that_is_no_project(tmp_path):
    from mlops_nb.runner import init_project
    project = init_project(tmp_path / 'p')
    for args, says in [(['--tracking-uri', 'http://127.0.0.1:1'], 'is a server already'),
                       (['-C', str(tmp_path)], 'is not a loop project (no params.yaml)')]:
        r = subprocess.run(CLI + ['ui', '-C', str(project), *args], env=cli_env(), cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (project / 'mlflow.db').exists()
