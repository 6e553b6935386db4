"""Layering checks on the source tree, read with `ast` (nothing is imported):

- no import cycles between the modules of src/: every import counts, also one inside a function or under
  `if TYPE_CHECKING:`, since a cycle hidden that way is still a cycle in the design;
- every path a docstring or comment points to (`docs/<file>`, `<name>.md`) exists in the repository.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


# --- import graph ---------------------------------------------------------------------------------------


def module_files(src: Path) -> dict[str, Path]:
    """Dotted module name -> file for every .py under `src` (a package's __init__.py names the package)."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            out[".".join(parts)] = path
    return out


def _packages(files: dict[str, Path]) -> set[str]:
    """Every package, namespace packages (folders without __init__.py) included."""
    return {".".join(name.split(".")[:i]) for name in files for i in range(1, name.count(".") + 1)} | {
        name for name, path in files.items() if path.name == "__init__.py"
    }


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _known(name: str, modules: set[str]) -> str | None:
    """`name`, or the longest of its prefixes that is a module of the tree."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def import_graph(src: Path) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module of the tree: ["file:line", ...]}. `from X import Y` is an edge to X.Y when
    that is a module, else to X; `import X.Y` is an edge to X.Y."""
    files = module_files(src)
    modules = set(files) | _packages(files)
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(src)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                hit = _known(target, modules)
                site = f"{where}:{node.lineno}"
                if hit is not None and hit != name and hit in files and site not in graph[name].get(hit, []):
                    graph[name].setdefault(hit, []).append(site)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, dict[str, list[str]]], component: list[str]) -> str:
    members = set(component)
    lines = [" <-> ".join(component)]
    for v in component:
        for w, sites in sorted(graph[v].items()):
            if w in members:
                lines.append(f"    {v} -> {w}  ({', '.join(sites)})")
    return "\n".join(lines)


def test_no_import_cycles():
    graph = import_graph(SRC)
    assert "safer_rm" in graph and len(graph) > 20, sorted(graph)
    found = cycles(graph)
    assert not found, "import cycles in src/:\n" + "\n".join(describe(graph, c) for c in found)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_cycle_check_sees_hidden_and_relative_imports(tmp_path):
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import f\n",
            "pkg/a.py": "def f():\n    from .sub import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from . import a\nfrom .sub.b import x\n",
            "pkg/ns/e.py": "from .. import c\n",  # namespace package, no __init__.py
        },
    )
    graph = import_graph(src)
    assert graph["pkg"] == {"pkg.a": ["pkg/__init__.py:1"]}
    assert set(graph["pkg.a"]) == {"pkg.sub.b"}
    assert set(graph["pkg.sub.b"]) == {"pkg.c"}
    assert set(graph["pkg.d"]) == {"pkg.a", "pkg.sub.b"}
    assert set(graph["pkg.ns.e"]) == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (src / "pkg" / "c.py").write_text("import os\n", encoding="utf-8")
    assert cycles(import_graph(src)) == []


# --- path references in docstrings and comments ---------------------------------------------------------

RUN_FOLDERS = ("report/", "inspect/", "curated/")
REFERENCE = re.compile(r"(?<![\w./:-])(docs/[\w./-]*\w|[\w./-]*\w\.md)\b")


def _doc_texts(path: Path) -> Iterator[tuple[int, str]]:
    """(first line, text as written) of every docstring (string statement, attribute docstrings included)
    and comment."""
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            yield node.lineno, ast.get_source_segment(text, node.value) or node.value.value  # as written
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def broken_references(src: Path, repo: Path) -> list[str]:
    """`file:line: reference` for every reference that does not name a file of `repo` (paths from its root)."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        for line, text in _doc_texts(path):
            for match in REFERENCE.finditer(text):
                ref = match.group(1)
                if ref.startswith(RUN_FOLDERS):
                    continue  # a file a run writes into its run directory, not one of the repository
                if not (repo / ref).is_file():
                    at = line + text.count("\n", 0, match.start())
                    bad.append(f"{path.relative_to(repo)}:{at}: {ref}")
    return sorted(set(bad))


def test_docstring_references_name_files_of_the_repository():
    assert (REPO / "docs" / "method.md").is_file()
    bad = broken_references(SRC, REPO)
    assert not bad, "references to files the repository does not have:\n" + "\n".join(bad)


def test_the_reference_check_sees_missing_files(tmp_path):
    _write(
        tmp_path,
        {
            "docs/method.md": "# method\n",
            "README.md": "",
            "src/m.py": '"""See docs/method.md §4 and README.md."""\n\n'
            'X = 1\n"""Attribute docstring: findings.md says so."""\n\n'
            "# method.md section 2, docs/design.md\n"
            'MESSAGE = "not a docstring: other.md"\n',
        },
    )
    assert broken_references(tmp_path / "src", tmp_path) == [
        "src/m.py:4: findings.md",
        "src/m.py:6: docs/design.md",
        "src/m.py:6: method.md",
    ]


# --- what the commands a newcomer types first import -----------------------------------------------------

HEAVY = ("torch", "transformers", "datasets", "sparsify", "matplotlib", "pandas")


def _imported_after(code: str, cwd: Path) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running `code` (stdout silenced)."""
    import subprocess
    import sys

    probe = (
        "import contextlib, io, sys\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    {code}\n"
        f"print('imported:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True)
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("imported:"), out.stdout
    return set(filter(None, last.removeprefix("imported:").split(",")))


def test_config_and_the_command_line_parser_import_no_torch_or_transformers():
    assert _imported_after("import safer_rm.config", REPO) == set()
    assert _imported_after("from safer_rm.cli import build_parser; build_parser()", REPO) == set()


def test_a_dry_run_imports_no_torch_or_transformers(tmp_path):
    """`safer run --dry-run` plans every stage of the demo (fingerprints, input hashes) without the libraries
    that do the work: they load in the stage functions."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"extends: {REPO / 'configs' / 'demo.yaml'}\nrun:\n  dir: {tmp_path / 'run'}\n")
    code = f"from safer_rm.cli import main; main(['run', {str(cfg)!r}, '--dry-run'])"
    assert _imported_after(code, tmp_path) == set()
