"""Test modules share code only through helper modules (helpers, tiny_models, chat_server): none imports
another test module (which would collect or run its code as a side effect) or conftest (fixtures only)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _forbidden(name: str) -> bool:
    top = name.split(".")[0]
    return top == "conftest" or top.startswith("test_")


def _bad_imports(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            bad += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and _forbidden(node.module):
                bad.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            elif node.level > 0 and node.module is None:  # from . import test_x
                bad += [
                    f"{path.name}:{node.lineno}: from . import {a.name}"
                    for a in node.names
                    if _forbidden(a.name)
                ]
            elif node.level > 0 and _forbidden(node.module):
                bad.append(f"{path.name}:{node.lineno}: from .{node.module} import ...")
    return bad


def test_no_test_module_imports_another_test_module_or_conftest():
    files = sorted(TESTS.glob("*.py"))
    assert TESTS / "helpers.py" in files and TESTS / "conftest.py" in files
    bad = [line for f in files for line in _bad_imports(f)]
    assert not bad, "share test code through tests/helpers.py instead:\n" + "\n".join(bad)


def test_the_check_sees_forbidden_imports(tmp_path):
    f = tmp_path / "test_x.py"
    f.write_text(
        "import os\nfrom helpers import toy_config\nfrom test_cli import x\nimport conftest\n"
        "from . import test_y\n"
    )
    assert [line.split(":")[1] for line in _bad_imports(f)] == ["3", "4", "5"]
