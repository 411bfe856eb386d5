"""The export script, run for real (as `python3 -c <file>` like the Cloud Run job) against a fake
gcloud that simulates one Cloud SQL instance and one bucket. What an operator and the alerting
rely on: exit codes, one JSON line per database plus a summary, object names, no overwrites,
retries only while the instance is busy, and every database attempted even when one fails."""

from __future__ import annotations

import ast
import calendar
import re
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ops.export import cloudsql_export
from ops.export.cloudsql_export import WAIT_PROCESS_MARGIN_SECONDS
from tests.export import dumps

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "export" / "cloudsql_export.py"

DATABASE_FIELDS = {
    "severity",
    "message",
    "event",
    "status",
    "project",
    "instance",
    "database",
    "object",
    "bytes",
    "uncompressed_bytes",
    "verify_duration_s",
    "duration_s",
    "attempts",
    "error",
}
OBJECT_NAME = re.compile(
    r"^gs://acme-prod-db-backups/cloudsql/main-pg/(?P<database>[^/]+)/"
    r"(?P<stamp>\d{8}T\d{6}Z)\.sql\.gz$"
)


def without_quiet(call: list[str]) -> list[str]:
    """The script may add gcloud's global --quiet; everything else is asserted exactly."""
    return [argument for argument in call if argument != "--quiet"]


def assert_database_record(record: dict[str, Any], database: str, status: str) -> None:
    assert record.keys() >= DATABASE_FIELDS, record
    assert record["event"] == "cloudsql_export"
    assert record["database"] == database
    assert record["status"] == status
    assert record["severity"] == ("INFO" if status == "succeeded" else "ERROR")
    assert record["project"] == "acme-prod"
    assert record["instance"] == "main-pg"
    assert OBJECT_NAME.match(record["object"]), record["object"]
    assert isinstance(record["duration_s"], float)
    if status == "succeeded":
        assert record["error"] is None
        assert isinstance(record["verify_duration_s"], float)
        assert 0 <= record["verify_duration_s"] <= record["duration_s"]
    else:
        assert isinstance(record["error"], str)
        assert record["error"]
        assert record["bytes"] is None
        assert record["uncompressed_bytes"] is None
        assert record["verify_duration_s"] is None


# --- the happy path ---------------------------------------------------------------------------


def test_every_database_is_exported_to_a_new_verified_object(gcloud: FakeGcloud) -> None:
    before = calendar.timegm(time.gmtime()) - 1

    run = gcloud.run()

    after = calendar.timegm(time.gmtime()) + 1
    assert run.returncode == 0, run.stderr
    assert [r["database"] for r in run.database_records] == ["app", "audit"]
    objects = gcloud.state["objects"]
    for record in run.database_records:
        assert_database_record(record, record["database"], "succeeded")
        assert record["bytes"] == len(gcloud.default_dump)
        assert record["uncompressed_bytes"] == len(dumps.plain_dump())
        assert record["attempts"] == 1
        match = OBJECT_NAME.match(record["object"])
        assert match is not None
        assert match["database"] == record["database"]
        stamp = calendar.timegm(time.strptime(match["stamp"], "%Y%m%dT%H%M%SZ"))
        assert before <= stamp <= after, "the name carries the UTC time of the export"
        assert record["object"].removeprefix(f"gs://{gcloud.bucket}/") in objects
    summary = run.summary
    assert summary["status"] == "succeeded"
    assert summary["severity"] == "INFO"
    assert summary["databases"] == 2
    assert summary["failed"] == []
    assert run.records[-1] is summary, "the summary is the last line"


def test_gcloud_is_called_with_the_argv_real_gcloud_accepts(gcloud: FakeGcloud) -> None:
    run = gcloud.run(EXPORT_DATABASES="app")

    assert run.returncode == 0, run.stderr
    uri = run.record_for("app")["object"]
    (export,) = gcloud.calls("sql", "export", "sql")
    assert without_quiet(export) == [
        *("sql", "export", "sql", "main-pg", uri),
        *("--database=app", "--project=acme-prod", "--async", "--format=json"),
    ]
    (operation_name,) = gcloud.state["operations"]
    (wait,) = gcloud.calls("sql", "operations", "wait")
    timeout_flags = [argument for argument in wait if argument.startswith("--timeout=")]
    assert without_quiet(wait) == [
        *("sql", "operations", "wait", operation_name, "--project=acme-prod"),
        *timeout_flags,
        "--format=json",
    ]
    assert len(timeout_flags) == 1
    # The wait may use this database's share of the default 6-hour task timeout, less the
    # verification reserve and the margin for gcloud's own process (retries took no time here).
    budget = cloudsql_export.plan_budget(21600, 1, 6, 0.01)
    longest = budget.share_seconds - budget.verify_seconds - WAIT_PROCESS_MARGIN_SECONDS
    assert longest - 10 <= int(timeout_flags[0].removeprefix("--timeout=")) <= longest
    (describe,) = gcloud.calls("storage", "objects", "describe")
    assert without_quiet(describe) == [
        *("storage", "objects", "describe", uri, "--project=acme-prod", "--format=json")
    ], "the name is checked free before the export"
    (cat,) = gcloud.calls("storage", "cat")
    assert without_quiet(cat) == ["storage", "cat", uri, "--project=acme-prod"], "then read once"


