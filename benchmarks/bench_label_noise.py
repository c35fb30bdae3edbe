"""Compare `mlops_nb.label_noise.analyze_label_noise` with the plain cleanlab pipeline on 100k rows with injected label flips.

The plain pipeline is what one would write by hand with the same model and the same folds:
`cross_val_predict(tabular_pipeline(X, random_state=0), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
method='predict_proba')` then `cleanlab.filter.find_label_issues(y, probabilities)` (cleanlab's defaults).
`analyze_label_noise(X, y, groups=...)` does the same and more (label quality scores, the per-group concentration
test, a decision). Two data sets, each with known flips:

- ads: `simulate_ads(rows, noise_rate=0.2, noise_batch=3)` — the labels of labeling batch 3 flipped at 20%; the
  truth is `clicked != true_label`; groups = `label_batch`; features = the columns a model would see.
- mc: `make_classification(rows, 12 features, 80/20 classes)` plus a random 8-value string column; the labels of
  one of 10 groups (`b3`) flipped at 20%.

Reported per data set and way: precision, recall and F1 of the flags against the injected flips, and the best of
`--repeat` wall times, the two ways interleaved (alternating which goes first) so that other processes on the
machine slow both alike. Goal: analyze_label_noise has at least the plain F1 at no more than the plain time.
OMP_NUM_THREADS (and OPENBLAS/MKL_NUM_THREADS) are set to `--threads` before numpy is imported: both ways run in
this one process with the same setting. Writes benchmarks/results/label_noise.md (unless `--no-write`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results' / 'label_noise.md'
DATASETS = ('ads', 'mc')


def _parser() -> argparse.ArgumentParser:
    ap = bench_parser(__doc__, RESULTS)
    ap.add_argument('--rows', type=int, default=100_000, help='rows of each data set (default: 100,000)')
    ap.add_argument('--datasets', default=','.join(DATASETS), help=f"comma-separated, from {', '.join(DATASETS)} (default: all)")
    ap.add_argument('--noise-rate', type=float, default=0.2, help='share of labels flipped in the noisy group (default: 0.2)')
    return ap




from _common import bench_parser, publish, set_threads  # noqa: E402
if __name__ == '__main__': set_threads()

import numpy as np  # noqa: E402  (after the thread variables)
import pandas as pd  # noqa: E402


def make_data(kind:str, n:int, noise_rate:float, seed:int=0):
    "(X, y, flipped, groups, noisy group, description) for data set `kind`."
    if kind == 'ads':
        from mlops_nb.demo import simulate_ads
        df = simulate_ads(n, noise_rate=noise_rate, noise_batch=3, seed=seed)
        X = df.drop(columns=['impression_id', 'timestamp', 'label_batch', 'clicked', 'true_label', 'cost', 'revenue_per_click'])
        desc = (f'`simulate_ads({n}, noise_rate={noise_rate}, noise_batch=3, seed={seed})`; X = {X.shape[1]} columns '
                f'({", ".join(X.columns)}); y = `clicked`; groups = `label_batch`')
        return X, df['clicked'], (df['clicked'] != df['true_label']).to_numpy(), df['label_batch'], 'batch_3', desc
    if kind == 'mc':
        from sklearn.datasets import make_classification
        Xa, y = make_classification(n, n_features=12, n_informative=6, weights=[0.8], class_sep=1.0, flip_y=0, random_state=seed)
        rng = np.random.default_rng(seed)
        X = pd.DataFrame(Xa, columns=[f'f{i}' for i in range(12)]); X['cat'] = rng.choice(list('abcdefgh'), n)
        g = pd.Series(rng.integers(0, 10, n)).map(lambda i: f'b{i}').rename('group')
        flip = (g.to_numpy() == 'b3') & (rng.random(n) < noise_rate)
        y = y.copy(); y[flip] = 1 - y[flip]
        desc = (f'`make_classification({n}, n_features=12, n_informative=6, weights=[0.8], flip_y=0, random_state={seed})` '
                f'+ a random 8-value string column; 10 random groups; labels of group `b3` flipped at {noise_rate}')
        return X, pd.Series(y, name='y'), flip, g, 'b3', desc
    raise ValueError(f'unknown data set {kind!r}; choose from {", ".join(DATASETS)}')


def plain(X, y):
    "The plain cleanlab pipeline: out-of-fold probabilities of the same model on the same folds, then find_label_issues."
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from mlops_nb.train import tabular_pipeline
    _, codes = np.unique(np.asarray(y), return_inverse=True)
    pp = cross_val_predict(tabular_pipeline(X, random_state=0), X, codes,
                           cv=StratifiedKFold(5, shuffle=True, random_state=0), method='predict_proba')
    return np.asarray(find_label_issues(codes, pp), dtype=bool)


def ours(X, y, groups):
    from mlops_nb.label_noise import analyze_label_noise
    return analyze_label_noise(X, y, groups=groups)


def prf(flag:np.ndarray, truth:np.ndarray) -> tuple[float, float, float]:
    tp = int((flag & truth).sum())
    p = tp / max(int(flag.sum()), 1); r = tp / max(int(truth.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def bench(kind:str, a) -> tuple[list[str], dict]:
    X, y, truth, groups, noisy, desc = make_data(kind, a.rows, a.noise_rate, a.seed)
    small = slice(0, 5000)  # warm-up: imports and first-call costs out of the way
    plain(X.iloc[small], y.iloc[small]); ours(X.iloc[small], y.iloc[small], groups.iloc[small])
    times, flags, report = {'plain cleanlab': [], 'analyze_label_noise': []}, {}, None
    for r in range(a.repeat):
        for k in (list(times) if r % 2 == 0 else list(times)[::-1]):
            gc.collect(); t = time.perf_counter()
            if k == 'plain cleanlab': f = plain(X, y)
            else: report = ours(X, y, groups); f = report.issues['is_label_issue'].to_numpy()
            times[k].append(time.perf_counter() - t)
            if k in flags and not np.array_equal(flags[k], f): flags[k + ' (run varies!)'] = f
            flags.setdefault(k, f)
    best = {k: min(v) for k, v in times.items()}
    m = {k: prf(flags[k], truth) for k in times}
    differ = int((flags['plain cleanlab'] != flags['analyze_label_noise']).sum())
    ratio = best['analyze_label_noise'] / best['plain cleanlab']
    d_f1 = m['analyze_label_noise'][2] - m['plain cleanlab'][2]
    lines = [f'## {kind}: {a.rows:,} rows, {int(truth.sum()):,} injected flips ({truth.mean():.2%})', '', f'Data: {desc}.', '',
             f'| way | best of {a.repeat} (s) | all runs (s) | flagged | precision | recall | F1 |',
             '|---|---:|---|---:|---:|---:|---:|']
    for k in times:
        p, rc, f1 = m[k]
        lines.append(f"| {'`' + k + '`' if k == 'analyze_label_noise' else k} | {best[k]:.2f} | "
                     f"{', '.join(f'{x:.2f}' for x in times[k])} | {int(flags[k].sum()):,} | {p:.3f} | {rc:.3f} | {f1:.3f} |")
    verdict = ('NOT met on F1' if d_f1 < -1e-12 else 'met' if ratio <= 1 else f'F1 met, time NOT met ({ratio - 1:+.0%})')
    lines += ['', f'**RATIO analyze_label_noise / plain cleanlab: {ratio:.2f}× (time)**; F1 {m["analyze_label_noise"][2]:.3f} vs '
              f'{m["plain cleanlab"][2]:.3f} (difference {d_f1:+.3f}). Goal (F1 ≥ plain, time ≤ plain): {verdict}.', '',
              f'The two ways flag {"the same rows" if differ == 0 else f"{differ:,} rows differently"}.'
              + (' Flags varied between repeats of one way: ' + ', '.join(k for k in flags if 'varies' in k) + '.' if any('varies' in k for k in flags) else '')
              + f' analyze_label_noise: out-of-fold accuracy {report.oof_accuracy:.3f}, noisy groups found '
              f'{report.noisy_groups or "none"} (the flips are in `{noisy}`); decision: '
              f'{report.decision.what if report.decision else "none"}.', '']
    if report.by_group is not None:
        bg = report.by_group.sort_values('ratio', ascending=False).head(3)
        lines += ['Top groups by flagged / expected: ' + '; '.join(
            f"`{i}` {r.flagged:,.0f} flagged of {r.rows:,.0f} (ratio {r.ratio:.1f}, p {r.p_value:.2g})" for i, r in bg.iterrows()) + '.', '']
    return lines, dict(best=best, ratio=ratio, metrics=m, differ=differ)


def main(argv=None):
    ap = _parser()
    a = ap.parse_args(argv)
    kinds = [k.strip() for k in a.datasets.split(',') if k.strip()]
    if not kinds or set(kinds) - set(DATASETS): ap.error(f'--datasets must name some of {", ".join(DATASETS)}')
    if a.rows < 5000: ap.error('--rows must be >= 5,000')
    if a.repeat < 1: ap.error('--repeat must be >= 1')
    if not 0 < a.noise_rate <= 0.5: ap.error('--noise-rate must be in (0, 0.5]')
    import cleanlab, scipy, sklearn
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    body, summary = [], {}
    for k in kinds:
        lines, summary[k] = bench(k, a); body += lines
        print('\n'.join(lines), file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    cmd = 'python benchmarks/bench_label_noise.py ' + ' '.join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    text = '\n'.join([
        '# Benchmark: `analyze_label_noise` vs the plain cleanlab pipeline', '',
        f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `{cmd.strip()}` (run from the repository root).", '',
        f'Machine: nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}, '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, '
        f'scikit-learn {sklearn.__version__}, scipy {scipy.__version__}, cleanlab {cleanlab.__version__}. Load average '
        f'(1, 5, 15 min): {", ".join(f"{x:.2f}" for x in load0)} at the start, {", ".join(f"{x:.2f}" for x in load1)} '
        'at the end (other processes on the machine slow both ways; the interleaving spreads that over both).', '',
        f"OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS')} for both ways "
        '(one process). Both use the same model, `mlops_nb.train.tabular_pipeline(X, random_state=0)`, and the same folds, '
        '`StratifiedKFold(5, shuffle=True, random_state=0)`; the plain pipeline calls `find_label_issues` with cleanlab\'s '
        'defaults (`n_jobs=None`: its own worker processes), analyze_label_noise with `n_jobs=1`.', '',
        'RATIO (time, analyze_label_noise / plain): ' + '; '.join(
            f"{k} **{s['ratio']:.2f}×** (F1 {s['metrics']['analyze_label_noise'][2]:.3f} vs {s['metrics']['plain cleanlab'][2]:.3f})"
            for k, s in summary.items()) + '.', '',
        *body])
    publish(text, a.out, a.no_write)


if __name__ == '__main__':
    main()
