"""Parquet datasets: the data stage reads a reproducible stratified sample; profiles through a real cluster decide
drift as the in-memory path does on the same rows."""
import numpy as np
import pandas as pd
import pytest

from mlops_nb.data import DataError, prepare, calibrate_to_sample, validate_table
from mlops_nb.demo import simulate_ads
from mlops_nb.params import LoopParams


def write_dataset(df: pd.DataFrame, root, n_parts: int, by_day: bool = False):
    "`df` as a Parquet dataset of `n_parts` files (hive partitions `half=a|b` when `by_day`), in row order."
    root.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(df)), n_parts)):
        d = root / f"half={'ab'[i * 2 // n_parts]}" if by_day else root
        d.mkdir(exist_ok=True)
        df.iloc[part].to_parquet(d / f'part-{i:03d}.parquet', index=False)
    return root


@pytest.fixture(scope='module')
def ads(tmp_path_factory):
    df = simulate_ads(rows=20_000, days=28, prevalence=0.02, seed=5)
    return df, write_dataset(df, tmp_path_factory.mktemp('ads') / 'log', 6, by_day=True)


def test_a_dataset_source_is_a_recorded_reproducible_stratified_sample(ads):
    df, root = ads
    p = LoopParams().override([f'data.source={root}', 'data.max_rows=4000', 'seed=3'])
    a, b = prepare(p), prepare(p)
    s = a.info['sample']
    assert s['source_rows'] == len(df) and s['source_positives'] == int(df.clicked.sum())
    assert s['keep_positives'] == 1.0 and s['keep_negatives'] < 0.25 and s['partitions'] == 6
    assert a.info['rows'] == s['rows'] and abs(s['rows'] - 4000) < 300
    assert a.info['positives'] == int(df.clicked.sum())  # every positive kept
    assert a.version == b.version and a.history.equals(b.history)  # same seed, same sample
    c = prepare(p.override(['seed=4']))
    assert c.version != a.version and c.info['positives'] == a.info['positives']
    assert 'half' in a.history.columns  # the hive partition key is a column


def test_sample_calibration_through_neg_sample_rate(ads):
    "With the sample's negative rate undone, the mean score over all the rows is near their positive rate."
    from mlops_nb.train import model_from_params
    df, root = ads
    p = LoopParams().override([f'data.source={root}', 'data.max_rows=3000', 'model.kind=logistic',
                               'data.drop=[true_label, cost, revenue_per_click, half]'])
    prep = prepare(p)
    X, y = prep.refit[prep.features], prep.refit[p.data.target]
    every = validate_table(df, p.data)[prep.features]  # all rows of the dataset, not the sample
    model = model_from_params(p).fit(X, y)
    naive = model.predict_proba(every)[:, 1].mean()
    fixed = calibrate_to_sample(model, prep.info).predict_proba(every)[:, 1].mean()
    true_rate = df.clicked.mean()
    assert abs(fixed - true_rate) < 0.3 * true_rate < abs(naive - true_rate)


def test_a_file_source_is_sampled_only_when_asked(tmp_path):
    df = simulate_ads(rows=3000, days=21, seed=1)
    df.to_parquet(tmp_path / 'one.parquet')
    p = LoopParams().override(['data.source=one.parquet'])
    assert prepare(p, base_dir=tmp_path).info['sample'] is None
    small = prepare(p.override(['data.max_rows=1000']), base_dir=tmp_path)
    assert small.info['sample']['rows'] == small.info['rows'] < 1500


def test_bad_datasets_are_one_line(tmp_path, ads):
    df, root = ads
    with pytest.raises(DataError, match='data.source: no data files at'):
        prepare(LoopParams().override([f'data.source={tmp_path}/nope/*.parquet']))
    bad = tmp_path / 'bad'; bad.mkdir(); (bad / 'a.parquet').write_text('hello')
    with pytest.raises(DataError, match=r'a\.parquet is not a Parquet file'):
        prepare(LoopParams().override([f'data.source={bad}']))
    with pytest.raises(DataError, match="has no column no_target"):
        prepare(LoopParams().override([f'data.source={root}', 'data.target=no_target']))


def mixed(n: int, seed: int, drift: bool) -> pd.DataFrame:
    "Columns of every kind; with `drift`, some move clearly (beyond the floors) and the rest stay or move below them."
    r = np.random.default_rng(seed)
    k = 1.0 if drift else 0.0
    return pd.DataFrame({
        'steady': r.normal(0, 1, n), 'shifted': r.normal(0.5 * k, 1, n), 'tiny_shift': r.normal(0.03 * k, 1, n),
        'skewed': r.lognormal(1 + 0.3 * k, 1, n), 'count': r.poisson(3 + k, n), 'same_count': r.poisson(3, n),
        'segment': r.choice(['a', 'b', 'c', 'd'], n, p=[.1, .2, .3, .4] if drift else [.4, .3, .2, .1]),
        'same_segment': r.choice(['x', 'y', 'z'], n), 'flag': r.random(n) < 0.3,
        'when': pd.Timestamp('2026-01-01') + pd.to_timedelta(r.integers(0, 30 * 86400, n), unit='s')})


def test_a_dataset_in_8_partitions_profiled_through_a_cluster_decides_as_in_memory(tmp_path):
    from mlops_nb.cluster import dask_client
    from mlops_nb.datasets import dataset_drift, profile_dataset
    from mlops_nb.drift import analyze_drift
    ref, cur = mixed(40_000, 1, False), mixed(40_000, 2, True)
    root = tmp_path / 'ds'
    write_dataset(ref, root / 'period=ref', 8); write_dataset(cur, root / 'period=cur', 8)
    exact = analyze_drift(ref, cur)
    with dask_client(workers=2) as client:
        assert len(client.scheduler_info()['workers']) == 2
        # Dask reads the hive key of the folders named (period) as a column: test the data's own columns
        merged = dataset_drift(root / 'period=ref', root / 'period=cur', columns=list(ref.columns), client=client)
        whole = profile_dataset(root, client=client)  # both hive partitions: the key is a column too
    got, want = merged.columns['drifted'].to_dict(), exact.columns['drifted'].to_dict()
    assert got == want, {c: (got[c], want[c]) for c in want if got.get(c) != want[c]}
    assert {'shifted', 'skewed', 'count', 'segment'} <= {c for c, d in got.items() if d}
    assert not any(got[c] for c in ('steady', 'tiny_shift', 'same_count', 'same_segment', 'flag', 'when'))
    assert (merged.n_reference, merged.n_current) == (len(ref), len(cur))
    assert whole.n_rows == 2 * len(ref) and whole.summaries['period']['n'] == 2 * len(ref)


def test_a_memory_url_dataset_profiles_in_process():
    import fsspec
    from mlops_nb.datasets import open_dataset, profile_dataset
    fs = fsspec.filesystem('memory')
    df = mixed(2000, 3, False)
    for i in range(3):
        with fs.open(f'/bench-b/ds/part-{i}.parquet', 'wb') as f: df.iloc[i::3].to_parquet(f)
    try:
        assert open_dataset('memory://bench-b/ds').npartitions == 3
        p = profile_dataset('memory://bench-b/ds', ['steady', 'segment'])
        assert p.n_rows == len(df) and p.summaries['segment']['n'] == len(df)
    finally: fs.rm('/bench-b', recursive=True)
