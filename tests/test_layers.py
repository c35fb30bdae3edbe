"""The package's import graph, built with `ast` (imports inside functions count): no cycle, no import of a higher layer,
no `print` or `argparse` outside the CLI layer, and export cells that stay rooms, not drawers.

A module's layer is the nbs/ folder of the notebook that exports it; the order of the layers is declared once, in
pyproject.toml's [tool.mlops_nb] layers."""
import ast
import json
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['mlops_nb']['layers']
PKG = ROOT / 'mlops_nb'
NOT_EXPORTED = {'__init__', '_modidx'}  # hand-kept lazy names and nbdev's index
MAX_EXPORT_LINES = 70  # "no export cell over ~60 lines"


def notebooks():
    for layer in LAYERS:
        yield from ((layer, nb) for nb in sorted((ROOT / 'nbs' / layer).glob('*.ipynb')))


def module_layers() -> dict:
    "module name → layer, from the `default_exp` of each notebook in a layer folder."
    out = {}
    for layer, nb in notebooks():
        for c in json.loads(nb.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and '#| default_exp' in s:
                out[s.split('#| default_exp', 1)[1].split()[0]] = layer
    return out


def imports(path: Path) -> list:
    "(line, imported mlops_nb module) for every import in `path`, at any depth, and import_module('mlops_nb.x') calls."
    tree, found = ast.parse(path.read_text()), []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ''
            if n.level == 1: names = [mod] if mod else [a.name for a in n.names]
            elif mod.startswith('mlops_nb.'): names = [mod[len('mlops_nb.'):]]
            elif mod == 'mlops_nb': names = [a.name for a in n.names]
            else: continue
            found += [(n.lineno, m.split('.')[0]) for m in names]
        elif isinstance(n, ast.Import):
            found += [(n.lineno, a.name.split('.')[1]) for a in n.names if a.name.startswith('mlops_nb.')]
        elif (isinstance(n, ast.Call) and getattr(n.func, 'attr', getattr(n.func, 'id', '')) == 'import_module'
              and n.args and isinstance(n.args[0], ast.Constant) and str(n.args[0].value).startswith('mlops_nb.')):
            found.append((n.lineno, n.args[0].value.split('.')[1]))
    return found


def graph() -> dict:
    return {p.stem: imports(p) for p in sorted(PKG.glob('*.py')) if p.stem not in NOT_EXPORTED}


def test_every_module_has_a_layer():
    layers = module_layers()
    missing = sorted(set(graph()) - set(layers))
    assert not missing, f"modules not exported from a notebook in a layer folder ({', '.join(LAYERS)}): {missing}"


def test_imports_only_look_down():
    layers, up = module_layers(), []
    for mod, imps in graph().items():
        for line, target in imps:
            if target in layers and LAYERS.index(layers[target]) > LAYERS.index(layers[mod]):
                up.append(f"mlops_nb/{mod}.py:{line} ({layers[mod]}) imports {target} ({layers[target]})")
    assert not up, 'upward imports:\n' + '\n'.join(up)


def cycles(edges: dict) -> list:
    "Strongly connected components with more than one module (Tarjan), and self-imports."
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1 or v in edges.get(v, ()): out.append(sorted(comp))
    for v in list(edges):
        if v not in index: visit(v)
    return out


def test_no_import_cycles():
    g = graph()
    edges = {m: {t for _, t in imps if t in g} for m, imps in g.items()}
    assert not cycles(edges), f"import cycles: {cycles(edges)}"


def test_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_print_or_argparse_below_the_cli():
    layers, bad = module_layers(), []
    for p in sorted(PKG.glob('*.py')):
        if p.stem in NOT_EXPORTED or layers.get(p.stem) == 'cli': continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call) and getattr(n.func, 'id', None) == 'print': bad.append(f"{p.name}:{n.lineno} print")
            if isinstance(n, (ast.Import, ast.ImportFrom)) and 'argparse' in ([a.name for a in n.names] + [getattr(n, 'module', None)]):
                bad.append(f"{p.name}:{n.lineno} argparse")
    assert not bad, 'below the CLI layer:\n' + '\n'.join(bad)


def test_export_cells_are_rooms_not_drawers():
    long = []
    for layer, nb in notebooks():
        for c in json.loads(nb.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and s.startswith('#| export') and len(s.splitlines()) > MAX_EXPORT_LINES:
                long.append(f"{nb.relative_to(ROOT)}: {len(s.splitlines())} lines ({s.splitlines()[1][:60]})")
    assert not long, f'export cells over {MAX_EXPORT_LINES} lines:\n' + '\n'.join(long)


def test_public_names_resolve_where_they_are_defined():
    import importlib
    import mlops_nb
    for name, mod in mlops_nb._LAZY.items():
        obj = getattr(mlops_nb, name)
        home = getattr(obj, '__module__', None)
        assert home in (None, f'mlops_nb.{mod}') or not callable(obj), f"mlops_nb.{name} is defined in {home}, _LAZY says {mod}"
    for name in ('analyze_imbalance', 'analyze_label_noise', 'analyze_drift', 'analyze_staleness', 'analyze_slices'):
        assert name in mlops_nb.__all__ and callable(getattr(mlops_nb, name))


@pytest.mark.parametrize('mod', sorted(p.stem for p in PKG.glob('*.py') if p.stem != '__init__'))
def test_every_module_imports(mod):
    "A name that moved is imported from where it lives now (a stale import breaks a module, not just a test)."
    import importlib
    importlib.import_module(f'mlops_nb.{mod}')
