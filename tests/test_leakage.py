"""Issue 11, item 3: the leakage check flags a column computed from the label and nothing in a clean table — not the
legitimately strong features, not ids, counters or time-like columns — on the ads scenario and on tables that are not
ads; and through a real papermill loop run, whose decision drops the leak from the next run's features."""
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlops_nb.decisions import apply_decisions
from mlops_nb.demo import simulate_ads
from mlops_nb.leakage import analyze_leakage
from mlops_nb.train import LoopClassifier
from mlops_nb.validate import feature_columns

NOT_FEATURES = ('impression_id', 'timestamp', 'label_batch', 'clicked', 'true_label', 'cost', 'revenue_per_click')


def ads_holdout(rows=40_000, days=28, **kw):
    "The last week of a simulated log, its features and the loop's model trained on the weeks before."
    df = simulate_ads(rows, days=days, **kw)
    feats = [c for c in df.columns if c not in NOT_FEATURES]
    cut = df.timestamp.max() - pd.Timedelta(days=7)
    tr, te = df[df.timestamp < cut], df[df.timestamp >= cut]
    return te, feats, LoopClassifier(params=dict(max_iter=60)).fit(tr[feats], tr.clicked)


@pytest.mark.parametrize('seed', [0, 1])
def test_the_scenario_leak_is_flagged_and_only_it(seed):
    te, feats, m = ads_holdout(leak=True, seed=seed)
    r = analyze_leakage(te[feats], te.clicked, time=te.timestamp, model=m, drop=['true_label'])
    assert r.leaks == ['dwell_seconds'], r.features.head(3)
    assert r.decision.patch == {'data': {'drop': ['true_label', 'dwell_seconds']}}
    ev = r.decision.evidence
    assert ev['dwell_seconds.auc'] > 0.95 and ev['dwell_seconds.shap_share'] > 0.5
    assert ev['dwell_seconds.auc_without'] < ev['model_auc'] - 0.1


@pytest.mark.parametrize('kw', [dict(seed=0), dict(seed=2, prevalence=0.3), dict(seed=3, drift_days=10),
                                dict(seed=4, prior_shift=3.0, seasonality=1.0),
                                dict(seed=5, covariate_shift=0.5, covariate_days=10)],
                         ids=['default', 'balanced', 'drift', 'prior+season', 'covariate'])
def test_a_clean_scenario_flags_nothing(kw):
    "Strong features (ad_quality, past_ctr, position), high-cardinality ids, the hour; with the causes of decay too."
    te, feats, m = ads_holdout(**kw)
    X = te[feats].assign(impression_id=te.impression_id,           # a row id, in time order
                         day=(te.timestamp - te.timestamp.min()).dt.days)  # a day counter
    r = analyze_leakage(X, te.clicked, time=te.timestamp, model=m)
    assert r.leaks == [] and r.decision is None, r.features.head(3)
    f = r.features.set_index('feature')
    assert f.time_corr[['impression_id', 'day']].min() > 0.9  # time-like indeed, and not flagged


def test_redundant_strong_features_are_not_leaks():
    "Breast cancer: the tumour's size alone ranks malignancy almost as well as the whole model; its twins stand in."
    bc = load_breast_cancer(as_frame=True)
    r = analyze_leakage(bc.data, bc.target)
    assert r.leaks == [] and r.decision is None
    assert (r.features.signs != '').any()  # it did look: the signs were there, the refits cleared them


def flights(n=8000, seed=0):
    "A table that is not ads: flights and whether they arrived late; `delay_minutes` is recorded on arrival."
    rng = np.random.default_rng(seed)
    t = pd.Series(pd.Timestamp('2025-01-01') + pd.to_timedelta(np.sort(rng.integers(0, 365 * 86400, n)), unit='s'))
    X = pd.DataFrame({'flight_id': [f"F{i:05d}" for i in rng.permutation(n)], 'carrier': rng.choice(list('ABCDE'), n),
                      'origin': rng.choice([f"AP{i}" for i in range(60)], n), 'dep_hour': t.dt.hour,
                      'distance': rng.gamma(3, 400, n), 'load_factor': rng.beta(5, 2, n),
                      'scheduled': t})
    z = -1.6 + 0.08 * (X.dep_hour - 12) + 1.5 * (X.load_factor - 0.7) + (X.carrier == 'D') * 0.8
    late = rng.random(n) < 1 / (1 + np.exp(-z))
    y = pd.Series(np.where(late, 'delayed', 'on time'))
    return X, y, t, late


def test_a_table_that_is_not_ads():
    X, y, t, late = flights()
    clean = analyze_leakage(X, y, time=t)
    assert clean.leaks == [] and clean.pos_label == 'delayed'
    rng = np.random.default_rng(1)
    Xl = X.assign(delay_minutes=np.where(late, rng.gamma(2, 20, len(X)) + 15, rng.uniform(0, 14, len(X))).round())
    r = analyze_leakage(Xl, y, time=t, features=list(Xl.columns))
    assert r.leaks == ['delay_minutes']
    assert r.decision.patch == {'data': {'features': list(X.columns)}}  # explicit features: removed from them
    assert 'delay_minutes' in r.decision.what and 'delay_minutes' in r.decision.why


@pytest.mark.slow
def test_through_the_loop(tmp_path):
    "One papermill run on the scenario with the leak: the report flags it, the decision would drop it next run."
    from mlops_nb.runner import init_project, run_loop
    proj = init_project(tmp_path / 'loop')
    first = run_loop(proj, sets=['scenario.rows=30000', 'scenario.days=35', 'scenario.leak=true',
                                 'analysis.enabled=[leakage]'], progress=False)  # the other analyses: their tests
    rep = first.reports()['leakage']
    assert rep.leaks == ['dwell_seconds'], rep.features.head(3)
    rec = [d for d in first.recommendations() if d.source == 'leakage']
    assert len(rec) == 1 and rec[0].patch == {'data': {'drop': first.params.data.drop + ['dwell_seconds']}}
    assert 'dwell_seconds' in first.read_json('features.json')['features']  # flagged, not dropped by itself
    nxt = apply_decisions(first.params, rec)  # what the next run (`run --from` with the decision taken) trains on
    assert 'dwell_seconds' not in feature_columns(first.load_split('test_scored'), nxt.data)


def test_the_loop_step_with_the_time_as_a_feature():
    "`data.calendar_features` gives the model the time column: the step scores with it and does not check it."
    from mlops_nb.data import prepare
    from mlops_nb.params import LoopParams
    from mlops_nb.registry import ANALYSES, LoopInputs
    from mlops_nb.train import model_from_params
    p = LoopParams().override(['scenario.rows=20000', 'scenario.days=28', 'scenario.seasonality=1.0',
                               'data.calendar_features=true', 'model.params={max_iter: 60}'])
    prep = prepare(p)
    assert p.data.time_col in prep.features
    m = model_from_params(p).fit(prep.train[prep.features], prep.train[p.data.target])
    r = ANALYSES['leakage'].run(LoopInputs(p, prep.train, prep.test, prep.features, model=m))
    assert r.notes == '' and r.model_auc > 0.6 and r.leaks == []  # the model scored, SHAP explained it
    assert p.data.time_col not in r.features.feature.tolist()
