"""RestoreVerification, as the engine receives it: the weekly Cloud Run job in staging's VPC, its
trigger, its identities and what each may do, the metric on its passed lines, its two alerts, the
dashboard panel, the smoke outputs, production's listing grant, and the config errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ops.restore_drill.checks import CheckResult, Status
from ops.restore_drill.report import DrillReport
from ops.restore_verification import weekly
from tests.infra.stack_files import setting
from tests.infra.test_config import config_error
from tests.infra.test_export_job import grants_to
from tools.stack_render import RenderedStack, render

NS = "cloudsql-backups"
DIGEST = "europe-west1-docker.pkg.dev/p/r/restore-verification@sha256:" + "ab" * 32
STAGING_EMAIL = "sql-verify-job-staging@acme-scheduling-staging.iam.gserviceaccount.com"
JOB = "sql-verify-staging"


@pytest.fixture(scope="module")
def staging() -> RenderedStack:
    return render("staging", preview=False)


@pytest.fixture(scope="module")
def prod() -> RenderedStack:
    return render("prod", preview=False)


def job_member(stack: RenderedStack) -> str:
    return f"serviceAccount:{stack.by_name('restore-verification-job-sa').outputs['email']}"


def template(stack: RenderedStack) -> dict[str, Any]:
    inputs: dict[str, Any] = stack.by_name("restore-verification-job").inputs
    spec: dict[str, Any] = inputs["template"]["template"]
    return spec


def test_the_job_runs_the_entry_point_in_staging_s_vpc_with_a_digest_pinned_image(
    staging: RenderedStack,
) -> None:
    spec = template(staging)
    [container] = spec["containers"]
    assert container["image"] == setting("staging", f"{NS}:restore_verification_image")
    assert "@sha256:" in container["image"]
    assert container["commands"] == ["/app/.venv/bin/python", "-m", "ops.restore_verification"]
    assert spec["vpcAccess"] == {
        "egress": "PRIVATE_RANGES_ONLY",
        "networkInterfaces": [{"network": setting("staging", f"{NS}:vpc_network")}],
    }
    assert spec["serviceAccount"] == STAGING_EMAIL
    assert spec["maxRetries"] == 0


def test_the_job_verifies_prods_exports_into_the_staging_instance(staging: RenderedStack) -> None:
    [container] = template(staging)["containers"]
    env = {e["name"]: e["value"] for e in container["envs"]}
    assert env == {
        "VERIFY_SOURCE_BUCKET": setting("prod", f"{NS}:backup_bucket_name"),
        "VERIFY_SOURCE_INSTANCE": setting("prod", f"{NS}:instance_name"),
        "VERIFY_DATABASES": ",".join(setting("staging", f"{NS}:export_databases")),
        "VERIFY_STAGING_PROJECT": setting("staging", "gcp:project"),
        "VERIFY_STAGING_INSTANCE": setting("staging", f"{NS}:instance_name"),
        "VERIFY_DB_USER": STAGING_EMAIL,
        "VERIFY_EXPORT_INTERVAL_HOURS": "24",
    }
    # What the job sets is what the entry point accepts.
    settings = weekly.VerificationSettings.from_environment(env)
    assert settings.databases == tuple(setting("staging", f"{NS}:export_databases"))


def test_a_weekly_trigger_that_may_start_this_job_only(staging: RenderedStack) -> None:
    schedule = staging.by_name("restore-verification-schedule").inputs
    assert schedule["schedule"] == "0 7 * * 1"
    assert schedule["paused"] is False
    project, region = setting("staging", "gcp:project"), setting("staging", "gcp:region")
    assert schedule["httpTarget"]["uri"] == (
        f"https://run.googleapis.com/v2/projects/{project}/locations/{region}/jobs/{JOB}:run"
    )
    scheduler = f"serviceAccount:{schedule['httpTarget']['oauthToken']['serviceAccountEmail']}"
    assert [(g.role, g.resource.inputs["name"]) for g in grants_to(staging, scheduler)] == [
        ("roles/run.invoker", JOB)
    ]


def test_the_job_may_act_on_the_staging_instance_only_and_list_exports_only(
    staging: RenderedStack, prod: RenderedStack
) -> None:
    member = job_member(staging)
    granted = grants_to(staging, member)
    role_names = {
        r.outputs["name"]: r.inputs["permissions"]
        for r in staging.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")
    }
    instance = setting("staging", f"{NS}:instance_name")
    assert sorted(g.role for g in granted) == sorted(
        [
            f"projects/{setting('staging', 'gcp:project')}/roles/restoreVerifierStaging",
            "roles/cloudsql.client",
            "roles/cloudsql.instanceUser",
        ]
    )
    for grant in granted:
        assert f'/instances/{instance}"' in grant.resource.inputs["condition"]["expression"]
    verifier_role = f"projects/{setting('staging', 'gcp:project')}/roles/restoreVerifierStaging"
    # No instance-level power beyond import: never delete, clone, patch or export an instance.
    assert sorted(role_names[verifier_role]) == [
        "cloudsql.databases.create",
        "cloudsql.databases.delete",
        "cloudsql.databases.get",
        "cloudsql.instances.get",
        "cloudsql.instances.import",
    ]
    # Production lets this account list its exports, nothing more.
    [listing] = grants_to(prod, f"serviceAccount:{STAGING_EMAIL}")
    assert listing.resource.inputs["bucket"] == setting("prod", f"{NS}:backup_bucket_name")
    prod_roles = {
        r.outputs["name"]: r.inputs["permissions"]
        for r in prod.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")
    }
    assert prod_roles[listing.role] == ["storage.objects.list"]


def test_the_job_logs_in_as_an_iam_database_user(staging: RenderedStack) -> None:
    user = staging.by_name("restore-verification-db-user").inputs
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user["name"] == STAGING_EMAIL.removesuffix(".gserviceaccount.com")
    assert user["instance"] == setting("staging", f"{NS}:instance_name")


def test_metric_counts_passed_database_lines_of_this_job(staging: RenderedStack) -> None:
    metric = staging.by_name("restore-verification-passed").inputs
    assert metric["name"] == "restore_verification_passed_staging"
    assert metric["filter"] == (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{JOB}" '
        'AND jsonPayload.event="restore_verification" AND jsonPayload.scope="database" '
        'AND jsonPayload.status="passed"'
    )
    assert metric["labelExtractors"] == {"database": "EXTRACT(jsonPayload.database)"}
    # The entry point writes exactly the fields the filter and extractor read.
    line = weekly.database_line("scheduling", _passed_report())
    assert (line["event"], line["scope"], line["status"]) == (
        "restore_verification",
        "database",
        "passed",
    )


def _passed_report() -> DrillReport:
    report = DrillReport("export", "gs://b/o", "s/d", None, datetime(2026, 1, 1, tzinfo=UTC), 1)
    report.check_results = [CheckResult("tables_present", Status.passed, "ok")]
    return report


def test_two_alerts_page_on_failure_and_on_eight_days_without_a_pass(
    staging: RenderedStack,
) -> None:
    failed = staging.by_name("restore-verification-restore-verification-failed").inputs
    missing = staging.by_name("restore-verification-restore-verification-missing").inputs
    channels = staging.by_name("alerts-export-failed").inputs["notificationChannels"]
    for policy in (failed, missing):
        assert policy["enabled"] is True
        assert policy["notificationChannels"] == channels != []
    log_match, executions = failed["conditions"]
    assert 'jsonPayload.event="restore_verification"' in log_match["conditionMatchedLog"]["filter"]
    assert "severity>=ERROR" in log_match["conditionMatchedLog"]["filter"]
    assert f'resource.labels.job_name="{JOB}"' in executions["conditionThreshold"]["filter"]
    assert failed["alertStrategy"]["notificationRateLimit"] == {"period": "3600s"}
    [condition] = missing["conditions"]
    promql = condition["conditionPrometheusQueryLanguage"]
    assert "logging_googleapis_com:user_restore_verification_passed_staging" in promql["query"]
    assert "[192h]" in promql["query"]
    assert 'or label_replace(vector(0), "database", "scheduling"' in promql["query"]
    assert promql["disableMetricValidation"] is True
    for policy, anchor in ((failed, "failed"), (missing, "missing")):
        assert policy["documentation"]["content"].endswith(
            f"DR_RUNBOOK.md#alert-restore-verification-{anchor}"
        )


def test_smoke_outputs_and_dashboard_show_the_verification(staging: RenderedStack) -> None:
    assert "restore_verification_passed_staging" in staging.outputs["log_metric_names"]
    names = staging.outputs["alert_policy_names"]
    for key in ("failed", "missing"):
        policy = staging.by_name(f"restore-verification-restore-verification-{key}")
        assert policy.outputs["name"] in names
    dashboard = json.loads(
        staging.one("gcp:monitoring/dashboard:Dashboard").inputs["dashboardJson"]
    )
    [panel] = [
        t["widget"]
        for t in dashboard["mosaicLayout"]["tiles"]
        if t["widget"]["title"].startswith("Last verified backups")
    ]
    assert 'jsonPayload.status="passed"' in panel["logsPanel"]["filter"]


def test_prod_runs_no_verification_of_its_own(prod: RenderedStack) -> None:
    assert not [r for r in prod.resources if r.name.startswith("restore-verification")]


@pytest.mark.parametrize(
    ("stack", "overrides", "expected"),
    [
        ("prod", {"restore_verification_enabled": "true", "restore_verification_image": DIGEST},
         "restore_verification_enabled = true in a prod stack"),
        ("staging", {"restore_verification_image": "europe-west1-docker.pkg.dev/p/r/img:1.0.0"},
         "allowed: '' or an image pinned by digest"),
        ("staging", {"restore_verification_image": ""},
         "restore_verification_image is empty"),
        ("staging", {"restore_verification_schedule": "0 7 1 * *"},
         "allowed: at most weekly"),
        ("staging", {"restore_verification_subnetwork": "default"},
         "projects/<project>/regions/<region>/subnetworks/<name>"),
        ("prod", {"restore_verification_service_account": "someone@example.com"},
         "allowed: '' or the staging stack's verifier"),
    ],
)  # fmt: skip
def test_invalid_verification_settings_are_refused_before_anything_is_registered(
    stack: str, overrides: dict[str, str], expected: str
) -> None:
    assert expected in config_error(stack, **overrides)


def test_verifying_its_own_exports_lists_its_own_bucket() -> None:
    own = render(
        "staging",
        preview=False,
        overrides={
            "restore_verification_source_bucket": "",
            "restore_verification_source_instance": "",
        },
    )
    [container] = template(own)["containers"]
    env = {e["name"]: e["value"] for e in container["envs"]}
    assert env["VERIFY_SOURCE_BUCKET"] == setting("staging", f"{NS}:backup_bucket_name")
    assert env["VERIFY_SOURCE_INSTANCE"] == setting("staging", f"{NS}:instance_name")
    [listing] = [
        g
        for g in grants_to(own, f"serviceAccount:{STAGING_EMAIL}")
        if "bucket" in g.resource.inputs
    ]
    assert listing.resource.inputs["bucket"] == setting("staging", f"{NS}:backup_bucket_name")
