"""Capture the `gcloud` flags DR_RUNBOOK.md uses from the installed Cloud SDK, for offline tests.

Tests never run gcloud. This tool reads the SDK's own machine-readable command tree
(`data/cli/gcloud_completions.py`, the static completion table: flags per command, enum choices)
and, for boolean flags, the `--help` synopsis of each command, which marks the ones that also
accept `--no-FLAG` as `--[no-]FLAG`. It keeps only the commands the runbook uses:

    .venv/bin/python -m tools.gcloud_surface      # rewrites tests/data/gcloud_surface.json

Run it again after changing gcloud commands in DR_RUNBOOK.md or moving to another SDK.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = REPO_ROOT / "DR_RUNBOOK.md"
SURFACE = REPO_ROOT / "tests" / "data" / "gcloud_surface.json"
_FENCE = re.compile(r"```(?:bash|sh)\n(.*?)```", re.DOTALL)
_GCLOUD = re.compile(r"(\$\()?\bgcloud ")


def _invocation(line: str, start: int, substituted: bool) -> str:
    """The text of one gcloud call: to the end of the line, or of its `$(...)`."""
    if not substituted:
        return line[start:]
    depth, quote = 1, ""
    for index in range(start, len(line)):
        char = line[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return line[start:index]
    return line[start:]


_INLINE = re.compile(r"`(gcloud [^`]+)`")


def runbook_commands(text: str) -> list[list[str]]:
    """Every gcloud invocation in the runbook (shell blocks and inline code), as argv after
    `gcloud`."""
    commands = []
    prose = _FENCE.sub("", text)
    inline = [" ".join(span.split()) for span in _INLINE.findall(prose)]
    for block in [*_FENCE.findall(text), *inline]:
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            for match in _GCLOUD.finditer(line):
                text = _invocation(line, match.start() + len(match.group(1) or ""), bool(match[1]))
                words = shlex.split(text, comments=True)
                if "|" in words:
                    words = words[: words.index("|")]
                commands.append(words[1:])
    return commands


def command_path(words: list[str], tree: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The command group path (e.g. sql instances create) and the remaining words."""
    path: list[str] = []
    node = tree
    for index, word in enumerate(words):
        if word in node.get("commands", {}):
            path.append(word)
            node = node["commands"][word]
        else:
            return path, words[index:]
    return path, []


def sdk_root() -> Path:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SystemExit("gcloud is not installed: nothing to read the surface from")
    return Path(gcloud).resolve().parent.parent


def negatable_flags(path: list[str]) -> list[str]:
    help_text = subprocess.run(
        ["gcloud", *path, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin", "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
    ).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", help_text)
    return sorted(set(re.findall(r"--\[no-\]([a-z0-9-]+)", plain)))


def capture() -> dict[str, Any]:
    root = sdk_root()
    tree = runpy.run_path(str(root / "data" / "cli" / "gcloud_completions.py"))[
        "STATIC_COMPLETION_CLI_TREE"
    ]
    commands: dict[str, Any] = {}
    for words in runbook_commands(RUNBOOK.read_text(encoding="utf-8")):
        path, _rest = command_path(words, tree)
        key = " ".join(path)
        if key in commands or not path:
            continue
        node = tree
        for part in path:
            node = node["commands"][part]
        commands[key] = {"flags": node["flags"], "negatable": negatable_flags(path)}
    version = (root / "VERSION").read_text().strip()
    return {"sdk_version": version, "global_flags": tree["flags"], "commands": commands}


def main() -> None:
    SURFACE.write_text(json.dumps(capture(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SURFACE.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
