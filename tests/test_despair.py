"""`mlops-nb demo --scenario despair` on the smallest reliable size: every problem of the story is found by an analysis
(the reports say so, not the script), every decision improves what it should, every run stays inspectable.
One story (6 papermill runs, 3 deployments, 7 live days) shared by the tests of this module."""
import pandas as pd
import pytest

from mlops_nb.despair import run_despair

pytestmark = pytest.mark.slow
ROWS = 60_000  # ~130 clicks a week: the least at which the staleness of the story shows by ROC AUC


@pytest.fixture(scope='module')
def story(tmp_path_factory):
    return run_despair(tmp_path_factory.mktemp('despair') / 'proj', rows=ROWS, progress=False)


def row(story, found_by):
    t = story.table
    return t[t.found_by.str.startswith(found_by)].iloc[0]


def test_the_table(story):
    t = story.table
    assert list(t.found_by) == ['label_noise', 'imbalance', 'staleness (roc_auc)', 'promotion (first deployment)', 'business', 'business']
    assert list(t.run) == [story.runs[k].id for k in ('r1', 'r2', 'r3', 'r4', 'r5', 'r6')]
    assert (story.project / 'despair.md').exists()
    msg = story.message()
    assert 'wrong labels' in msg and 'always says no' in msg and 'metric mismatch' in msg


def test_wrong_labels_found_and_excluded(story):
    ln = story.reports['label_noise']
    assert list(ln.noisy_groups) == ['batch_2']  # the batch the scenario made noisy, and only it
    r2 = story.runs['r2']
    assert r2.info['parent'] == story.runs['r1'].id and r2.params.labels.exclude
    r = row(story, 'label_noise')
    assert r.after < r.before / 2, (r.before, r.after)  # wrong labels among the training rows, against the ground truth


def test_model_that_always_says_no_found_and_remedied(story):
    imb = story.reports['imbalance']
    assert imb.degenerate and imb.is_imbalanced and imb.metrics['recall'] < 0.05
    r = row(story, 'imbalance')
    assert r.before < 0.05 and r.after > 0.1, (r.before, r.after)  # recall on the test week
    p3 = story.runs['r3'].params.imbalance
    assert p3.threshold < 0.5 and p3.neg_sample_rate < 1


def test_stale_model_found_and_retrained_on_recent_data(story):
    sr = story.reports['staleness']
    assert sr.is_stale and sr.latest_score < sr.fresh_score - sr.margin
    assert sr.recommended_window is not None and sr.recommended_window <= pd.Timedelta(days=21)
    assert story.runs['r4'].params.window.train_days == sr.recommended_window.days
    r = row(story, 'staleness')
    assert r.after > r.before + 0.02, (r.before, r.after)  # ROC AUC on the newest week


def test_deployment_and_the_impressions_tuning(story):
    first, second = story.gates[:2]
    assert first.passed and first.forced  # the first deployment has nothing to beat
    assert second.passed and not second.forced and second.metric == 'impressions'
    assert second.challenger_value > second.champion_value
    r = row(story, 'promotion')
    assert r.after > r.before, (r.before, r.after)  # impressions on the test week
    assert list(story.versions.values()) == [story.runs[k].id for k in ('r4', 'r5', 'r6')]


def test_business_finds_the_metric_mismatch(story):
    br = story.reports['business']
    assert br.mismatch and br.metric == 'impressions' and br.kpi == 'ctr'
    v1, v2 = br.by_version.index[:2]
    bv = br.by_version
    share = bv['impressions'] / bv['rows']
    assert share[v2] > share[v1]  # impressions up …
    assert bv.loc[v2, 'ctr'] < bv.loc[v1, 'ctr']  # … click-through rate down …
    assert bv.loc[v2, 'revenue_per_impression'] < bv.loc[v1, 'revenue_per_impression']  # … and revenue per impression
    assert bv.loc[v2, 'profit_per_impression'] < bv.loc[v1, 'profit_per_impression']
    assert br.decision.patch == {'scope': {'metric': 'shown_ctr'}}
    r6 = story.runs['r6']
    assert r6.params.scope.metric == 'shown_ctr' and r6.info['parent'] == story.runs['r5'].id


def test_the_new_scope_brings_the_ctr_back(story):
    r = row(story, 'business')
    assert r.after > r.before, (r.before, r.after)  # shown_ctr on the test week
    third = story.gates[2]
    assert third.passed and third.metric == 'shown_ctr'
    final = story.reports['business_final']
    assert not final.mismatch and final.decision is None
    bv = final.by_version
    assert bv['ctr'].iloc[2] > bv['ctr'].iloc[1]  # live CTR of v3 above v2's
    t = story.table
    assert t.ctr_live.iloc[-1] > t.ctr_live.iloc[-2]


def test_every_run_is_inspectable(story):
    for rd in story.runs.values():
        assert rd.status == 'complete' and rd.info.get('mlflow_run_id')
        nbs = sorted(p.stem for p in (rd.path / 'notebooks').glob('*.ipynb'))
        assert nbs == sorted(rd.params.stages)
    for rd in (story.runs[k] for k in ('r1', 'r2', 'r3', 'r4', 'r5')):
        assert len(rd.decisions) >= 1  # the decision taken on each run is in its DecisionLog
    from mlops_nb.monitor import PredictionLog
    b = PredictionLog(story.project).batches()
    assert len(b) == 7 and (b.n_labelled == b.n_rows).all()  # a batch per live day, all labels arrived
    assert [r.batch_id for r in story.monitoring] == b.batch_id.tolist()  # each batch monitored, the result stored
    assert b.monitored_at.notna().all()


def test_business_command_on_the_project(story, capsys):
    from mlops_nb.cli import main
    assert main(['business', '-C', str(story.project), '--by', 'period']) == 0
    out = capsys.readouterr().out
    assert 'no metric mismatch' in out and 'period' in out  # judged by the newest run's scope: shown_ctr
    # the scope change was also recorded where `mlops-nb run --from RUN --policy auto` finds it
    assert [d.patch for d in story.runs['r5'].recommendations() if d.source == 'business'] == [{'scope': {'metric': 'shown_ctr'}}]


def test_cli_wiring(story, monkeypatch, capsys):
    "`mlops-nb demo --scenario despair DIR --rows N` calls run_despair and prints the story (a fake story run here)."
    import mlops_nb.despair as despair
    from mlops_nb.cli import main
    seen = {}
    monkeypatch.setattr(despair, 'run_despair', lambda path, **kw: seen.update(path=path, **kw) or story)
    assert main(['demo', '--scenario', 'despair', 'somewhere', '--rows', '60000', '-q']) == 0
    assert seen['path'] == 'somewhere' and seen['rows'] == 60000 and seen['progress'] is False
    assert capsys.readouterr().out.startswith('The despair story, 6 iterations')


def test_an_existing_project_is_refused(story):
    from mlops_nb.runner import RunError
    with pytest.raises(RunError, match='already a loop project'):
        run_despair(story.project, rows=ROWS, progress=False)
