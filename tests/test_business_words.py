"The business command speaks the project's words: a flight-delay project reads delays, delay rate and flights, no ads."
import contextlib
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlops_nb.cli import main
from mlops_nb.params import LoopParams
from mlops_nb.runner import init_project

ADS_WORDS = re.compile(r'click|ctr|impression|\bads?\b', re.IGNORECASE)


def flights(n=4000, seed=1) -> pd.DataFrame:
    "Two model versions, a week each, flag flights for a standby crew; v2 flags more flights, fewer of them delayed."
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 8, n)  # each flight's true delay probability
    t = pd.Timestamp('2026-05-01') + pd.to_timedelta(np.sort(rng.uniform(0, 14, n)), unit='D')
    v = np.where(t < pd.Timestamp('2026-05-08'), '1', '2')
    flagged = np.where(v == '1', p > np.quantile(p, 0.8), p > np.quantile(p, 0.4)).astype(int)
    return pd.DataFrame(dict(flight_id=np.arange(n), departure=t, model_version=v, flagged=flagged,
                             delayed=(rng.random(n) < p).astype(int), carrier=rng.choice(['AA', 'UA', 'DL'], n),
                             standby_cost=30.0, delay_cost_avoided=120.0))


def project(tmp_path, *sets) -> tuple:
    "A loop project on a flights CSV (not the scenario), and the outcome file of its two deployed versions."
    src = tmp_path / 'flights.csv'
    flights().to_csv(src, index=False)
    p = LoopParams().override(['data.source=flights.csv', 'data.target=delayed', 'data.time_col=departure',
                               'data.id_col=flight_id', 'data.group_col=null', 'data.drop=[]',
                               'business.cost_col=standby_cost', 'business.value_col=delay_cost_avoided',
                               'scope.metric=recall', *sets])
    return init_project(tmp_path / 'loop', p), src


def business(proj, outcomes, *extra) -> tuple:
    "`mlops-nb business` on the project with `outcomes`: exit code, stdout, stderr."
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main(['business', '-C', str(proj), '--outcomes', str(outcomes), '--shown', 'flagged', *extra])
    return rc, so.getvalue(), se.getvalue()


def test_a_delay_project_reads_delays_and_flights(tmp_path):
    proj, src = project(tmp_path, 'scope.outcome=delay', 'scope.unit=flight')
    rc, out, err = business(proj, src)
    assert rc == 0, err
    assert 'positive outcome: delay; one row: one flight; KPI: delay rate' in out, out
    header = out.splitlines()[1]
    for words in ('flights', 'flights acted on', 'delays', 'delay rate', 'profit per flight acted on'):
        assert words in header, header
    assert 'metric mismatch' in out and 'the business KPI delay rate fell' in out, out
    assert 'per 1000 flights' in out and 'recommended: change the scope: optimize precision instead of recall' in out
    assert not ADS_WORDS.search(out + err), ADS_WORDS.findall(out + err)


def test_the_target_column_names_the_outcome_by_default(tmp_path):
    proj, src = project(tmp_path)
    rc, out, err = business(proj, src, '--by', 'period')
    assert rc == 0, err
    assert 'positive outcome: delayed; one row: one row; KPI: share delayed' in out, out
    assert 'rows acted on' in out.splitlines()[1] and 'delayed' in out.splitlines()[1]
    assert not ADS_WORDS.search(out + err), ADS_WORDS.findall(out + err)


def test_json_keys_are_generic_and_old_params_keep_working(tmp_path):
    # a params file written with the scenario's KPI name still loads and judges the same KPI, in the project's words
    proj, src = project(tmp_path, 'scope.outcome=delay', 'scope.unit=flight')
    txt = (proj / 'params.yaml').read_text().replace('kpi: positive_rate', 'kpi: ctr')
    assert 'kpi: ctr' in txt
    (proj / 'params.yaml').write_text(txt)
    rc, out, err = business(proj, src, '--json')
    assert rc == 0, err
    recs = json.loads(out)
    assert [r['version'] for r in recs] == ['1', '2']
    assert {'rows', 'acted', 'positives', 'positive_rate', 'profit_per_acted'} <= set(recs[0])
    assert recs[1]['acted'] > recs[0]['acted'] and recs[1]['positive_rate'] < recs[0]['positive_rate']
    assert 'KPI: delay rate' in err and not ADS_WORDS.search(out + err), ADS_WORDS.findall(out + err)
    assert LoopParams.from_yaml(proj / 'params.yaml').scope.kpi == 'ctr'  # read as written, not rewritten


def test_ads_words_stay_in_the_scenario(tmp_path):
    # the same outcomes judged by a project on the built-in scenario: its own words, ctr and impressions
    src = tmp_path / 'flights.csv'
    flights().to_csv(src, index=False)
    proj = init_project(tmp_path / 'loop', LoopParams().override(['scope.metric=recall', 'business.cost_col=null',
                                                                  'business.value_col=null']))
    rc, out, err = business(proj, src, '--label', 'delayed')
    assert rc == 0, err
    assert 'positive outcome: click; one row: one impression; KPI: ctr' in out, out
    assert 'impressions' in out.splitlines()[1] and 'optimize shown_ctr' in out, out


@pytest.mark.parametrize('kpi', ['banana', 'clicks_'])
def test_a_wrong_kpi_is_one_line(tmp_path, kpi):
    proj, src = project(tmp_path)
    txt = (proj / 'params.yaml').read_text().replace('kpi: positive_rate', f'kpi: {kpi}')
    (proj / 'params.yaml').write_text(txt)
    rc, out, err = business(proj, src)
    assert rc == 2 and 'scope.kpi' in err and 'positive_rate' in err and len(err.strip().splitlines()) == 1, err
