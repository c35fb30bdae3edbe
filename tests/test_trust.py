"The trust boundary: models load only when every type in them is trusted; label files are bounded regular files inside the project."
import builtins
import functools
import pickle

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from mlops_nb import train
from mlops_nb.core import LoopParams
from mlops_nb.runner import LABEL_FILE_LIMIT, RunError, init_project, resolve_params
from mlops_nb.train import LoopClassifier, UntrustedModelError, load_model, save_model


@pytest.fixture(scope='module')
def frame():
    "A small table with every feature role: numeric, low- and high-cardinality categorical, bool, time."
    rng = np.random.default_rng(0); n = 600
    X = pd.DataFrame({'x': rng.normal(size=n), 'c': rng.choice(list('abc'), n), 'id': [f'u{i}' for i in rng.integers(0, 80, n)],
                      'flag': rng.random(n) < 0.5, 't': pd.date_range('2026-01-01', periods=n, freq='h')})
    y = ((X.x + (X.c == 'a') + rng.normal(size=n)) > 1).astype(int).to_numpy()
    return X, y


@pytest.mark.parametrize('kind', sorted(train.MODELS))
def test_every_builtin_kind_round_trips(kind, frame, tmp_path):
    X, y = frame
    m = LoopClassifier(kind, class_weight='balanced', neg_sample_rate=0.5, half_life_days=3).fit(X, y, time=X.t)
    back = load_model(save_model(m, tmp_path / 'model.skops'))
    np.testing.assert_allclose(back.predict_proba(X), m.predict_proba(X))


def _tampered(frame, payload):
    "A fitted loop model whose feature step is FunctionTransformer(partial(builtins.eval, payload))."
    from sklearn.preprocessing import FunctionTransformer
    X, y = frame
    m = LoopClassifier('logistic').fit(X, y)
    m.pipeline_.steps.insert(0, ('evil', FunctionTransformer(functools.partial(builtins.eval, payload))))
    return m


def test_tampered_eval_model_is_refused_and_its_payload_never_runs(frame, tmp_path):
    marker = tmp_path / 'pwned'
    payload = f"open({str(marker)!r}, 'w').write('x') and None"
    m = _tampered(frame, payload)
    path = save_model(m, tmp_path / 'model.skops')
    assert 'builtins.eval' in sio.get_untrusted_types(file=path)  # the file really holds the payload
    with pytest.raises(UntrustedModelError, match=r'builtins\.eval') as e:
        back = load_model(path)
        back.predict_proba(frame[0])
    assert 'functools.partial(builtins.eval)' in str(e.value) and isinstance(e.value, ValueError)  # the CLI prints it as one line
    assert not marker.exists()


def test_partial_around_a_trusted_but_unlisted_function_is_refused(frame, tmp_path):
    "A partial passes only around an allowed function, even if skops itself would trust the function."
    from sklearn.preprocessing import FunctionTransformer
    X, y = frame
    m = LoopClassifier('logistic').fit(X, y)
    m.pipeline_.steps.insert(0, ('p', FunctionTransformer(functools.partial(np.add, 0))))
    path = save_model(m, tmp_path / 'model.skops')
    with pytest.raises(UntrustedModelError, match=r'functools\.partial'): load_model(path)


def test_a_model_path_that_is_not_a_regular_file_is_refused_unread(tmp_path):
    (tmp_path / 'model.skops').mkdir()
    for p in (tmp_path / 'model.skops', '/dev/zero'):
        with pytest.raises(UntrustedModelError, match='not a regular file'): load_model(p)


@pytest.mark.parametrize('content', [b'', b'not a model\n', 'pickle', 'zip', 'bad schema'])
def test_a_file_that_is_not_a_skops_archive_is_one_clear_refusal(content, frame, tmp_path):
    import zipfile
    path = tmp_path / 'model.skops'
    if content == 'pickle': pickle.dump(LogisticRegression(), open(path, 'wb'))
    elif content in ('zip', 'bad schema'):
        with zipfile.ZipFile(path, 'w') as z: z.writestr('schema.json' if content == 'bad schema' else 'other.txt', '[1, 2')
    else: path.write_bytes(content)
    with pytest.raises(UntrustedModelError, match='is not a skops model file'): load_model(path)


