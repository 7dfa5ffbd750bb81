"""The structure holds: the layer contract (import-linter, configured in pyproject.toml), no import
hidden inside a function without a reason on its line, and no crowded module without a reason."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "openduty"
MAX_LINES = 450


def test_layer_contract_holds():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_import_hides_inside_a_function():
    """An import inside a function hides a cycle from the contract; one that must stay (a heavy optional
    library, the app factory) says why in a comment on its line."""
    hidden = []
    for path in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom) and "#" not in lines[inner.lineno - 1]:
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert hidden == []


def test_modules_stay_small_or_say_why():
    """A module over MAX_LINES says in its docstring why it is one module ("One module because ...")."""
    crowded = []
    for path in _modules():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "One module because" not in (ast.get_docstring(ast.parse(text)) or ""):
            crowded.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert crowded == []
