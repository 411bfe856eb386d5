"""Run the logical export by hand against a stack: `make export STACK=prod`.

Reads the stack's outputs with `pulumi stack output --json --stack STACK` and runs the very same
cloudsql_export.py the scheduled Cloud Run job runs, with those settings as flags. Its output
streams through unchanged and its exit code becomes ours (0 all exported, 1 a database failed,
2 bad settings). Any argument this wrapper does not know is passed on to the script, e.g.
`python -m ops.export.manual --stack prod --max-attempts 3`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXPORT_SCRIPT = Path(__file__).with_name("cloudsql_export.py")
# Pulumi.yaml lives at the repository root; pulumi finds the project from its working directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT_SETTINGS = 2
PULUMI_INSTALL_HINT = "install it (https://www.pulumi.com/docs/install/) or pass --pulumi PATH"


class StackOutputsError(Exception):
    """The stack's outputs could not be read or do not describe an export."""


def read_stack_outputs(stack: str, pulumi: str = "pulumi") -> dict[str, Any]:
    """The thin interface to Pulumi: `pulumi stack output --json --stack STACK` as a dict."""
    executable = shutil.which(pulumi)
    if executable is None:
        raise StackOutputsError(f"the pulumi CLI was not found ({pulumi!r}): {PULUMI_INSTALL_HINT}")
    command = [executable, "stack", "output", "--json", "--stack", stack]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )
    if completed.returncode != 0:
        detail = completed.stderr.strip() or completed.stdout.strip() or "no output"
        raise StackOutputsError(
            f"`pulumi stack output --json --stack {stack}` failed "
            f"(exit {completed.returncode}): {detail}"
        )
    try:
        outputs = json.loads(completed.stdout)
    except ValueError:
        raise StackOutputsError(f"pulumi printed no JSON for stack {stack!r}") from None
    if not isinstance(outputs, dict):
        raise StackOutputsError(f"pulumi printed no outputs object for stack {stack!r}")
    return outputs


def _text_output(outputs: Mapping[str, Any], key: str) -> str:
    value = outputs.get(key)
    if not isinstance(value, str) or not value:
        raise StackOutputsError(f"stack output {key!r} should be a non-empty string, got {value!r}")
    return value


def _databases_output(outputs: Mapping[str, Any]) -> str:
    value = outputs.get("export_databases")
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise StackOutputsError(
            f"stack output 'export_databases' should be a non-empty list of names, got {value!r}"
        )
    return ",".join(value)


def _offload_output(outputs: Mapping[str, Any]) -> bool:
    value = outputs.get("export_offload")
    if not isinstance(value, bool):
        raise StackOutputsError(
            f"stack output 'export_offload' should be true/false, got {value!r}"
        )
    return value


def export_arguments(outputs: Mapping[str, Any]) -> list[str]:
    """The script's flags for these stack outputs (flags win over any EXPORT_* variable)."""
    missing = [
        key
        for key in (
            "project",
            "instance_name",
            "backup_bucket_name",
            "export_databases",
            "export_offload",
        )
        if key not in outputs
    ]
    if missing:
        raise StackOutputsError(
            f"the stack has no output {', '.join(repr(key) for key in missing)}: "
            "has it been deployed with the export configured (`pulumi up`)?"
        )
    return [
        f"--project={_text_output(outputs, 'project')}",
        f"--instance={_text_output(outputs, 'instance_name')}",
        f"--bucket={_text_output(outputs, 'backup_bucket_name')}",
        f"--databases={_databases_output(outputs)}",
        "--offload" if _offload_output(outputs) else "--no-offload",
        *_format_arguments(outputs),
    ]


def _format_arguments(outputs: Mapping[str, Any]) -> list[str]:
    """--format/--threads as the stack's job runs them (a stack deployed before the outputs
    existed exports sql.gz, as its job does)."""
    if "export_format" not in outputs:
        return []
    arguments = [f"--format={_text_output(outputs, 'export_format')}"]
    threads = outputs.get("export_threads", 0)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise StackOutputsError(
            f"stack output 'export_threads' should be a whole number >= 0, got {threads!r}"
        )
    if threads:
        arguments.append(f"--threads={threads}")
    return arguments


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.export.manual",
        description="Export a stack's Cloud SQL databases now, with the scheduled job's script.",
        epilog="Other arguments go to cloudsql_export.py (see its --help).",
    )
    parser.add_argument("--stack", required=True, help="Pulumi stack, e.g. staging or prod")
    parser.add_argument("--pulumi", default="pulumi", help="pulumi executable (default: pulumi)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, passthrough = build_argument_parser().parse_known_args(argv)
    try:
        script_arguments = export_arguments(read_stack_outputs(args.stack, args.pulumi))
    except StackOutputsError as error:
        print(f"ops.export.manual: {error}", file=sys.stderr)
        return EXIT_SETTINGS
    command = [sys.executable, str(EXPORT_SCRIPT), *script_arguments, *passthrough]
    print(
        f"ops.export.manual: stack {args.stack}: {' '.join(command[1:])}",
        file=sys.stderr,
        flush=True,
    )
    # stdout and stderr are inherited, so the JSON lines and progress stream as they happen.
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
