"""The outcome of one drill: RPO, RTO, check results, and the log row made from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ops.restore_drill.checks import CheckResult, Status
from ops.restore_drill.health import rto_end_label

FAILURE_TEXT_LIMIT = 200


@dataclass
class DrillReport:
    """The outcome of one drill: what the log row and the exit code are made of."""

    method: str
    source: str
    target: str
    restore_point: datetime | None
    started_at: datetime
    checks_total: int
    check_results: list[CheckResult] = field(default_factory=list)
    checks_green_at: datetime | None = None
    newest_write: datetime | None = None
    failures: list[str] = field(default_factory=list)
    # RPO as the business means it: how old the restorable data is at `rpo_reference_at`.
    rpo_data_at: datetime | None = None
    rpo_reference_at: datetime | None = None
    rpo_basis: str = ""
    rpo_worst_case_minutes: float | None = None
    row_counts: dict[str, int] = field(default_factory=dict)  # per table, for the baseline
    health_url: str | None = None  # with it, RTO ends when the app answers 2xx on it
    app_healthy_at: datetime | None = None

    def fail(self, reason: str) -> None:
        self.failures.append(reason)

    @property
    def passed(self) -> bool:
        return not self.failures and len(self.check_results) == self.checks_total > 0

    @property
    def failed_checks(self) -> list[str]:
        """Checks that did not pass: found a violation, or could not run."""
        return [r.name for r in self.check_results if not r.passed]

    def checks_with(self, status: Status) -> list[str]:
        return [r.name for r in self.check_results if r.status is status]

    @property
    def rpo_minutes(self) -> float | None:
        """Age of the restorable data at the reference moment (see `rpo_basis`)."""
        if self.rpo_data_at is None or self.rpo_reference_at is None:
            return None
        return max(0.0, (self.rpo_reference_at - self.rpo_data_at).total_seconds() / 60)

    @property
    def rto_minutes(self) -> float | None:
        """Start of the restore until every check passed, or until the app answered healthy
        when a health URL was given (None when that never happened)."""
        end = self.app_healthy_at if self.health_url else self.checks_green_at
        if end is None:
            return None
        return (end - self.started_at).total_seconds() / 60

    def rto_cell(self) -> str:
        """The RTO and what ended it, e.g. `12.5 (checks passed)`."""
        minutes = self.rto_minutes
        if minutes is None:
            return format_minutes(None)
        return f"{format_minutes(minutes)} ({rto_end_label(self.health_url)})"

    def checks_summary(self) -> str:
        passed = sum(r.passed for r in self.check_results)
        summary = f"{passed}/{self.checks_total}"
        if self.failed_checks:
            # A violation (failed) and a check that could not run (error) are told apart.
            parts = [
                f"{status.value}: {', '.join(names)}"
                for status in (Status.failed, Status.error)
                if (names := self.checks_with(status))
            ]
            return f"{summary} ({'; '.join(parts)})"
        if self.failures and not self.check_results:
            return f"{summary} (not run: {_shorten(self.failures[0])})"
        if self.failures:
            return f"{summary} ({_shorten('; '.join(self.failures))})"
        return summary

    def log_cells(self, operator: str) -> dict[str, str]:
        return {
            "Date": self.started_at.astimezone(UTC).date().isoformat(),
            "Source": self.source,
            "Target": self.target,
            "Method": self.method,
            "Restore point": format_moment(self.restore_point),
            "RPO (min)": format_minutes(self.rpo_minutes),
            "RPO worst case (min)": format_minutes(self.rpo_worst_case_minutes),
            "RPO basis": self.rpo_basis or "n/a",
            "RTO (min)": self.rto_cell(),
            "Checks passed": self.checks_summary(),
            "Result": "passed" if self.passed else "failed",
            "Operator": operator,
        }


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= FAILURE_TEXT_LIMIT else text[: FAILURE_TEXT_LIMIT - 3] + "..."


def format_moment(moment: datetime | None) -> str:
    return "n/a" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_minutes(minutes: float | None) -> str:
    return "n/a" if minutes is None else f"{minutes:.1f}"
