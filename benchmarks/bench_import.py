"""Import cost of `import mlops_nb` (and of its analyses) against importing pandas and scikit-learn alone.

Each measurement is a fresh interpreter (`python -X importtime` is not needed: wall time of `python -c`), best of N.
Goal (issue 2): `import mlops_nb` ≤ 0.3 s more than pandas + scikit-learn. Writes benchmarks/results/import.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results' / 'import.md'
CASES = {
    'python -c pass': 'pass',
    'pandas + sklearn': 'import pandas, sklearn, sklearn.base',
    'import mlops_nb': 'import pandas, sklearn, sklearn.base; import mlops_nb',
    'mlops_nb.core (LoopParams)': 'import pandas, sklearn, sklearn.base; from mlops_nb.core import LoopParams',
    'from mlops_nb import analyze_drift': 'import pandas, sklearn, sklearn.base; from mlops_nb import analyze_drift',
}


def best(code: str, n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter(); subprocess.run([sys.executable, '-c', code], check=True); out.append(time.perf_counter() - t)
    return min(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeat', type=int, default=7, help='fresh interpreters per case, best kept (default 7)')
    ap.add_argument('--no-write', action='store_true', help='print, do not write the results file')
    a = ap.parse_args()
    res = {}
    for _ in range(1):
        for k, code in CASES.items(): res[k] = best(code, a.repeat)
    base = res['pandas + sklearn']
    rows = '\n'.join(f"| {k} | {v:.3f} | {v - base:+.3f} |" for k, v in res.items())
    heavy = subprocess.run([sys.executable, '-c', 'import sys, mlops_nb, mlops_nb.core; print(sorted(m for m in ("shap","mlflow","ipywidgets","cleanlab","papermill","matplotlib.pyplot") if m in sys.modules))'],
                           capture_output=True, text=True).stdout.strip()
    txt = f"""# Benchmark: import time

Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `python benchmarks/bench_import.py --repeat {a.repeat}`.
Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}. Load average (1 min): {os.getloadavg()[0]:.2f}.
Each case is a fresh `python -c`, best of {a.repeat}; the last column is the difference to pandas + scikit-learn.

| case | best (s) | vs pandas + sklearn (s) |
|---|---:|---:|
{rows}

**`import mlops_nb` costs {res['import mlops_nb'] - base:+.3f} s over pandas + scikit-learn** (goal ≤ +0.3 s).
Heavy packages loaded by `import mlops_nb, mlops_nb.core`: {heavy} (shap, MLflow, widgets, cleanlab and papermill load on first use).
"""
    print(txt)
    if not a.no_write: RESULTS.write_text(txt)


if __name__ == '__main__':
    main()
