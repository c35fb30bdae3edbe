"""Time monitoring a 1M-row scored batch against a saved reference profile, against what users would otherwise do.

The ads scenario: `--reference-rows` training rows (the reference) and a `--rows` batch whose inputs moved in four of
its 13 features (bid ×1.5, users 8 years older, more video placements, more tablets); scores from a HistGradientBoosting
model (trained on 100k rows, untimed).

Ours (`mlops_nb.monitor`), each step timed:
  1. `Profile.from_frame` of the batch's features (what the scoring service logs with the batch),
  2. `analyze_batch(reference_profile, batch_profile, scores=...)`: drift of 13 features and of the scores from the
     profiles, the CBPE estimate of 8 metrics (`--draws` Monte-Carlo label draws), alerts,
  3. `PredictionLog.log_batch`: the 1M predictions into the SQLite log (a fresh file each time).
The reference profile is loaded from its JSON file inside the timing.

What users would otherwise do, on the raw rows:
  a. `analyze_drift(reference_rows, batch_rows, prediction=(test_window_scores, scores))` with the training rows read
     back from Parquet (the run's split) inside the timing — what a drift check without a profile needs; also timed
     against ours' drift part alone (profile the batch + load the reference profile + `profile_drift`);
  b. a plain scipy loop over the raw rows: `ks_2samp` per numeric column, `chi2_contingency` of the value counts per
     categorical column, with the reference rows already in memory;
  c. the performance estimate with scikit-learn: the same number of label draws, `roc_auc_score` and
     `average_precision_score` per draw (the ranking metrics, the expensive part of CBPE);
  d. logging with pandas: `DataFrame.to_sql` of id, time, score and prediction into a fresh SQLite file.
The whole baseline (a + c + d) is the sum of their best times.
Time: best of `--repeat`, the ways interleaved. Also recorded: which columns each way found drifted, the profile's
size, the log's size. OMP/OPENBLAS/MKL threads = `--threads` (default 1). Writes benchmarks/results/monitor.md.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import bench_parser, publish, set_threads  # noqa: E402

set_threads()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = HERE / 'results' / 'monitor.md'
FEATURES = ['ad_id', 'advertiser_id', 'campaign_id', 'placement', 'device', 'hour', 'user_segment', 'user_age',
            'user_past_clicks', 'ad_quality', 'bid', 'position', 'past_ctr']
SHIFTED = ['bid', 'user_age', 'placement', 'device']


def _parser():
    ap = bench_parser(__doc__, RESULTS)
    ap.add_argument('--rows', type=int, default=1_000_000, help='rows of the scored batch (default: 1,000,000)')
    ap.add_argument('--reference-rows', type=int, default=1_000_000, help='training rows behind the reference (default: 1,000,000)')
    ap.add_argument('--draws', type=int, default=50, help='Monte-Carlo label draws of the estimate, both ways (default: 50)')
    return ap


def make_data(a, tmp:Path):
    "Reference rows (saved as Parquet), the shifted batch, a model's scores on both, the saved reference profile."
    from mlops_nb.core import LoopParams
    from mlops_nb.demo import simulate_ads
    from mlops_nb.monitor import reference_profile
    from mlops_nb.train import model_from_params
    both = simulate_ads(a.reference_rows + a.rows, seed=a.seed)
    pick = np.random.default_rng(a.seed).permutation(len(both))
    ref = both.iloc[np.sort(pick[:a.reference_rows])].reset_index(drop=True)  # same distribution: only the shift differs
    cur = both.iloc[np.sort(pick[a.reference_rows:])].reset_index(drop=True)
    i = np.arange(len(cur))
    cur = cur.assign(bid=cur['bid'] * 1.5, user_age=cur['user_age'] + 8, placement=np.where(i % 3 == 0, 'video', cur['placement']),
                     device=np.where(i % 4 == 0, 'tablet', cur['device']))
    fit = ref.sample(min(100_000, len(ref)), random_state=a.seed)
    model = model_from_params(LoopParams()).fit(fit[FEATURES], fit['clicked'])
    ref_scores = model.predict_proba(ref[FEATURES])[:, 1]
    scores = model.predict_proba(cur[FEATURES])[:, 1]
    ref[FEATURES].to_parquet(tmp / 'train.parquet')
    test = ref.tail(len(ref) // 8)  # the reference's test window: the newest rows
    pd.DataFrame({'score': ref_scores[-len(test):]}).to_parquet(tmp / 'scores.parquet')  # the same prediction reference both ways
    prof = reference_profile(ref[FEATURES], scores=ref_scores[-len(test):], labels=test['clicked'], metric='pr_auc', threshold=0.5)
    prof.save(tmp / 'reference_profile.json')
    batch = cur[['impression_id', 'timestamp'] + FEATURES].assign(score=scores, prediction=(scores >= 0.5).astype(int))
    return ref[FEATURES], ref_scores, batch, scores


def ours(tmp:Path, batch:pd.DataFrame, scores, draws:int, steps:dict|None=None):
    "Profile the batch, analyze it against the saved reference profile, log it."
    from mlops_nb.monitor import PredictionLog, Profile, analyze_batch
    t0 = time.perf_counter()
    prof = Profile.from_frame(batch, FEATURES)
    t1 = time.perf_counter()
    ref = Profile.load(tmp / 'reference_profile.json')
    r = analyze_batch(ref, prof, scores=scores, n_draws=draws)
    t2 = time.perf_counter()
    proj = Path(tempfile.mkdtemp(dir=tmp))
    PredictionLog(proj).log_batch(batch, model_name='ads', model_version=1, run_id='r', profile=prof, id_col='impression_id', time_col='timestamp')
    t3 = time.perf_counter()
    if steps is not None:
        for k, v in (('profile', t1 - t0), ('analyze', t2 - t1), ('log', t3 - t2)): steps[k] = min(steps.get(k, np.inf), v)
    return r, proj


def raw_drift(tmp:Path, batch:pd.DataFrame, scores):
    "analyze_drift on the raw rows, the reference read back from Parquet."
    from mlops_nb.drift import analyze_drift
    ref = pd.read_parquet(tmp / 'train.parquet'); rs = pd.read_parquet(tmp / 'scores.parquet')['score']
    return analyze_drift(ref, batch[FEATURES], prediction=(rs, scores))


def scipy_loop(ref:pd.DataFrame, batch:pd.DataFrame) -> list:
    "ks_2samp per numeric column, chi2_contingency per categorical column; drifted at p < 0.05."
    from scipy.stats import chi2_contingency, ks_2samp
    drifted = []
    for c in FEATURES:
        r, b = ref[c], batch[c]
        if pd.api.types.is_numeric_dtype(r):
            p = ks_2samp(r.dropna().to_numpy(float), b.dropna().to_numpy(float)).pvalue
        else:
            t = pd.concat([r.value_counts(), b.value_counts()], axis=1).fillna(0).to_numpy()
            p = chi2_contingency(t, correction=False).pvalue
        if p < 0.05: drifted.append(c)
    return drifted


def ours_drift(tmp:Path, batch:pd.DataFrame, scores):
    "The drift part alone: profile the batch, load the reference profile, `profile_drift` of the features and the scores."
    from mlops_nb.monitor import Profile
    from mlops_nb.profile import profile_drift
    prof = Profile.from_frame(batch, FEATURES, score=scores)
    return profile_drift(Profile.load(tmp / 'reference_profile.json'), prof)


def to_sql(tmp:Path, batch:pd.DataFrame):
    "Logging the way pandas users would: `DataFrame.to_sql` into a fresh SQLite file."
    import sqlite3
    con = sqlite3.connect(Path(tempfile.mkdtemp(dir=tmp)) / 'predictions.db')
    try: batch[['impression_id', 'timestamp', 'score', 'prediction']].to_sql('predictions', con, index=False)
    finally: con.close()


def sklearn_estimate(scores, draws:int, seed:int=0) -> dict:
    "CBPE of ROC and PR AUC with scikit-learn: label draws y ~ Bernoulli(score), the metrics per draw."
    from sklearn.metrics import average_precision_score, roc_auc_score
    rng = np.random.default_rng(seed); roc, ap = [], []
    for _ in range(draws):
        y = rng.random(len(scores)) < scores
        roc.append(roc_auc_score(y, scores)); ap.append(average_precision_score(y, scores))
    return dict(roc_auc=float(np.mean(roc)), pr_auc=float(np.mean(ap)))


def main(argv=None):
    a = _parser().parse_args(argv)
    for k in ('rows', 'reference_rows', 'draws', 'repeat'):
        if getattr(a, k) < 1: _parser().error(f"--{k.replace('_', '-')} must be >= 1")
    from mlops_nb.monitor import estimate_performance
    tmp = Path(tempfile.mkdtemp(prefix='bench-monitor-'))
    print(f'simulating {a.reference_rows:,} reference and {a.rows:,} batch rows, fitting the model…', file=sys.stderr)
    ref, ref_scores, batch, scores = make_data(a, tmp)
    steps, times = {}, {k: [] for k in ('ours', 'drift_ours', 'analyze_drift', 'scipy', 'est_ours', 'est_sklearn', 'to_sql')}
    out = {}
    ways = {
        'ours': lambda: ours(tmp, batch, scores, a.draws, steps),
        'drift_ours': lambda: ours_drift(tmp, batch, scores),
        'analyze_drift': lambda: raw_drift(tmp, batch, scores),
        'to_sql': lambda: to_sql(tmp, batch),
        'scipy': lambda: scipy_loop(ref, batch),
        'est_ours': lambda: estimate_performance(scores, 0.5, ['roc_auc', 'pr_auc'], n_draws=a.draws),
        'est_sklearn': lambda: sklearn_estimate(scores, a.draws),
    }
    for rep in range(a.repeat):
        order = list(ways) if rep % 2 == 0 else list(ways)[::-1]
        for k in order:
            print(f'  run {rep + 1}/{a.repeat}: {k}', file=sys.stderr)
            t = time.perf_counter(); out[k] = ways[k](); times[k].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    report, proj = out['ours']
    db = proj / 'monitoring' / 'predictions.db'
    prof_kib = (tmp / 'reference_profile.json').stat().st_size / 1024
    raw_mib = sum((tmp / f).stat().st_size for f in ('train.parquet', 'scores.parquet')) / 2**20
    raw = out['analyze_drift']
    base_full = best['analyze_drift'] + best['est_sklearn'] + best['to_sql']
    est_o, est_s = out['est_ours'], out['est_sklearn']

    now = dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    cmd = f'python benchmarks/bench_monitor.py --rows {a.rows} --reference-rows {a.reference_rows} --draws {a.draws} --repeat {a.repeat}'
    fmt = lambda cols: ', '.join(sorted(map(str, cols))) or 'none'
    lines = [
        '# Benchmark: monitoring a scored batch against the saved reference profile', '',
        f'Measured {now} by `{cmd}` (threads: {a.threads}).', '',
        f'Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"}), '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}. '
        f'Load average (1 min) when the run ended: {os.getloadavg()[0]:.2f} (other processes slow every way alike; the ways were interleaved).', '',
        f'Data: the ads scenario, {a.reference_rows:,} reference (training) rows and a batch of {a.rows:,} rows × {len(FEATURES)} features '
        f'whose inputs moved in {len(SHIFTED)} ({", ".join(SHIFTED)}); scores of a HistGradientBoosting model.', '',
        '## Monitoring one batch: drift + estimate + logging', '',
        f'| way | what it needs | best of {a.repeat} (s) | ratio to ours |', '|---|---|---:|---:|',
        f'| **mlops_nb**: profile the batch + `analyze_batch` (drift of 13 features and the scores from profiles, CBPE of 8 metrics with {a.draws} draws, alerts) + `PredictionLog.log_batch` | the reference profile ({prof_kib:,.0f} KiB JSON) | {best["ours"]:.2f} | 1.0× |',
        f'| `analyze_drift` on the raw rows (training rows read from Parquet) + scikit-learn CBPE of ROC/PR AUC ({a.draws} draws) + pandas `to_sql` (sum of the best times below) | the {a.reference_rows:,} training rows and the test-window scores ({raw_mib:,.0f} MiB Parquet) | {base_full:.2f} | {base_full / best["ours"]:.1f}× |',
        '',
        f'Our steps (best of {a.repeat} each): profile the batch {steps["profile"]:.2f} s, analyze against the reference {steps["analyze"]:.2f} s, '
        f'log {a.rows:,} predictions {steps["log"]:.2f} s. The prediction log after one batch: {db.stat().st_size / 2**20:,.0f} MiB.', '',
        '## Drift alone (13 features and the scores)', '',
        f'| way | what it needs | best of {a.repeat} (s) | ratio to ours |', '|---|---|---:|---:|',
        f'| **mlops_nb**: `Profile.from_frame` of the batch + load the reference profile + `profile_drift` | the reference profile | {best["drift_ours"]:.2f} | 1.0× |',
        f'| `analyze_drift` on the raw rows, training rows and scores read from Parquet | the training rows ({raw_mib:,.0f} MiB Parquet) | {best["analyze_drift"]:.2f} | {best["analyze_drift"] / best["drift_ours"]:.1f}× |',
        f'| plain scipy loop (`ks_2samp` / `chi2_contingency` per feature) on raw rows already in memory (reading them not counted) | the training rows in memory | {best["scipy"]:.2f} | {best["scipy"] / best["drift_ours"]:.1f}× |',
        '',
        '## Logging the predictions', '',
        f'| way | best of {a.repeat} (s) | ratio to ours |', '|---|---:|---:|',
        f'| `PredictionLog.log_batch` (batch row + {a.rows:,} predictions + profile JSON, one transaction) | {steps["log"]:.2f} | 1.0× |',
        f'| pandas `DataFrame.to_sql` of id, time, score, prediction into SQLite | {best["to_sql"]:.2f} | {best["to_sql"] / steps["log"]:.1f}× |',
        '', '`log_batch` also checks the scores and predictions and maintains two indexes (row id, for late labels; batch id) '
        'that the plain `to_sql` table does not have.', '',
        '## The performance estimate alone (ROC AUC and PR AUC by Monte-Carlo label draws)', '',
        f'| way | best of {a.repeat} (s) | ROC AUC | PR AUC |', '|---|---:|---:|---:|',
        f'| mlops_nb `estimate_performance` (one sort, cumulative sums per draw), {a.draws} draws | {best["est_ours"]:.2f} | {est_o.loc["roc_auc", "estimate"]:.4f} | {est_o.loc["pr_auc", "estimate"]:.4f} |',
        f'| scikit-learn `roc_auc_score` + `average_precision_score` per draw, {a.draws} draws | {best["est_sklearn"]:.2f} | {est_s["roc_auc"]:.4f} | {est_s["pr_auc"]:.4f} |',
        '', f'**Ratio scikit-learn / ours: {best["est_sklearn"] / best["est_ours"]:.1f}×** (same draws count; the estimates agree up to the draws\' noise).', '',
        '## Which columns drifted', '',
        '| way | drifted columns |', '|---|---|',
        f'| truth (shifted) | {fmt(SHIFTED)} |',
        f'| mlops_nb (profiles) | {fmt(report.drift.drifted_columns)}; prediction drift: {report.prediction_drift} |',
        f'| `analyze_drift` (raw rows) | {fmt(raw.drifted_columns)}; prediction drift: {bool(raw.columns.loc["__prediction__", "drifted"])} |',
        f'| scipy loop (p < 0.05) | {fmt(out["scipy"])} |', '',
        'Prediction drift compares the batch\'s scores with the scores on the reference\'s test window (the newest eighth of '
        'the reference rows) both ways.', '',
    ]
    publish('\n'.join(lines), a.out, a.no_write)


if __name__ == '__main__':
    main()
