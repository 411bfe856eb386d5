"""Non-compliant variants, each one edit away from a real stack, rejected by the intended policy.

An edit is either a config override the program accepts (rendered through the real program), or,
where the program's own validation would refuse the value, a direct edit of one rendered resource:
exactly the case of someone changing the program. Every variant is judged as a pull request's
first preview sees it, and the named policy must report it at mandatory level, on the right
resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import add_copy, delete, edit, get, put, remove, set_option
from tools.stack_render import RenderedStack

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
JOB_MEMBER = "gcp:cloudrunv2/jobIamMember:JobIamMember"
RUN_JOB = "gcp:cloudrunv2/job:Job"
SCHEDULER = "gcp:cloudscheduler/job:Job"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
METRIC = "gcp:logging/metric:Metric"
BACKUP_ALERT = "alerts-automated-backup-failed"
FAILED_EXPORT_ALERT = "alerts-export-failed"
STALE_ALERT = "alerts-export-stale"
ENVS = "template.template.containers[0].envs"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"


@dataclass(frozen=True)
class Variant:
    id: str
    stack: str
    build: Callable[[RenderedStack], RenderedStack]
    policy: str
    blamed: tuple[str, str | None]  # (type, name) of the resource the violation must be on
    overrides: tuple[tuple[str, Any], ...] = ()


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: put(props, path, value)


def unsetting(path: str) -> Callable[[dict[str, Any]], None]:
    return lambda props: delete(props, path)


def on(
    type_token: str, change: Callable[[dict[str, Any]], None], name: str | None = None
) -> Callable[[RenderedStack], RenderedStack]:
    return lambda stack: edit(stack, type_token, change, name)


def unchanged(stack: RenderedStack) -> RenderedStack:
    return stack


def add_env(name: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda props: get(props, ENVS).append({"name": name, "value": value})


def only_live_rule(props: dict[str, Any]) -> None:
    props["lifecycleRules"] = [
        {"action": {"type": "Delete"}, "condition": {"age": 30, "withState": "LIVE"}}
    ]


def set_env(name: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        for env in get(props, ENVS):
            if env["name"] == name:
                env["value"] = value

    return change


def replace_in_condition(path: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(props: dict[str, Any]) -> None:
        text = get(props, path)
        # A variant whose text drifted from the program would test nothing: say so.
        assert old in text, f"{path} no longer contains {old!r}: {text!r}"
        put(props, path, text.replace(old, new))

    return edit


VARIANTS = [
    # Cloud SQL, through config the program accepts.
    Variant(
        "prod-keeps-20-backups",
        "prod",
        unchanged,
        "cloudsql-instance-retained-backups",
        (INSTANCE, None),
        (("retained_backups", 20),),
    ),
    Variant(
        "prod-5-days-of-logs",
        "prod",
        unchanged,
        "cloudsql-instance-transaction-log-retention",
        (INSTANCE, None),
        (("transaction_log_retention_days", 5),),
    ),
    Variant(
        "staging-2-days-of-logs",
        "staging",
        unchanged,
        "cloudsql-instance-transaction-log-retention",
        (INSTANCE, None),
        (("transaction_log_retention_days", 2),),
    ),
    Variant(
        "staging-pitr-off",
        "staging",
        unchanged,
        "cloudsql-instance-pitr-enabled",
        (INSTANCE, None),
        (("point_in_time_recovery", False),),
    ),
    Variant(
        "staging-deletion-protection-off",
        "staging",
        unchanged,
        "cloudsql-instance-deletion-protection",
        (INSTANCE, None),
        (("deletion_protection", False),),
    ),
    # Cloud SQL, edited past the program's validation.
    Variant(
        "backups-off",
        "prod",
        on(INSTANCE, setting("settings.backupConfiguration.enabled", False)),
        "cloudsql-instance-backups-enabled",
        (INSTANCE, None),
    ),
    Variant(
        "retention-left-to-google",
        "prod",
        on(INSTANCE, unsetting("settings.backupConfiguration.backupRetentionSettings")),
        "cloudsql-instance-retained-backups",
        (INSTANCE, None),
    ),
    Variant(
        "prod-pitr-off",
        "prod",
        on(INSTANCE, setting("settings.backupConfiguration.pointInTimeRecoveryEnabled", False)),
        "cloudsql-instance-pitr-enabled",
        (INSTANCE, None),
    ),
    Variant(
        "pulumi-deletion-protection-off",
        "prod",
        on(INSTANCE, setting("deletionProtection", False)),
        "cloudsql-instance-deletion-protection",
        (INSTANCE, None),
    ),
    Variant(
        "api-deletion-protection-unset",
        "prod",
        on(INSTANCE, unsetting("settings.deletionProtectionEnabled")),
        "cloudsql-instance-deletion-protection",
        (INSTANCE, None),
    ),
    Variant(
        "open-ipv4-network",
        "prod",
        on(
            INSTANCE,
            setting(
                "settings.ipConfiguration.authorizedNetworks",
                [{"name": "all", "value": "0.0.0.0/0"}],
            ),
        ),
        "cloudsql-instance-no-open-authorized-networks",
        (INSTANCE, None),
    ),
    Variant(
        "open-ipv6-network",
        "staging",
        on(INSTANCE, setting("settings.ipConfiguration.authorizedNetworks", [{"value": "::/0"}])),
        "cloudsql-instance-no-open-authorized-networks",
        (INSTANCE, None),
    ),
    Variant(
        "public-ip-without-networks",
        "prod",
        on(INSTANCE, setting("settings.ipConfiguration.ipv4Enabled", True)),
        "cloudsql-instance-public-ip-restricted",
        (INSTANCE, None),
    ),
    Variant(
        "ssl-mode-left-to-google",
        "prod",
        on(INSTANCE, unsetting("settings.ipConfiguration.sslMode")),
        "cloudsql-instance-ssl-required",
        (INSTANCE, None),
    ),
    Variant(
        "unencrypted-allowed",
        "staging",
        on(
            INSTANCE, setting("settings.ipConfiguration.sslMode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED")
        ),
        "cloudsql-instance-ssl-required",
        (INSTANCE, None),
    ),
    Variant(
        "no-final-backup",
        "prod",
        on(INSTANCE, setting("settings.finalBackupConfig.enabled", False)),
        "cloudsql-instance-final-backup",
        (INSTANCE, None),
    ),
    Variant(
        "prod-zonal",
        "prod",
        on(INSTANCE, setting("settings.availabilityType", "ZONAL")),
        "cloudsql-instance-high-availability",
        (INSTANCE, None),
    ),
    Variant(
        "prod-unprotected",
        "prod",
        lambda stack: set_option(stack, INSTANCE, protect=False),
        "cloudsql-instance-protected",
        (INSTANCE, None),
    ),
    # Backup bucket.
    Variant(
        "prod-exports-kept-45-days",
        "prod",
        unchanged,
        "storage-bucket-retention-bounded",
        (BUCKET, None),
        (("backup_object_retention_days", 45),),
    ),
    Variant(
        "versioning-off",
        "prod",
        on(BUCKET, setting("versioning.enabled", False)),
        "storage-bucket-versioning",
        (BUCKET, None),
    ),
    Variant(
        "exports-kept-400-days",
        "staging",
        on(BUCKET, setting("lifecycleRules[0].condition.age", 400)),
        "storage-bucket-retention-bounded",
        (BUCKET, None),
    ),
    Variant(
        "exports-deleted-after-3-days",
        "prod",
        on(BUCKET, setting("lifecycleRules[0].condition.age", 3)),
        "storage-bucket-no-early-delete",
        (BUCKET, None),
    ),
    Variant(
        "noncurrent-versions-kept-forever",
        "prod",
        on(BUCKET, only_live_rule),
        "storage-bucket-noncurrent-cleanup",
        (BUCKET, None),
    ),
    Variant(
        "fine-grained-acls",
        "prod",
        on(BUCKET, setting("uniformBucketLevelAccess", False)),
        "storage-bucket-uniform-access",
        (BUCKET, None),
    ),
    Variant(
        "public-access-inherited",
        "staging",
        on(BUCKET, setting("publicAccessPrevention", "inherited")),
        "storage-bucket-public-access-prevention",
        (BUCKET, None),
    ),
    Variant(
        "soft-delete-off",
        "prod",
        on(BUCKET, setting("softDeletePolicy.retentionDurationSeconds", 0)),
        "storage-bucket-soft-delete",
        (BUCKET, None),
    ),
    Variant(
        "force-destroy",
        "prod",
        on(BUCKET, setting("forceDestroy", True)),
        "storage-bucket-force-destroy",
        (BUCKET, None),
    ),
    # IAM on any resource.
    Variant(
        "bucket-readable-by-all-users",
        "prod",
        on(BUCKET_MEMBER, setting("member", "allUsers"), "export-job-reads-exports"),
        "iam-member-no-public-principals",
        (BUCKET_MEMBER, "export-job-reads-exports"),
    ),
    Variant(
        "job-runnable-by-any-account",
        "staging",
        on(JOB_MEMBER, setting("member", "allAuthenticatedUsers"), "export-scheduler-invoker"),
        "iam-member-no-public-principals",
        (JOB_MEMBER, "export-scheduler-invoker"),
    ),
    Variant(
        "exporter-is-editor",
        "prod",
        on(PROJECT_MEMBER, setting("role", "roles/editor"), "export-job-exporter"),
        "iam-member-no-basic-roles",
        (PROJECT_MEMBER, "export-job-exporter"),
    ),
    # Export job and its schedule.
    Variant(
        "prod-5-retries",
        "prod",
        unchanged,
        "cloudrun-job-bounded-retries",
        (RUN_JOB, None),
        (("export_max_retries", 5),),
    ),
    Variant(
        "prod-48-hour-timeout",
        "prod",
        unchanged,
        "cloudrun-job-timeout",
        (RUN_JOB, None),
        (("export_timeout_hours", 48),),
    ),
    Variant(
        "timeout-left-to-cloud-run",
        "staging",
        on(RUN_JOB, unsetting("template.template.timeout"), "export-job"),
        "cloudrun-job-timeout",
        (RUN_JOB, "export-job"),
    ),
    Variant(
        "password-in-plain-text",
        "prod",
        on(RUN_JOB, add_env("PGPASSWORD", "correct-horse-battery")),
        "cloudrun-job-no-plaintext-secrets",
        (RUN_JOB, None),
    ),
    Variant(
        "private-key-in-innocent-variable",
        "staging",
        on(RUN_JOB, add_env("EXPORT_OPTIONS", PEM), "export-job"),
        "cloudrun-job-no-plaintext-secrets",
        (RUN_JOB, "export-job"),
    ),
    Variant(
        "scheduler-paused",
        "prod",
        on(SCHEDULER, setting("paused", True)),
        "cloudscheduler-job-not-paused",
        (SCHEDULER, None),
    ),
    Variant(
        "weekly-export",
        "prod",
        on(SCHEDULER, setting("schedule", "30 3 * * 1")),
        "cloudscheduler-job-frequency",
        (SCHEDULER, None),
    ),
    # Alert policies.
    Variant(
        "staging-alerts-page-no-one",
        "staging",
        unchanged,
        "monitoring-alert-policy-notification-channels",
        (ALERT, BACKUP_ALERT),
        (("notification_emails", []),),
    ),
    Variant(
        "backup-alert-disabled",
        "prod",
        on(ALERT, setting("enabled", False), BACKUP_ALERT),
        "monitoring-alert-policy-enabled",
        (ALERT, BACKUP_ALERT),
    ),
    Variant(
        "log-alert-without-rate-limit",
        "prod",
        on(ALERT, unsetting("alertStrategy.notificationRateLimit"), BACKUP_ALERT),
        "monitoring-alert-policy-log-match-rate-limit",
        (ALERT, BACKUP_ALERT),
    ),
    # The stack as a whole.
    Variant(
        "no-export-job",
        "prod",
        lambda stack: remove(stack, RUN_JOB),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "no-scheduler",
        "prod",
        lambda stack: remove(stack, SCHEDULER),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "scheduler-calls-with-get",
        "staging",
        on(SCHEDULER, setting("httpTarget.httpMethod", "GET"), "export-schedule"),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "export-to-another-bucket",
        "prod",
        on(RUN_JOB, set_env("EXPORT_BUCKET", "someone-elses-bucket")),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "bucket-not-labelled-for-backups",
        "prod",
        on(BUCKET, setting("labels.purpose", "misc")),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "no-failed-backup-alert",
        "prod",
        lambda stack: remove(stack, ALERT, BACKUP_ALERT),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "backup-alert-watches-another-instance",
        "staging",
        on(
            ALERT,
            replace_in_condition(
                "conditions[0].conditionMatchedLog.filter", ':scheduling-staging"', ':other"'
            ),
            BACKUP_ALERT,
        ),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "export-alert-counts-successes",
        "prod",
        on(
            ALERT,
            replace_in_condition(
                "conditions[0].conditionThreshold.filter", 'result="failed"', 'result="succeeded"'
            ),
            FAILED_EXPORT_ALERT,
        ),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "freshness-window-72h",
        "prod",
        on(
            ALERT,
            replace_in_condition(
                "conditions[0].conditionPrometheusQueryLanguage.query", "[36h]", "[72h]"
            ),
            STALE_ALERT,
        ),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "no-success-metric",
        "staging",
        lambda stack: remove(stack, METRIC, "export-metrics-success"),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, None),
    ),
    Variant(
        "second-instance-without-backup-path",
        "prod",
        lambda stack: add_copy(
            stack, INSTANCE, "database-instance-2", setting("name", "scheduling-prod-2")
        ),
        "cloudsql-instance-backup-coverage",
        (INSTANCE, "database-instance-2"),
    ),
]


def _urn_of(stack: RenderedStack, type_token: str, name: str | None) -> str:
    found = [r.urn for r in stack.resources if r.type == type_token and name in (None, r.name)]
    assert len(found) == 1, f"{type_token} {name}: {found}"
    return found[0]


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.id for variant in VARIANTS])
def test_variant_is_rejected_by_its_policy(analyzers: Analyzers, variant: Variant) -> None:
    base = rendered(variant.stack, preview=True, overrides=dict(variant.overrides))
    stack = variant.build(base)

    result = analyzers.verdicts(stack)

    blamed = _urn_of(stack, *variant.blamed)
    found = [v for v in result.of_policy(variant.policy) if v.urn == blamed]
    assert found, f"{variant.policy} did not reject {variant.id}: {result.violations}"
    assert {v.level for v in found} == {"mandatory"}


def test_there_are_at_least_thirty_variants_covering_every_resource_policy() -> None:
    assert len(VARIANTS) >= 30
    assert len({variant.policy for variant in VARIANTS}) >= 28
