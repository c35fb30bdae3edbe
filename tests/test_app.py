"""`mlops-nb app RUN` in a subprocess: Voilà serves the run's decision panel on 127.0.0.1; Chromium (Debian's, driven by
Playwright) takes a decision in it; the decision is in the run's decisions.yaml. SIGTERM stops Voilà and its kernel."""
import signal
import subprocess
import time

import pytest
import yaml

from test_browser import make_run
from test_ui import CHROMIUM, CLI, browser_page, cli_env, free_port, serving, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f'{CHROMIUM} is not installed (apt-get install chromium)'),
]


def test_app_takes_a_decision_into_decisions_yaml(tmp_path):
    project = tmp_path / 'loop'
    run = make_run(project / 'runs' / 'run-1')
    decisions = run.path / 'decisions.yaml'
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    with serving(['app', 'run-1', '-C', str(project), '--port', str(port)], tmp_path, sig=signal.SIGTERM) as app:
        assert app.wait_for('decision panel of run', 120) == f'decision panel of run run-1: {url}'
        assert app.wait_for('decisions ', 5).split()[-1] == str(decisions)
        with browser_page() as page:
            page.goto(url)
            page.locator('.mlops-nb-error-analysis').wait_for(timeout=150_000)  # Voilà runs the app notebook first
            imb = page.locator('.mlops-nb-imbalance')
            imb.locator('.mlops-nb-plot img').first.wait_for()
            body = page.locator('body').inner_text()
            assert 'Run run-1: decide' in body and 'ErrorAnalysisPanel' not in body  # Voilà shows outputs, not code
            imb.locator('.mlops-nb-remedy select').select_option(label='weight classes as balanced')
            cb = imb.locator('.mlops-nb-set-threshold input[type=checkbox]')
            if cb.is_checked(): cb.uncheck()
            imb.locator('.mlops-nb-apply').click()
            imb.locator('.mlops-nb-output', has_text='decisions.yaml: weight classes as balanced').wait_for()
            shot(page, tmp_path / 'app.png')
        deadline = time.time() + 20
        while not decisions.exists() and time.time() < deadline: time.sleep(0.2)
        entries = yaml.safe_load(decisions.read_text())
        assert len(entries) == 1 and entries[0]['patch'] == {'imbalance': {'class_weight': 'balanced'}}, entries
        assert entries[0]['by'] == 'human' and entries[0]['source'] == 'imbalance', entries
    assert app.code == 0 and any('stopped Voilà' in l for l in app.lines), ''.join(app.lines)
    assert not app.left, f"left running after SIGTERM: {app.left}"
    from mlops_nb.tracking_server import check_port
    check_port('127.0.0.1', port)  # the port is free again: a new server could listen on it
    from mlops_nb.core import LoopParams, apply_decisions
    from mlops_nb.rundir import RunDir
    assert apply_decisions(LoopParams(), RunDir(run.path).decisions.decisions).imbalance.class_weight == 'balanced'


def test_app_refuses_a_run_without_reports_and_an_unknown_run(tmp_path):
    from mlops_nb.rundir import RunDir
    project = tmp_path / 'loop'; (project / 'runs' / 'bare').mkdir(parents=True)
    RunDir(project / 'runs' / 'bare').write_json('run.json', {'id': 'bare', 'status': 'complete'})
    for run, says in [('bare', 'run bare has no reports in'), ('nope', "no run 'nope'")]:
        r = subprocess.run(CLI + ['app', run, '-C', str(project), '--port', str(free_port())], env=cli_env(),
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
