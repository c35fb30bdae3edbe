"""Outside data that the loop reads, but not as given, end to end: a numeric column with 2 % stray words is trained on
as numeric, and the run says so — in `mlops-nb run`'s output, in data.json and in the model card."""
import numpy as np
import pytest

from mlops_nb.cli import main
from mlops_nb.gate import model_card
from mlops_nb.demo import simulate_ads
from mlops_nb.runner import find_run, init_project

pytestmark = pytest.mark.slow


def test_stray_words_in_a_numeric_column_are_reported_by_the_run(tmp_path, capsys):
    project = init_project(tmp_path / 'ads-loop')
    df = simulate_ads(3000, days=28, seed=3)
    df['user_age'] = df['user_age'].astype(object)
    dirty = np.arange(len(df)) % 50 == 0  # 2 %
    df.loc[dirty, 'user_age'] = 'abc'
    df.to_csv(project / 'data' / 'dirty.csv', index=False)
    n_values = int(df['user_age'].notna().sum())
    code = main(['run', '-C', str(project), '-q', '--set', 'data.source=data/dirty.csv', '--set', 'model.kind=logistic',
                 '--set', 'stages=[scoping, data, features, train]'])
    out = capsys.readouterr().out
    assert code in (0, None), out
    note = f"user_age: {int(dirty.sum()):,} of {n_values:,} values are not numbers ('abc', rows [0, 50, 100] …)"
    assert f"  note: {note}" in out, out
    rd = find_run(project, 'latest')
    assert [n for n in rd.read_json('data.json')['notes'] if n.startswith(note)]
    assert f"- note: {note}" in model_card(rd)
    # trained as a number: the test split holds floats, the stray words are missing values there
    test = rd.load_split('test')
    assert test['user_age'].dtype == float and test['user_age'].isna().any()
