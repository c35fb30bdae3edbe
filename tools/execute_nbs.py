"""Execute docs notebooks in place so they keep the outputs that teach, then clean them (nbdev-clean).

    python tools/execute_nbs.py nbs/analyses/40_imbalance.ipynb [more notebooks or folders]

Each notebook runs in its own folder, in a fresh shell, with MPLCONFIGDIR/IPYTHONDIR pointed at a temporary folder.
A cell that fails stops that notebook and leaves the file unchanged (the error is printed, one notebook per line).
"""
import os, subprocess, sys, tempfile
from pathlib import Path

CHILD = r'''
import os, sys
from pathlib import Path
from execnb.shell import CaptureShell
nb = Path(sys.argv[1]).resolve(); os.chdir(nb.parent)
import matplotlib; matplotlib.use('agg')
tmp = nb.with_name(f'.{nb.stem}.executing.ipynb')
try:
    CaptureShell().execute(nb, tmp, exc_stop=True)
    tmp.replace(nb)
finally:
    tmp.unlink(missing_ok=True)
'''


def notebooks(args):
    for a in map(Path, args):
        yield from (sorted(p for p in a.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts) if a.is_dir() else [a])


def main(args):
    if not args or args[0] in ('-h', '--help'): print(__doc__); return 0
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, 'MPLCONFIGDIR': tmp, 'IPYTHONDIR': tmp, 'MLFLOW_DISABLE_TELEMETRY': 'true',
               'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
        for nb in notebooks(args):
            r = subprocess.run([sys.executable, '-c', CHILD, str(nb)], env=env, capture_output=True, text=True)
            if r.returncode: failed += 1; print(f"FAILED {nb}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            else: print(f"ok     {nb}")
    subprocess.run(['nbdev-clean'], check=False)
    return 1 if failed else 0


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
