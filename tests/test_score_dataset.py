"""Scoring and monitoring a Parquet dataset partition-wise: a dataset of 8 partitions scored through a real 2-worker
LocalCluster equals scoring the same rows in memory (scores, batch summary), the prediction log holds one batch,
monitoring it decides drift as monitoring the in-memory batch does; a partition that does not fit the model is one
clear line and nothing looks complete. A small registered model (a logistic regression, no papermill) keeps it fast."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_nb.cli import main
from mlops_nb.cluster import dask_client
from mlops_nb.demo import simulate_ads
from mlops_nb.deploy import promote
from mlops_nb.monitor import monitor, reference_profile
from mlops_nb.params import LoopParams
from mlops_nb.prediction_log import MonitorError, PredictionLog
from mlops_nb.runner import RunDir, init_project, log_to_mlflow, new_run_id
from mlops_nb.datasets import is_dataset
from mlops_nb.score_dataset import score_dataset
from mlops_nb.scoring import InputError, score
from mlops_nb.train import LoopClassifier, save_model

FEATURES = ['hour', 'position', 'ad_quality', 'bid', 'device', 'placement']
N_PARTS = 8


def _toy_run(project) -> RunDir:
    "A complete run with a small logistic model and a monitoring reference (`reference_profile`), logged to MLflow."
    p = LoopParams().override(['scenario.rows=6000', 'scenario.days=14', 'seed=1', 'model.kind=logistic',
                               'scope.metric=roc_auc', 'scenario.prevalence=0.1',
                               f"data.features={json.dumps(FEATURES)}"])
    df = simulate_ads(rows=6000, days=14, prevalence=0.1, seed=1)
    cut = df.timestamp.max().normalize() - pd.Timedelta(days=6)
    train, test = df[df.timestamp < cut].reset_index(drop=True), df[df.timestamp >= cut].reset_index(drop=True)
    rd = RunDir(Path(project) / 'runs' / new_run_id()); (rd.path / 'reports').mkdir(parents=True)
    p.to_yaml(rd.path / 'params.yaml')
    model = LoopClassifier('logistic', {}, threshold=0.2).fit(train[FEATURES], train.clicked)
    save_model(model, rd.path / 'model.skops')
    rd.write_json('metrics.json', {'scoped': dict(name='roc_auc', test=0.0)})
    rd.write_json('features.json', dict(features=FEATURES, roles=dict(numeric=FEATURES[:4], low_card=FEATURES[4:])))
    rd.write_json('data.json', dict(version='toy0000000000001', rows=len(df)))
    ref = reference_profile(train[FEATURES], scores=model.predict_proba(test[FEATURES])[:, 1], labels=test.clicked,
                            metric='roc_auc', threshold=model.threshold)
    ref.save(rd.path / 'reference_profile.json')
    rd.save_split(test=test)
    rd.write_json('run.json', dict(id=rd.id, status='complete', finished='-', decisions_applied=[]))
    log_to_mlflow(project, rd)
    return rd


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
    proj = init_project(tmp_path_factory.mktemp('score') / 'loop')
    promote(proj, _toy_run(proj), force=True)
    return proj


@pytest.fixture(scope='module')
def client():
    with dask_client(workers=2) as c: yield c


def _rows(seed:int, drift:bool=False) -> pd.DataFrame:
    "Rows to score: the scenario's features, id and time (no label); `drift` moves two of the six features."
    df = simulate_ads(rows=4000, days=7, prevalence=0.1, seed=seed)[['impression_id', 'timestamp'] + FEATURES]
    if drift: df = df.assign(bid=df.bid * 1.8, placement=np.where(np.arange(len(df)) % 2 == 0, 'video', df.placement))
    return df


def _dataset(folder:Path, df:pd.DataFrame, parts:int=N_PARTS) -> Path:
    "`df` written as a Parquet dataset of `parts` files."
    folder.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        df.iloc[chunk].to_parquet(folder / f'part-{i:02d}.parquet', index=False)
    return folder


@pytest.mark.parametrize('drift', [False, True])
def test_dataset_scores_like_memory_and_monitors_alike(project, client, tmp_path, drift):
    rows = _rows(5 + drift, drift)
    src = _dataset(tmp_path / 'in', rows)
    assert is_dataset(src) and not is_dataset(src / 'part-00.parquet')
    log = PredictionLog(project)
    n0 = len(log.batches())
    r = score_dataset(project, src, tmp_path / 'out', client=client)
    mem = score(project, rows)
    # scores identical, row for row, partition after partition
    got = pd.read_parquet(tmp_path / 'out')
    assert sorted(p.name for p in (tmp_path / 'out').glob('part-*.parquet')) == [f'part-{i:05d}.parquet'
                                                                               for i in range(N_PARTS)]
    assert list(got.columns) == list(mem.columns)
    np.testing.assert_array_equal(got['score'].to_numpy(), mem['score'].to_numpy())
    assert got['impression_id'].tolist() == mem['impression_id'].tolist()
    # the same batch summary
    assert (r.n_rows, r.n_positive, r.model_version) == (len(mem), int(mem.prediction.sum()), int(mem.model_version[0]))
    assert r.mean_score == pytest.approx(mem.score.mean(), rel=1e-12)
    assert r.model_loads <= 2 and r.n_partitions == N_PARTS  # the model loaded once per worker, not per partition
    man = json.loads((tmp_path / 'out' / '_manifest.json').read_text())
    assert (tmp_path / 'out' / '_SUCCESS').exists() and man['batch_id'] == r.batch_id and man['n_rows'] == len(mem)
    # the log: one batch for the dataset (no rows in SQLite), one for the in-memory scoring
    b = log.batches().set_index('batch_id')
    assert len(b) == n0 + 2 and len(log.predictions(r.batch_id)) == 0
    mem_b = mem.attrs['batch_id']
    for k in ('n_rows', 'time_min', 'time_max', 'model_version'):
        assert b.loc[r.batch_id, k] == b.loc[mem_b, k], k
    assert b.loc[r.batch_id, 'predictions_at'] == str(tmp_path / 'out')
    # monitoring the dataset batch (profile and score sketch) decides as monitoring the in-memory one (its rows)
    m_ds, m_mem = monitor(project, r.batch_id), monitor(project, mem_b)
    d_ds, d_mem = m_ds.drift.columns, m_mem.drift.columns
    assert d_ds['drifted'].to_dict() == d_mem['drifted'].to_dict()
    assert d_ds.loc[['bid', 'placement'], 'drifted'].all() == drift
    assert (m_ds.prediction_drift, m_ds.fired) == (m_mem.prediction_drift, m_mem.fired)
    assert m_ds.prediction_mean == pytest.approx(m_mem.prediction_mean, rel=1e-9)
    assert m_ds.estimated_metric == pytest.approx(m_mem.estimated_metric, abs=0.01)
    assert m_ds.estimated_sd == pytest.approx(m_mem.estimated_sd, rel=0.2)
    assert m_ds.n_labelled == 0 and np.isnan(m_ds.realized_metric)


def test_a_bad_partition_is_one_line_and_nothing_looks_complete(project, client, tmp_path, capsys):
    rows = _rows(7)
    src = _dataset(tmp_path / 'in', rows)
    bad = pd.read_parquet(src / 'part-05.parquet')
    bad.assign(device=np.where(np.arange(len(bad)) == 3, 'toaster', bad.device)).to_parquet(src / 'part-05.parquet',
                                                                                            index=False)
    log = PredictionLog(project)
    n0 = len(log.batches())
    # the file fits the dataset's schema; its rows do not fit the model: found by the worker that scores it
    with pytest.raises(InputError, match=r"part-05\.parquet: .*device: new value\(s\) 'toaster' never seen in training"):
        score_dataset(project, src, tmp_path / 'out', client=client)
    assert not (tmp_path / 'out').exists() and not list(tmp_path.glob('.out.staging-*'))
    assert len(log.batches()) == n0
    # through the command line: one line, exit status 2, nothing written
    assert main(['score', str(src), '-C', str(project), '--out', str(tmp_path / 'out2'), '--workers', '1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'part-05.parquet' in err[0] and 'toaster' in err[0], err
    assert not (tmp_path / 'out2').exists() and len(log.batches()) == n0
    # a file whose column type differs from the others': refused before anything is scored, naming both files
    bad.assign(hour='noon').to_parquet(src / 'part-05.parquet', index=False)
    with pytest.raises(InputError, match=r"'hour' holds text values in \S*part-05\.parquet but number in"):
        score_dataset(project, src, tmp_path / 'out', client=client)
    assert not (tmp_path / 'out').exists() and len(log.batches()) == n0


def test_score_command_on_a_dataset(project, tmp_path, capsys):
    src = _dataset(tmp_path / 'in', _rows(9), parts=3)
    assert main(['score', str(src), '-C', str(project), '--workers', '1']) == 2
    assert '--out' in capsys.readouterr().err  # a dataset's predictions need a folder
    (tmp_path / 'full').mkdir(); (tmp_path / 'full' / 'x.txt').write_text('x')
    assert main(['score', str(src), '-C', str(project), '--out', str(tmp_path / 'full'), '--workers', '1']) == 2
    assert 'not empty' in capsys.readouterr().err
    assert main(['score', str(src / '*.parquet'), '-C', str(project), '--out', str(tmp_path / 'o'),
                 '--workers', '1']) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert 'scored 4,000 rows' in line and str(tmp_path / 'o') in line and 'prediction log batch' in line
    bid = PredictionLog(project).batches()['batch_id'].iloc[-1]
    with pytest.raises(MonitorError, match='batch scored from a Parquet dataset'):
        PredictionLog(project).add_labels(['nope'], [1])
    assert main(['monitor', str(bid), '-C', str(project)]) in (0, 1)
    assert f'batch {bid} ' in capsys.readouterr().out


def test_file_mistakes_are_one_line(project, tmp_path, capsys):
    src = _dataset(tmp_path / 'in', _rows(3), parts=2)
    assert main(['score', str(src / 'part-00.parquet'), '-C', str(project), '--workers', '2']) == 2
    assert 'one file' in capsys.readouterr().err
    assert main(['score', str(tmp_path / 'nothing' / '*.parquet'), '-C', str(project), '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'dataset: no data files at' in err[0], err
    assert not (tmp_path / 'o').exists() and not list(tmp_path.glob('.o.staging-*'))


def test_a_worker_loads_the_model_through_the_trust_checks(project, client, tmp_path):
    "What travels to the workers is the skops file; a tampered one is refused there and its payload never runs."
    import builtins
    import copy
    import functools
    from sklearn.preprocessing import FunctionTransformer
    from mlops_nb.score_dataset import _model_spec, _worker_deployed
    from mlops_nb.scoring import load_deployed
    from mlops_nb.train import UntrustedModelError
    key, blob, shell = _model_spec(load_deployed(project))
    marker = tmp_path / 'pwned'
    evil = copy.deepcopy(shell.model if shell.model is not None else load_deployed(project).model)
    evil.pipeline_.steps.insert(0, ('evil', FunctionTransformer(functools.partial(
        builtins.eval, f"open({str(marker)!r}, 'w').write('x') and None"))))
    bad = save_model(evil, tmp_path / 'evil.skops').read_bytes()
    with pytest.raises(UntrustedModelError, match=r'builtins\.eval'):
        client.submit(_worker_deployed, ('tampered', bad, shell), pure=False).result()
    assert not marker.exists()
    dep, _ = client.submit(_worker_deployed, (key, blob, shell), pure=False).result()  # the real one loads
    assert dep.version == shell.version and dep.model is not None
