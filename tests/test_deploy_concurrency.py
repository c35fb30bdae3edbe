"""Registry alias moves and deployments.json under concurrency, with real processes: concurrent `mlops-nb promote --force`
lose no promotion (one winner; the other is refused with a clear line or serialized after it, and the `previous`
chain of the history has no gap), and concurrent deployment records all land in deployments.json."""
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from mlops_nb.core import LoopParams
from mlops_nb.demo import simulate_ads
from mlops_nb.deploy import promote
from mlops_nb.model_registry import _alias, deployment_history, list_versions, registry_client
from mlops_nb.runner import RunDir, init_project, log_to_mlflow
from mlops_nb.scoping import evaluate
from mlops_nb.train import LoopClassifier, save_model

pytestmark = pytest.mark.slow  # real processes, each importing mlflow

FEATURES = ('hour', 'position', 'ad_quality', 'device')


def toy_run(project, run_id:str, features=FEATURES, seed:int=0) -> RunDir:
    "A complete run folder with a small fitted model, logged to MLflow (what `run_loop` leaves, without papermill)."
    p = LoopParams().override(['scenario.rows=2000', 'scenario.days=14', f'seed={seed}', 'model.kind=logistic',
                               f"data.features={json.dumps(list(features))}"])
    df = simulate_ads(rows=2000, days=14, prevalence=0.1, seed=seed)
    cut = df.timestamp.max().normalize() - pd.Timedelta(days=6)
    train, test = df[df.timestamp < cut].reset_index(drop=True), df[df.timestamp >= cut].reset_index(drop=True)
    rd = RunDir(Path(project) / 'runs' / run_id); (rd.path / 'reports').mkdir(parents=True)
    p.to_yaml(rd.path / 'params.yaml')
    model = LoopClassifier('logistic', {}, threshold=0.5).fit(train[list(features)], train.clicked)
    save_model(model, rd.path / 'model.skops')
    met = {'test': evaluate(test.clicked, model.predict_proba(test[list(features)])[:, 1])}
    met['scoped'] = dict(name='pr_auc', test=met['test']['pr_auc'])
    rd.write_json('metrics.json', met); rd.write_json('features.json', dict(features=list(features)))
    rd.write_json('data.json', dict(version=f'toy{seed:013d}', rows=len(df)))
    rd.save_split(test=test)
    rd.write_json('run.json', dict(id=rd.id, status='complete', finished='-', decisions_applied=[]))
    log_to_mlflow(project, rd)
    return rd


def start_together(tmp_path, scripts:list[str]) -> list[subprocess.CompletedProcess]:
    "Run each Python script in its own process; all wait for one start file after their imports, so they really overlap."
    go = tmp_path / 'go'
    prelude = f"import pathlib, time\nwhile not pathlib.Path({str(go)!r}).exists(): time.sleep(0.005)\n"
    procs = []
    for i, s in enumerate(scripts):
        imports, body = s.split('\n---\n')
        ready = tmp_path / f'ready-{i}'
        code = textwrap.dedent(imports) + f"\npathlib.Path({str(ready)!r}).touch()\n" + prelude + textwrap.dedent(body)
        procs.append((ready, subprocess.Popen([sys.executable, '-c', 'import pathlib\n' + code], stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)))
    deadline = time.time() + 120
    while not all(r.exists() for r, _ in procs):
        assert time.time() < deadline, 'the processes did not finish their imports in 120 s'
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    out = []
    for _, p in procs:
        so, se = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    return out


def check_chain(history:pd.DataFrame, start, final):
    "Every entry's `previous` is the champion the entries before it left (starting at `start`), ending at `final`."
    champ = start
    for _, e in history.iterrows():
        prev = None if pd.isna(e.previous) else int(e.previous)
        assert prev == champ, f"entry {e.action} v{e.version} says previous {prev}, but the champion then was {champ}:\n{history}"
        if e.action in ('promote', 'rollback'): champ = int(e.version)
    assert champ == final, f"history ends at champion {champ}, the registry says {final}"


@pytest.fixture
def project(tmp_path):
    project = init_project(tmp_path / 'ads-loop')
    for i, rid in enumerate(['run-a', 'run-b', 'run-c']):
        toy_run(project, rid, features=FEATURES[:i + 2], seed=i)
    return project


PROMOTE = """
from mlops_nb.cli import main
import mlops_nb.deploy, mlops_nb.train, mlflow
---
raise SystemExit(main(['promote', {run!r}, '--force', '-C', {project!r}]))
"""


def promote_together(tmp_path, project, runs):
    res = start_together(tmp_path, [PROMOTE.format(run=r, project=str(project)) for r in runs])
    for r in res: assert not r.stderr.strip() or 'Traceback' not in r.stderr, r.stderr
    return res


