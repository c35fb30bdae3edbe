"Test environment: nothing writes into $HOME, MLflow telemetry off, matplotlib headless."
import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix='mlops-nb-tests-'))
for var, sub in [('JUPYTER_CONFIG_DIR', 'jupyter-config'), ('JUPYTER_DATA_DIR', 'jupyter-data'),
                 ('JUPYTER_RUNTIME_DIR', 'jupyter-runtime'), ('IPYTHONDIR', 'ipython'), ('MPLCONFIGDIR', 'mpl')]:
    os.environ[var] = str(_TMP / sub)
    (_TMP / sub).mkdir(parents=True, exist_ok=True)
os.environ['MLFLOW_DISABLE_TELEMETRY'] = 'true'
os.environ['MPLBACKEND'] = 'Agg'
# two cores shared by two test workers: one OpenMP thread each (HistGradientBoosting oversubscribes otherwise)
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.pop('MLFLOW_TRACKING_URI', None)
# the kernelspec lives in the package; point Jupyter at the system/venv one, not at a user folder
os.environ.setdefault('JUPYTER_PLATFORM_DIRS', '1')

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def small_sets():
    "Overrides that keep an end-to-end run small and fast."
    return ['scenario.rows=6000', 'scenario.days=35', 'analysis.max_rows=3000', 'analysis.cv=3']


@pytest.fixture(autouse=True)
def _no_tracking_uri_leak():
    "A test that points `mlflow` at a store (mlflow.set_tracking_uri exports it) leaves the next test's default alone."
    yield
    os.environ.pop('MLFLOW_TRACKING_URI', None)
