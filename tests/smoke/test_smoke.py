"""The smoke test, end to end through its REST client, against a fake project that answers like
Google's APIs (``tests/smoke/fake_google.py``): it passes on a healthy stack and names every way a
first deploy can be broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops.smoke.__main__ import main
from ops.smoke.rest import Endpoints, RestSmokeCloud
from ops.smoke.smoke import SmokeReport, StackUnderTest, Waiting, run_smoke
from tests.smoke.fake_google import START, FakeGoogle

PROJECT = "acme-scheduling-staging"
POLICIES = (
    f"projects/{PROJECT}/alertPolicies/111",
    f"projects/{PROJECT}/alertPolicies/222",
)
METRICS = ("cloudsql_export_success_staging", "cloudsql_export_bytes_staging")
OUTPUTS: dict[str, Any] = {
    "project": PROJECT,
    "region": "europe-west1",
    "instance_name": "scheduling-staging",
    "backup_bucket_name": "acme-scheduling-staging-sql-backups",
    "export_job_name": "sql-export-staging",
    "export_databases": ["scheduling", "audit"],
    "alert_policy_names": list(POLICIES),
    "log_metric_names": list(METRICS),
    "export_offload": False,
}


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle(
        project=PROJECT,
        region="europe-west1",
        instance="scheduling-staging",
        bucket="acme-scheduling-staging-sql-backups",
        job="sql-export-staging",
        databases=("scheduling", "audit"),
        alert_policies=dict.fromkeys(POLICIES, True),
        log_metrics=dict.fromkeys(METRICS, 'jsonPayload.event="cloudsql_export"'),
    )


def smoke(google: FakeGoogle, **waiting: float) -> SmokeReport:
    cloud = RestSmokeCloud(google.session(), Endpoints())
    settings = Waiting(
        interval_seconds=15,
        sleep=google.clock.sleep,
        monotonic=google.clock.monotonic,
        **waiting,
    )
    return run_smoke(cloud, StackUnderTest.from_outputs(OUTPUTS), settings)


def only_failure(report: SmokeReport) -> str:
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


def test_a_healthy_stack_passes(google: FakeGoogle) -> None:
    report = smoke(google)
    assert report.ok, report.failures
    executions = list(google.executions)
    assert len(executions) == 1
    for database in ("scheduling", "audit"):
        assert any(f"database {database}: verified export gs://" in line for line in report.passed)
    assert sum("exists and is enabled" in line for line in report.passed) == 2
    assert sum(line.startswith("log-based metric") for line in report.passed) == 2
    # It waited for the execution and for the log lines, as the real APIs need.
    assert google.clock.now > START


def test_old_exports_do_not_count_as_new(google: FakeGoogle) -> None:
    google.execution_fails = ""
    google.put_object(
        "cloudsql/scheduling-staging/scheduling/20261204T033000Z.sql.gz", b"\x1f\x8bold", START
    )
    google.put_object(
        "cloudsql/scheduling-staging/audit/20261204T033000Z.sql.gz", b"\x1f\x8bold", START
    )
    google.clock.sleep(3600)
    assert smoke(google).ok


def test_a_failed_execution_fails_with_cloud_runs_message(google: FakeGoogle) -> None:
    google.execution_fails = "Task sql-export-staging-00001-abc failed: the container exited with 1"
    failure = only_failure(smoke(google))
    assert "export execution" in failure and "failed (0 of 1 task(s) succeeded, 1 failed" in failure
    assert "the container exited with 1" in failure


def test_an_execution_that_does_not_finish_in_time_fails(google: FakeGoogle) -> None:
    google.polls_until_done = 100
    failure = only_failure(smoke(google, execution_timeout_seconds=60))
    assert "did not finish within 60 s" in failure


def test_a_job_that_cannot_be_started_fails_with_googles_error(google: FakeGoogle) -> None:
    google.denied.add("run")
    failure = only_failure(smoke(google))
    assert failure.startswith("export job sql-export-staging could not be started: HTTP 403")
    assert "PERMISSION_DENIED" in failure


@pytest.mark.parametrize(
    ("knob", "expected"),
    [
        ("empty_for", "is empty"),
        ("unverified_for", "does not say the job verified the dump"),
        ("no_log_for", "no succeeded log line from the export script"),
    ],
)
def test_a_bad_export_of_one_database_fails_for_that_database(
    google: FakeGoogle, knob: str, expected: str
) -> None:
    getattr(google, knob).add("audit")
    failure = only_failure(smoke(google, logs_timeout_seconds=60))
    assert failure.startswith("database audit: ")
    assert expected in failure


def test_a_success_line_whose_size_disagrees_with_the_bucket_fails(google: FakeGoogle) -> None:
    google.log_bytes_off_by = 7
    report = smoke(google)
    assert len(report.failures) == 2
    assert all("the success line says" in failure for failure in report.failures)


def test_unreadable_logs_name_the_missing_role(google: FakeGoogle) -> None:
    google.denied.add("logging")
    report = smoke(google)
    assert any("roles/logging.viewer" in failure for failure in report.failures)


def test_missing_or_disabled_policies_and_missing_metrics_fail(google: FakeGoogle) -> None:
    google.alert_policies[POLICIES[0]] = False
    google.alert_policies[POLICIES[1]] = None
    del google.log_metrics[METRICS[1]]
    report = smoke(google)
    assert report.failures[:3] == [
        f"alert policy {POLICIES[0]} (policy 111) is disabled",
        f"alert policy {POLICIES[1]} (policy 222) is not reported as enabled",
        f"log-based metric {METRICS[1]} does not exist in {PROJECT}",
    ]
    del google.alert_policies[POLICIES[0]]
    google.disabled_metrics.add(METRICS[0])
    report = smoke(google)
    assert f"alert policy {POLICIES[0]} does not exist" in report.failures
    assert f"log-based metric {METRICS[0]} is disabled: it counts nothing" in report.failures


# -- Command line -------------------------------------------------------------------------------


def test_main_writes_the_job_summary_and_exits_1_on_failure(
    google: FakeGoogle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    google.execution_fails = "boom"
    google.polls_until_done = 0
    summary = tmp_path / "summary.md"
    code = main(
        ["--stack", "staging", "--logs-timeout-seconds", "1"],
        cloud_factory=lambda: RestSmokeCloud(google.session()),
        read_outputs=lambda stack, pulumi: dict(OUTPUTS),
        environ={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 1
    text = summary.read_text()
    assert text.startswith("## Smoke test of stack `staging`: FAILED (1 problem(s))")
    assert "boom" in text
    assert "boom" in capsys.readouterr().out


def test_main_passes_and_exits_0(google: FakeGoogle, tmp_path: Path) -> None:
    google.polls_until_done = 0
    google.log_delay_reads = 0
    summary = tmp_path / "summary.md"
    code = main(
        ["--stack", "staging"],
        cloud_factory=lambda: RestSmokeCloud(google.session()),
        read_outputs=lambda stack, pulumi: dict(OUTPUTS),
        environ={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 0
    assert summary.read_text().startswith("## Smoke test of stack `staging`: passed")


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({k: v for k, v in OUTPUTS.items() if k != "alert_policy_names"}, "'alert_policy_names'"),
        ({**OUTPUTS, "export_databases": []}, "'export_databases' should be a non-empty list"),
        ({**OUTPUTS, "project": ""}, "'project' should be a non-empty string"),
    ],
)
def test_unusable_outputs_exit_2_without_touching_google(
    google: FakeGoogle, outputs: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    code = main(
        ["--stack", "prod"],
        cloud_factory=lambda: RestSmokeCloud(google.session()),
        read_outputs=lambda stack, pulumi: outputs,
        environ={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 2
    assert expected in summary.read_text()
    assert google.requests_seen == []


def test_main_reads_the_outputs_of_the_named_stack_through_pulumi(
    google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real `pulumi stack output --json --stack` path, with the export tests' fake pulumi CLI."""
    fake = Path(__file__).resolve().parents[1] / "export" / "fake_pulumi.py"
    pulumi = tmp_path / "pulumi"
    pulumi.write_text(fake.read_text())
    pulumi.chmod(0o755)
    stacks = tmp_path / "stacks.json"
    stacks.write_text(json.dumps({"staging": OUTPUTS}))
    monkeypatch.setenv("FAKE_PULUMI_STACKS", str(stacks))
    monkeypatch.setenv("FAKE_PULUMI_CALLS", str(tmp_path / "calls.jsonl"))
    google.polls_until_done = 0
    google.log_delay_reads = 0
    code = main(
        ["--stack", "staging", "--pulumi", str(pulumi)],
        cloud_factory=lambda: RestSmokeCloud(google.session()),
        environ={},
    )
    assert code == 0
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == [["stack", "output", "--json", "--stack", "staging"]]
    assert main(["--stack", "nope", "--pulumi", str(pulumi)], environ={}) == 2


def test_a_parallel_export_passes_by_its_folder(google: FakeGoogle) -> None:
    google.parallel_for = {"audit"}

    report = smoke(google)

    assert report.ok, report.failures
    (line,) = [line for line in report.passed if line.startswith("database audit:")]
    assert "/audit/" in line
    assert ".sql.gz" not in line


def test_a_parallel_export_whose_files_disagree_with_the_line_fails(google: FakeGoogle) -> None:
    google.parallel_for = {"audit"}
    google.log_bytes_off_by = 1

    report = smoke(google)

    assert any(
        failure.startswith("database audit: the success line says") for failure in report.failures
    ), report.failures
