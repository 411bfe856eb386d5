"""Object Retention Lock on exports: the real script, against the fake gcloud, gives every verified
dump a retain-until of its export time + EXPORT_RETENTION_DAYS in the configured mode, and never
touches a dump that failed. A dump it cannot retain is reported as a failed export (the promise that
nobody can delete it early would be broken), with what to fix."""

from __future__ import annotations

import calendar
import re
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud, ScriptRun

URI = "gs://acme-prod-db-backups/cloudsql/main-pg/app/20261125T033012Z.sql.gz"
OBJECT = "cloudsql/main-pg/app/20261125T033012Z.sql.gz"
STAMP = re.compile(r"/(\d{8}T\d{6}Z)\.sql\.gz$")
DAY = 86_400


def run_locked(gcloud: FakeGcloud, mode: str = "Locked", days: str = "30") -> ScriptRun:
    return gcloud.run(EXPORT_RETENTION_MODE=mode, EXPORT_RETENTION_DAYS=days)


def stored(gcloud: FakeGcloud, uri: str) -> dict[str, Any]:
    found: dict[str, Any] = gcloud.state["objects"][uri.removeprefix(f"gs://{gcloud.bucket}/")]
    return found


def epoch(rfc3339: str) -> int:
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def stamp_epoch(uri: str) -> int:
    match = STAMP.search(uri)
    assert match, uri
    return calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%SZ"))


def retention_calls(gcloud: FakeGcloud) -> list[list[str]]:
    return gcloud.calls("storage", "objects", "update")


@pytest.mark.parametrize("mode", ["Locked", "Unlocked"])
def test_every_verified_dump_is_retained_for_the_retention_days_from_its_export_time(
    gcloud: FakeGcloud, mode: str
) -> None:
    run = run_locked(gcloud, mode, "30")

    assert run.returncode == 0, run.stderr
    assert [r["status"] for r in run.database_records] == ["succeeded", "succeeded"]
    for record in run.database_records:
        retention = stored(gcloud, record["object"])["retention"]
        assert retention["mode"] == mode
        assert epoch(retention["retainUntilTime"]) == stamp_epoch(record["object"]) + 30 * DAY
    assert len(retention_calls(gcloud)) == 2


def test_retention_is_set_after_verification_with_the_exact_gcloud_flags(
    gcloud: FakeGcloud,
) -> None:
    run = run_locked(gcloud, "Locked", "45")

    uri = run.record_for("app")["object"]
    calls = [call for call in gcloud.state["calls"] if uri in call]
    # Refuse to overwrite, export, verify, then retain: in that order.
    assert [call[:3] for call in calls] == [
        ["storage", "objects", "describe"],
        ["sql", "export", "sql"],
        ["storage", "cat", uri],
        ["storage", "objects", "update"],
    ]
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp_epoch(uri) + 45 * DAY))
    assert [a for a in calls[-1] if a != "--quiet"] == [
        "storage",
        "objects",
        "update",
        uri,
        "--project=acme-prod",
        f"--retain-until={until}",
        "--retention-mode=Locked",
        "--format=json",
    ]


@pytest.mark.parametrize("outcome", ["operation_error", "empty_object", "no_object"])
def test_a_failed_export_is_never_retained(gcloud: FakeGcloud, outcome: str) -> None:
    gcloud.set_outcome("audit", outcome)

    run = run_locked(gcloud)

    assert run.returncode == 1
    assert run.record_for("audit")["status"] == "failed"
    failed_uri = run.record_for("audit")["object"]
    assert [call for call in retention_calls(gcloud) if failed_uri in call] == []
    written = gcloud.state["objects"].get(failed_uri.removeprefix(f"gs://{gcloud.bucket}/"))
    assert written is None or "retention" not in written
    # The other database is exported and retained as usual.
    assert "retention" in stored(gcloud, run.record_for("app")["object"])


def test_without_a_retention_mode_nothing_is_retained(gcloud: FakeGcloud) -> None:
    run = gcloud.run()

    assert run.returncode == 0, run.stderr
    assert retention_calls(gcloud) == []


