"""`make export STACK=...` (python -m ops.export.manual): reads the stack's outputs with a fake
pulumi and runs the very same export script against the fake gcloud, passing its output and
exit code through."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.export.conftest import run_manual

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud, FakePulumi


def prod_outputs(**changes: Any) -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "project": "acme-prod",
        "region": "europe-west1",
        "instance_name": "main-pg",
        "instance_connection_name": "acme-prod:europe-west1:main-pg",
        "backup_bucket_name": "acme-prod-db-backups",
        "backup_bucket_url": "gs://acme-prod-db-backups",
        "export_databases": ["app", "billing"],
        "export_offload": True,
    }
    outputs.update(changes)
    return outputs


def test_exports_the_stacks_databases_with_its_settings(
    gcloud: FakeGcloud, pulumi: FakePulumi
) -> None:
    pulumi.set_stacks({"prod": prod_outputs(), "staging": prod_outputs(project="acme-staging")})

    run = run_manual(["--stack", "prod"], pulumi.env(gcloud))

    assert run.returncode == 0, run.stderr
    assert pulumi.calls == [["stack", "output", "--json", "--stack", "prod"]]
    assert [r["database"] for r in run.database_records] == ["app", "billing"]
    assert all(r["status"] == "succeeded" for r in run.database_records)
    assert run.summary["status"] == "succeeded"
    exports = gcloud.calls("sql", "export", "sql")
    assert [call[3] for call in exports] == ["main-pg", "main-pg"]
    assert all("--offload" in call and "--project=acme-prod" in call for call in exports)
    for record in run.database_records:
        assert record["object"].startswith("gs://acme-prod-db-backups/cloudsql/main-pg/")


def test_the_stack_output_wins_over_an_export_variable_in_the_shell(
    gcloud: FakeGcloud, pulumi: FakePulumi
) -> None:
    pulumi.set_stacks({"prod": prod_outputs(export_offload=False)})
    env = pulumi.env(gcloud)
    env.update(EXPORT_OFFLOAD="true", EXPORT_DATABASES="audit")

    run = run_manual(["--stack", "prod"], env)

    assert run.returncode == 0, run.stderr
    assert [r["database"] for r in run.database_records] == ["app", "billing"]
    assert not any("--offload" in call for call in gcloud.calls("sql", "export", "sql"))


def test_a_failed_export_fails_the_command_with_the_scripts_output(
    gcloud: FakeGcloud, pulumi: FakePulumi
) -> None:
    pulumi.set_stacks({"prod": prod_outputs()})
    gcloud.set_outcome("billing", "no_object")

    run = run_manual(["--stack", "prod"], pulumi.env(gcloud))

    assert run.returncode == 1
    assert run.record_for("app")["status"] == "succeeded"
    assert run.record_for("billing")["status"] == "failed"
    assert "no object was written" in run.record_for("billing")["error"]
    assert run.summary["failed"] == ["billing"]


def test_other_arguments_are_passed_on_to_the_script(
    gcloud: FakeGcloud, pulumi: FakePulumi
) -> None:
    pulumi.set_stacks({"prod": prod_outputs(export_databases=["app"])})
    gcloud.configure_instance(busy_responses=1000)

    run = run_manual(["--stack", "prod", "--max-attempts", "2"], pulumi.env(gcloud))

    assert run.returncode == 1
    assert run.record_for("app")["attempts"] == 2
    assert len(gcloud.export_calls_for("app")) == 2


def test_a_missing_pulumi_cli_is_a_clear_error(gcloud: FakeGcloud, pulumi: FakePulumi) -> None:
    env = pulumi.env(gcloud)
    env["PATH"] = str(gcloud.directory / "nothing-here")

    run = run_manual(["--stack", "prod"], env)

    assert run.returncode == 2
    assert "pulumi CLI was not found" in run.stderr
    assert "https://www.pulumi.com/docs/install/" in run.stderr
    assert run.records == []
    assert gcloud.state["calls"] == []


def test_an_unknown_stack_reports_pulumis_error(gcloud: FakeGcloud, pulumi: FakePulumi) -> None:
    pulumi.set_stacks({"prod": prod_outputs()})

    run = run_manual(["--stack", "qa"], pulumi.env(gcloud))

    assert run.returncode == 2
    assert "no stack named 'qa' found" in run.stderr
    assert gcloud.state["calls"] == []


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (
            {"project": "acme-prod", "instance_name": "main-pg"},
            "'backup_bucket_name', 'export_databases', 'export_offload'",
        ),
        (prod_outputs(export_databases="app"), "export_databases"),
        (prod_outputs(export_databases=[]), "export_databases"),
        (prod_outputs(export_offload="true"), "export_offload"),
        (prod_outputs(instance_name=""), "instance_name"),
    ],
)
def test_outputs_that_do_not_describe_an_export_are_rejected(
    gcloud: FakeGcloud, pulumi: FakePulumi, outputs: dict[str, Any], expected: str
) -> None:
    pulumi.set_stacks({"prod": outputs})

    run = run_manual(["--stack", "prod"], pulumi.env(gcloud))

    assert run.returncode == 2
    assert expected in run.stderr
    assert gcloud.state["calls"] == []


def test_the_stack_is_required(gcloud: FakeGcloud, pulumi: FakePulumi) -> None:
    run = run_manual([], pulumi.env(gcloud))

    assert run.returncode == 2
    assert "--stack" in run.stderr
    assert pulumi.calls == []


def test_a_parallel_stack_is_exported_in_parallel_by_hand_too(
    gcloud: FakeGcloud, pulumi: FakePulumi, directory_dump: Path
) -> None:
    gcloud.export_writes_directory(directory_dump)
    outputs = prod_outputs(export_format="parallel", export_threads=2, export_databases=["app"])
    pulumi.set_stacks({"prod": outputs})

    run = run_manual(["--stack", "prod"], pulumi.env(gcloud))

    assert run.returncode == 0, run.stderr
    (export,) = gcloud.calls("sql", "export", "sql")
    assert "--parallel" in export
    assert "--threads=2" in export
    assert run.database_records[0]["format"] == "parallel"


@pytest.mark.parametrize("threads", [-1, "2", True])
def test_a_bad_threads_output_is_refused(
    gcloud: FakeGcloud, pulumi: FakePulumi, threads: object
) -> None:
    pulumi.set_stacks({"prod": prod_outputs(export_format="parallel", export_threads=threads)})

    run = run_manual(["--stack", "prod"], pulumi.env(gcloud))

    assert run.returncode == 2
    assert "stack output 'export_threads' should be a whole number >= 0" in run.stderr
    assert gcloud.calls("sql") == []