@pytest.mark.parametrize(
    ("settings", "args", "offload"),
    [
        ({}, [], False),
        ({"EXPORT_OFFLOAD": "true"}, [], True),
        ({"EXPORT_OFFLOAD": "FALSE"}, [], False),
        ({"EXPORT_OFFLOAD": "true"}, ["--no-offload"], False),
        ({"EXPORT_OFFLOAD": "false"}, ["--offload"], True),
    ],
)
def test_offload_asks_for_a_serverless_export(
    gcloud: FakeGcloud, settings: dict[str, str], args: list[str], offload: bool
) -> None:
    run = gcloud.run(args, env=gcloud.base_env(EXPORT_DATABASES="app", **settings))

    assert run.returncode == 0, run.stderr
    (export,) = gcloud.calls("sql", "export", "sql")
    assert ("--offload" in export) is offload
    (operation,) = gcloud.state["operations"].values()
    assert operation["exportContext"]["offload"] is offload


def test_flags_override_the_environment(gcloud: FakeGcloud) -> None:
    env = gcloud.base_env(EXPORT_INSTANCE="other-instance", EXPORT_DATABASES="app,audit")

    run = gcloud.run(["--instance", "main-pg", "--databases", "billing"], env=env)

    assert run.returncode == 0, run.stderr
    assert [r["database"] for r in run.database_records] == ["billing"]
    assert [call[3] for call in gcloud.calls("sql", "export", "sql")] == ["main-pg"]


def test_runs_by_hand_as_a_file_with_flags_only(gcloud: FakeGcloud) -> None:
    env = {key: value for key, value in gcloud.base_env().items() if not key.startswith("EXPORT")}
    args = [
        *("--project", gcloud.project, "--instance", gcloud.instance, "--bucket", gcloud.bucket),
        *("--databases", "app", "--gcloud", str(gcloud.executable), "--retry-base-seconds", "0"),
    ]

    run = gcloud.run(args, env=env, as_file=True)

    assert run.returncode == 0, run.stderr
    assert_database_record(run.record_for("app"), "app", "succeeded")


# --- busy instance: retried with backoff ------------------------------------------------------


def test_a_busy_instance_is_retried_with_exponential_backoff(gcloud: FakeGcloud) -> None:
    gcloud.configure_instance(busy_responses=3)

    run = gcloud.run()

    assert run.returncode == 0, run.stderr
    assert run.record_for("app")["attempts"] == 4
    assert len(gcloud.export_calls_for("app")) == 4
    assert run.record_for("audit")["attempts"] == 1
    delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+) ?s", run.stderr)]
    assert delays == [0.01, 0.02, 0.04], "base, 2 x base, 4 x base"


def test_a_busy_instance_fails_after_the_last_attempt(gcloud: FakeGcloud) -> None:
    gcloud.configure_instance(busy_responses=1000)

    run = gcloud.run(EXPORT_DATABASES="app", EXPORT_MAX_ATTEMPTS="3")

    assert run.returncode == 1
    record = run.record_for("app")
    assert_database_record(record, "app", "failed")
    assert record["attempts"] == 3
    assert len(gcloud.export_calls_for("app")) == 3
    assert "another operation was already in progress" in record["error"]
    assert gcloud.calls("sql", "operations", "wait") == []
    assert run.summary["failed"] == ["app"]


# --- failures that must not be retried --------------------------------------------------------


def test_permission_denied_is_reported_without_retrying(gcloud: FakeGcloud) -> None:
    gcloud.configure_instance(caller_can_export=False)

    run = gcloud.run()

    assert run.returncode == 1
    for database in ("app", "audit"):
        record = run.record_for(database)
        assert_database_record(record, database, "failed")
        assert record["attempts"] == 1
        assert "not authorized" in record["error"]
        assert "cloudsql.instances.export" in record["error"], "says which permission is needed"
        assert len(gcloud.export_calls_for(database)) == 1
    assert run.summary["failed"] == ["app", "audit"]


