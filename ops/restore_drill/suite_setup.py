"""Building the drill's check suite from the command line's files, and keeping its baseline.

The suite is the checks generated from the data description, the hand-written extras, and the
row counts of the previous passed drill of the same database (the baseline sidecar of the log).
"""

from __future__ import annotations

from pathlib import Path

from ops.restore_drill.baseline import (
    Baseline,
    BaselineError,
    baseline_path,
    load_baseline,
    record_baseline,
)
from ops.restore_drill.checks import load_checks
from ops.restore_drill.description import DESCRIPTION_PATH, DescriptionError, load_description
from ops.restore_drill.report import DrillReport
from ops.restore_drill.verification import CheckSuite

__all__ = [
    "DESCRIPTION_PATH",
    "SuiteSetupError",
    "load_suite",
    "reference_suite",
    "remember_passed_drill",
]


class SuiteSetupError(ValueError):
    """The data description or the baseline cannot be used (before anything is touched)."""


def load_suite(description_path: Path, checks_dir: Path, log_file: Path) -> CheckSuite:
    """Raises CheckDefinitionError for a bad extra check, SuiteSetupError for the rest."""
    try:
        description = load_description(description_path)
        baseline = load_baseline(baseline_path(log_file), description.name)
    except (DescriptionError, BaselineError) as error:
        raise SuiteSetupError(str(error)) from error
    return CheckSuite(description, load_checks(checks_dir), baseline)


def remember_passed_drill(suite: CheckSuite, report: DrillReport, log_file: Path) -> None:
    """A passed drill's row counts become the next drill's baseline; a failed one changes nothing."""
    if not report.passed or not report.row_counts:
        return
    record_baseline(
        baseline_path(log_file),
        suite.description.name,
        Baseline(recorded_at=report.started_at, source=report.source, row_counts=report.row_counts),
    )


def reference_suite() -> CheckSuite:
    """The checks for the reference schema (schema.sql): data.toml plus the shipped extras."""
    return CheckSuite(load_description(), load_checks())
