"Every notebook in nbs/ through nbdev's test runner (cells flagged slow/notest are skipped, as in nbdev-test)."
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if not p.name.startswith('_') and '.ipynb_checkpoints' not in p.parts)


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, tmp_path):
    from nbdev.config import get_config
    from nbdev.test import test_nb
    flags = get_config().tst_flags
    flags = flags.split() if isinstance(flags, str) else list(flags)
    os.chdir(nb.parent)
    ok, secs = test_nb(nb, skip_flags=flags, do_print=False)
    assert ok, f"{nb.name} failed under nbdev's test runner"