class ShrunkLogistic(LogisticRegression):
    "A user's own estimator class (not trusted by skops by default)."


def test_a_user_registered_kind_loads_and_is_trusted_through_the_registry(frame, tmp_path, monkeypatch):
    X, y = frame
    monkeypatch.setitem(train.MODELS, 'shrunk', train.ModelKind('shrunk', lambda p, rs, cw: ShrunkLogistic(**{'C': 0.5, **p}), 'linear'))
    m = LoopClassifier('shrunk').fit(X, y)
    path = save_model(m, tmp_path / 'model.skops')
    name = f"{ShrunkLogistic.__module__}.ShrunkLogistic"
    assert name in sio.get_untrusted_types(file=path) and name in train.trusted_types()
    np.testing.assert_allclose(load_model(path).predict_proba(X), m.predict_proba(X))
    monkeypatch.delitem(train.MODELS, 'shrunk')  # without its registration the same file is refused
    with pytest.raises(UntrustedModelError, match='ShrunkLogistic'): load_model(path)


# --- label and patch files --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    return init_project(tmp_path / 'proj')


def _patch(path, ids=(1, 2)):
    pd.DataFrame({'impression_id': list(ids), 'label': [0] * len(ids)}).to_csv(path, index=False)
    return path


def test_a_patch_inside_the_project_is_copied_content_addressed(project):
    _patch(project / 'data' / 'fix.csv')
    p, _, _ = resolve_params(project, sets=['labels.patch=data/fix.csv'])
    assert p.labels.patch.startswith('data/patches/patch-')
    assert (project / p.labels.patch).read_bytes() == (project / 'data' / 'fix.csv').read_bytes()
    again, _, _ = resolve_params(project, sets=[f'labels.patch={p.labels.patch}'])  # an existing copy stays itself
    assert again.labels.patch == p.labels.patch


@pytest.mark.parametrize('kind', ['patch', 'exclude'])
def test_a_file_outside_the_project_is_refused(project, kind):
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=[f'labels.{kind}=/etc/passwd'])
    assert not list((project / 'data').glob('patches/*'))


def test_dot_dot_out_of_data_patches_is_refused(project):
    (project / 'data' / 'patches').mkdir()
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=['labels.patch=data/patches/' + '../' * 12 + 'etc/passwd'])


def test_a_folder_is_refused(project):
    (project / 'data' / 'folder.csv').mkdir()
    with pytest.raises(RunError, match='not a regular file'): resolve_params(project, sets=['labels.exclude=data/folder.csv'])
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=['labels.exclude=/etc'])


def test_dev_zero_is_refused_without_reading_it(project, monkeypatch):
    (project / 'data' / 'zero.csv').symlink_to('/dev/zero')  # even through a link inside the project
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=['labels.patch=/dev/zero'])
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=['labels.patch=data/zero.csv'])
    # named as an allowed folder, /dev/zero is still not a regular file: refused on its stat, before any read
    reads = []
    real_open = __import__('os').open
    monkeypatch.setattr('os.open', lambda p, *a, **k: reads.append(str(p)) or real_open(p, *a, **k))
    with pytest.raises(RunError, match='not a regular file'):
        resolve_params(project, sets=['labels.folder=/dev', 'labels.patch=/dev/zero'])
    assert '/dev/zero' not in reads


def test_a_symlink_out_of_the_project_is_refused(project, tmp_path):
    outside = _patch(tmp_path / 'outside.csv')
    (project / 'data' / 'link.csv').symlink_to(outside)
    with pytest.raises(RunError, match='outside'): resolve_params(project, sets=['labels.patch=data/link.csv'])


