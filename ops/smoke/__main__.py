"""`python -m ops.smoke --stack staging` (`make smoke STACK=staging`): the post-deploy smoke test.

Reads the stack's outputs with `pulumi stack output --json` (like `make export`), runs the checks of
``ops/smoke/smoke.py`` against Google Cloud with Application Default Credentials, prints the result,
appends it to ``$GITHUB_STEP_SUMMARY`` when that is set, and exits 0 (all passed), 1 (a check failed)
or 2 (the stack outputs or settings are unusable).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ops.export.manual import StackOutputsError, read_stack_outputs
from ops.smoke.cloud import SmokeCloud
from ops.smoke.rest import RestSmokeCloud, authorized_session
from ops.smoke.smoke import SmokeReport, SmokeSettingsError, StackUnderTest, Waiting, run_smoke

EXIT_FAILED = 1
EXIT_SETTINGS = 2
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.smoke",
        description="Run the export job of a deployed stack and check its backups and alerts.",
    )
    parser.add_argument("--stack", required=True, help="Pulumi stack, e.g. staging or prod")
    parser.add_argument("--pulumi", default="pulumi", help="pulumi executable (default: pulumi)")
    parser.add_argument(
        "--execution-timeout-minutes",
        type=_positive,
        default=360,
        help="how long to wait for the export execution (default: 360, the job's timeout)",
    )
    parser.add_argument(
        "--logs-timeout-seconds",
        type=_positive,
        default=300,
        help="how long to wait for the export's log lines to reach Cloud Logging (default: 300)",
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def write_summary(report: SmokeReport, stack: str, environ: Mapping[str, str]) -> None:
    """Append the report to the GitHub job summary, when running in GitHub Actions."""
    path = environ.get(SUMMARY_VARIABLE)
    if path:
        with Path(path).open("a", encoding="utf-8") as summary:
            summary.write(report.markdown(stack))


def main(
    argv: Sequence[str] | None = None,
    cloud_factory: Callable[[], SmokeCloud] | None = None,
    read_outputs: Callable[[str, str], dict[str, Any]] = read_stack_outputs,
    environ: Mapping[str, str] = os.environ,
) -> int:
    args = build_argument_parser().parse_args(argv)
    try:
        stack = StackUnderTest.from_outputs(read_outputs(args.stack, args.pulumi))
    except (StackOutputsError, SmokeSettingsError) as error:
        report = SmokeReport(failures=[f"stack outputs unusable: {error}"])
        print(f"ops.smoke: {error}", file=sys.stderr)
        write_summary(report, args.stack, environ)
        return EXIT_SETTINGS
    cloud = cloud_factory() if cloud_factory else RestSmokeCloud(authorized_session())
    waiting = Waiting(
        execution_timeout_seconds=args.execution_timeout_minutes * 60,
        logs_timeout_seconds=args.logs_timeout_seconds,
    )
    print(f"ops.smoke: stack {args.stack}: executing {stack.job} and checking", file=sys.stderr)
    report = run_smoke(cloud, stack, waiting)
    print(report.markdown(args.stack))
    write_summary(report, args.stack, environ)
    return 0 if report.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
