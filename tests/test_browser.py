"""Browser test of the panels: JupyterLab in a subprocess, Debian's Chromium driven by Playwright.

Opens a notebook whose cell is `ErrorAnalysisPanel.from_run(<run>)` (or a `MonitoringPanel` over stored monitoring
reports), runs it, changes controls in the rendered widgets, clicks Apply and checks that decisions.yaml on disk
holds the decisions.
Never runs `playwright install`: it uses /usr/bin/chromium.
"""
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed (pip install playwright)')

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f'{CHROMIUM} is not installed (apt-get install chromium)'),
]


def make_run(run:Path):
    "A run folder with params.yaml, run.json and the four reports, computed in-process from small synthetic data."
    from sklearn.linear_model import LogisticRegression
    from mlops_nb.core import LoopParams
    from mlops_nb.rundir import RunDir
    from mlops_nb.imbalance import analyze_imbalance
    from mlops_nb.label_noise import analyze_label_noise
    from mlops_nb.drift import analyze_drift
    from mlops_nb.staleness import analyze_staleness
    rng = np.random.default_rng(0)
    run.mkdir(parents=True)
    rd = RunDir(run)
    LoopParams().to_yaml(run / 'params.yaml')
    rd.write_json('run.json', dict(id=run.name, status='complete'))
    y = rng.random(3000) < 0.03
    rd.save_report('imbalance', analyze_imbalance(y, np.clip(0.02 + 0.25 * y + rng.normal(0, 0.08, 3000), 0, 0.45),
                                                  time=pd.date_range('2026-01-01', periods=3000, freq='h')))
    X = pd.DataFrame({'a': rng.normal(size=600), 'b': rng.normal(size=600)})
    yl = (X.a + X.b > 0).astype(int)
    batch = np.repeat(['b0', 'b1', 'b2'], 200)
    flip = (batch == 'b2') & (rng.random(600) < 0.3)
    yl[flip] = 1 - yl[flip]
    rd.save_report('label_noise', analyze_label_noise(X, yl, estimator=LogisticRegression(), cv=3, groups=batch))
    ref = pd.DataFrame({'age': rng.normal(40, 10, 1500), 'income': rng.lognormal(10, 0.5, 1500)})
    rd.save_report('drift', analyze_drift(ref, ref.assign(income=ref.income * 1.8)))
    t = pd.Series(pd.date_range('2026-01-01', periods=3000, freq='h'))
    x = rng.normal(size=3000)
    yy = (np.where(t < t.iloc[1800], 1.5, -1.5) * x + rng.normal(0, 0.5, 3000) > 0).astype(int)
    rd.save_report('staleness', analyze_staleness(pd.DataFrame({'t': t, 'x': x, 'y': yy}), time_col='t', target='y',
                                                  estimator=LogisticRegression(), freq='W'))
    return rd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _children(pid:int) -> list[int]:
    "Process ids whose parent is `pid` (Linux /proc)."
    out = []
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try: stat = (p / 'stat').read_text()
        except OSError: continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid: out.append(int(p.name))
    return out


def _get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r: return json.loads(r.read() or b'null')