def test_a_caller_without_set_retention_fails_the_export_and_says_what_is_missing(
    gcloud: FakeGcloud,
) -> None:
    gcloud.configure(caller_can_set_retention=False)

    run = run_locked(gcloud)

    assert run.returncode == 1
    for record in run.database_records:
        assert record["status"] == "failed"
        assert "could not retain it until" in record["error"]
        assert "storage.objects.setRetention and storage.objects.update" in record["error"]


def test_a_bucket_without_object_retention_fails_the_export_with_googles_reason(
    gcloud: FakeGcloud,
) -> None:
    gcloud.configure(bucket_object_retention=False)

    run = run_locked(gcloud)

    assert run.returncode == 1
    assert "Object retention is not enabled for this bucket" in run.record_for("app")["error"]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("EXPORT_RETENTION_MODE", "locked", "Locked, Unlocked or none"),
        ("EXPORT_RETENTION_DAYS", "0", "from 1 to 36500"),
    ],
)
def test_invalid_retention_settings_are_refused_before_any_export(
    gcloud: FakeGcloud, name: str, value: str, allowed: str
) -> None:
    run = gcloud.run(env=gcloud.base_env(**{name: value}))

    assert run.returncode == 2
    assert name in run.stderr
    assert allowed in run.stderr
    assert gcloud.state["calls"] == []


# --- the fake refuses what Cloud Storage refuses --------------------------------------------


def update(gcloud: FakeGcloud, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gcloud.executable), "storage", "objects", "update", URI, *flags],
        env=gcloud.base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("flags", "exit_code", "stderr"),
    [
        (
            ["--retain-until=2027-01-01T00:00:00Z", "--retention-mode=Compliance"],
            2,
            "Invalid choice: 'Compliance'",
        ),
        (
            ["--retain-until=tomorrow", "--retention-mode=Locked"],
            2,
            "Failed to parse date/time: tomorrow",
        ),
        (
            ["--retain-until=2027-01-01T00:00:00Z", "--retention-mode=Locked", "--clear-retention"],
            3,
            "",
        ),
    ],
)
def test_the_fake_refuses_bad_retention_flags(
    gcloud: FakeGcloud, flags: list[str], exit_code: int, stderr: str
) -> None:
    gcloud.put_object(OBJECT, b"0123456789")

    completed = update(gcloud, *flags)

    assert completed.returncode == exit_code
    assert stderr in completed.stderr


def test_the_fake_reports_a_missing_object_like_gcloud_storage(gcloud: FakeGcloud) -> None:
    completed = update(gcloud, "--retain-until=2027-01-01T00:00:00Z", "--retention-mode=Locked")

    assert completed.returncode == 1
    assert f"The following URLs matched no objects or files:\n-{URI}" in completed.stderr


def test_the_fake_never_shortens_a_locked_retention(gcloud: FakeGcloud) -> None:
    gcloud.put_object(OBJECT, b"0123456789")
    assert (
        update(gcloud, "--retain-until=2027-06-01T00:00:00Z", "--retention-mode=Locked").returncode
        == 0
    )

    shorter = update(
        gcloud,
        "--retain-until=2027-01-01T00:00:00Z",
        "--retention-mode=Locked",
        "--override-unlocked-retention",
    )

    assert shorter.returncode == 1
    assert "cannot be shortened" in shorter.stderr
    assert stored(gcloud, URI)["retention"]["retainUntilTime"] == "2027-06-01T00:00:00Z"


def test_the_fake_shortens_an_unlocked_retention_only_with_the_override(
    gcloud: FakeGcloud,
) -> None:
    gcloud.put_object(OBJECT, b"0123456789")
    update(gcloud, "--retain-until=2027-06-01T00:00:00Z", "--retention-mode=Unlocked")

    refused = update(gcloud, "--retain-until=2027-01-01T00:00:00Z", "--retention-mode=Unlocked")
    allowed = update(
        gcloud,
        "--retain-until=2027-01-01T00:00:00Z",
        "--retention-mode=Unlocked",
        "--override-unlocked-retention",
    )

    assert refused.returncode == 1
    assert "--override-unlocked-retention" in refused.stderr
    assert allowed.returncode == 0
