"Every knob is validated before any notebook starts: each mistake is one line naming the key and what is allowed."
import pytest

from mlops_nb.core import LoopParams, ParamError
from mlops_nb.runner import init_project, resolve_params


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    return init_project(tmp_path_factory.mktemp('params') / 'proj')


def _cli(project, monkeypatch, capsys, *args):
    "Exit code and stderr of `mlops-nb run ARGS` in `project`."
    from mlops_nb.cli import main
    monkeypatch.chdir(project)
    rc = main(['run', *args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize('sets, says', [
    (['stages=[]'], 'stages: the list is empty'),
    (['stages=[data, train, data]'], "'data' listed more than once"),
    (['stages=[data, nonsense]'], "'nonsense' is not one of"),
    (['stages=[features, data]'], 'out of order'),
    (['stages=[scoping, error_analysis]'], 'error_analysis needs data, features, train before it'),
    (['analysis.enabled=[drift, drift]'], 'analysis.enabled'),
    (['model.params.max_iter=abc'], "'max_iter' parameter of HistGradientBoostingClassifier must be an int"),
    (['model.params.learning_rate=-0.1'], "'learning_rate' parameter"),
    (['model.kind=logistic', 'model.params.C=0'], "'C' parameter of LogisticRegression"),
    (['model.kind=logistic', 'model.params.penalty=l3'], "'penalty' parameter"),
    (['seed=1.0e+29'], 'seed: 99999999999999991433150857216 is out of range; allowed: < 4294967296'),
    (['seed=4294967296'], 'seed'),
    (['seed=-1'], 'seed'),
    (['imbalance.threshold=' + '1' * 400], 'imbalance.threshold: expected a number'),
    (['scenario.rows=' + '9' * 30], 'scenario.rows: ' + '9' * 30 + ' is out of range'),
    (['analysis.freq=nonsense'], 'analysis.freq'),
    (['analysis.freq=0D'], 'analysis.freq'),
    (['analysis.freq=7'], 'analysis.freq'),
    (['data.as_of=not a time'], 'data.as_of'),
    (['scenario.end=the 1st of March'], 'scenario.end'),
    (['scenario.noise_rate=0.2'], 'needs scenario.noise_batch'),
    (['scenario.noise_batch=8', 'scenario.noise_rate=0.2'], 'scenario.noise_batch: 8 is out of range'),
    (['scenario.drift_days=56'], 'scenario.drift_days'),
    (['data.features=[hour, clicked]'], "data.features: 'clicked' is data.target (the label itself: a leak)"),
    (['data.features=[hour, label_batch]'], 'data.group_col'),
    (['data.features=[hour, cost]'], "['cost'] are also in data.drop"),
    (['data.id_col=timestamp'], "data.time_col and data.id_col are both 'timestamp'"),
    (['data.id_col=null', 'labels.exclude=data/x.csv'], 'labels.patch / labels.exclude need data.id_col'),
    (['stages=[data'], "--set 'stages=[data': the value is not valid YAML"),
    (['seed=!!python/name:os.system'], 'not valid YAML'),
    (['data.foo.bar=1'], "unknown key 'data.foo'; allowed keys in data: source, time_col"),
    (['data.time_coll=t'], 'did you mean data.time_col'),
    (['nosuch.key=1'], "unknown key 'nosuch'; allowed keys in params: data, scenario"),
])
def test_a_bad_knob_is_one_line_before_anything_runs(project, monkeypatch, capsys, sets, says):
    with pytest.raises(ParamError) as e: resolve_params(project, sets=sets)
    assert says in str(e.value)
    rc, err = _cli(project, monkeypatch, capsys, *[a for s in sets for a in ('--set', s)])
    assert rc == 2 and says in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    assert not list((project / 'runs').iterdir())  # no run folder: nothing started


@pytest.mark.parametrize('sets', [['analysis.freq=14D'], ['analysis.freq=MS'], ['analysis.freq=h'], ['seed=4294967295'],
                                  ['data.as_of=2026-02-01T12:00'], ['model.params.max_iter=20'],
                                  ['model.kind=logistic', 'model.params.C=0.1'], ['stages=[scoping, data]'],
                                  ['scenario.noise_rate=0.1', 'scenario.noise_batch=7'],
                                  ['data.features=[hour, timestamp]'], ['data.group_col=null', 'data.id_col=null']])
def test_good_knobs_pass(project, sets):
    p, _, _ = resolve_params(project, sets=sets)
    assert p == LoopParams().override(sets)


def test_format_knobs_hold_plain_strings(tmp_path):
    p = LoopParams().override(['analysis.freq=14D', 'data.as_of=2026-02-01'])
    assert type(p.analysis.freq) is str and type(p.data.as_of) is str
    p.to_yaml(tmp_path / 'p.yaml', comments=True)  # a str subclass would not even dump with yaml.safe_dump
    assert LoopParams.from_yaml(tmp_path / 'p.yaml') == p


def test_a_non_utf8_params_file_is_one_line_naming_the_file(project, monkeypatch, capsys, tmp_path):
    f = tmp_path / 'latin1.yaml'
    f.write_bytes('# réglages\nseed: 3\n'.encode('latin-1'))
    with pytest.raises(ParamError, match='latin1.yaml: not UTF-8'): LoopParams.from_yaml(f)
    rc, err = _cli(project, monkeypatch, capsys, '--params', str(f))
    assert rc == 2 and 'latin1.yaml' in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def test_a_params_path_that_is_a_folder_is_one_line(project, monkeypatch, capsys, tmp_path):
    rc, err = _cli(project, monkeypatch, capsys, '--params', str(tmp_path))
    assert rc == 2 and 'is not a file' in err and 'Traceback' not in err


def test_model_params_are_checked_against_the_kind_in_effect():
    "max_iter is a hyperparameter of both kinds, C only of logistic: the check follows model.kind."
    assert LoopParams().override(['model.kind=logistic', 'model.params.C=2.0']).model.params == {'C': 2.0}
    with pytest.raises(ParamError, match='not hyperparameters'): LoopParams().override(['model.params.C=2.0'])


def test_a_user_kind_whose_constructor_refuses_a_value_is_a_param_error(monkeypatch):
    from mlops_nb import train
    from sklearn.linear_model import LogisticRegression
    def make(params, rs, cw):
        if params.get('C', 1) == 42: raise ValueError('C may not be 42')
        return LogisticRegression(**params)
    monkeypatch.setitem(train.MODELS, 'picky', train.ModelKind('picky', make, 'linear'))
    with pytest.raises(ParamError, match="model kind 'picky': C may not be 42"):
        LoopParams().override(['model.kind=picky', 'model.params.C=42'])
