"""The docs' runnable code blocks: which they are, and running them as a reader would.

The marker is the fence's info string (invisible once rendered, so the rule is stated at the top of
each page that uses it):

* ```` ```sh runnable ```` — shell commands. The runnable blocks of one page run in page order in
  ONE bash session (each uses what the ones before it set), with `set -euo pipefail`, from a
  scratch folder that links the repository's top-level entries (so `scripts/...` and
  `.venv/bin/python` work and files the blocks write land there).
* ```` ```dotenv runnable ```` — settings (`NAME=value` lines, what goes into `.env` or the
  environment). The servers the test starts read them from a `.env` in their working directory,
  and the session exports them, as a reader who put them in `.env` and their shell would have.
* ```` ```<lang> file=PATH ```` — a file a page tells the reader to write (an nginx site, a unit);
  tests that run it find it by its path (`file_block`).

In the session, `curl` fails on an HTTP error status (`--fail-with-body`) and on a JSON-RPC error or
a tool result with `isError: true`, so a block whose request is refused fails the test, though the
reader's own curl would only print the refusal. The development URLs of the examples
(`http://127.0.0.1:3232`, `http://127.0.0.1:3001`) are replaced by those of the servers the test
started on free ports; nothing else of a block is changed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_MCP_URL = "http://127.0.0.1:3232"
DEV_AUTH_URL = "http://127.0.0.1:3001"
KINDS = ("sh", "dotenv")
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.MULTILINE | re.DOTALL
)

# Wraps curl in the session: a refusal must fail the block. The output is passed on unchanged.
_CURL_GUARD = r"""
curl() {
  local out
  out=$(command curl --fail-with-body "$@") || { printf '%s\n' "$out" >&2; return 1; }
  printf '%s\n' "$out"
  if [[ $out == *'"jsonrpc"'* ]] && [[ $out =~ \"error\":\ ?\{|\"isError\":\ ?true ]]; then
    echo "runnable docs: the JSON-RPC answer above is an error" >&2
    return 1
  fi
}
"""


@dataclass(frozen=True)
class Block:
    document: str  # repository-relative path
    line: int  # 1-based line of the opening fence
    language: str
    attributes: dict[str, str]  # bare words map to "" (`runnable`), key=value pairs to the value
    code: str

    @property
    def runnable(self) -> bool:
        return "runnable" in self.attributes

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(document: str) -> list[Block]:
    """Every fenced block of a repository file, its indentation (inside a list item) removed."""
    text = (REPO_ROOT / document).read_text()
    found = []
    for match in _FENCE.finditer(text):
        language, *words = shlex.split(match["info"]) or [""]
        attributes = dict(word.split("=", 1) if "=" in word else (word, "") for word in words)
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(document, line, language, attributes, body))
    return found


def runnable_blocks(document: str) -> list[Block]:
    chosen = [block for block in blocks(document) if block.runnable]
    for block in chosen:
        assert block.language in KINDS, f"{block.where}: only {KINDS} blocks can be runnable"
        unknown = set(block.attributes) - {"runnable"}
        assert not unknown, f"{block.where}: unknown attributes {sorted(unknown)}"
    return chosen


def file_block(document: str, path: str) -> Block:
    """The one block of `document` that a reader writes to `path` (`file=PATH`)."""
    matches = [block for block in blocks(document) if block.attributes.get("file") == path]
    assert len(matches) == 1, f"{document}: expected one block with file={path}, found {len(matches)}"
    return matches[0]


def documents_with_runnable_blocks() -> list[str]:
    pages = ["README.md", *(f"docs/{p.name}" for p in sorted((REPO_ROOT / "docs").glob("*.md")))]
    return [page for page in pages if any(block.runnable for block in blocks(page))]


def settings_text(document: str) -> str:
    """The page's `dotenv runnable` blocks, as one `.env` file."""
    return "".join(block.code for block in runnable_blocks(document) if block.language == "dotenv")


def scratch_folder(path: Path) -> Path:
    """A working folder that sees the repository's files (linked) but keeps what blocks write."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".env", ".git") and not (path / entry.name).exists():
            (path / entry.name).symlink_to(entry)
    return path


def session_script(document: str, urls: Mapping[str, str]) -> str:
    """The bash program a reader's terminal would have run: the page's runnable blocks, in order."""
    parts = ["set -euo pipefail", _CURL_GUARD]
    for block in runnable_blocks(document):
        code = block.code
        for development_url, real_url in urls.items():
            code = code.replace(development_url, real_url)
        parts.append(f"echo '>>> {block.where}' >&2")
        if block.language == "dotenv":
            parts.append(f"set -a\n{code}set +a")
        else:
            parts.append(code)
    return "\n".join(parts) + "\n"


def run_session(
    document: str,
    urls: Mapping[str, str],
    workdir: Path,
    env: Mapping[str, str],
    *,
    timeout: float = 240,
) -> subprocess.CompletedProcess[str]:
    """Run the page's blocks in one bash process (`env` is its whole environment); the output
    names each block as it starts."""
    script = workdir / "session.sh"
    script.write_text(session_script(document, urls))
    return subprocess.run(
        ["bash", str(script)],
        cwd=workdir,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: each block's output follows its marker
        text=True,
        timeout=timeout,
        check=False,
    )


def failed_block(output: str) -> str:
    """The block that was running when the session stopped (the last `>>> file:line` marker)."""
    markers = re.findall(r"^>>> (\S+)$", output, re.MULTILINE)
    return markers[-1] if markers else "(before the first block)"
