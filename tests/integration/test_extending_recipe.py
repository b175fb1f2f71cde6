"""docs/extending.md, followed literally: its code blocks applied to a copy of the project, its
test run there against real servers.

Each block that names a `file=` is applied as written: a new file is created with the block's
text, and `append-to=NAME` inserts the block's lines at the end of the tuple assigned to NAME in
that file. Then, in the copy, ruff checks the touched files and pytest runs the test the recipe
wrote (a real MCP server and authorization server per deployment, both protocol revisions).
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "docs" / "extending.md"
PROJECT = ("mcp_server", "auth_server", "shared", "tests", "pyproject.toml")
MAX_FILES = 3
_BLOCK = re.compile(r"^```python (?P<attributes>[^\n]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    file: str
    code: str
    append_to: str | None


def recipe_steps() -> list[Step]:
    steps = []
    for block in _BLOCK.finditer(RECIPE.read_text()):
        attributes = dict(item.split("=", 1) for item in shlex.split(block["attributes"]))
        if "file" in attributes:
            steps.append(Step(attributes["file"], block["code"], attributes.get("append-to")))
    return steps


def append_to_tuple(source: str, name: str, lines: str) -> str:
    """`source` with `lines` inserted before the closing bracket of the tuple assigned to `name`."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Tuple):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == name for target in targets):
                assert node.value.end_lineno is not None
                source_lines = source.splitlines(keepends=True)
                closing = node.value.end_lineno - 1
                assert source_lines[closing].strip() == ")", (
                    f"{name}'s closing bracket is not on a line of its own"
                )
                return "".join([*source_lines[:closing], lines, *source_lines[closing:]])
    raise AssertionError(f"no tuple named {name} to append to")


def apply(step: Step, project: Path) -> None:
    target = project / step.file
    if step.append_to is None:
        assert not target.exists(), f"{step.file} already exists: the recipe would overwrite it"
        target.write_text(step.code)
    else:
        target.write_text(append_to_tuple(target.read_text(), step.append_to, step.code))


def copy_project(destination: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    for name in PROJECT:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)


def run(project: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project), "HOME": str(project)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_recipe_touches_at_most_three_files_one_of_them_a_test() -> None:
    files = {step.file for step in recipe_steps()}
    assert 1 < len(files) <= MAX_FILES, files
    assert any(file.startswith("tests/") for file in files), files
    assert any(file.startswith("mcp_server/features/") for file in files), files


def test_following_the_recipe_gives_a_tool_whose_test_passes_against_real_servers(tmp_path: Path) -> None:
    project = tmp_path / "project"
    copy_project(project)
    steps = recipe_steps()
    for step in steps:
        apply(step, project)
    touched = sorted({step.file for step in steps})

    # The copy, not this checkout, is what runs: its catalogue has the recipe's scope.
    probe = run(
        project,
        "-c",
        "import mcp_server, shared.scopes; print(mcp_server.__file__); "
        "print(shared.scopes.CATALOGUE.describe('greetings:send'))",
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    module_path, description = probe.stdout.splitlines()
    assert Path(module_path).is_relative_to(project)
    assert description == "Send greetings in your name"

    ruff = [str(Path(sys.executable).parent / "ruff")]
    for command in ([*ruff, "check", *touched], [*ruff, "format", "--check", *touched]):
        linted = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=60, check=False)
        assert linted.returncode == 0, linted.stdout + linted.stderr

    test_files = [file for file in touched if file.startswith("tests/")]
    tested = run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", *test_files, timeout=300)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    passed = re.search(r"(\d+) passed", tested.stdout)
    assert passed is not None, tested.stdout[-2000:]
    assert int(passed[1]) == 6  # three deployments x two protocol revisions
    assert "skipped" not in tested.stdout
