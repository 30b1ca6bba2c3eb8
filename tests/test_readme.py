"""The README and the docs/ pages run: every ```python block executes, and every script the Makefile and the pages
name exists.

Pages: README.md and docs/*.md; a block that appears on several pages runs once. Each block runs as a script in a
fresh subprocess from an empty temporary folder (``HF_HUB_OFFLINE=1``: nothing is downloaded). A checkpoint file a snippet names is created there first (``FILES``: the official layout, from
tests/official.py). A block preceded by ``<!-- no-test: reason -->`` is skipped; only a few may be.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
README = REPO / 'README.md'
PAGES = [README] + sorted((REPO / 'docs').glob('*.md'))
MAX_SKIPPED = 2


def readme_blocks(text: str):
    """[(line number, language, code, no-test reason or None)] of the fenced blocks of a markdown text."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r'^\s*```\s*([\w+-]*)\s*$', lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1).lower(), i
        j = i + 1
        while j < len(lines) and not re.match(r'^\s*```\s*$', lines[j]):
            j += 1
        prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), '')
        skip = re.match(r'^\s*<!--\s*no-test:\s*(.*?)\s*-->\s*$', prev)
        blocks.append((start + 1, lang, '\n'.join(lines[start + 1:j]) + '\n', skip.group(1) if skip else None))
        i = j + 1
    return blocks


def _official_cbam50(path: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    from official import official_state_dict
    sd = official_state_dict('cbam_resnet50')
    torch.save({'epoch': 100, 'arch': 'resnet', 'state_dict': {'module.' + k: v for k, v in sd.items()}}, path)


# files README snippets name -> how the test creates them in the snippet's folder
FILES = {'RESNET50_CBAM_new_name_wrap.pth.tar': _official_cbam50}

def page_python_blocks(pages, root=REPO):
    """[(page relative to root, line, code, no-test reason or None)] of the pages' ```python blocks; a repeated block
    only once (where it first appears)."""
    out, seen = [], set()
    for page in pages:
        for line, lang, code, skip in readme_blocks(page.read_text()):
            if lang == 'python' and code not in seen:
                seen.add(code)
                out.append((page.relative_to(root).as_posix(), line, code, skip))
    return out


BLOCKS = page_python_blocks([p for p in PAGES if p.exists()])


def test_readme_has_python_blocks_and_few_skips():
    assert any(page == 'README.md' for page, *_ in BLOCKS), 'README.md has no ```python block'
    skipped = [(page, line, reason) for page, line, _, reason in BLOCKS if reason is not None]
    assert len(skipped) <= MAX_SKIPPED, f'too many blocks marked no-test: {skipped}'
    assert all(reason for *_, reason in skipped), 'a no-test mark must give its reason'


def test_repeated_block_runs_once(tmp_path):
    (tmp_path / 'a.md').write_text('```python\nprint(1)\n```\n')
    (tmp_path / 'b.md').write_text('text\n\n```python\nprint(1)\n```\n\n```python\nprint(2)\n```\n')
    blocks = page_python_blocks([tmp_path / 'a.md', tmp_path / 'b.md'], root=tmp_path)
    assert [(page, line, code) for page, line, code, _ in blocks] == [('a.md', 1, 'print(1)\n'), ('b.md', 7, 'print(2)\n')]


@pytest.mark.parametrize('page,line,code,skip', BLOCKS, ids=[f'{Path(b[0]).stem}-line{b[1]}' for b in BLOCKS])
def test_readme_python_block_runs(page, line, code, skip, tmp_path):
    if skip is not None:
        pytest.skip(f'{page} line {line}: no-test: {skip}')
    for name, make in FILES.items():
        if name in code:
            make(tmp_path / name)
    script = tmp_path / 'snippet.py'
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in ('ZOO_WEIGHTS_MANIFEST',)}
    env.update(HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', MPLBACKEND='Agg')
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                       env=env)
    assert p.returncode == 0, f'{page} block at line {line} failed:\n{code}\n--- stderr ---\n{p.stderr[-4000:]}'


def _makefile_recipes(text: str):
    """{target: [recipe lines]} (variables not expanded)."""
    out, target = {}, None
    for line in text.splitlines():
        if line.startswith('\t') and target:
            out[target].append(line.strip())
        elif re.match(r'^[A-Za-z0-9_-]+\s*:(?!=)', line):  # a rule (not `VAR := ...`, not `.PHONY:`)
            target = line.split(':', 1)[0].strip()
            out[target] = []
    return out


def test_makefile_targets_call_scripts_that_exist():
    recipes = _makefile_recipes((REPO / 'Makefile').read_text())
    for target in ('demo', 'test', 'setup', 'table'):
        assert target in recipes, f'Makefile has no `{target}` target'
    scripts = []
    for target, lines in recipes.items():
        for line in lines:
            scripts += [(target, s) for s in re.findall(r'(?:^|\s)((?:tools|scripts|\.ci)/[\w./-]+)', line)]
            for mod in re.findall(r'-m\s+([\w.]+)', line):
                if mod.startswith('zoo'):
                    scripts.append((target, mod.replace('.', '/') + '.py'))
    assert scripts, 'no script found in the Makefile recipes'
    missing = [(t, s) for t, s in scripts if not (REPO / s).exists()]
    assert not missing, f'Makefile targets call scripts that do not exist: {missing}'
    # CI runs the README's test command
    assert 'make test' in (REPO / '.ci' / 'run').read_text()


def test_readme_names_scripts_that_exist():
    named = {page.relative_to(REPO).as_posix(): set(re.findall(r'(?<![\w/.])(tools/[\w-]+\.(?:py|sh))', page.read_text())) for page in PAGES}
    assert named['README.md'], 'README names no tools/ script'
    missing = sorted((page, s) for page, scripts in named.items() for s in scripts if not (REPO / s).exists())
    assert not missing, f'pages name scripts that do not exist: {missing}'


def test_readme_links_every_docs_page():
    text = README.read_text()
    unlinked = [p.name for p in PAGES[1:] if f'](docs/{p.name}' not in text]
    assert not unlinked, f'README links no docs page of these: {unlinked}'
