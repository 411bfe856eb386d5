"""The time budget: every database's retries, wait and verification fit in its share of the
Cloud Run task timeout, so the script logs its own failure before Cloud Run stops the task.
The arithmetic is tested at its limits, then a whole run is played on a simulated clock in
which every gcloud call takes as long as its timeout allows."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ops.export import cloudsql_export as export
from ops.export.cloudsql_export import (
    GCLOUD_CALL_SECONDS,
    MAX_TASK_TIMEOUT_SECONDS,
    MIN_VERIFY_SECONDS,
    MIN_WAIT_SECONDS,
    RUN_RESERVE_SECONDS,
    BudgetError,
    CommandResult,
    plan_budget,
)
from tests.export import dumps

ONE_HOUR = 3600  # the shortest export_timeout_hours the stack accepts
DEFAULT_ATTEMPTS = 6
DEFAULT_BASE = 30.0
BUSY = (
    "ERROR: (gcloud.sql.export.sql) HTTPError 409: Operation failed because another operation "
    "was already in progress."
)


# --- the arithmetic at its limits -------------------------------------------------------------


def test_one_database_with_the_longest_task_timeout() -> None:
    budget = plan_budget(MAX_TASK_TIMEOUT_SECONDS, 1, DEFAULT_ATTEMPTS, DEFAULT_BASE)

    assert budget.share_seconds == MAX_TASK_TIMEOUT_SECONDS - RUN_RESERVE_SECONDS
    # 30+60+120+240+480 s of backoff, the name check and six starts of up to 60 s each.
    assert budget.retries_seconds == 930 + 7 * GCLOUD_CALL_SECONDS
    total = budget.retries_seconds + budget.wait_seconds + budget.verify_seconds
    assert total == pytest.approx(budget.share_seconds)
    assert budget.verify_seconds == pytest.approx(0.25 * (budget.share_seconds - 1350))


def test_the_default_six_hour_timeout_leaves_most_of_it_to_wait_and_verify() -> None:
    budget = plan_budget(6 * ONE_HOUR, 1, DEFAULT_ATTEMPTS, DEFAULT_BASE)

    assert budget.wait_seconds == pytest.approx(0.75 * (6 * ONE_HOUR - 30 - 1350))
    assert budget.verify_seconds == pytest.approx(0.25 * (6 * ONE_HOUR - 30 - 1350))


@pytest.mark.parametrize(
    ("attempts", "base", "most_databases"),
    [
        (DEFAULT_ATTEMPTS, DEFAULT_BASE, 2),  # 1350 s of retries + 120 s each
        (1, 0.0, 14),  # 120 s name check and start + 120 s each: (3600 - 30) // 240
        (100, 600.0, 0),  # 100 attempts with the longest backoff cannot fit in an hour
    ],
)
def test_many_databases_with_the_shortest_task_timeout(
    attempts: int, base: float, most_databases: int
) -> None:
    if most_databases:
        fitting = plan_budget(ONE_HOUR, most_databases, attempts, base)
        assert fitting.wait_seconds >= MIN_WAIT_SECONDS
        assert fitting.verify_seconds >= MIN_VERIFY_SECONDS
    with pytest.raises(BudgetError) as refused:
        plan_budget(ONE_HOUR, most_databases + 1, attempts, base)
    needed = export.minimum_task_timeout_seconds(most_databases + 1, attempts, base)
    assert needed > ONE_HOUR
    message = str(refused.value)
    assert f"= '{ONE_HOUR}' is too short for {most_databases + 1} database(s)" in message
    assert f"allowed: at least {needed} s" in message
    assert f"EXPORT_MAX_ATTEMPTS = {attempts}" in message


@pytest.mark.parametrize("databases", [1, 3, 40])
def test_the_minimum_task_timeout_is_exactly_the_limit(databases: int) -> None:
    minimum = export.minimum_task_timeout_seconds(databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)

    at_limit = plan_budget(minimum, databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)
    assert MIN_WAIT_SECONDS <= at_limit.wait_seconds < MIN_WAIT_SECONDS + 1 / databases
    with pytest.raises(BudgetError):
        plan_budget(minimum - 1, databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)


def test_later_databases_inherit_time_an_earlier_one_did_not_use() -> None:
    budget = plan_budget(4 * ONE_HOUR, 3, DEFAULT_ATTEMPTS, DEFAULT_BASE)

    deadlines = [export.database_deadlines(100.0, index, budget) for index in range(3)]

    assert [d.verify_until for d in deadlines] == pytest.approx(
        [100.0 + n * budget.share_seconds for n in (1, 2, 3)]
    )
    assert deadlines[-1].verify_until == pytest.approx(100.0 + 4 * ONE_HOUR - RUN_RESERVE_SECONDS)
    for deadline in deadlines:
        assert deadline.verify_until - deadline.wait_until == budget.verify_seconds


# --- a whole run on a simulated clock ---------------------------------------------------------


@dataclass
class SimulatedGcloud:
    """Answers like gcloud, and makes each call take as long as its timeout allows: the worst
    case the budget has to hold. Time passes only on the simulated clock."""

    busy: bool = True
    export_seconds: float | None = None  # None: the export outlasts every wait
    now: float = 0.0
    calls: list[tuple[str, float, float]] = field(default_factory=list)  # (command, at, timeout)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        command = " ".join(argv[1:4])
        self.calls.append((command, self.now, timeout))
        if command.startswith("storage objects describe"):
            self.now += timeout
            return CommandResult(
                1, "", f"ERROR: (gcloud.storage.objects.describe) {argv[4]} not found: 404."
            )
        if command == "sql export sql":
            self.now += timeout
            if self.busy:
                return CommandResult(1, "", BUSY)
            return CommandResult(0, json.dumps({"name": "op-1", "status": "PENDING"}), "")
        if command == "sql operations wait":
            # The export outlasts gcloud's --timeout: gcloud gives up after it.
            (flag,) = [a for a in argv if a.startswith("--timeout=")]
            waited = int(flag.removeprefix("--timeout="))
            assert waited + export.WAIT_PROCESS_MARGIN_SECONDS <= timeout + 0.5
            if self.export_seconds is not None and self.export_seconds <= waited:
                self.now += self.export_seconds
                return CommandResult(0, json.dumps([{"name": "op-1", "status": "DONE"}]), "")
            self.now += waited
            return CommandResult(
                1,
                "",
                "ERROR: (gcloud.sql.operations.wait) Operation op-1 is taking longer than expected.",
            )
        raise AssertionError(f"unexpected gcloud call {argv}")

    def stream(
        self, argv: Sequence[str], consume: Callable[[bytes], None], timeout: float
    ) -> CommandResult:
        # The read is slower than the budget: cut off at its timeout, as the watchdog does.
        self.calls.append(("storage cat", self.now, timeout))
        consume(dumps.good_export()[:100])
        self.now += timeout
        return CommandResult(124, "", "gcloud did not finish", timed_out=True)

    def gcloud(self) -> export.Gcloud:
        return export.Gcloud("gcloud", "acme-prod", self.run, self.stream)

    def clock(self) -> export.Clock:
        def now() -> datetime:
            return datetime(2026, 3, 1, 3, 30, tzinfo=UTC)

        return export.Clock(now=now, monotonic=self.monotonic, sleep=self.sleep)


def settings_for(databases: int, task_timeout: int = 6 * ONE_HOUR) -> export.Settings:
    """The default retries (6 attempts, 30 s base) for databases db0, db1, ..."""
    return export.parse_settings(
        [
            *("--project", "acme-prod", "--instance", "main-pg", "--bucket", "acme-backups"),
            *("--databases", ",".join(f"db{n}" for n in range(databases))),
            *("--task-timeout-seconds", str(task_timeout), "--gcloud", "python3"),
        ],
        {},
    )


def run_simulated(
    simulated: SimulatedGcloud, databases: int, task_timeout: int
) -> list[dict[str, object]]:
    stdout = io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(io.StringIO()):
        export.export_all(
            settings_for(databases, task_timeout), simulated.gcloud(), simulated.clock()
        )
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


@pytest.mark.parametrize("databases", [1, 2, 5])
def test_retries_exhausted_exactly_at_the_budget_still_leave_time_to_log(databases: int) -> None:
    """A task timeout exactly at the minimum, an instance busy on every attempt, and every call
    answering at its timeout: all attempts are made, and the last line is logged in time."""
    task_timeout = export.minimum_task_timeout_seconds(databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)
    simulated = SimulatedGcloud(busy=True)

    records = run_simulated(simulated, databases, task_timeout)

    assert simulated.now <= task_timeout - RUN_RESERVE_SECONDS
    failed = [r for r in records if r["event"] == "cloudsql_export"]
    assert [r["database"] for r in failed] == [f"db{n}" for n in range(databases)]
    for record in failed:
        assert record["status"] == "failed"
        assert record["attempts"] == DEFAULT_ATTEMPTS
        assert f"busy with another operation on all {DEFAULT_ATTEMPTS} attempts" in str(
            record["error"]
        )
    starts = [c for c in simulated.calls if c[0] == "sql export sql"]
    assert len(starts) == databases * DEFAULT_ATTEMPTS
    assert all(timeout == GCLOUD_CALL_SECONDS for _, _, timeout in starts)
    assert records[-1]["event"] == "cloudsql_export_run"


@pytest.mark.parametrize("databases", [1, 3])
def test_a_slow_export_and_a_slow_read_end_within_the_task_timeout(databases: int) -> None:
    """The instance is free, but every export outlasts its wait and every read its timeout:
    each phase stops at its own deadline and the run still ends before the task timeout."""
    task_timeout = 2 * ONE_HOUR
    simulated = SimulatedGcloud(busy=False)

    records = run_simulated(simulated, databases, task_timeout)

    assert simulated.now <= task_timeout - RUN_RESERVE_SECONDS
    budget = plan_budget(task_timeout, databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)
    waits = [c for c in simulated.calls if c[0] == "sql operations wait"]
    assert len(waits) == databases
    for index, (_, at, timeout) in enumerate(waits):
        deadlines = export.database_deadlines(0.0, index, budget)
        assert at + timeout <= deadlines.wait_until
        assert math.isclose(at + timeout, deadlines.wait_until, abs_tol=1)
    reads = [c for c in simulated.calls if c[0] == "storage cat"]
    assert reads == [], "a timed-out export is not read"
    for record in records[:-1]:
        assert "did not finish within" in str(record["error"])


@pytest.mark.parametrize("databases", [1, 4])
def test_a_read_slower_than_the_verification_reserve_ends_at_the_share(databases: int) -> None:
    """Each export finishes quickly, but reading it back outlasts the budget: the read is cut
    off at the end of the database's share, and the database fails as unverified."""
    task_timeout = 3 * ONE_HOUR
    simulated = SimulatedGcloud(busy=False, export_seconds=120.0)

    records = run_simulated(simulated, databases, task_timeout)

    assert simulated.now <= task_timeout - RUN_RESERVE_SECONDS
    budget = plan_budget(task_timeout, databases, DEFAULT_ATTEMPTS, DEFAULT_BASE)
    reads = [c for c in simulated.calls if c[0] == "storage cat"]
    assert len(reads) == databases
    for index, (_, at, timeout) in enumerate(reads):
        deadlines = export.database_deadlines(0.0, index, budget)
        assert at + timeout == pytest.approx(deadlines.verify_until)
    for record in records[:-1]:
        assert record["status"] == "failed"
        assert "verification of" in str(record["error"])
        assert "did not finish within" in str(record["error"])
        assert "kept but unverified" in str(record["error"])


def test_no_backoff_is_taken_when_the_next_attempt_would_not_fit() -> None:
    """A safety net below the arithmetic: with less time left than a delay and a call need,
    the script stops retrying at once instead of sleeping into Cloud Run's timeout."""
    simulated = SimulatedGcloud(busy=True)
    run = export.DatabaseRun("db0", "gs://acme-backups/cloudsql/main-pg/db0/x.sql.gz")

    with pytest.raises(export.ExportFailedError) as stopped, redirect_stderr(io.StringIO()):
        export.start_export(
            settings_for(1),
            simulated.gcloud(),
            run,
            simulated.clock(),
            until=GCLOUD_CALL_SECONDS + 89,
        )

    assert run.attempts == 1
    assert "no longer fits in this database's time budget" in str(stopped.value)
    assert simulated.now == GCLOUD_CALL_SECONDS, "no delay was slept"