def test_a_named_folder_is_allowed(project, tmp_path):
    (tmp_path / 'labels').mkdir(); f = _patch(tmp_path / 'labels' / 'fix.csv')
    p, _, _ = resolve_params(project, sets=[f'labels.folder={tmp_path / "labels"}', f'labels.patch={f}'])
    assert (project / p.labels.patch).read_bytes() == f.read_bytes()
    with pytest.raises(RunError, match='outside'):  # the folder allows itself, not its parent
        resolve_params(project, sets=[f'labels.folder={tmp_path / "labels"}', f'labels.patch={_patch(tmp_path / "other.csv")}'])


def test_a_file_over_the_limit_is_refused_before_it_is_read(project, monkeypatch):
    import mlops_nb.runner as runner
    f = _patch(project / 'data' / 'big.csv', ids=range(100))
    monkeypatch.setattr(runner, 'LABEL_FILE_LIMIT', f.stat().st_size - 1)
    with pytest.raises(RunError, match='limited to'): resolve_params(project, sets=['labels.patch=data/big.csv'])
    monkeypatch.setattr(runner, 'LABEL_FILE_LIMIT', f.stat().st_size)
    resolve_params(project, sets=['labels.patch=data/big.csv'])
    assert LABEL_FILE_LIMIT == 256 * 2**20


def test_a_label_file_that_is_not_utf8_is_refused(project):
    (project / 'data' / 'latin1.csv').write_bytes('impression_id,label,note\n1,0,café\n'.encode('latin-1'))
    with pytest.raises(RunError, match='latin1.csv is not UTF-8'): resolve_params(project, sets=['labels.patch=data/latin1.csv'])


def test_accumulated_label_files_are_checked_too(project):
    _patch(project / 'data' / 'a.csv')
    from mlops_nb.runner import _accumulate
    with pytest.raises(RunError, match='outside'): _accumulate(project, 'data/a.csv', '/etc/passwd', 'exclude', 'impression_id')
    both = _accumulate(project, 'data/a.csv', 'data/a.csv', 'exclude', 'impression_id')
    assert sorted(pd.read_csv(project / both).impression_id) == [1, 2]


def test_the_cli_prints_a_refused_patch_as_one_line(project, capsys, monkeypatch):
    from mlops_nb.cli import main
    monkeypatch.chdir(project)
    assert main(['run', '--set', 'labels.patch=/etc/passwd']) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'outside' in err and 'Traceback' not in err


def _parent(project, labels:dict, rid='20260101-000000-parent'):
    "A complete run folder whose decision log holds one decision patching `labels`."
    import json
    from mlops_nb.core import Decision, DecisionLog
    rd = project / 'runs' / rid; rd.mkdir(parents=True)
    LoopParams().to_yaml(rd / 'params.yaml')
    (rd / 'run.json').write_text(json.dumps({'id': rid, 'status': 'complete'}))
    DecisionLog(rd / 'decisions.yaml').append(Decision('leave out suspect labels', 'label noise', {'labels': labels}))
    return rd


def test_a_decision_label_file_in_the_parent_run_is_checked_and_copied(project):
    rd = _parent(project, {'exclude': 'reports/exclude.csv'})
    (rd / 'reports').mkdir(); _patch(rd / 'reports' / 'exclude.csv')
    p, parent, _ = resolve_params(project, from_run=rd.name)
    assert parent == rd.name and p.labels.exclude.startswith('data/patches/exclude-')
    assert (project / p.labels.exclude).read_bytes() == (rd / 'reports' / 'exclude.csv').read_bytes()


@pytest.mark.parametrize('target', ['/etc/passwd', '/dev/zero'])
def test_a_decision_pointing_outside_the_project_is_refused(project, target):
    rd = _parent(project, {'patch': target})
    with pytest.raises(RunError, match='outside'): resolve_params(project, from_run=rd.name)


def test_a_decision_symlink_in_the_parent_run_pointing_out_is_refused(project):
    rd = _parent(project, {'exclude': 'exclude.csv'})
    (rd / 'exclude.csv').symlink_to('/etc/passwd')
    with pytest.raises(RunError, match='outside'): resolve_params(project, from_run=rd.name)
