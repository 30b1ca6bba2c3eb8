"""The layering of docs/architecture.md, enforced: import-linter's contracts (pyproject.toml) and two rules it
cannot express, checked on the source with ``ast``."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'zoo'
SOURCES = sorted(PACKAGE.rglob('*.py'))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imported_module(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ''
    package = _module_name(path).split('.')
    if path.name != '__init__.py':
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def _private_imports(path: Path) -> list:
    """``from zoo.x import _name`` (a private function, class or constant of another zoo module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom):
            module = _imported_module(node, path)
            if module.split('.')[0] != 'zoo':
                continue
            for alias in node.names:
                private = alias.name.startswith('_') and not alias.name.startswith('__')
                if private and not (PACKAGE / Path(*module.split('.')[1:]) / f'{alias.name}.py').exists() \
                        and not (PACKAGE / Path(*module.split('.')[1:]) / alias.name).is_dir():
                    found.append(f'{path.relative_to(ROOT)}:{node.lineno} from {module} import {alias.name}')
    return found


def _root_imports_and_file_reads(path: Path) -> list:
    """``import zoo`` inside the package, and ``__file__`` (the way code reaches the repository's folders)."""
    found = []
    tree = ast.parse(path.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == 'zoo' for a in node.names):
            found.append(f'{path.relative_to(ROOT)}:{node.lineno} import zoo')
        if isinstance(node, ast.Name) and node.id == '__file__':
            found.append(f'{path.relative_to(ROOT)}:{node.lineno} __file__')
        if isinstance(node, ast.Attribute) and node.attr == '__file__':
            found.append(f'{path.relative_to(ROOT)}:{node.lineno} .__file__')
    return found


def test_import_contracts():
    """import-linter (the standard tool) checks the contracts declared in pyproject.toml: layers, cli imported by
    nothing in the library, models/layers importing nothing from the packages above them, no cycles."""
    pytest.importorskip('importlinter')
    proc = subprocess.run([sys.executable, '-c', 'import sys; from importlinter.cli import lint_imports; '
                           'sys.exit(lint_imports(config_filename="pyproject.toml", no_cache=True))'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert 'Contracts: ' in proc.stdout and ' broken' in proc.stdout


def test_no_private_names_across_modules():
    found = [f for path in SOURCES for f in _private_imports(path)]
    assert not found, 'private names imported from another module:\n' + '\n'.join(found)


def test_package_reads_package_data_only():
    """No ``import zoo`` for its side effect inside the package, and no path built from ``__file__``: the package
    reads its data with importlib.resources, never the repository's folders."""
    found = [f for path in SOURCES for f in _root_imports_and_file_reads(path)]
    assert not found, '\n'.join(found)


def test_checks_catch_violations(tmp_path):
    """The ast checks find what they are meant to find."""
    bad = PACKAGE / 'hub' / '_layering_probe.py'
    source = 'import zoo\nfrom zoo.checkpoint import _free_bytes\nfrom ..errors import _x\nP = __file__\n'
    tree_path = tmp_path / 'zoo' / 'hub' / 'probe.py'
    tree_path.parent.mkdir(parents=True)
    tree_path.write_text(source)
    # resolve relative imports as if the probe were zoo/hub/_layering_probe.py
    bad_ast = ast.parse(source)
    rel = next(n for n in ast.walk(bad_ast) if isinstance(n, ast.ImportFrom) and n.level)
    assert _imported_module(rel, bad) == 'zoo.errors'
    global ROOT
    old = ROOT
    try:
        ROOT = tmp_path
        assert len(_root_imports_and_file_reads(tree_path)) == 2
        assert [f.split(' import ')[1] for f in _private_imports(tree_path)] == ['_free_bytes', '_x']
    finally:
        ROOT = old
