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


@pytest.mark.parametrize('content', [b'', b'not a model\n', 'pickle'])
def test_a_file_that_is_not_a_skops_archive_is_one_clear_refusal(content, frame, tmp_path):
    path = tmp_path / 'model.skops'
    if content == 'pickle': pickle.dump(LogisticRegression(), open(path, 'wb'))
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