def test_a_missing_database_fails_alone_and_the_others_still_export(
    gcloud: FakeGcloud,
) -> None:
    run = gcloud.run(EXPORT_DATABASES="app,ghost,audit")

    assert run.returncode == 1
    assert [r["database"] for r in run.database_records] == ["app", "ghost", "audit"]
    ghost = run.record_for("ghost")
    assert_database_record(ghost, "ghost", "failed")
    assert 'database "ghost" does not exist' in ghost["error"]
    assert ghost["attempts"] == 1
    assert len(gcloud.export_calls_for("ghost")) == 1
    for database in ("app", "audit"):
        assert_database_record(run.record_for(database), database, "succeeded")
    assert run.summary["status"] == "failed"
    assert run.summary["severity"] == "ERROR"
    assert run.summary["failed"] == ["ghost"]
    assert run.summary["databases"] == 3


def test_an_operation_done_with_an_error_fails_with_googles_message(gcloud: FakeGcloud) -> None:
    gcloud.configure(
        operation_error={"code": "ERROR_RDBMS", "message": "pg_dump: error: query failed"}
    )
    gcloud.set_outcome("app", "operation_error")

    run = gcloud.run()

    assert run.returncode == 1
    record = run.record_for("app")
    assert_database_record(record, "app", "failed")
    assert "[ERROR_RDBMS] pg_dump: error: query failed" in record["error"]
    (operation_name,) = [
        name
        for name, operation in gcloud.state["operations"].items()
        if operation["exportContext"]["databases"] == ["app"]
    ]
    assert operation_name in record["error"]
    assert_database_record(run.record_for("audit"), "audit", "succeeded")


# --- the object is verified -------------------------------------------------------------------


def test_success_without_an_object_is_a_failure(gcloud: FakeGcloud) -> None:
    gcloud.set_outcome("app", "no_object")

    run = gcloud.run(EXPORT_DATABASES="app")

    assert run.returncode == 1
    record = run.record_for("app")
    assert_database_record(record, "app", "failed")
    assert "export reported success but no object was written" in record["error"]


def test_an_existing_object_is_never_overwritten(gcloud: FakeGcloud) -> None:
    # The name carries the second the export starts, so occupy every second it could pick.
    now = calendar.timegm(time.gmtime())
    taken = {
        f"cloudsql/main-pg/app/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(second))}.sql.gz"
        for second in range(now - 5, now + 120)
    }
    for generation, name in enumerate(sorted(taken), start=11):
        gcloud.put_object(name, b"earlier", generation=generation)

    run = gcloud.run()

    assert run.returncode == 1
    record = run.record_for("app")
    assert_database_record(record, "app", "failed")
    assert "already exists" in record["error"]
    assert record["attempts"] == 0, "no export was started"
    assert gcloud.export_calls_for("app") == []
    objects = gcloud.state["objects"]
    for generation, name in enumerate(sorted(taken), start=11):
        assert objects[name] == {"size": 7, "generation": generation, "created": "x"}
        assert gcloud.object_bytes(f"gs://{gcloud.bucket}/{name}") == b"earlier"
    assert_database_record(run.record_for("audit"), "audit", "succeeded")


# --- waiting for the operation ----------------------------------------------------------------


def test_an_operation_outlasting_the_timeout_fails_naming_the_operation(
    gcloud: FakeGcloud,
) -> None:
    gcloud.set_outcome("app", "hang")

    run = gcloud.run(EXPORT_OPERATION_TIMEOUT_SECONDS="1")

    assert run.returncode == 1
    record = run.record_for("app")
    assert_database_record(record, "app", "failed")
    (operation_name,) = [
        name
        for name, operation in gcloud.state["operations"].items()
        if operation["exportContext"]["databases"] == ["app"]
    ]
    assert operation_name in record["error"]
    assert "gcloud sql operations describe" in record["error"], "tells how to inspect it"
    assert [c for c in gcloud.calls("sql", "operations", "wait") if operation_name in c]
    assert all("--timeout=1" in c for c in gcloud.calls("sql", "operations", "wait"))
    # The unfinished export keeps the instance busy, so the next database gets 409s but is tried.
    audit = run.record_for("audit")
    assert_database_record(audit, "audit", "failed")
    assert audit["attempts"] == 6, "EXPORT_MAX_ATTEMPTS defaults to 6"
    assert "another operation was already in progress" in audit["error"]


