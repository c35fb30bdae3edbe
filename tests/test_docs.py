"README.md is nbs/index.ipynb's markdown (nbdev-readme needs Quarto, which we can't install). Regenerate: python tests/test_docs.py --write"
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_from_index() -> str:
    nb = json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())
    return '\n\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown') + '\n'


def test_readme_matches_index():
    assert (ROOT / 'README.md').read_text() == readme_from_index(), "README.md is out of step: python tests/test_docs.py --write"


def test_quick_start_is_two_commands():
    txt = (ROOT / 'README.md').read_text()
    block = txt.split('## Quick start', 1)[1].split('```sh', 1)[1].split('```', 1)[0]
    cmds = [l for l in block.strip().splitlines() if l.strip()]
    assert cmds == ['pip install -e ".[dev]" && mlops-nb demo', 'python -m pytest'], cmds
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'python -m pytest' in ci


if __name__ == '__main__' and '--write' in sys.argv:
    (ROOT / 'README.md').write_text(readme_from_index())
