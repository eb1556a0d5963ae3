"""scripts/mutation.py: which mutants it makes, that each changes only its own node, and a
whole run over a tiny project (outside git) that never touches the project's own file."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mutation.py"

spec = importlib.util.spec_from_file_location("mutation_tool", SCRIPT)
assert spec is not None and spec.loader is not None
mutation = importlib.util.module_from_spec(spec)
sys.modules["mutation_tool"] = mutation  # dataclasses look their module up
spec.loader.exec_module(mutation)

SOURCE = textwrap.dedent(
    '''\
    """A docstring is left alone: 1 < 2."""
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        LIMIT = 5

    def clamp(x: "int | None", lo: int = 0) -> int:
        """Nor is this one."""
        if x is None or x < lo:  # a comment kept
            raise ValueError("low")
        return not x in (1.5, True)

    ANSWER: int = 42  # mutation: skip (a pinned constant)
    '''
)


def test_the_mutants_of_a_small_module() -> None:
    got = [(m.line, m.description) for m in mutation.find_mutants(SOURCE)]
    assert got == [
        (7, "0 -> 1"),
        (9, "`if C:` -> `if not (C):`"),
        (9, "`or` -> `and`"),
        (9, "`is` -> `is not`"),
        (9, "`<` -> `<=`"),
        (10, "`raise ...` -> `pass`"),
        (11, "`return X` -> `return None`"),
        (11, "`not x` -> `x`"),
        (11, "`in` -> `not in`"),
        (11, "1.5 -> 3.0"),
        (11, "True -> False"),
    ]


def test_each_mutant_changes_only_its_own_text() -> None:
    lines = SOURCE.splitlines()
    changed = {}
    for m in mutation.find_mutants(SOURCE):
        new = mutation.mutate(SOURCE, m).splitlines()
        assert len(new) == len(lines)
        diff = [(i + 1, b) for i, (a, b) in enumerate(zip(lines, new, strict=True)) if a != b]
        assert [i for i, _ in diff] == [m.line]
        ast.parse("\n".join(new))
        changed[m.description] = diff[0][1].strip()
    assert changed["`if C:` -> `if not (C):`"] == "if not (x is None or x < lo):  # a comment kept"
    assert changed["`<` -> `<=`"] == "if x is None or (x <= lo):  # a comment kept"
    assert changed["`raise ...` -> `pass`"] == "pass"
    assert changed["`return X` -> `return None`"] == "return None"
    assert changed["1.5 -> 3.0"] == "return not x in ((3.0), True)"


PROJECT = {
    "calc.py": "def sign(x):\n    if x > 0:\n        return 1\n    return 0\n",
    "tests/test_calc.py": (
        "from calc import sign\n\n\ndef test_sign():\n    assert sign(5) == 1 and sign(-5) == 0\n"
    ),
}


def run_tool(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "calc.py", "--no-plugin-autoload", *args, "--", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_run_scores_the_tests_and_names_the_survivors(project: Path) -> None:
    out = run_tool(project, "--json", "report.json", "--min-score", "71")
    # sign(0) and sign(1) are never tested: `>` -> `>=` and `0` -> `1` survive.
    *survivors, score = out.stdout.splitlines()
    assert survivors == [
        "calc.py:2: `>` -> `>=`    | if x > 0:",
        "calc.py:2: 0 -> 1    | if x > 0:",
    ]
    assert score.startswith("killed/total = 5/7 = 71.4%")
    assert out.returncode == 0, out.stderr
    report = json.loads((project / "report.json").read_text())
    assert (report["killed"], report["total"], report["score"]) == (5, 7, 71.4)
    assert {m["status"] for m in report["mutants"]} == {"passed", "failed"}
    # The project's own file was never written.
    assert (project / "calc.py").read_text() == PROJECT["calc.py"]
    # Line 2's mutants alone: 1 of 3 killed, under the minimum asked for.
    out = run_tool(project, "--lines", "2", "--min-score", "34")
    assert out.stdout.splitlines()[-1].startswith("killed/total = 1/3 = 33.3%")
    assert out.returncode == 1


def test_tests_that_fail_unmutated_stop_the_run(project: Path) -> None:
    (project / "tests" / "test_calc.py").write_text("def test_fails():\n    assert False\n")
    out = run_tool(project)
    assert out.returncode == 2
    assert "the tests fail without any mutation" in out.stderr
