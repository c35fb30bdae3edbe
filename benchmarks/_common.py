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


def bench_parser(doc:str, results:Path, *, threads:bool=True, repeat_help:str='timed runs per way; the best is reported') -> argparse.ArgumentParser:
    "The options every benchmark script has: --repeat, --threads (if it sets them), --seed, --out, --no-write."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=doc.split('\n', 2)[2] if doc.count('\n') > 1 else None,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repeat', type=int, default=3, help=f'{repeat_help} (default: 3)')
    if threads: ap.add_argument('--threads', type=int, default=1, help='OMP/OPENBLAS/MKL_NUM_THREADS for every process (default: 1)')
    ap.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    ap.add_argument('--out', type=Path, default=results, help=f'markdown file to write (default: {results})')
    ap.add_argument('--no-write', action='store_true', help='print the result, do not write the file')
    return ap


def publish(text:str, out:Path, no_write:bool=False):
    "Print a results report and, unless `no_write`, write it to `out`."
    print(text)
    if not no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f'wrote {out}', file=sys.stderr)
