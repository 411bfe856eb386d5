"""The weekly restore verification: the quarterly drill's export method, run unattended.

For each database it restores the newest export into a new scratch database on the staging
instance (`run_export_drill`: `databases.insert`, `instances.import`, the checks generated from
the data description, `databases.delete`), and writes one JSON line per database and one per run
to stdout, which Cloud Run sends to Cloud Logging as `jsonPayload`. It reuses the drill's
top-level functions and its Google clients (`ops.restore_drill.cli`), so a fix to the drill is
a fix here.

Configured by environment variables (set by infra/cloudsql_backups/restore_verification.py):
VERIFY_SOURCE_BUCKET, VERIFY_SOURCE_INSTANCE, VERIFY_DATABASES (comma-separated),
VERIFY_STAGING_PROJECT, VERIFY_STAGING_INSTANCE, VERIFY_DB_USER (the job's service account
email), and optionally VERIFY_IMPORT_USER, VERIFY_APP_ROLES, VERIFY_EXPORT_INTERVAL_HOURS,
VERIFY_DATA_DESCRIPTION.

Exit status, as the drill's: 0 every database passed, 1 one failed, 2 invalid settings (nothing
touched, one JSON line saying which variable is wrong).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import google.auth.exceptions
import typer

from ops.restore_drill import cli
from ops.restore_drill.checks import CHECKS_DIR, CheckDefinitionError, Status
from ops.restore_drill.cloudsql import PollSettings
from ops.restore_drill.connect import DatabaseConnector
from ops.restore_drill.drill import (
    NEWEST_WRITE_SQL,
    DrillEnvironment,
    ExportPlan,
    RecordingReporter,
    run_export_drill,
    utc_now,
)
from ops.restore_drill.report import DrillReport
from ops.restore_drill.suite_setup import DESCRIPTION_PATH, SuiteSetupError, load_suite
from ops.restore_drill.verification import CheckSuite

EVENT = "restore_verification"
PASSED, FAILED = "passed", "failed"
USAGE_ERROR = 2
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
# Scratch databases are named DATABASE_verify_YYYYMMDDHHMM: at most 63 bytes in PostgreSQL.
SCRATCH_SUFFIX_LENGTH = len("_verify_202601010000")
MAX_SOURCE_DATABASE = 63 - SCRATCH_SUFFIX_LENGTH
REQUIRED = (
    "VERIFY_SOURCE_BUCKET",
    "VERIFY_SOURCE_INSTANCE",
    "VERIFY_DATABASES",
    "VERIFY_STAGING_PROJECT",
    "VERIFY_STAGING_INSTANCE",
    "VERIFY_DB_USER",
)


class SettingsError(ValueError):
    """An environment variable is missing or invalid; the message names it, its value and what
    is allowed."""


@dataclass(frozen=True)
class VerificationSettings:
    source_bucket: str
    source_instance: str
    databases: tuple[str, ...]
    staging_project: str
    staging_instance: str
    db_user: str
    import_user: str | None
    app_roles: tuple[str, ...]
    export_interval: timedelta
    data_description: Path

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> VerificationSettings:
        missing = [key for key in REQUIRED if not env.get(key, "").strip()]
        if missing:
            raise SettingsError(f"{', '.join(missing)}: not set; allowed: a non-empty value")
        return cls(
            source_bucket=env["VERIFY_SOURCE_BUCKET"],
            source_instance=env["VERIFY_SOURCE_INSTANCE"],
            databases=_databases(env["VERIFY_DATABASES"]),
            staging_project=env["VERIFY_STAGING_PROJECT"],
            staging_instance=env["VERIFY_STAGING_INSTANCE"],
            db_user=env["VERIFY_DB_USER"],
            import_user=env.get("VERIFY_IMPORT_USER") or None,
            app_roles=_roles(env.get("VERIFY_APP_ROLES", "app_owner,app_user")),
            export_interval=_hours(env.get("VERIFY_EXPORT_INTERVAL_HOURS", "24")),
            data_description=Path(env.get("VERIFY_DATA_DESCRIPTION") or DESCRIPTION_PATH),
        )


def _databases(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    bad = [n for n in names if not DATABASE_NAME.fullmatch(n) or len(n) > MAX_SOURCE_DATABASE]
    if not names or bad or len(set(names)) != len(names):
        raise SettingsError(
            f"VERIFY_DATABASES = {value!r}: allowed: distinct, comma-separated database names of "
            f"at most {MAX_SOURCE_DATABASE} characters (letters, digits, _ $ -), e.g. 'app,billing'"
        )
    return names


def _roles(value: str) -> tuple[str, ...]:
    try:
        return cli.parse_roles(value)
    except typer.BadParameter as error:
        raise SettingsError(f"VERIFY_APP_ROLES = {error.message}") from error


def _hours(value: str) -> timedelta:
    try:
        hours = float(value)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= cli.MAX_EXPORT_INTERVAL_HOURS:
        raise SettingsError(
            f"VERIFY_EXPORT_INTERVAL_HOURS = {value!r}: allowed: a number of hours above 0 and "
            f"at most {cli.MAX_EXPORT_INTERVAL_HOURS}"
        )
    return timedelta(hours=hours)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _minutes(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def database_line(database: str, report: DrillReport) -> dict[str, object]:
    """The per-database result line: what the log-based metric, alerts and dashboard read."""
    return {
        "event": EVENT,
        "scope": "database",
        "database": database,
        "status": PASSED if report.passed else FAILED,
        # Cloud Logging reads `severity` from a JSON line as the entry's severity.
        "severity": "INFO" if report.passed else "ERROR",
        "message": f"restore verification of {database} {'passed' if report.passed else 'failed'}"
        f": {report.checks_summary()}",
        "source": report.source,
        "target": report.target,
        "restore_point": _moment(report.restore_point),
        "rpo_minutes": _minutes(report.rpo_minutes),
        "rpo_worst_case_minutes": _minutes(report.rpo_worst_case_minutes),
        "rto_minutes": _minutes(report.rto_minutes),
        "checks_total": report.checks_total,
        "checks_passed": sum(result.passed for result in report.check_results),
        "checks_failed": report.checks_with(Status.failed),
        "checks_error": report.checks_with(Status.error),
        "failures": report.failures,
        "row_counts": report.row_counts,
    }


def run_line(
    reports: Mapping[str, DrillReport], started_at: datetime, ended_at: datetime
) -> dict[str, object]:
    failed = [database for database, report in reports.items() if not report.passed]
    return {
        "event": EVENT,
        "scope": "run",
        "status": FAILED if failed else PASSED,
        "severity": "ERROR" if failed else "INFO",
        "message": f"restore verification: {len(reports) - len(failed)}/{len(reports)} passed",
        "databases": list(reports),
        "failed_databases": failed,
        "duration_s": round((ended_at - started_at).total_seconds(), 1),
    }


def usage_line(error: str) -> dict[str, object]:
    return {
        "event": EVENT,
        "scope": "run",
        "status": "invalid",
        "severity": "ERROR",
        "message": f"restore verification not started: {error}",
    }


def emit(line: Mapping[str, object], out: TextIO) -> None:
    out.write(json.dumps(line, sort_keys=True) + "\n")
    out.flush()


def scratch_database(database: str, now: datetime) -> str:
    """A new name per run, so the verification never reuses (or deletes) an existing database."""
    return f"{database}_verify_{now:%Y%m%d%H%M}"


def verify_database(
    settings: VerificationSettings,
    database: str,
    services: cli.CloudServices,
    connector: DatabaseConnector,
    suite: CheckSuite,
    poll: PollSettings,
    clock: Callable[[], datetime] = utc_now,
) -> DrillReport:
    plan = ExportPlan(
        bucket=settings.source_bucket,
        source_instance=settings.source_instance,
        database=database,
        staging_instance=settings.staging_instance,
        restore_database=scratch_database(database, clock()),
        import_user=settings.import_user,
        app_roles=settings.app_roles,
        export_interval=settings.export_interval,
    )
    env = DrillEnvironment(
        reporter=RecordingReporter(),
        checks=suite,
        newest_write_sql=NEWEST_WRITE_SQL.read_text(encoding="utf-8"),
        clock=clock,
    )
    assert services.staging_admin is not None
    return run_export_drill(plan, env, services.staging_admin, services.store, connector, poll)


def main(
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    poll: PollSettings | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    started_at = clock()
    try:
        settings = VerificationSettings.from_environment(env)
        # The baseline is read next to the repository's log (the last passed quarterly drill's
        # counts, baked into the image); the weekly run never writes it.
        suite = load_suite(settings.data_description, CHECKS_DIR, cli.DEFAULT_LOG)
        services = cli.make_cloud_services(settings.staging_project, settings.staging_project)
        connector = cli.make_connector(settings.db_user, cli.IpType.private, None, "require")
    except (SettingsError, SuiteSetupError, CheckDefinitionError) as error:
        emit(usage_line(str(error)), out)
        return USAGE_ERROR
    except google.auth.exceptions.DefaultCredentialsError as error:
        emit(usage_line(f"no Google credentials: {error}"), out)
        return USAGE_ERROR
    reports: dict[str, DrillReport] = {}
    for database in settings.databases:
        reports[database] = verify_database(
            settings, database, services, connector, suite, poll or PollSettings(), clock
        )
        emit(database_line(database, reports[database]), out)
    line = run_line(reports, started_at, clock())
    emit(line, out)
    return 0 if line["status"] == PASSED else 1
