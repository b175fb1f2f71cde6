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

In the session, `curl` fails on an HTTP error status (`--fail-with-body`, unless the block asks for
the status itself with `-f` or `-w`) and on a JSON-RPC error or a tool result with `isError: true`,
so a block whose request is refused fails the test, though the reader's own curl would only print
the refusal. The development URLs of the examples
(`http://127.0.0.1:3232`, `http://127.0.0.1:3001`) are replaced by those of the servers the test
started on free ports; nothing else of a block is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_MCP_URL = "http://127.0.0.1:3232"
DEV_AUTH_URL = "http://127.0.0.1:3001"
DEV_IDP_URL = "http://127.0.0.1:3400"  # an enterprise identity provider a page plays (agent-identity.md)
KINDS = ("sh", "dotenv")
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.MULTILINE | re.DOTALL
)

# Wraps curl in the session: a refusal must fail the block. The output is passed on unchanged.
_CURL_GUARD = r"""
curl() {
  local out arg fail=--fail-with-body
  for arg in "$@"; do  # a block that reads the status itself (-f, -w) keeps curl's own behaviour
    case $arg in --fail*|--write-out*) fail="";; --*) ;; -*[fw]*) fail="";; esac
  done
  out=$(command curl $fail "$@") || { printf '%s\n' "$out" >&2; return 1; }
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


def settings_text(document: str, urls: Mapping[str, str] | None = None) -> str:
    """The page's `dotenv runnable` blocks, as one `.env` file, with `urls` replaced as in
    `session_script` (settings may name the server's own URL, such as an API mounted under it)."""
    text = "".join(block.code for block in runnable_blocks(document) if block.language == "dotenv")
    return _with_urls(text, urls or {})


def _with_urls(code: str, urls: Mapping[str, str]) -> str:
    """`code` with each development URL of `urls` replaced by the test's, longest first."""
    for development_url, real_url in sorted(urls.items(), key=lambda item: -len(item[0])):
        code = code.replace(development_url, real_url)
    return code


def scratch_folder(path: Path) -> Path:
    """A working folder that sees the repository's files (linked) but keeps what blocks write."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".env", ".git") and not (path / entry.name).exists():
            (path / entry.name).symlink_to(entry)
    return path


PAUSED = ">>> paused"


def session_script(document: str, urls: Mapping[str, str], pause_before: int | None = None) -> str:
    """The bash program a reader's terminal would have run: the page's runnable blocks, in order.

    `urls` maps what the page says (a development URL, a path) to what the test uses instead,
    longest first. With `pause_before` (a line of the page), the session stops before the first
    block below that line until the test has done what the reader does there by hand (start the
    servers) and writes a line to the fifo `$RUNNABLE_RESUME`."""
    parts = ["set -euo pipefail", _CURL_GUARD]
    for block in runnable_blocks(document):
        code = _with_urls(block.code, urls)
        if pause_before is not None and block.line > pause_before:
            parts.append(f"echo '{PAUSED}'\nread -r _ < \"$RUNNABLE_RESUME\"")
            pause_before = None
        parts.append(f"echo '>>> {block.where}' >&2")
        if block.language == "dotenv":
            parts.append(f"set -a\n{code}set +a")
        else:
            parts.append(code)
    assert pause_before is None, f"{document}: no runnable block after line {pause_before} to pause before"
    return "\n".join(parts) + "\n"


def run_session(
    document: str,
    urls: Mapping[str, str],
    workdir: Path,
    env: Mapping[str, str],
    *,
    timeout: float = 240,
    pause_before: int | None = None,
    on_pause: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the page's blocks in one bash process (`env` is its whole environment); the output
    names each block as it starts. At the pause (`session_script`), `on_pause()` runs in this
    thread, then the session goes on; if it raises, the session is killed."""
    script = workdir / "session.sh"
    script.write_text(session_script(document, urls, pause_before))
    fifo = workdir / "resume.fifo"
    if pause_before is not None:
        os.mkfifo(fifo)
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=workdir,
        env={**env, "RUNNABLE_RESUME": str(fifo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: each block's output follows its marker
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    paused = threading.Event()

    def pump(stream: IO[str]) -> None:
        for line in stream:
            lines.append(line)
            if line.rstrip("\n") == PAUSED:
                paused.set()

    reader = threading.Thread(target=pump, args=(process.stdout,), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        if pause_before is not None:
            while not paused.wait(0.05) and process.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{document}: the session never reached its pause:\n{''.join(lines)}")
            if paused.is_set():
                assert on_pause is not None
                on_pause()
                with fifo.open("w") as resume:
                    resume.write("go\n")
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        reader.join(timeout=5)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines))


def failed_block(output: str) -> str:
    """The block that was running when the session stopped (the last `>>> file:line` marker)."""
    markers = re.findall(r"^>>> (\S+)$", output, re.MULTILINE)
    return markers[-1] if markers else "(before the first block)"
