"""Label noise confined to one labeling batch: `analyze_label_noise` with and without the groups, beside plain cleanlab.

Four ways flag suspect labels on the same rows, at several sizes (small ones included) and several seeds:

- **with groups**: `analyze_label_noise(X, y, groups=batch)` — the one pass, then, once a group is found noisy, its
  rows scored by a model of the other groups' labels and cleanlab run within each noisy group and within the rest
  (the group's prior);
- **without groups**: `analyze_label_noise(X, y)`;
- **plain cleanlab**: what one would write by hand with the same model and folds: `cross_val_predict(
  tabular_pipeline(X, random_state=0), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
  method='predict_proba')`, then `cleanlab.filter.find_label_issues(y, probabilities)` (cleanlab's defaults);
- **CleanLearning**: cleanlab's own pipeline, `cleanlab.classification.CleanLearning(clf, seed=0).find_label_issues(X,
  y)` (its own 5-fold cross-validation), with clf = `tabular_pipeline(X)` (the same gradient boosting) and with
  clf = `tabular_pipeline(X, 'logistic')` (logistic regression, cleanlab's default classifier, behind our
  preprocessor: CleanLearning needs numbers).

Two data sets, each with known flips, confined to one group:

- ads: `simulate_ads(rows, noise_rate, noise_batch=3, seed)` — the labels of labeling batch 3 flipped; the truth is
  `clicked != true_label`; groups = `label_batch`; features = the columns a model would see.
- mc: `make_classification(rows, 12 features, 80/20 classes)` plus a random 8-value string column; the labels of one
  of 10 random groups (`b3`) flipped.

Reported per data set and size: F1 (mean over the seeds, and the worst seed), precision and recall of the flags
against the injected flips, how often the noisy group was found, and wall times (median over the seeds).
OMP_NUM_THREADS (and OPENBLAS/MKL_NUM_THREADS) are set to `--threads` before numpy is imported: every way runs in
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
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results' / 'label_noise.md'
DATASETS = ('ads', 'mc')
WAYS = ('with groups', 'without groups', 'plain cleanlab', 'CleanLearning (hgb)', 'CleanLearning (logistic)')


def _parser() -> argparse.ArgumentParser:
    ap = bench_parser(__doc__, RESULTS, repeat_help='unused: every way runs once per seed; see --seeds')
    ap.add_argument('--sizes', default='300,600,1000,5000,20000',
                    help='comma-separated rows per data set (default: 300,600,1000,5000,20000)')
    ap.add_argument('--seeds', type=int, default=5, help='data sets drawn per size, seeds seed..seed+N-1 (default: 5)')
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
        desc = (f'`simulate_ads(rows, noise_rate={noise_rate}, noise_batch=3, seed=s)`; X = {X.shape[1]} columns '
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
        desc = (f'`make_classification(rows, n_features=12, n_informative=6, weights=[0.8], flip_y=0, random_state=s)` '
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


def clean_learning(X, y, kind:str):
    "Cleanlab's own pipeline: CleanLearning(clf).find_label_issues(X, y) with its own cross-validation."
    from cleanlab.classification import CleanLearning
    from mlops_nb.train import tabular_pipeline
    _, codes = np.unique(np.asarray(y), return_inverse=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = CleanLearning(tabular_pipeline(X, kind, random_state=0), seed=0).find_label_issues(X, codes)
    return out['is_label_issue'].to_numpy(dtype=bool)


def run_way(way:str, X, y, groups):
    "(flags, report or None) of one way."
    from mlops_nb.label_noise import analyze_label_noise
    if way == 'with groups': r = analyze_label_noise(X, y, groups=groups); return r.issues['is_label_issue'].to_numpy(), r
    if way == 'without groups': r = analyze_label_noise(X, y); return r.issues['is_label_issue'].to_numpy(), r
    if way == 'plain cleanlab': return plain(X, y), None
    return clean_learning(X, y, 'hgb' if 'hgb' in way else 'logistic'), None


def prf(flag:np.ndarray, truth:np.ndarray) -> tuple[float, float, float]:
    tp = int((flag & truth).sum())
    p = tp / max(int(flag.sum()), 1); r = tp / max(int(truth.sum()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def bench_size(kind:str, n:int, a) -> tuple[dict, str]:
    "Per way: F1, precision, recall per seed, times; and the description of the data."
    out = {w: dict(f1=[], p=[], r=[], t=[]) for w in WAYS}
    found, flips, desc = 0, [], ''
    for s in range(a.seed, a.seed + a.seeds):
        X, y, truth, groups, noisy, desc = make_data(kind, n, a.noise_rate, s)
        flips.append(int(truth.sum()))
        order = WAYS if s % 2 == 0 else WAYS[::-1]  # alternate the order: other load on the machine slows all alike
        for w in order:
            gc.collect(); t = time.perf_counter()
            flag, rep = run_way(w, X, y, groups)
            out[w]['t'].append(time.perf_counter() - t)
            p, r, f = prf(flag, truth)
            out[w]['p'].append(p); out[w]['r'].append(r); out[w]['f1'].append(f)
            if w == 'with groups': found += rep.noisy_groups == [noisy]
    return dict(ways=out, found=found, flips=flips), desc


def main(argv=None):
    ap = _parser()
    a = ap.parse_args(argv)
    kinds = [k.strip() for k in a.datasets.split(',') if k.strip()]
    if not kinds or set(kinds) - set(DATASETS): ap.error(f'--datasets must name some of {", ".join(DATASETS)}')
    try: sizes = [int(s) for s in a.sizes.split(',') if s.strip()]
    except ValueError: ap.error('--sizes must be comma-separated integers')
    if not sizes or min(sizes) < 200: ap.error('--sizes must be integers >= 200')
    if a.seeds < 1: ap.error('--seeds must be >= 1')
    if not 0 < a.noise_rate <= 0.5: ap.error('--noise-rate must be in (0, 0.5]')
    import cleanlab, scipy, sklearn
    from mlops_nb.train import tabular_pipeline  # noqa: F401  (imports out of the first timing)
    warm = make_data('mc', 400, a.noise_rate, 0)
    for w in WAYS: run_way(w, warm[0], warm[1], warm[3])
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    body, verdicts = [], []
    for k in kinds:
        res = {}
        for n in sizes:
            res[n], desc = bench_size(k, n, a)
            print(f'{k} {n}: ' + ', '.join(f"{w} {np.mean(v['f1']):.3f}" for w, v in res[n]['ways'].items()),
                  file=sys.stderr, flush=True)
        body += [f'## {k}', '', f'Data: {desc}; seeds {a.seed}..{a.seed + a.seeds - 1}.', '',
                 'F1 of the flags against the injected flips: mean over the seeds (worst seed). "found": seeds in which '
                 'the noisy group, and only it, was found.', '',
                 '| rows | flips (mean) | found | ' + ' | '.join(WAYS) + ' |', '|---:|---:|---:|' + '---:|' * len(WAYS)]
        for n, r in res.items():
            body.append(f"| {n:,} | {np.mean(r['flips']):.1f} | {r['found']}/{a.seeds} | " + ' | '.join(
                f"{'**' if w == 'with groups' else ''}{np.mean(v['f1']):.3f}{'**' if w == 'with groups' else ''} "
                f"({min(v['f1']):.3f})" for w, v in r['ways'].items()) + ' |')
        body += ['', 'Precision / recall (means over the seeds):', '',
                 '| rows | ' + ' | '.join(WAYS) + ' |', '|---:|' + '---|' * len(WAYS)]
        for n, r in res.items():
            body.append(f'| {n:,} | ' + ' | '.join(f"{np.mean(v['p']):.3f} / {np.mean(v['r']):.3f}"
                                                   for v in r['ways'].values()) + ' |')
        body += ['', 'Wall time per call (s, median over the seeds):', '',
                 '| rows | ' + ' | '.join(WAYS) + ' | with groups / plain |', '|---:|' + '---:|' * (len(WAYS) + 1)]
        for n, r in res.items():
            med = {w: float(np.median(v['t'])) for w, v in r['ways'].items()}
            body.append(f'| {n:,} | ' + ' | '.join(f'{med[w]:.2f}' for w in WAYS)
                        + f" | {med['with groups'] / med['plain cleanlab']:.2f}× |")
        body.append('')
        for n, r in res.items():
            f = {w: np.mean(v['f1']) for w, v in r['ways'].items()}
            above = f['with groups'] > f['without groups']
            small = '' if n > 1000 else ('; ≤ 1k rows: with groups ' + ('≥' if f['with groups'] >= f['plain cleanlab'] else '<')
                                         + ' plain cleanlab, without groups ' +
                                         ('≥' if f['without groups'] >= f['plain cleanlab'] - 1e-12 else '<') + ' plain cleanlab')
            verdicts.append(f"{k} {n:,}: with groups {f['with groups']:.3f} {'>' if above else '≤'} without "
                            f"{f['without groups']:.3f}{small}")
    load1 = os.getloadavg()
    cmd = 'python benchmarks/bench_label_noise.py ' + ' '.join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    text = '\n'.join([
        '# Benchmark: label noise confined to a batch — `analyze_label_noise` with and without groups, beside cleanlab', '',
        f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `{cmd.strip()}` (run from the repository root).", '',
        f'Machine: nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}, '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, '
        f'scikit-learn {sklearn.__version__}, scipy {scipy.__version__}, cleanlab {cleanlab.__version__}. Load average '
        f'(1, 5, 15 min): {", ".join(f"{x:.2f}" for x in load0)} at the start, {", ".join(f"{x:.2f}" for x in load1)} '
        'at the end.', '',
        f"OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS')} for every way "
        '(one process). analyze_label_noise and plain cleanlab use the same model, `mlops_nb.train.tabular_pipeline(X, '
        'random_state=0)`, and the same folds, `StratifiedKFold(5, shuffle=True, random_state=0)`: without groups they '
        'flag the same rows. Goals (issue 11, item 5): with groups F1 strictly above without groups when the noise is '
        'confined to a batch; at ≤ 1k rows at least the plain cleanlab pipeline\'s F1.', '',
        'Summary (mean F1): ' + '; '.join(verdicts) + '.', '',
        *body])
    publish(text, a.out, a.no_write)


if __name__ == '__main__':
    main()