@pytest.fixture
def jupyter_lab(tmp_path):
    "JupyterLab on 127.0.0.1 with its config, data, runtime, IPython and matplotlib folders in tmp; yields (url, token, root)."
    root = tmp_path / 'root'; root.mkdir()
    env = dict(os.environ)
    for var, sub in [('JUPYTER_CONFIG_DIR', 'jupyter-config'), ('JUPYTER_DATA_DIR', 'jupyter-data'),
                     ('JUPYTER_RUNTIME_DIR', 'jupyter-runtime'), ('IPYTHONDIR', 'ipython'), ('MPLCONFIGDIR', 'mpl')]:
        (tmp_path / sub).mkdir()
        env[var] = str(tmp_path / sub)
    import mlops_nb  # the kernel imports the same mlops_nb as this test, installed or not
    env['PYTHONPATH'] = os.pathsep.join([str(Path(mlops_nb.__file__).resolve().parents[1])] + [p for p in [env.get('PYTHONPATH')] if p])
    # no news or update checks (no network, no toast over the notebook)
    (tmp_path / 'jupyter-config' / 'jupyter_lab_config.json').write_text(json.dumps(
        {'LabApp': {'news_url': None, 'check_for_updates_class': 'jupyterlab.NeverCheckForUpdate'}}))
    s = tmp_path / 'jupyter-config' / 'lab' / 'user-settings' / '@jupyterlab' / 'apputils-extension'
    s.mkdir(parents=True)
    (s / 'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / 'jupyter.log', 'w')
    server = subprocess.Popen(
        [sys.executable, '-m', 'jupyterlab', '--ip=127.0.0.1', f'--port={port}', '--allow-root', '--no-browser',
         f'--ServerApp.token={token}', f'--ServerApp.root_dir={root}'],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 30
        while True:
            try:
                _get(f'{url}/api/status?token={token}'); break
            except Exception:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield url, token, root
    finally:
        kernels = _children(server.pid) if server.poll() is None else []
        try:  # shut the kernels down through the API, then stop the server
            for k in _get(f'{url}/api/kernels?token={token}'):
                urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels/{k['id']}?token={token}", method='DELETE'), timeout=10)
        except Exception: pass
        server.terminate()
        try: server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill(); server.wait(timeout=5)
        for pid in kernels:  # a kernel the server started and left behind
            try:
                if b'ipykernel' in Path(f'/proc/{pid}/cmdline').read_bytes(): os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError): pass
        log.close()


def run_notebook(page, attempts:int=3, panel:str='.mlops-nb-error-analysis'):
    "Run all cells (Run menu) once the kernel is idle, again while the cell has not started (a click on a page still loading can be lost)."
    page.locator('.jp-Notebook .jp-Cell').first.wait_for()
    page.get_by_text('| Idle').wait_for()
    prompt = page.locator('.jp-Notebook .jp-Cell .jp-InputPrompt').first
    for _ in range(attempts):
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
        page.locator('.lm-Menu').get_by_text('Run All Cells', exact=True).click()
        try:
            sync_api.expect(prompt).not_to_have_text(re.compile(r'^\s*\[\s*\]:\s*$'), timeout=10_000); break
        except AssertionError: continue
    try: page.locator(panel).first.wait_for(timeout=60_000)
    except sync_api.TimeoutError:
        out = page.locator('.jp-Notebook .jp-Cell .jp-OutputArea').first.inner_text()
        raise AssertionError(f"the panel did not appear; cell prompt {prompt.inner_text()!r}, output:\n{out[-3000:]}") from None


def write_notebook(path:Path, source:str):
    "A one-cell notebook with the python3 kernel."
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata['kernelspec'] = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
    nbformat.write(nb, path)


@contextlib.contextmanager
def opened(url:str, token:str, name:str, panel:str):
    "A Chromium page on notebook `name` in JupyterLab, its cell run until `panel` shows; the browser closes after."
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.set_default_timeout(60_000)
            page.goto(f'{url}/lab/tree/{name}?token={token}')
            run_notebook(page, panel=panel)
            yield page
        finally:
            browser.close()


def test_panel_apply_appends_decisions(jupyter_lab, tmp_path):
    url, token, root = jupyter_lab
    run = make_run(root / 'runs' / 'run-1')
    write_notebook(root / 'panel.ipynb', f"from mlops_nb.panels import ErrorAnalysisPanel\nErrorAnalysisPanel.from_run({str(run.path)!r})")
    decisions = run.path / 'decisions.yaml'

    def logged(timeout=20):
        "The decisions in decisions.yaml, polled until the file has appeared and changed."
        deadline = time.time() + timeout
        while time.time() < deadline:
            if decisions.exists():
                entries = yaml.safe_load(decisions.read_text()) or []
                if len(entries) > logged.n: logged.n = len(entries); return entries
            time.sleep(0.2)
        raise AssertionError(f"no new decision in {decisions} after {timeout} s")
    logged.n = 0

    with opened(url, token, 'panel.ipynb', '.mlops-nb-error-analysis') as page:
        page.locator('.mlops-nb-imbalance .mlops-nb-plot img').wait_for()
        page.screenshot(path=str(tmp_path / 'panel.png'))

        # imbalance (the first tab): choose balanced class weights without a threshold, Apply
        imb = page.locator('.mlops-nb-imbalance')
        imb.locator('.mlops-nb-remedy select').select_option(label='weight classes as balanced')
        cb = imb.locator('.mlops-nb-set-threshold input[type=checkbox]')
        if cb.is_checked(): cb.uncheck()
        imb.locator('.mlops-nb-apply').click()
        e = logged()[-1]
        assert e['patch'] == {'imbalance': {'class_weight': 'balanced'}} and e['by'] == 'human', e
        imb.locator('.mlops-nb-output', has_text='decisions.yaml: weight classes as balanced').wait_for()

        # staleness tab: type 21 into the train_days slider's readout, Apply
        page.locator('.lm-TabBar-tab', has_text='Model staleness').click()
        st = page.locator('.mlops-nb-staleness')
        readout = st.locator('.mlops-nb-train-days .widget-readout')
        readout.click()
        page.keyboard.press('Control+A')
        page.keyboard.type('21')
        page.keyboard.press('Enter')
        page.locator('.mlops-nb-staleness .mlops-nb-preview', has_text='train on the last 21 days').wait_for()
        st.locator('.mlops-nb-apply').click()
        e = logged()[-1]
        assert e['patch'] == {'window': {'train_days': 21}} and e['source'] == 'staleness', e
        st.locator('.mlops-nb-output', has_text='decisions.yaml: train on the last 21 days').wait_for()
        page.screenshot(path=str(tmp_path / 'staleness.png'))
    from mlops_nb.core import LoopParams, apply_decisions
    from mlops_nb.rundir import RunDir
    p = apply_decisions(LoopParams(), RunDir(run.path).decisions.decisions)
    assert (p.imbalance.class_weight, p.window.train_days) == ('balanced', 21)


def make_monitoring(root:Path) -> dict:
    "A model's reference profile and the stored reports of two scored batches, a clean one and one whose inputs moved."
    from sklearn.linear_model import LogisticRegression
    from mlops_nb.monitor import analyze_batch, reference_profile
    rng = np.random.default_rng(1)
    def rows(n, shift=0.0):
        X = pd.DataFrame({'age': rng.normal(40 + shift, 10, n), 'income': rng.lognormal(10, 0.5, n),
                          'device': rng.choice(['mobile', 'desktop'], n, p=[0.7, 0.3])})
        return X, (rng.random(n) < 1 / (1 + np.exp(-(X.age - 40) / 8))).astype(int)
    X, y = rows(4000)
    m = LogisticRegression().fit(X[['age', 'income']], y)
    score = lambda X: m.predict_proba(X[['age', 'income']])[:, 1]
    Xt, yt = rows(2000)
    ref = reference_profile(X, scores=score(Xt), labels=yt, metric='roc_auc', threshold=0.5)
    out = {}
    for b, shift in ((1, 0.0), (2, 15.0)):
        Xb, _ = rows(2000, shift)
        t = pd.Series(pd.date_range('2026-03-01', periods=2000, freq='min') + pd.Timedelta(days=b))
        r = analyze_batch(ref, Xb, scores=score(Xb), times=t, batch=dict(batch_id=b, model_version='1', run_id='run-1'))
        r.to_json(root / f'batch-{b}.json'); out[b] = r
    return out


def test_monitoring_panel_apply_takes_the_retrain_decision(jupyter_lab, tmp_path):
    url, token, root = jupyter_lab
    reports = make_monitoring(root)
    assert not reports[1].fired and 'input_drift' in reports[2].fired and reports[2].decision is not None
    write_notebook(root / 'monitoring.ipynb',
        "from mlops_nb.core import DecisionLog, Report\n"
        "from mlops_nb.monitor import history_from_reports\n"
        "from mlops_nb.monitor_panel import MonitoringPanel\n"
        "rs = {b: Report.read_json(f'batch-{b}.json') for b in (1, 2)}\n"
        "log = DecisionLog('decisions.yaml')\n"
        "MonitoringPanel(history_from_reports(list(rs.values())), on_apply=lambda d: f\"appended: {d.what}\" if log.append(d) else '', reports=rs)")
    decisions = root / 'decisions.yaml'
    with opened(url, token, 'monitoring.ipynb', '.mlops-nb-monitoring') as page:
        mon = page.locator('.mlops-nb-monitoring')
        mon.locator('.mlops-nb-plot img').first.wait_for()
        mon.locator('.mlops-nb-details', has_text='batch 2').wait_for()  # the newest batch is shown first
        mon.locator('.mlops-nb-batch select').select_option('1')
        mon.locator('.mlops-nb-details', has_text='batch 1: 0 alerts').wait_for()
        mon.locator('.mlops-nb-batch select').select_option('2')
        mon.locator('.mlops-nb-details', has_text='input_drift').wait_for()
        mon.locator('.mlops-nb-take input[type=checkbox]').check()
        mon.locator('.mlops-nb-apply').click()
        mon.locator('.mlops-nb-output', has_text='appended').wait_for()
        page.screenshot(path=str(tmp_path / 'monitoring.png'))
    entries = yaml.safe_load(decisions.read_text())
    assert len(entries) == 1 and entries[0]['source'] == 'monitor' and 'as_of' in entries[0]['patch']['data'], entries
