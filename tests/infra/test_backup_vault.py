"""Vaulted backups, retention-locked exports and the off-project copy, as the engine receives them.

The vaulted-backup alert is a log-match condition, evaluated here (with the Logging query language
evaluator of test_alerting) against ``tests/data/vault_backup_failed_entry.json``: a LogEntry in the
log Google documents for vaulted backup and restore jobs (``backupdr.googleapis.com%2Fbdr_backup_restore_jobs``,
https://cloud.google.com/backup-disaster-recovery/docs/monitor-reports/backupvault-backup-recovery-jobs)
whose ``jsonPayload`` is a ``BDRBackupRestoreJobLog`` (googleapis/googleapis
google/cloud/backupdr/logging/v1/bdr_log.proto) in proto3 JSON names (camelCase), with the job status
and category values of Google's job report (SUCCESSFUL, FAILED, RUNNING, SKIPPED; SCHEDULED_BACKUP,
ON_DEMAND_BACKUP, RESTORE). The entry's monitored resource and ``resourceType`` text are not
documented in what we found; the filter reads neither.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ops.export.cloudsql_export import retain_until
from tests.infra.stack_files import setting
from tests.infra.test_alerting import field_paths, matches, parse_query
from tools.stack_render import ProgramFailed, RegisteredResource, RenderedStack, render

REPO_ROOT = Path(__file__).resolve().parents[2]
FAILED_JOB_ENTRY = REPO_ROOT / "tests" / "data" / "vault_backup_failed_entry.json"
VAULT = "gcp:backupdisasterrecovery/backupVault:BackupVault"
PLAN = "gcp:backupdisasterrecovery/backupPlan:BackupPlan"
ASSOCIATION = "gcp:backupdisasterrecovery/backupPlanAssociation:BackupPlanAssociation"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
SERVICE = "gcp:projects/service:Service"
RUN_JOB = "gcp:cloudrunv2/job:Job"
TRANSFER = "gcp:storage/transferJob:TransferJob"
OTHER_PROJECT = "acme-backup-vaults"
EXPORT_TIMEOUT = timedelta(hours=6)


@cache
def _variant(stack: str, overrides_json: str) -> RenderedStack:
    return render(stack, preview=False, overrides=json.loads(overrides_json))


def variant(stack: str, **overrides: Any) -> RenderedStack:
    return _variant(stack, json.dumps(overrides, sort_keys=True))


def refusal(stack: str, **overrides: Any) -> str:
    with pytest.raises(ProgramFailed) as failure:
        render(stack, preview=True, overrides=overrides)
    return str(failure.value)


def named(stack: RenderedStack, name: str) -> RegisteredResource:
    return stack.by_name(name)


def env(stack: RenderedStack) -> dict[str, str]:
    containers = stack.by_name("export-job").inputs["template"]["template"]["containers"]
    return {e["name"]: e["value"] for e in containers[0]["envs"]}


def job_entry(stack: RenderedStack, **payload: Any) -> dict[str, Any]:
    project = setting(stack.stack, "gcp:project")
    text = FAILED_JOB_ENTRY.read_text().replace("acme-scheduling-prod", project)
    entry: dict[str, Any] = json.loads(text.replace("-prod", f"-{stack.stack}"))
    entry["jsonPayload"].update(payload)
    return entry


def alert_filter(stack: RenderedStack) -> str:
    [condition] = named(stack, "vault-backup-failed").inputs["conditions"]
    log_filter: str = condition["conditionMatchedLog"]["filter"]
    return log_filter


# -- Which stacks vault their backups --------------------------------------------------------


def test_prod_vaults_its_backups_and_staging_does_not(stack: RenderedStack) -> None:
    counts = [len(stack.of_type(kind)) for kind in (VAULT, PLAN, ASSOCIATION)]
    assert counts == ([1, 1, 1] if stack.stack == "prod" else [0, 0, 0])


def test_vault_sits_in_the_instance_region_with_the_enforced_retention() -> None:
    prod = variant("prod")
    vault = prod.one(VAULT)
    assert vault.inputs["location"] == setting("prod", "gcp:region")
    assert vault.inputs["project"] == setting("prod", "gcp:project")
    assert vault.inputs["backupMinimumEnforcedRetentionDuration"] == f"{30 * 86_400}s"
    # Same project as the instance: the strictest restriction Google offers.
    assert vault.inputs["accessRestriction"] == "WITHIN_PROJECT"
    assert vault.protect and vault.retain_on_delete


def test_a_vault_in_its_own_project_is_restricted_to_the_organization() -> None:
    stack = variant("prod", backup_vault_project=OTHER_PROJECT)
    vault = stack.one(VAULT)
    assert vault.inputs["project"] == OTHER_PROJECT
    assert vault.inputs["accessRestriction"] == "WITHIN_ORGANIZATION"
    assert stack.one(PLAN).inputs["project"] == OTHER_PROJECT
    assert stack.one(ASSOCIATION).inputs["project"] == OTHER_PROJECT
    apis = [
        s.inputs["project"]
        for s in stack.of_type(SERVICE)
        if s.inputs["service"] == "backupdr.googleapis.com"
    ]
    assert sorted(apis) == sorted([OTHER_PROJECT, setting("prod", "gcp:project")])


def test_plan_backs_up_the_instance_daily_into_the_vault_for_the_enforced_retention() -> None:
    prod = variant("prod")
    plan = prod.one(PLAN).inputs
    assert plan["resourceType"] == "sqladmin.googleapis.com/Instance"
    assert plan["backupVault"] == prod.one(VAULT).outputs["name"]
    assert plan["logRetentionDays"] == int(setting("prod", "transaction_log_retention_days"))
    [rule] = plan["backupRules"]
    assert rule["backupRetentionDays"] == 30
    schedule = rule["standardSchedule"]
    assert schedule["recurrenceType"] == "DAILY"
    assert schedule["backupWindow"] == {"startHourOfDay": 2, "endHourOfDay": 6}
    association = prod.one(ASSOCIATION).inputs
    assert association["resource"] == "projects/acme-scheduling-prod/instances/scheduling-prod"
    assert association["resourceType"] == "sqladmin.googleapis.com/Instance"
    assert association["backupPlan"] == prod.one(PLAN).outputs["name"]
    assert association["location"] == plan["location"] == setting("prod", "gcp:region")


def test_vault_service_agent_may_back_up_this_instance_only() -> None:
    prod = variant("prod")
    [grant] = [
        m
        for m in prod.of_type(PROJECT_MEMBER)
        if m.inputs["role"] == "roles/backupdr.cloudSqlOperator"
    ]
    assert grant.inputs["member"] == f"serviceAccount:{prod.one(VAULT).outputs['serviceAccount']}"
    assert grant.inputs["project"] == "acme-scheduling-prod"
    assert (
        'resource.name == "projects/acme-scheduling-prod/instances/scheduling-prod"'
        in (grant.inputs["condition"]["expression"])
    )


def test_pulumi_leaves_the_fields_backup_and_dr_manages_alone(stack: RenderedStack) -> None:
    ignored = set(stack.one(INSTANCE).ignore_changes)
    if stack.stack == "staging":
        assert ignored == set()
        return
    assert "settings.backupConfiguration.backupRetentionSettings" in ignored
    assert "settings.backupConfiguration.transactionLogRetentionDays" in ignored
    assert "settings.backupConfiguration.location" in ignored
    # Backups on and PITR on stay managed (and checked by the pack).
    assert "settings.backupConfiguration.pointInTimeRecoveryEnabled" not in ignored
    assert "settings.backupConfiguration.enabled" not in ignored


def test_vault_retention_shorter_than_the_export_promise_is_refused() -> None:
    message = refusal("prod", backup_vault_min_retention_days=29)
    assert "backup_vault_min_retention_days = 29" in message
    assert "allowed: 30 or more in prod" in message


def test_an_invalid_vault_project_is_refused() -> None:
    assert "backup_vault_project = 'Not A Project'" in refusal(
        "prod", backup_vault_project="Not A Project"
    )


# -- The failed-job alert, against an entry built from Google's documented schema --------------


def test_sample_is_a_failed_scheduled_backup_job_of_the_prod_plan() -> None:
    entry = json.loads(FAILED_JOB_ENTRY.read_text())
    assert entry["logName"].endswith("/logs/backupdr.googleapis.com%2Fbdr_backup_restore_jobs")
    payload = entry["jsonPayload"]
    # Every field is a BDRBackupRestoreJobLog field (bdr_log.proto), in proto3 JSON form.
    proto_fields = {
        "jobId", "jobCategory", "jobStatus", "sourceResourceName", "sourceResourceId",
        "restoreResourceName", "backupName", "resourceType", "startTime", "endTime",
        "backupPlanName", "backupRule", "backupVaultName", "incrementalBackupSizeGib",
        "errorCode", "errorType", "errorMessage", "backupConsistencyTime",
        "sourceResourceLocation", "restoreResourceLocation",
    }  # fmt: skip
    assert set(payload) <= proto_fields
    assert (payload["jobCategory"], payload["jobStatus"]) == ("SCHEDULED_BACKUP", "FAILED")


@pytest.mark.parametrize("status", ["FAILED", "SKIPPED"])
def test_a_failed_or_skipped_backup_job_pages(status: str) -> None:
    prod = variant("prod")
    assert matches(alert_filter(prod), job_entry(prod, jobStatus=status))


def test_the_saved_failed_entry_pages_as_is() -> None:
    prod = variant("prod")
    assert matches(alert_filter(prod), json.loads(FAILED_JOB_ENTRY.read_text()))


@pytest.mark.parametrize("status", ["SUCCESSFUL", "RUNNING"])
def test_a_healthy_backup_job_does_not_page(status: str) -> None:
    prod = variant("prod")
    assert not matches(alert_filter(prod), job_entry(prod, jobStatus=status))


def test_restore_jobs_and_other_plans_do_not_page() -> None:
    prod = variant("prod")
    assert not matches(alert_filter(prod), job_entry(prod, jobCategory="RESTORE"))
    other_plan = "projects/acme-scheduling-prod/locations/europe-west1/backupPlans/vm-daily"
    assert not matches(alert_filter(prod), job_entry(prod, backupPlanName=other_plan))


def test_every_field_the_alert_reads_is_in_the_sample() -> None:
    prod = variant("prod")
    entry = job_entry(prod)
    for path in field_paths(parse_query(alert_filter(prod))):
        node: Any = entry
        for part in path.split("."):
            node = node[part]


def test_the_alert_notifies_every_channel_and_is_rate_limited() -> None:
    prod = variant("prod")
    alert = named(prod, "vault-backup-failed").inputs
    assert (
        alert["notificationChannels"]
        == named(prod, "alerts-export-failed").inputs["notificationChannels"]
    )
    assert alert["alertStrategy"]["notificationRateLimit"]["period"] == "3600s"
    assert alert["severity"] == "CRITICAL"


# -- Retention-locked exports ------------------------------------------------------------------


def backup_bucket(stack: RenderedStack) -> RegisteredResource:
    return named(stack, "backups-bucket")


def test_the_backup_bucket_has_object_retention_and_never_replaces_itself_over_it(
    stack: RenderedStack,
) -> None:
    bucket = backup_bucket(stack)
    assert bucket.inputs["enableObjectRetention"] is True
    assert "enableObjectRetention" in bucket.ignore_changes


def test_without_a_retention_mode_the_bucket_has_no_object_retention_and_no_setter() -> None:
    staging = variant("staging", export_retention_mode="none")
    assert backup_bucket(staging).inputs["enableObjectRetention"] is False
    assert env(staging)["EXPORT_RETENTION_MODE"] == "none"
    assert not [r for r in staging.of_type(CUSTOM_ROLE) if "Retention" in r.inputs["roleId"]]


def test_prod_refuses_exports_without_retention() -> None:
    assert "export_retention_mode = none is not allowed in prod" in refusal(
        "prod", export_retention_mode="none"
    )


def test_the_job_retains_in_the_configured_mode_for_the_lifecycle_age(stack: RenderedStack) -> None:
    expected_mode = {"prod": "Locked", "staging": "Unlocked"}[stack.stack]
    assert env(stack)["EXPORT_RETENTION_MODE"] == expected_mode
    assert int(env(stack)["EXPORT_RETENTION_DAYS"]) == int(
        setting(stack.stack, "backup_object_retention_days")
    )


def test_only_the_export_job_may_set_retention_and_only_on_the_backup_bucket(
    stack: RenderedStack,
) -> None:
    [role] = [r for r in stack.of_type(CUSTOM_ROLE) if "Retention" in r.inputs["roleId"]]
    assert sorted(role.inputs["permissions"]) == [
        "storage.objects.setRetention",
        "storage.objects.update",
    ]
    grants = [m for m in stack.of_type(BUCKET_MEMBER) if m.inputs["role"] == role.outputs["name"]]
    assert [g.inputs["bucket"] for g in grants] == [backup_bucket(stack).inputs["name"]]
    job_account = named(stack, "export-job-sa").outputs["member"]
    assert [g.inputs["member"] for g in grants] == [job_account]
    # Nobody gets to shorten or remove a retention.
    everything = json.dumps([r.inputs for r in stack.resources])
    assert "overrideUnlockedRetention" not in everything


def age_rule_days(stack: RenderedStack) -> int:
    [age] = [
        rule["condition"]["age"]
        for rule in backup_bucket(stack).inputs["lifecycleRules"]
        if rule["condition"].get("age")
    ]
    return int(age)


@pytest.mark.parametrize("written_after", [timedelta(0), timedelta(minutes=7), EXPORT_TIMEOUT])
def test_lifecycle_delete_and_retain_until_agree(
    stack: RenderedStack, written_after: timedelta
) -> None:
    days = int(env(stack)["EXPORT_RETENTION_DAYS"])
    exported_at = datetime(2026, 3, 28, 3, 30, 0, tzinfo=UTC)
    uri = f"gs://b/cloudsql/i/db/{exported_at:%Y%m%dT%H%M%SZ}.sql.gz"
    created = exported_at + written_after
    until = datetime.strptime(retain_until(uri, days), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    deletable_by_lifecycle = created + timedelta(days=age_rule_days(stack))
    promise = exported_at + timedelta(
        days=int(setting(stack.stack, "backup_object_retention_days"))
    )

    assert until >= promise  # kept at least as long as the exports promise
    assert until <= deletable_by_lifecycle  # the lifecycle never meets a retained export
    assert until - promise == timedelta(0)  # and nothing stays undeletable past the promise


# -- The off-project copy ----------------------------------------------------------------------

OFFSITE = {"offsite_bucket_name": "acme-offsite-sql-copy", "offsite_bucket_project": OTHER_PROJECT}


def test_no_off_project_copy_unless_configured(stack: RenderedStack) -> None:
    assert [b.inputs["name"] for b in stack.of_type(BUCKET)] == [
        backup_bucket(stack).inputs["name"]
    ]


@pytest.mark.parametrize("stack_name", ["prod", "staging"])
def test_the_copy_lives_in_the_other_project_with_the_same_retention_and_lifecycle(
    stack_name: str,
) -> None:
    stack = variant(stack_name, **OFFSITE)
    copy = named(stack, "offsite-bucket")
    assert copy.inputs["project"] == OTHER_PROJECT
    days = int(setting(stack_name, "backup_object_retention_days"))
    assert copy.inputs["retentionPolicy"] == {
        "retentionPeriod": str(days * 86_400),
        "isLocked": stack_name == "prod",
    }
    assert [r["condition"]["age"] for r in copy.inputs["lifecycleRules"]] == [days]
    assert copy.inputs["publicAccessPrevention"] == "enforced"
    transfer = named(stack, "offsite-transfer").inputs
    # Pulled by the other project: nothing in the stack's project can write to (or delete from) it.
    assert transfer["project"] == OTHER_PROJECT
    spec = transfer["transferSpec"]
    assert spec["gcsDataSource"]["bucketName"] == backup_bucket(stack).inputs["name"]
    assert spec["gcsDataSink"]["bucketName"] == "acme-offsite-sql-copy"
    assert spec["transferOptions"]["overwriteWhen"] == "NEVER"
    assert spec["transferOptions"]["deleteObjectsUniqueInSink"] is False


def test_a_copy_in_the_stacks_own_project_is_refused() -> None:
    message = refusal(
        "prod",
        offsite_bucket_name="acme-offsite-sql-copy",
        offsite_bucket_project="acme-scheduling-prod",
    )
    assert "does not survive the loss of the project" in message


def test_a_copy_needs_both_its_bucket_and_its_project() -> None:
    message = refusal("prod", offsite_bucket_name="acme-offsite-sql-copy")
    assert "offsite_bucket_name and offsite_bucket_project go together" in message


# -- A missed backup (no successful job at all) pages too ---------------------------------------


def test_successful_backup_jobs_of_this_plan_are_counted() -> None:
    prod = variant("prod")
    metric = named(prod, "vault-backup-succeeded").inputs
    assert metric["name"] == "vault_backup_succeeded_prod"
    assert matches(metric["filter"], job_entry(prod, jobStatus="SUCCESSFUL"))
    assert not matches(metric["filter"], job_entry(prod, jobStatus="FAILED"))
    assert not matches(
        metric["filter"], job_entry(prod, jobStatus="SUCCESSFUL", jobCategory="RESTORE")
    )
    other_plan = "projects/acme-scheduling-prod/locations/europe-west1/backupPlans/vm-daily"
    assert not matches(
        metric["filter"], job_entry(prod, jobStatus="SUCCESSFUL", backupPlanName=other_plan)
    )


def test_no_successful_vaulted_backup_for_36_hours_pages() -> None:
    prod = variant("prod")
    alert = named(prod, "vault-backup-stale").inputs
    [condition] = alert["conditions"]
    promql = condition["conditionPrometheusQueryLanguage"]
    assert promql["query"] == (
        "(sum(increase(logging_googleapis_com:user_vault_backup_succeeded_prod[36h])) "
        "or vector(0)) < 1"
    )
    # The log-based metric is created in the same `up` and has no data yet.
    assert promql["disableMetricValidation"] is True
    assert (
        alert["notificationChannels"]
        == named(prod, "alerts-export-failed").inputs["notificationChannels"]
    )