def test_a_wait_that_breaks_off_after_the_export_finished_still_succeeds(
    gcloud: FakeGcloud,
) -> None:
    gcloud.set_outcome("app", "wait_breaks_off_after_done")

    run = gcloud.run(EXPORT_DATABASES="app")

    assert run.returncode == 0, run.stderr
    assert_database_record(run.record_for("app"), "app", "succeeded")
    assert len(gcloud.calls("sql", "operations", "describe")) == 1, "asked the operation itself"


def test_a_wait_that_breaks_off_while_the_export_runs_waits_again(gcloud: FakeGcloud) -> None:
    """gcloud's `operations wait` gives up on the first HTTP error after 2 s of polling."""
    gcloud.set_outcome("app", "wait_breaks_off")

    run = gcloud.run(EXPORT_DATABASES="app")

    assert run.returncode == 0, run.stderr
    record = run.record_for("app")
    assert_database_record(record, "app", "succeeded")
    assert record["bytes"] == len(gcloud.default_dump)
    first, second = gcloud.calls("sql", "operations", "wait")
    assert gcloud.calls("sql", "operations", "describe"), "asked the operation after the failure"

    def timeout(call: list[str]) -> int:
        (flag,) = [argument for argument in call if argument.startswith("--timeout=")]
        return int(flag.removeprefix("--timeout="))

    assert 1 <= timeout(second) <= timeout(first), "waits only for the time left"


def test_sigterm_logs_the_interrupted_and_the_skipped_databases(gcloud: FakeGcloud) -> None:
    """Cloud Run stops a task that outlives its timeout with SIGTERM: the logs must say so."""
    gcloud.set_outcome("app", "hang")
    process = gcloud.start(EXPORT_DATABASES="app,audit,billing")
    gcloud.wait_for_call("sql", "operations", "wait")

    process.send_signal(signal.SIGTERM)
    run = gcloud.finish(process)

    assert run.returncode == 1
    app = run.record_for("app")
    assert_database_record(app, "app", "failed")
    assert "SIGTERM" in app["error"]
    (operation_name,) = gcloud.state["operations"]
    assert operation_name in app["error"], "names the export that may still be running"
    for skipped in ("audit", "billing"):
        assert_database_record(run.record_for(skipped), skipped, "failed")
    assert gcloud.calls("sql", "export", "sql") == gcloud.export_calls_for("app")
    assert run.summary["failed"] == ["app", "audit", "billing"]


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("EXPORT_PROJECT", None, "project"),
        ("EXPORT_PROJECT", "Acme_Prod", "project"),
        ("EXPORT_INSTANCE", "Main_PG", "instance"),
        ("EXPORT_BUCKET", "gs://acme-prod-db-backups", "gs://"),
        ("EXPORT_BUCKET", None, "bucket"),
        ("EXPORT_DATABASES", None, "database"),
        ("EXPORT_DATABASES", "app,,audit", "database"),
        ("EXPORT_DATABASES", "app,app", "database"),
        ("EXPORT_OFFLOAD", "yes", "true or false"),
        ("EXPORT_MAX_ATTEMPTS", "0", "from 1"),
        ("EXPORT_MAX_ATTEMPTS", "three", "whole number"),
        ("EXPORT_RETRY_BASE_SECONDS", "-1", "seconds"),
        ("EXPORT_OPERATION_TIMEOUT_SECONDS", "0", "from 1"),
        ("EXPORT_TASK_TIMEOUT_SECONDS", "0", "from 1"),
        ("EXPORT_TASK_TIMEOUT_SECONDS", "604801", "to 604800"),
        ("EXPORT_TASK_TIMEOUT_SECONDS", "1000", "at least 1111 s"),
        ("EXPORT_OPERATION_TIMEOUT_SECONDS", "20000", "the wait that"),
        ("EXPORT_GCLOUD", "/nonexistent/bin/gcloud", "executable"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable_the_value_and_what_is_allowed(
    gcloud: FakeGcloud, variable: str, value: str | None, allowed: str
) -> None:
    env = gcloud.base_env()
    if value is None:
        del env[variable]
    else:
        env[variable] = value

    run = gcloud.run(env=env)

    assert run.returncode == 2
    assert variable in run.stderr
    if value is not None:
        assert repr(value) in run.stderr
    assert allowed in run.stderr
    assert run.database_records == []
    assert gcloud.state["calls"] == [], "nothing was asked of Google"


def test_an_unknown_flag_is_a_usage_error(gcloud: FakeGcloud) -> None:
    run = gcloud.run(["--databse", "app"])

    assert run.returncode == 2
    assert "--databse" in run.stderr
    assert gcloud.state["calls"] == []


# --- the file itself --------------------------------------------------------------------------


def test_the_script_is_one_file_of_python_39_standard_library() -> None:
    source = SCRIPT.read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
