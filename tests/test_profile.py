"""Mergeable profiles: merging partition profiles in any order and grouping gives the same exact parts and the same
drift decisions; the decisions agree with `analyze_drift` on the rows; version 1 profiles (quantile lists, saved by
deployed models before the sketches) still load, test and monitor, and refuse to merge with one clear line."""
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_nb.drift import analyze_drift
from mlops_nb.monitor_batch import analyze_batch
from mlops_nb.profile import MAX_CATEGORIES, Profile, merge_profiles, profile_drift

V1 = Path(__file__).parent / 'fixtures' / 'profile' / 'v1_reference.json'


def frame(n, seed, shift=0.0):
    "The table `tests/fixtures/profile/v1_reference.json` profiles (seed 1, 20,000 rows, scores beta(2, 5) of seed 9)."
    g = np.random.default_rng(seed)
    return pd.DataFrame({
        'x': g.normal(shift, 1, n), 'skew': g.lognormal(0, 1 + shift, n), 'k': g.poisson(3 + 3 * shift, n),
        'flag': g.random(n) < 0.3 + shift / 4,
        'when': pd.Timestamp('2026-01-01') + pd.to_timedelta(g.uniform(0, 30 + 30 * shift, n), unit='D'),
        'color': g.choice(['red', 'green', 'blue', 'grey'], n, p=[0.4, 0.3, 0.2, 0.1] if not shift else [0.25] * 4),
        'code': np.char.add('c', g.zipf(1.5 + shift, n).astype(str))})


