"""Monitoring on the ads scenario: alerts on drifted batches and silence on clean ones, the performance estimate within
its stated tolerance of the true performance, late labels, and bad input (labels for unknown predictions, a batch
whose model run has no reference profile). Real SQLite prediction log, real models from `model_from_params` on
`simulate_ads` data; one end-to-end papermill run checks that the train stage writes the reference profile."""
import json

import numpy as np
import pandas as pd
import pytest

from mlops_nb.cli import main
from mlops_nb.core import DecisionLog, LoopParams
from mlops_nb.demo import simulate_ads
from mlops_nb.monitor import MonitorError, PredictionLog, Profile, monitor, monitoring_history, reference_profile
from mlops_nb.runner import RunDir
from mlops_nb.train import model_from_params

FEATURES = ['placement', 'device', 'hour', 'user_segment', 'user_age', 'user_past_clicks', 'ad_quality', 'bid', 'position',
            'past_ctr', 'advertiser_id', 'campaign_id']
ROWS, DAYS = 60_000, 42  # six weeks: train on weeks 1-2, reference on week 3, batches from weeks 4-6


def weeks(df):
    day = (df['timestamp'] - df['timestamp'].min()).dt.days
    return [df[day // 7 == i] for i in range(DAYS // 7)]


@pytest.fixture(scope='module')
def world():
    "A model trained on two clean weeks, its reference from the third, and the later weeks of a clean and a drifting scenario."
    clean = weeks(simulate_ads(ROWS, days=DAYS, seed=11))
    drifting = weeks(simulate_ads(ROWS, days=DAYS, seed=11, drift_days=14, drift_strength=2.0))
    train = pd.concat(clean[:2])
    params = LoopParams.from_dict({'scope': {'metric': 'roc_auc'}})
    model = model_from_params(params).fit(train[FEATURES], train['clicked'])
    ref = reference_profile(train[FEATURES], scores=model.predict_proba(clean[2][FEATURES])[:, 1], labels=clean[2]['clicked'],
                            metric='roc_auc', threshold=model.threshold)
    return dict(clean=clean, drifting=drifting, model=model, ref=ref, params=params)


@pytest.fixture
def project(tmp_path, world):
    "A loop project folder with one run (params + reference profile) whose model scores the batches."
    run = tmp_path / 'runs' / 'r-model'
    run.mkdir(parents=True)
    world['params'].to_yaml(tmp_path / 'params.yaml'); world['params'].to_yaml(run / 'params.yaml')
    world['ref'].save(run / 'reference_profile.json')
    (run / 'run.json').write_text(json.dumps({'status': 'complete', 'mlflow_run_id': 'abc123'}))
    return tmp_path


def log(project, world, batch, *, run_id='r-model', labels=False):
    "Score `batch` with the model and log it (with the true labels attached right away if `labels`)."
    s = world['model'].predict_proba(batch[FEATURES])[:, 1]
    plog = PredictionLog(project)
    b = plog.log_batch(batch.assign(score=s, prediction=(s >= world['model'].threshold).astype(int)), model_name='ads',
                       model_version=1, run_id=run_id, profile=Profile.from_frame(batch[FEATURES]), id_col='impression_id',
                       time_col='timestamp')
    if labels: plog.add_labels(batch['impression_id'], batch['clicked'])
    return b


def shift(batch):
    "Inputs moved: higher bids, older users, more video, more tablets (4 of 12 features: above drift_share 0.3)."
    i = np.arange(len(batch))
    return batch.assign(bid=batch['bid'] * 1.6, user_age=batch['user_age'] + 10,
                        placement=np.where(i % 2 == 0, 'video', batch['placement']), device=np.where(i % 3 == 0, 'tablet', batch['device']))


def test_clean_batches_are_silent(project, world):
    for week in world['clean'][3:]:
        r = monitor(project, log(project, world, week, labels=True))
        assert r.fired == [], r.alerts
        assert r.decision is None
        assert r.n_labelled == len(week)
    assert not (project / 'runs' / 'r-model' / 'monitoring' / 'recommendations.yaml').exists()
    h = monitoring_history(project)
    assert h.n_monitored == 3 and h.n_alerting == 0


def test_shifted_inputs_alert_and_recommend_retraining(project, world, capsys):
    week = world['clean'][3]
    log(project, world, week)
    b = log(project, world, shift(world['clean'][4]))
    assert main(['monitor', str(b), '-C', str(project), '--html', str(project / 'm.html')]) == 1  # an alert: exit code 1
    out = capsys.readouterr().out
    assert 'input_drift' in out and '--policy auto' in out
    r = PredictionLog(project).result(b)
    assert 'input_drift' in r.fired and {'bid', 'user_age', 'placement', 'device'} <= set(r.drift.drifted_columns)
    # the retrain decision moves data.as_of just past the newest row of the batch and lands where --policy auto reads
    assert r.decision.patch['data']['as_of'] > str(world['clean'][4]['timestamp'].max())
    recs = RunDir(project / 'runs' / 'r-model').recommendations()
    assert recs[-1].patch == r.decision.patch and recs[-1].source == 'monitor'
    assert 'ALERT' in (project / 'm.html').read_text()
    assert main(['monitor', '1', '-C', str(project)]) == 0  # the clean batch: exit code 0


def test_concept_drift_alerts_once_labels_arrive(project, world):
    week = world['drifting'][5]
    b = log(project, world, week)
    before = monitor(project, b)
    # the estimate sees the inputs only: a change of preferences leaves it (and the inputs) unchanged
    assert 'performance_drop' not in before.alerts.index and before.fired == []
    PredictionLog(project).add_labels(week['impression_id'], week['clicked'])
    after = monitor(project, b)
    assert 'performance_drop' in after.fired, after.alerts
    assert after.realized_metric < after.reference_metric - 0.05
    assert after.decision.patch['data']['as_of'] > str(week['timestamp'].max())


@pytest.mark.parametrize('metric', ['roc_auc', 'pr_auc', 'log_loss', 'brier'])
def test_estimate_within_tolerance(project, world, metric):
    "Stated tolerance: on clean batches the realized metric lies within 3 sd (the Monte-Carlo spread) of the estimate."
    errors = []
    for week in world['clean'][3:]:
        for half in (week.iloc[: len(week) // 2], week.iloc[len(week) // 2:]):
            r = monitor(project, log(project, world, half, labels=True))
            p = r.performance.loc[metric]
            errors.append((p['realized'] - p['estimated']) / p['estimated_sd'])
    assert np.all(np.abs(errors) <= 3), errors


def test_late_labels(project, world, capsys):
    week = world['clean'][3]
    b = log(project, world, week)
    plog = PredictionLog(project)
    assert plog.add_labels(week['impression_id'][:1000], week['clicked'][:1000]) == 1000
    assert plog.batches().loc[0, 'n_labelled'] == 1000
    r = monitor(project, b)
    assert r.n_labelled == 1000 and np.isfinite(r.realized_metric)
    # labels from a file through the CLI (id and label columns from params.data), re-labelling overwrites
    week[['impression_id', 'clicked']].iloc[500:3000].to_csv(project / 'labels.csv', index=False)
    assert main(['labels', str(project / 'labels.csv'), '-C', str(project)]) in (0, None)
    p = plog.predictions(b)
    assert p['label'].notna().sum() == 3000
    assert (p['label'][:3000].to_numpy() == week['clicked'][:3000].to_numpy()).all()
    # --no-overwrite refuses, naming the flag (not the function's argument), and writes nothing
    capsys.readouterr()
    assert main(['labels', str(project / 'labels.csv'), '-C', str(project), '--no-overwrite']) == 2
    err = capsys.readouterr().err
    assert '(--no-overwrite)' in err and 'overwrite=False' not in err and len(err.strip().splitlines()) == 1
    assert plog.predictions(b)['label'].notna().sum() == 3000


def test_a_tiny_batch_raises_no_alert(project, world, capsys):
    "Drift tests on a handful of rows mean nothing: below monitor.min_rows no alert, no retrain, exit 0."
    shifted = shift(world['clean'][4])
    for n in (1, 40):
        b = log(project, world, shifted.head(n))
        assert main(['monitor', str(b), '-C', str(project)]) == 0
        out = capsys.readouterr().out
        assert 'too few rows to judge (n = %d < min_rows = 500)' % n in out and 'estimated' not in out
        r = PredictionLog(project).result(b)
        assert r.fired == [] and r.decision is None and r.too_few_rows
    assert not (project / 'runs' / 'r-model' / 'monitoring' / 'recommendations.yaml').exists()
    b = log(project, world, shifted.head(600))  # enough rows: the same shift alerts
    assert 'input_drift' in monitor(project, b).fired


def test_labels_for_unknown_predictions_change_nothing(project, world, capsys):
    week = world['clean'][3]
    log(project, world, week)
    plog = PredictionLog(project)
    before = plog.predictions()
    ids = list(week['impression_id'][:10]) + [10**12]
    with pytest.raises(MonitorError, match=r"1 ids were never predicted, e\.g\. \['1000000000000'\]"):
        plog.add_labels(ids, [1] * 11)
    pd.testing.assert_frame_equal(plog.predictions(), before)
    pd.DataFrame({'impression_id': ids, 'clicked': 1}).to_csv(project / 'bad.csv', index=False)
    assert main(['labels', str(project / 'bad.csv'), '-C', str(project)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'never predicted' in err
    pd.testing.assert_frame_equal(plog.predictions(), before)


def test_batch_without_reference_profile(project, world, capsys):
    (project / 'runs' / 'r-old').mkdir()
    b = log(project, world, world['clean'][3], run_id='r-old')
    with pytest.raises(MonitorError, match=f'batch {b}: run r-old has no reference profile'):
        monitor(project, b)
    assert main(['monitor', str(b), '-C', str(project)]) == 2
    assert 'no reference profile' in capsys.readouterr().err
    assert PredictionLog(project).result(b) is None  # nothing stored


def test_batch_logged_with_mlflow_run_id(project, world):
    b = log(project, world, world['clean'][3], run_id='abc123')  # the deploy helper may log the MLflow run id
    assert monitor(project, b).run_id == 'r-model'


@pytest.mark.slow
def test_train_stage_writes_reference_profile(tmp_path):
    from mlops_nb.runner import init_project, run_loop
    from mlops_nb.train import load_model
    proj = init_project(tmp_path / 'loop')
    rd = run_loop(proj, sets=['scenario.rows=8000', 'scenario.days=28', 'stages=[scoping,data,features,train]'], progress=False)
    ref = Profile.load(rd.path / 'reference_profile.json')
    feats = rd.read_json('features.json')['features']
    assert ref.columns == feats
    assert ref.info['metric'] == rd.params.scope.metric
    assert ref.info['metric_value'] == pytest.approx(rd.read_json('metrics.json')['scoped']['test'])
    assert ref.n_rows == len(rd.load_split('refit')) and ref.info['run_id'] == rd.id
    # a batch scored by that run's model is monitored against it
    model, test = load_model(rd.path / 'model.skops'), rd.load_split('test')
    s = model.predict_proba(test[feats])[:, 1]
    b = PredictionLog(proj).log_batch(test.assign(score=s, prediction=(s >= 0.5).astype(int)), model_name='ads', model_version=1,
                                      run_id=rd.id, profile=Profile.from_frame(test[feats]), id_col='impression_id')
    r = monitor(proj, b)
    assert r.share_drifted == 0 and not r.prediction_drift


@pytest.mark.slow
def test_continual_learning(tmp_path):
    "A model trained before a concept drift goes stale on the next week; monitoring recommends retraining past the newest labels; --policy auto applies it."
    from mlops_nb.data import load_table
    from mlops_nb.runner import init_project, run_loop
    from mlops_nb.train import load_model
    proj = init_project(tmp_path / 'loop')
    rd = run_loop(proj, sets=['scenario.rows=20000', 'scenario.days=35', 'scenario.drift_days=7', 'scenario.drift_strength=2',
                              'data.as_of=2026-02-22', 'stages=[scoping,data,features,train]'], progress=False)
    p = rd.params
    rows = load_table('scenario', vars(p.scenario), seed=p.seed)
    week = rows[rows['timestamp'] >= pd.Timestamp('2026-02-22')]  # the traffic after the run: preferences changed
    feats = rd.read_json('features.json')['features']
    model = load_model(rd.path / 'model.skops')
    s = model.predict_proba(week[feats])[:, 1]
    plog = PredictionLog(proj)
    b = plog.log_batch(week.assign(score=s, prediction=(s >= model.threshold).astype(int)), model_name='ads', model_version=1,
                       run_id=rd.id, profile=Profile.from_frame(week[feats]), id_col='impression_id', time_col='timestamp')
    plog.add_labels(week['impression_id'], week['clicked'])
    r = monitor(proj, b)
    assert 'performance_drop' in r.fired, r.alerts
    as_of = r.decision.patch['data']['as_of']
    assert pd.Timestamp(as_of) > week['timestamp'].max()
    nxt = run_loop(proj, from_run=rd.id, policy='auto', sets=['stages=[scoping,data,features,train]'], progress=False)
    assert nxt.params.data.as_of == as_of
    assert nxt.read_json('data.json') != rd.read_json('data.json')  # it trained on the newer rows


def test_nothing_scored_yet_says_how_to_score(project, capsys):
    "An empty prediction log: `monitoring` and `monitor` say that nothing has been scored and how to score, not `monitor all`."
    assert main(['monitoring', '-C', str(project)]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith('nothing has been scored yet: the prediction log ') and 'mlops-nb score FILE' in out, out
    assert 'monitor all' not in out
    for batch in ('latest', 'all'):
        assert main(['monitor', batch, '-C', str(project)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and 'nothing has been scored yet' in err and 'Traceback' not in err, err


def test_scored_but_not_monitored_suggests_monitor_all(project, world, capsys):
    log(project, world, world['clean'][3])
    assert main(['monitoring', '-C', str(project)]) in (0, None)
    assert capsys.readouterr().out.strip() == 'no monitored batches yet (1 scored); check them: mlops-nb monitor all'


def test_labels_file_without_the_columns_lists_them_with_an_ellipsis(project, world, capsys):
    wide = pd.DataFrame({f'c{i}': [1] for i in range(12)})
    wide.to_csv(project / 'wide.csv', index=False)
    assert main(['labels', str(project / 'wide.csv'), '-C', str(project)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no column(s) 'impression_id', 'clicked' (its 12 columns: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, …)" in err, err
    assert len(err.splitlines()) == 1


def test_a_batch_a_server_still_appends_to_is_not_latest_and_unseen_counts_are_shown(project, world, capsys):
    from mlops_nb.prediction_log import LogWriter, ScoredRows
    closed = log(project, world, world['clean'][3])
    week = world['clean'][4]
    s = world['model'].predict_proba(week[FEATURES])[:, 1]
    writer = LogWriter(PredictionLog(project))
    rows = ScoredRows(week.assign(score=s, prediction=(s >= world['model'].threshold).astype(int)), 'ads', 1, 'r-model',
                      features=week[FEATURES], id_col='impression_id', time_col='timestamp', unseen={'device': 5})
    opened = writer.submit(rows).result(timeout=60)
    try:
        assert opened != closed
        assert monitor(project, 'latest').batch_id == closed  # the open batch has no input profile yet
        r = monitor(project, opened, record=False)
        assert r.still_open and r.unseen == {'device': 5} and np.isnan(r.share_drifted)
        main(['monitor', str(opened), '-C', str(project), '--no-record'])
        out = capsys.readouterr().out
        assert 'still open' in out and 'unseen categories scored as missing: device (5)' in out, out
    finally: writer.close()
    r = monitor(project, 'latest', record=False)  # closed now, with its profile
    assert r.batch_id == opened and not r.still_open and np.isfinite(r.share_drifted)