def assert_one_winner_per_round(res, runs):
    lines = [r.stdout.strip() for r in res]
    won = [l for l in lines if l.startswith('PROMOTED')]
    lost = [l for l in lines if l.startswith('REFUSED')]
    assert len(won) + len(lost) == len(runs) and won, lines
    for l, r in zip(lines, res): assert r.returncode == (0 if l.startswith('PROMOTED') else 1), (l, r.returncode)
    for l in lost: assert 'while this promotion was gating; nothing changed' in l, l
    return won, lost


def test_two_concurrent_first_promotions_lose_nothing(tmp_path, project):
    res = promote_together(tmp_path, project, ['run-a', 'run-b'])
    won, lost = assert_one_winner_per_round(res, ['run-a', 'run-b'])
    h = deployment_history(project)
    assert len(h) == 2, h
    final = _alias(registry_client(project), 'ads-loop', 'champion')
    check_chain(h, None, final)
    if lost: assert 'champion moved from none to v' in lost[0]  # a real race: refused, with the champion it lost to
    else: assert h.iloc[1].previous == h.iloc[0].version     # serialized: the second gated against the first


def test_two_concurrent_gated_promotions_lose_nothing(tmp_path, project):
    first = promote(project, 'run-a', force=True)
    assert first.passed
    res = promote_together(tmp_path, project, ['run-b', 'run-c'])
    won, lost = assert_one_winner_per_round(res, ['run-b', 'run-c'])
    h = deployment_history(project)
    assert len(h) == 3, h
    c = registry_client(project)
    final = _alias(c, 'ads-loop', 'champion')
    check_chain(h, None, final)
    # the registry's own chain (the tag rollback follows) agrees with the history
    assert c.get_model_version('ads-loop', str(final)).tags['mlops_nb.previous_champion'] == str(int(h[h.action == 'promote'].iloc[-1].previous))
    for l in lost: assert f"champion moved from v{first.challenger_version} to v{final} (run " in l, l
    assert sorted(list_versions(project).run_id) == ['run-a', 'run-b', 'run-c']  # each run registered once


ROLLBACK = """
from mlops_nb.cli import main
import mlops_nb.deploy, mlflow
---
raise SystemExit(main(['rollback', '-C', {project!r}]))
"""


def test_a_rollback_during_a_promotion_loses_nothing(tmp_path, project):
    for run in ('run-a', 'run-b'): assert promote(project, run, force=True).passed  # champion b, which replaced a
    c = registry_client(project)
    v_a, v_b = (int(v) for v in list_versions(project).set_index('run_id').loc[['run-a', 'run-b'], 'version'])
    res = start_together(tmp_path, [PROMOTE.format(run='run-c', project=str(project)), ROLLBACK.format(project=str(project))])
    promoted, rolled = (r.stdout.strip() for r in res)
    assert res[1].returncode == 0, (rolled, res[1].stderr)
    h = deployment_history(project)
    assert len(h) == 4 and sorted(h.action.iloc[2:]) in (['promote', 'rollback'], ['refused', 'rollback']), h
    check_chain(h, None, _alias(c, 'ads-loop', 'champion'))
    if promoted.startswith('REFUSED'):  # the rollback went first: the promotion gated against v_b, which is gone
        assert f"champion moved from v{v_b} to v{v_a}" in promoted and _alias(c, 'ads-loop', 'champion') == v_a, promoted
        assert rolled == f"rolled back: ads-loop champion is v{v_a} again", rolled
    elif h.action.iloc[-1] == 'rollback':  # serialized the other way: c promoted over b, then rolled back to b
        assert promoted.startswith('PROMOTED'), promoted
        assert rolled == f"rolled back: ads-loop champion is v{v_b} again" and _alias(c, 'ads-loop', 'champion') == v_b, rolled
    else:  # the rollback finished before the promotion began to gate: c gated against a, and won
        assert promoted.startswith('PROMOTED') and h.previous.iloc[-1] == v_a, (promoted, h)
        assert rolled == f"rolled back: ads-loop champion is v{v_a} again", rolled
        assert _alias(c, 'ads-loop', 'champion') == int(h.version.iloc[-1]), h


RECORD = """
from mlops_nb.model_registry import _record
---
for i in range(25): _record({project!r}, 'ads-loop', action='promote', version={w}, previous=i, run_id='w{w}', forced=False, reason='')
"""


def test_concurrent_records_are_all_kept(tmp_path):
    project = tmp_path / 'p'
    res = start_together(tmp_path, [RECORD.format(project=str(project), w=w) for w in range(4)])
    for r in res: assert r.returncode == 0, r.stderr
    rows = json.loads((project / 'models' / 'ads-loop' / 'deployments.json').read_text())
    assert len(rows) == 100
    assert sorted((r['version'], r['previous']) for r in rows) == [(w, i) for w in range(4) for i in range(25)]
    for w in range(4):  # each process's entries in its own order
        assert [r['previous'] for r in rows if r['version'] == w] == list(range(25))
    assert not [f.name for f in (project / 'models' / 'ads-loop').iterdir() if f.name.endswith('.tmp')]  # no temporary file left
