"""Time the pre-label performance estimate of a 1M-row scored batch, today's Monte-Carlo against the closed form, and the
error of each against the realized metric once the labels are in: both in one run, as ratios.

The ads scenario (`simulate_ads`, 28 days, 2 × `--rows` rows, so the batch has about `--rows` rows): a model from
`LoopParams()` (HistGradientBoosting, its tuned threshold) trained on 100k rows of days 0-10; the calibration map
(`fit_calibration`) fitted on days 10-14, the reference's test window, as `reference_profile` does; the batch is days
14-28. Two scenarios: clean, and a covariate shift (`covariate_shift=0.5, covariate_days=14`: half the batch's rows draw
device, placement and age from another mix; P(y | x) steady, so an estimate from the scores should still hold).

Before: `estimate_performance` as of `--before` (a git revision, default 55c3e7b, loaded from `git show`): the expected
confusion matrix, log loss and Brier in closed form, ROC and PR AUC by `--draws` Monte-Carlo label draws, every sd from
the draws. After: this tree's `estimate_performance`, every metric and its sd in closed form, no draws; also timed with
`band=0.9` (`--draws` draws for the band, what asking for one costs). Both on the metrics monitoring estimates for every
batch (`monitor_batch.USUAL_METRICS`), with the calibrated probabilities, as `analyze_batch` calls it; and
`analyze_batch(reference, scores=...)` as a whole (prediction drift + the estimate, no labels yet), before and after.

Error: |estimate - realized| per metric on the whole batch and on each of its `--slices` equal slices (smaller
batches: the estimates' own noise and bias matter more there); the ratio after / before of the mean error per metric,
and of all metrics together. Also the coverage the alerts rely on: the share of the units whose realized value lies
within 3 sd of the estimate, each way with its own sd.
Time: best of `--repeat`, the ways interleaved. OMP/OPENBLAS/MKL threads = `--threads` (default 1).
Writes benchmarks/results/estimate.md.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import bench_parser, publish, set_threads  # noqa: E402

set_threads()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = HERE / 'results' / 'estimate.md'
FEATURES = ['ad_id', 'advertiser_id', 'campaign_id', 'placement', 'device', 'hour', 'user_segment', 'user_age',
            'user_past_clicks', 'ad_quality', 'bid', 'position', 'past_ctr']
SCENARIOS = {'clean': {}, 'covariate shift': dict(covariate_shift=0.5, covariate_days=14)}


def _parser():
    ap = bench_parser(__doc__, RESULTS)
    ap.add_argument('--rows', type=int, default=1_000_000, help='rows of the scored batch (default: 1,000,000)')
    ap.add_argument('--draws', type=int, default=50, help="today's Monte-Carlo label draws (and the band's) (default: 50)")
    ap.add_argument('--slices', type=int, default=20, help='equal slices of each batch also scored for the error (default: 20)')
    ap.add_argument('--before', default='55c3e7b', help="git revision of today's estimate (default: 55c3e7b)")
    return ap


def load_before(rev:str) -> types.ModuleType:
    "`mlops_nb/estimate.py` as of git revision `rev`, as a module of the installed package (its relative imports resolve)."
    root = HERE.parent
    src = subprocess.run(['git', '-C', str(root), 'show', f'{rev}:mlops_nb/estimate.py'], capture_output=True, text=True)
    if src.returncode: sys.exit(f'bench_estimate: cannot read mlops_nb/estimate.py at {rev!r}: {src.stderr.strip()}')
    mod = types.ModuleType('mlops_nb._estimate_before'); mod.__package__ = 'mlops_nb'
    exec(compile(src.stdout, f'{rev}:mlops_nb/estimate.py', 'exec'), mod.__dict__)
    return mod


def make_batch(a, scenario:dict):
    "Scores, calibrated probabilities and labels of the batch (days 14-28), the model's threshold, the reference profile."
    from mlops_nb.core import LoopParams
    from mlops_nb.demo import simulate_ads
    from mlops_nb.estimate import calibrate
    from mlops_nb.monitor import reference_profile
    from mlops_nb.train import model_from_params
    df = simulate_ads(2 * a.rows, days=28, seed=a.seed, **scenario)
    day = ((df['timestamp'] - df['timestamp'].min()) / pd.Timedelta(days=1)).to_numpy()
    train, test, batch = df[day < 10], df[(day >= 10) & (day < 14)], df[day >= 14]
    fit = train.sample(min(100_000, len(train)), random_state=a.seed)
    model = model_from_params(LoopParams()).fit(fit[FEATURES], fit['clicked'])
    t_s = model.predict_proba(test[FEATURES])[:, 1]
    ref = reference_profile(train[FEATURES].head(50_000), scores=t_s, labels=test['clicked'], metric='roc_auc',
                            threshold=model.threshold)
    s = model.predict_proba(batch[FEATURES])[:, 1]
    return s, calibrate(ref.info['calibration'], s), batch['clicked'].to_numpy(float), float(model.threshold), ref


@contextlib.contextmanager
def estimate_of(module):
    "`analyze_batch` calling `module.estimate_performance`."
    import mlops_nb.monitor_batch as mb
    keep = mb.estimate_performance; mb.estimate_performance = module.estimate_performance
    try: yield
    finally: mb.estimate_performance = keep


def errors(est, s, p, y, t, names, slices:int, draws:int) -> pd.DataFrame:
    "Per unit (the batch, its slices) and metric: estimate, sd, realized."
    from mlops_nb.scoping import evaluate
    rows = []
    for j, idx in enumerate([np.arange(len(s))] + np.array_split(np.arange(len(s)), slices)):
        e = est(s[idx], t, names, probs=p[idx], n_draws=draws)
        real = evaluate(y[idx], s[idx], t, names)
        rows += [dict(unit='batch' if j == 0 else f'slice {j}', metric=n, estimate=e.loc[n, 'estimate'],
                      sd=e.loc[n, 'sd'], realized=real[n]) for n in names]
    return pd.DataFrame(rows)


def main(argv=None):
    a = _parser().parse_args(argv)
    for k in ('rows', 'draws', 'repeat', 'slices'):
        if getattr(a, k) < 1: _parser().error(f'--{k} must be >= 1')
    from mlops_nb import estimate as after
    from mlops_nb.monitor import analyze_batch
    from mlops_nb.monitor_batch import USUAL_METRICS
    before = load_before(a.before)
    names = list(USUAL_METRICS)
    data, errs = {}, []
    for name, sc in SCENARIOS.items():
        print(f'simulating {2 * a.rows:,} rows ({name}), fitting the model, scoring the batch…', file=sys.stderr)
        data[name] = make_batch(a, sc)
    s, p, y, t, ref = data['clean']
    ways = {
        'before': lambda: before.estimate_performance(s, t, names, probs=p, n_draws=a.draws),
        'after': lambda: after.estimate_performance(s, t, names, probs=p),
        'after_band': lambda: after.estimate_performance(s, t, names, probs=p, n_draws=a.draws, band=0.9),
        'batch_before': lambda: _analyze(before, analyze_batch, ref, s),
        'batch_after': lambda: _analyze(after, analyze_batch, ref, s),
    }
    times = {k: [] for k in ways}
    for rep in range(a.repeat):
        for k in (list(ways) if rep % 2 == 0 else list(ways)[::-1]):
            print(f'  run {rep + 1}/{a.repeat}: {k}', file=sys.stderr)
            t0 = time.perf_counter(); ways[k](); times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    print('estimating on every unit both ways…', file=sys.stderr)
    for name, (s_, p_, y_, t_, _) in data.items():
        for way, mod in (('before', before), ('after', after)):
            e = errors(mod.estimate_performance, s_, p_, y_, t_, names, a.slices, a.draws)
            errs.append(e.assign(scenario=name, way=way))
    publish(_report(a, names, data, best, pd.concat(errs, ignore_index=True)), a.out, a.no_write)


def _analyze(module, analyze_batch, ref, s):
    with estimate_of(module): return analyze_batch(ref, scores=s)


def _report(a, names, data, best, e:pd.DataFrame) -> str:
    e = e.assign(err=(e['estimate'] - e['realized']).abs(), z=(e['realized'] - e['estimate']) / e['sd'])
    judged = [n for n in names if n != 'impressions']  # the share shown needs no labels: no error either way
    w = e[e['metric'].isin(judged)].pivot_table(index=['scenario', 'unit', 'metric'], columns='way', values='err')
    per = w.groupby(level='metric').mean().loc[judged]
    cover = (e[e['metric'].isin(judged)].assign(ok=lambda d: d['z'].abs() <= 3)
             .pivot_table(index='metric', columns='way', values='ok', aggfunc='mean').loc[judged])
    whole = e[(e['unit'] == 'batch')].pivot_table(index=['metric', 'scenario'], columns='way',
                                                  values=['estimate', 'realized', 'sd'])
    ratio = per['after'] / per['before']
    sd = e[e['way'] == 'after'].set_index(['scenario', 'unit', 'metric'])['sd'].reindex(w.index)
    pair = ((w['after'] - w['before']) / sd).groupby(level='metric')  # paired, in units of the metric's sd
    paired = pd.DataFrame(dict(mean=pair.mean(), se=pair.std() / np.sqrt(pair.count()))).loc[judged]
    est = e[e['metric'].isin(judged)].pivot_table(index=['scenario', 'unit', 'metric'], columns='way', values='estimate')
    own = ((est['before'] - est['after']).abs() / sd).groupby(level='metric').mean().loc[judged]
    same = [m for m in judged if own.loc[m] < 0.01]  # a closed form before too
    d_all = ((w['after'] - w['before']) / sd).replace([np.inf, -np.inf], np.nan).dropna()
    all_mean, all_se = float(d_all.mean()), float(d_all.std() / np.sqrt(len(d_all)))
    total = float(np.exp(np.log(ratio[np.isfinite(ratio) & (ratio > 0)]).mean()))  # geometric mean over the metrics
    n_units = e.groupby(['scenario', 'unit']).ngroups
    now = dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    cmd = (f'python benchmarks/bench_estimate.py --rows {a.rows} --draws {a.draws} --slices {a.slices} '
           f'--repeat {a.repeat} --before {a.before}')
    n_batch = {k: len(v[0]) for k, v in data.items()}
    lines = [
        "# Benchmark: the pre-label performance estimate, today's Monte-Carlo against the closed form", '',
        f'Measured {now} by `{cmd}` (threads: {a.threads}).', '',
        f'Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"}), '
        f'{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}. '
        f'Load average (1 min) when the run ended: {os.getloadavg()[0]:.2f} (other processes slow every way alike; '
        'the ways were interleaved).', '',
        f'Data: the ads scenario, batches of {", ".join(f"{v:,} rows ({k})" for k, v in n_batch.items())}; '
        f'metrics: {", ".join(names)} (what monitoring estimates for every batch), at the model\'s threshold, '
        'probabilities from the calibration map of the reference. Before = `estimate_performance` at '
        f'`{a.before}` ({a.draws} label draws); after = this tree (closed form).', '',
        f'## Time per batch of {n_batch["clean"]:,} rows', '',
        f'| way | best of {a.repeat} (s) | ratio to before |', '|---|---:|---:|',
        f'| before: `estimate_performance`, {a.draws} Monte-Carlo draws | {best["before"]:.3f} | 1.00× |',
        f'| **after: `estimate_performance`, closed form** | {best["after"]:.3f} | **{best["after"] / best["before"]:.2f}×** |',
        f'| after, with a band asked for (`band=0.9`, {a.draws} draws) | {best["after_band"]:.3f} | '
        f'{best["after_band"] / best["before"]:.2f}× |',
        f'| before: `analyze_batch(reference, scores=…)` (prediction drift + the estimate) | {best["batch_before"]:.3f} | 1.00× |',
        f'| **after: `analyze_batch(reference, scores=…)`** | {best["batch_after"]:.3f} | '
        f'**{best["batch_after"] / best["batch_before"]:.2f}×** |', '',
        f'Goal: ≤ 0.3× today\'s. **{"Met" if best["after"] / best["before"] <= 0.3 else "Not met"}** for the estimate '
        f'({best["after"] / best["before"]:.2f}×).', '',
        f'## Error against the realized metric ({n_units} units: each scenario\'s batch and its {a.slices} slices)', '',
        '| metric | mean abs error before | after | ratio after / before | paired (after − before) / sd, mean ± se | '
        'the draws\' own noise: mean abs (before − after) / sd | within 3 sd, before | after |',
        '|---|---:|---:|---:|---:|---:|---:|---:|',
        *[f'| {m} | {per.loc[m, "before"]:.5f} | {per.loc[m, "after"]:.5f} | {per.loc[m, "after"] / per.loc[m, "before"]:.3f} | '
          f'{paired.loc[m, "mean"]:+.3f} ± {paired.loc[m, "se"]:.3f} | {own.loc[m]:.3f} | '
          f'{cover.loc[m, "before"]:.0%} | {cover.loc[m, "after"]:.0%} |' for m in judged],
        f'| **all** (ratio: geometric mean) | | | **{total:.3f}** | **{all_mean:+.3f} ± {all_se:.3f}** | | '
        f'{cover["before"].mean():.0%} | {cover["after"].mean():.0%} |', '',
        f'Goal: no worse than today\'s. **{"Met" if total <= 1.0 or all_mean <= 2 * all_se else "Not met"}**: '
        f'the ratio of the errors is {total:.3f}, and paired per unit the closed form\'s error is '
        f'{all_mean:+.3f} ± {all_se:.3f} sd from today\'s (no worse = at most 2 se above 0). '
        f'{", ".join(same) or "No metric"} had a closed form before too (same estimate, only the sd changed from the '
        'draws\' to the exact one; a ratio gains its second-order term); '
        f'{", ".join(m for m in judged if m not in same)} estimate the same expectation both ways, before with the noise '
        f'of {a.draws} draws (about sd / √{a.draws}) on top: their ratio moves with that noise around 1. '
        'The errors themselves are mostly the realized metric\'s sampling noise and the calibration map\'s error, the '
        'same both ways.', '',
        '## The whole batches', '',
        '| metric | scenario | realized | estimate before | sd before | estimate after | sd after |',
        '|---|---|---:|---:|---:|---:|---:|',
        *[f'| {m} | {sc} | {whole.loc[(m, sc), ("realized", "after")]:.5f} | {whole.loc[(m, sc), ("estimate", "before")]:.5f} | '
          f'{whole.loc[(m, sc), ("sd", "before")]:.5f} | {whole.loc[(m, sc), ("estimate", "after")]:.5f} | '
          f'{whole.loc[(m, sc), ("sd", "after")]:.5f} |' for m in names for sc in SCENARIOS], '',
    ]
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