def table(n, seed, shift=0.0):
    "`frame` plus a column that is all missing in some partitions and a mid-cardinality one (≤ 200 per part, more in all)."
    d = frame(n, seed, shift)
    g = np.random.default_rng(seed + 100)
    d['sparse'] = np.where(np.arange(n) < n // 3, np.nan, g.gamma(2 + shift, 1, n))
    d['shop'] = np.char.add('s', (np.arange(n) // (n // 8) * 40 + g.integers(0, 150, n)).astype(str))
    return d


EXACT_KEYS = ('family', 'n', 'missing', 'min', 'max', 'tz', 'other')


def exact_parts(p: Profile) -> dict:
    "What must not depend on the order or grouping of a merge: counts, extremes, exact value counts."
    out = {'n_rows': p.n_rows}
    for c, s in [*p.summaries.items(), *([("__score__", p.score)] if p.score else [])]:
        out[c] = {k: s[k] for k in EXACT_KEYS if k in s}
        if 'values' in s and 'freq' not in s: out[c]['values'] = {json.dumps(v): n for v, n in s['values']}
    return out


@pytest.fixture(scope='module')
def parts():
    d = table(24_000, seed=3)
    scores = np.random.default_rng(4).beta(2, 5, len(d))
    cuts = np.linspace(0, len(d), 9).astype(int)
    return d, scores, [Profile.from_frame(d.iloc[a:b], score=scores[a:b]) for a, b in zip(cuts, cuts[1:])]


def groupings(items, rng):
    "A random binary tree of merges over a random order of `items`."
    items = list(items); rng.shuffle(items)
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        k = rng.choice([2, 3]) if len(items) > 2 else 2
        items[i:i + k] = [merge_profiles(items[i:i + k])]
    return items[0]


def test_merge_is_associative_and_order_free(parts):
    d, scores, ps = parts
    whole = Profile.from_frame(d, score=scores)
    rng = random.Random(0)
    merged = [ps[0].merge(*ps[1:])] + [groupings(ps, rng) for _ in range(4)]
    moved = table(24_000, seed=5, shift=0.15)
    cur = Profile.from_frame(moved, score=np.random.default_rng(6).beta(2.3, 5, len(moved)))
    decisions = {c: bool(v) for c, v in profile_drift(whole, cur).columns['drifted'].items()}
    for m in merged:
        assert exact_parts(m) == exact_parts(whole)
        for c in ('x', 'skew', 'k', 'when', 'sparse'):
            assert m.summaries[c]['mean'] == pytest.approx(whole.summaries[c]['mean'], rel=1e-12)
            assert m.summaries[c]['std'] == pytest.approx(whole.summaries[c]['std'], rel=1e-9)
        assert m.score['mean'] == pytest.approx(whole.score['mean'], rel=1e-12)
        assert {c: bool(v) for c, v in profile_drift(m, cur).columns['drifted'].items()} == decisions
        assert m.info == ps[0].info
    # the union of 'shop' outgrew MAX_CATEGORIES: its counts are in a frequent-items sketch, the same in every merge
    assert all('freq' in m.summaries['shop'] and m.known_categories('shop') is None for m in merged)
    assert len(set(d['shop'])) > MAX_CATEGORIES >= max(len(p.summaries['shop']['values']) for p in ps)
    top = d['shop'].value_counts()
    for m in merged:  # fewer than 3072 distinct values: the sketch's counts are exact
        assert {v: n for v, n in m.summaries['shop']['values']} == top.loc[[v for v, _ in m.summaries['shop']['values']]].to_dict()


def test_merged_profiles_decide_as_the_rows(parts):
    d, scores, ps = parts
    merged = merge_profiles(ps)
    for shift, seed in ((0.0, 7), (0.1, 8), (0.3, 9), (0.6, 10)):
        cur = table(24_000, seed=seed, shift=shift)
        cur_parts = [Profile.from_frame(cur.iloc[i::5]) for i in range(5)]
        by_profile = profile_drift(merged, merge_profiles(cur_parts), prediction=False).columns
        by_rows = analyze_drift(d, cur).columns.loc[by_profile.index]
        assert by_profile['stat_test'].to_dict() == by_rows['stat_test'].to_dict()
        agree = by_profile['drifted'] == by_rows['drifted']
        # a shift of 0.1 puts effects on the 0.1 floor itself: there (and only there) the sketches' error may flip it
        near_floor = (by_rows['score'] - by_rows['threshold']).abs() <= 0.05
        assert (agree | near_floor).all(), (shift, by_profile.loc[~agree, 'score'], by_rows.loc[~agree, 'score'])
        if shift != 0.1: assert agree.all(), (shift, by_profile.loc[~agree, 'score'], by_rows.loc[~agree, 'score'])


def test_merged_profile_round_trips_as_version_2(parts, tmp_path):
    _, _, ps = parts
    m = merge_profiles(ps)
    back = Profile.load(m.save(tmp_path / 'p.json'))
    assert back == m and back.version == 2
    assert json.loads((tmp_path / 'p.json').read_text())['version'] == 2
    assert isinstance(back.summaries['x']['kll'], str) and isinstance(back.summaries['code']['freq'], str)
    assert exact_parts(back.merge(ps[0])) == exact_parts(merge_profiles([*ps, ps[0]]))


def test_version_1_profiles_still_test_and_monitor():
    old = Profile.load(V1)
    assert old.version == 1 and 'quantiles' in old.summaries['x'] and 'kll' not in old.summaries['x']
    ref = frame(20_000, 1)
    for shift, seed in ((0.0, 11), (0.3, 12)):
        cur = frame(20_000, seed, shift)
        from_old = profile_drift(old, Profile.from_frame(cur)).columns
        by_rows = analyze_drift(ref, cur).columns
        assert from_old['drifted'].to_dict() == by_rows['drifted'].to_dict(), (shift, from_old, by_rows)
        assert analyze_drift(old, cur).columns['drifted'].to_dict() == by_rows['drifted'].to_dict()
    # monitoring a batch against a version 1 reference: the drift alerts fire as from the rows
    batch = frame(5_000, 13, 0.3)
    r = analyze_batch(old, Profile.from_frame(batch), scores=np.random.default_rng(14).beta(2, 5, len(batch)))
    assert 'input_drift' in r.fired and set(r.drift.drifted_columns) == set(analyze_drift(ref, batch).drifted_columns)
    assert 'prediction_drift' not in r.fired


def test_version_1_profiles_refuse_to_merge_in_one_line():
    old = Profile.load(V1)
    with pytest.raises(ValueError) as e:
        old.merge(Profile.from_frame(frame(100, 2), score=np.zeros(100)))
    msg = str(e.value)
    assert '\n' not in msg and 'version 1' in msg and 'profile those rows again' in msg


@pytest.mark.parametrize('bad, match', [
    (lambda p: p.merge(Profile.from_frame(frame(50, 1)[['x']])), "other columns than profile 0"),
    (lambda p: p.merge(Profile.from_frame(frame(50, 1).assign(x='a'))), "column 'x' is categorical in one profile"),
    (lambda p: merge_profiles([p, 'not a profile']), "expected Profiles, got str"),
])
def test_bad_merges_are_one_clear_line(bad, match):
    p = Profile.from_frame(frame(50, 1))
    with pytest.raises((ValueError, TypeError, KeyError)) as e:
        bad(p)
    assert match in str(e.value) and '\n' not in str(e.value)


def test_parquet_partitions_merge_into_the_profile_of_the_table(tmp_path):
    "Partitions read back from Parquet (string, category and datetime64[us] dtypes) merge into the whole's exact parts."
    d = table(12_000, 3).assign(cat=lambda x: pd.Categorical(x['color']), when_us=lambda x: x['when'].astype('datetime64[us]'))
    for i in range(6): d.iloc[i::6].to_parquet(tmp_path / f'p{i}.parquet')
    parts = [Profile.from_frame(pd.read_parquet(p)) for p in sorted(tmp_path.glob('*.parquet'))]
    m, whole = merge_profiles(parts), Profile.from_frame(d)
    assert exact_parts(m) == exact_parts(whole)
    assert m.kind('cat') == 'categorical' and m.kind('when_us') == 'datetime'
    assert profile_drift(whole, m).drifted_columns == []
