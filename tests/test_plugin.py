"A third-party analysis, installed as a package, shows up in a real run and in the panel without mlops_nb changing."
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / 'fixtures' / 'plugin'


@pytest.fixture(scope='module')
def plugin_env(tmp_path_factory):
    "An environment where the fixture plug-in is pip-installed (into its own folder on PYTHONPATH)."
    site = tmp_path_factory.mktemp('plugin-site')
    build = tmp_path_factory.mktemp('plugin-build')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--no-index',
                    '--target', str(site), str(FIXTURE)], check=True, cwd=build,
                   env={**os.environ, 'PIP_DISABLE_PIP_VERSION_CHECK': '1'})
    assert (site / 'mlops_nb_top_share.py').exists()
    return {**os.environ, 'PYTHONPATH': os.pathsep.join([str(site), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}


def py(code, env):
    "Run `code` in a fresh interpreter with `env`; its stdout."
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.slow
def test_plugin_analysis_in_a_run_and_in_the_panel(plugin_env, tmp_path, small_sets):
    # registered through its entry point, on by default, after the built-ins
    names = json.loads(py("import json; from mlops_nb.core import LoopParams; print(json.dumps(LoopParams().analysis.enabled))",
                          plugin_env))
    assert names[-1] == 'top_share' and 'imbalance' in names
    assert 'top_share' not in py("from mlops_nb.core import LoopParams; print(LoopParams().analysis.enabled)", dict(os.environ))

    project = tmp_path / 'proj'
    r = subprocess.run(['mlops-nb', 'init', str(project)], env=plugin_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(['mlops-nb', 'run', '-C', str(project), '--run-id', 'p1', '--quiet']
                       + [a for s in small_sets for a in ('--set', s)], env=plugin_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    stored = json.loads((project / 'runs' / 'p1' / 'reports' / 'top_share.json').read_text())
    assert stored['kind'] == 'TopShareReport' and stored['rows'] > 0 and 0 <= stored['top_share'] <= 1

    out = py(f"""
from mlops_nb.panels import ErrorAnalysisPanel, plot_reports
p = ErrorAnalysisPanel.from_run({str(project / 'runs' / 'p1')!r})
print('TABS', [p.tabs.get_title(i) for i in range(len(p.tabs.children))])
fig = plot_reports({{'top_share': p.reports['top_share']}})
print('AXES', [a.get_title() for a in fig.axes])
""", plugin_env)
    tabs = eval(out.split('TABS ')[1].splitlines()[0])
    assert tabs[-1].startswith('Top-tenth hit rate') and len(tabs) == len(names)
    assert 'top_share: hit rate' in out.split('AXES ')[1]
