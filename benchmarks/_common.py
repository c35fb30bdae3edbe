"Small pieces the benchmark scripts share (no numpy here: `set_threads` must run before numpy is imported)."
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def set_threads(argv=None):
    "Set the thread variables from `--threads` (default 1) before numpy (and its BLAS / OpenMP runtimes) is imported."
    p = argparse.ArgumentParser(add_help=False); p.add_argument('--threads', type=int, default=1)
    n = str(p.parse_known_args(sys.argv[1:] if argv is None else argv)[0].threads)
    for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ[v] = n


def publish(text:str, out:Path, no_write:bool=False):
    "Print a results report and, unless `no_write`, write it to `out`."
    print(text)
    if not no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f'wrote {out}', file=sys.stderr)
