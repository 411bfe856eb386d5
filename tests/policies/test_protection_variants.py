"""Edits *next to* the watched fields that still weaken or expose the backups (issue #14), and the
retention promise (issue #11): each one edit away from a real stack, each rejected by its policy at
mandatory level, on the right resource, both as a pull request's first preview sees it (computed
values unknown) and as an update does (every value known).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import UNKNOWN, add_copy, add_resource, get, put
from tests.policies.test_variants import (
    ALERT,
    BACKUP_ALERT,
    BUCKET,
    BUCKET_MEMBER,
    FAILED_EXPORT_ALERT,
    INSTANCE,
    METRIC,
    PROJECT_MEMBER,
    RUN_JOB,
    SCHEDULER,
    STALE_ALERT,
    Variant,
    on,
    replace_in_condition,
    set_env,
    setting,
    unchanged,
    unsetting,
)
from tools.stack_render import RenderedStack

CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
TRANSFER = "gcp:storage/transferJob:TransferJob"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
SA_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
SA_KEY = "gcp:serviceaccount/key:Key"
HMAC_KEY = "gcp:storage/hmacKey:HmacKey"
BACKUP_FILTER = "conditions[0].conditionMatchedLog.filter"
# The terms of the real failed-backup filter that match a failed or skipped backup window.
FAILED_WINDOW = (
    'protoPayload.metadata.windowStatus:"FAIL" OR '
    'protoPayload.metadata.windowStatus="STATUS_SKIPPED" OR severity>=ERROR'
)
THRESHOLD = "conditions[0].conditionThreshold"
QUERY = "conditions[0].conditionPrometheusQueryLanguage.query"
SUCCESS_SERIES = (
    'logging_googleapis_com:user_cloudsql_export_success_prod{monitored_resource="cloud_run_job",'
    'job_name="sql-export-prod",database="scheduling"}'
)
COVERAGE = "cloudsql-instance-backup-coverage"
OUTSIDER = "user:contractor@gmail.example"


def stack_name(stack: RenderedStack) -> str:
    return f"acme-scheduling-{stack.stack}"


def freshness_query(query: str) -> Callable[[dict[str, Any]], None]:
    return setting(QUERY, query)


def retarget_scheduler(
    project: str, job: str = "sql-export-prod"
) -> Callable[[dict[str, Any]], None]:
    uri = f"https://run.googleapis.com/v2/projects/{project}/locations/europe-west1/jobs/{job}:run"
    return setting("httpTarget.uri", uri)


def with_resource(
    type_token: str, name: str, props: dict[str, Any], depends_on: dict[str, list[str]]
) -> Callable[[RenderedStack], RenderedStack]:
    return lambda stack: add_resource(stack, type_token, name, props, depends_on)


def add_permission(permission: str) -> Callable[[dict[str, Any]], None]:
    return lambda props: get(props, "permissions").append(permission)


def unconditioned_role(role: str) -> Callable[[dict[str, Any]], None]:
    def edit(props: dict[str, Any]) -> None:
        props["role"] = role
        props.pop("condition", None)

    return edit


def outsider_impersonates_project(props: dict[str, Any]) -> None:
    props["role"] = "roles/iam.serviceAccountTokenCreator"
    props["member"] = OUTSIDER
    del props["condition"]


def group_reader(member: str) -> Callable[[dict[str, Any]], None]:
    return lambda props: put(props, "member", member)


VARIANTS = [
    # Issue #11: the retention promise.
    Variant(
        "prod-exports-deleted-after-7-days",
        "prod",
        on(BUCKET, setting("lifecycleRules[0].condition.age", 7)),
        "storage-bucket-no-early-delete",
        (BUCKET, None),
    ),
    Variant(
        "staging-exports-kept-14-days",
        "staging",
        unchanged,
        "storage-bucket-no-early-delete",
        (BUCKET, None),
        (("backup_object_retention_days", 14), ("backup_storage_class", "STANDARD")),
    ),
    # Alerts that can never page.
    Variant(
        "email-channel-disabled",
        "prod",
        on(CHANNEL, setting("enabled", False)),
        "monitoring-notification-channel-enabled",
        (CHANNEL, None),
    ),
    Variant(
        "only-channel-disabled-so-no-alert-pages",
        "prod",
        on(CHANNEL, setting("enabled", False)),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "alerts-go-outside-the-organisation",
        "prod",
        unchanged,
        "monitoring-notification-channel-inside-org",
        (CHANNEL, None),
        (("notification_emails", ["oncall@gmail.example"]),),
    ),
    Variant(
        "alerts-go-to-an-sms-channel",
        "staging",
        on(CHANNEL, setting("type", "sms")),
        "monitoring-notification-channel-inside-org",
        (CHANNEL, None),
    ),
    Variant(
        "backup-alert-notifies-on-close-only",
        "prod",
        on(ALERT, setting("alertStrategy.notificationPrompts", ["CLOSED"]), BACKUP_ALERT),
        "monitoring-alert-policy-notifies-on-open",
        (ALERT, BACKUP_ALERT),
    ),
    Variant(
        "backup-alert-on-close-only-never-pages",
        "prod",
        on(ALERT, setting("alertStrategy.notificationPrompts", ["CLOSED"]), BACKUP_ALERT),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "backup-alert-on-the-wrong-resource-type",
        "prod",
        on(
            ALERT,
            replace_in_condition(BACKUP_FILTER, '"cloudsql_database"', '"cloudsql_instance"'),
            BACKUP_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "backup-alert-on-the-admin-activity-log",
        "staging",
        on(
            ALERT,
            replace_in_condition(BACKUP_FILTER, "%2Fsystem_event", "%2Factivity"),
            BACKUP_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "backup-alert-matches-successes-only",
        "prod",
        on(
            ALERT,
            replace_in_condition(
                BACKUP_FILTER,
                f"({FAILED_WINDOW})",
                'protoPayload.metadata.windowStatus="STATUS_SUCCEEDED"',
            ),
            BACKUP_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        # Only Google's precedence (OR binds tighter than AND) shows this can never match: the
        # last term then applies to the whole filter, and no backup entry is a cloudsql_instance.
        "backup-alert-restricted-by-precedence",
        "prod",
        on(
            ALERT,
            replace_in_condition(
                BACKUP_FILTER,
                f"({FAILED_WINDOW})",
                f'{FAILED_WINDOW} AND resource.type="cloudsql_instance"',
            ),
            BACKUP_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "backup-alert-method-negated",
        "prod",
        on(
            ALERT,
            replace_in_condition(
                BACKUP_FILTER, "protoPayload.methodName=", "-protoPayload.methodName="
            ),
            BACKUP_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "export-alert-threshold-raised",
        "prod",
        on(ALERT, setting(f"{THRESHOLD}.thresholdValue", 5), FAILED_EXPORT_ALERT),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "export-alert-comparison-inverted",
        "staging",
        on(ALERT, setting(f"{THRESHOLD}.comparison", "COMPARISON_LT"), FAILED_EXPORT_ALERT),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "export-alert-waits-longer-than-a-failure-lasts",
        "prod",
        on(ALERT, setting(f"{THRESHOLD}.duration", "3600s"), FAILED_EXPORT_ALERT),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "freshness-alert-silent-when-there-is-no-data",
        "prod",
        on(ALERT, freshness_query(f"sum(increase({SUCCESS_SERIES}[36h])) < 1"), STALE_ALERT),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "freshness-alert-comparison-inverted",
        "prod",
        on(
            ALERT,
            freshness_query(f"(sum(increase({SUCCESS_SERIES}[36h])) or vector(0)) > 1"),
            STALE_ALERT,
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    Variant(
        "success-metric-also-counts-failures",
        "prod",
        on(
            METRIC,
            replace_in_condition("filter", ' AND jsonPayload.status="succeeded"', ""),
            "export-metrics-success",
        ),
        COVERAGE,
        (INSTANCE, None),
    ),
    # Backups that stop while every backup field reads compliant.
    Variant(
        "prod-instance-stopped",
        "prod",
        on(INSTANCE, setting("settings.activationPolicy", "NEVER")),
        "cloudsql-instance-always-running",
        (INSTANCE, None),
    ),
    Variant(
        "backups-deleted-with-the-instance",
        "prod",
        on(INSTANCE, setting("settings.retainBackupsOnDelete", False)),
        "cloudsql-instance-retain-backups-on-delete",
        (INSTANCE, None),
    ),
    Variant(
        "final-backup-kept-one-day",
        "prod",
        unchanged,
        "cloudsql-instance-final-backup-retention",
        (INSTANCE, None),
        (("final_backup_retention_days", 1),),
    ),
    Variant(
        "noncurrent-exports-deleted-after-one-day",
        "prod",
        unchanged,
        "storage-bucket-noncurrent-minimum-age",
        (BUCKET, None),
        (("noncurrent_version_retention_days", 1),),
    ),
    Variant(
        "noncurrent-exports-deleted-by-newer-versions",
        "staging",
        on(
            BUCKET,
            setting(
                "lifecycleRules[1].condition", {"numNewerVersions": 1, "withState": "ARCHIVED"}
            ),
        ),
        "storage-bucket-noncurrent-minimum-age",
        (BUCKET, None),
    ),
    Variant(
        "backups-stored-in-the-us",
        "prod",
        unchanged,
        "cloudsql-instance-backup-location",
        (INSTANCE, None),
        (("backup_location", "us"),),
    ),
    Variant(
        "backup-location-left-to-google",
        "prod",
        on(INSTANCE, unsetting("settings.backupConfiguration.location")),
        "cloudsql-instance-backup-location",
        (INSTANCE, None),
    ),
    Variant(
        "export-bucket-in-the-us",
        "prod",
        on(BUCKET, setting("location", "US")),
        "storage-bucket-location",
        (BUCKET, None),
    ),
    # Network exposure without a /0.
    Variant(
        "two-halves-of-the-internet",
        "staging",
        on(
            INSTANCE,
            setting(
                "settings.ipConfiguration.authorizedNetworks",
                [{"value": "0.0.0.0/1"}, {"value": "128.0.0.0/1"}],
            ),
        ),
        "cloudsql-instance-authorized-network-prefix",
        (INSTANCE, None),
    ),
    Variant(
        "a-slash-8",
        "prod",
        on(
            INSTANCE,
            setting("settings.ipConfiguration.authorizedNetworks", [{"value": "11.0.0.0/8"}]),
        ),
        "cloudsql-instance-authorized-network-prefix",
        (INSTANCE, None),
    ),
    Variant(
        "many-small-networks",
        "prod",
        on(
            INSTANCE,
            setting(
                "settings.ipConfiguration.authorizedNetworks",
                [{"value": f"198.18.{n}.0/24"} for n in range(20)],
            ),
        ),
        "cloudsql-instance-authorized-address-space",
        (INSTANCE, None),
    ),
    Variant(
        "psc-open-to-another-project",
        "prod",
        on(
            INSTANCE,
            setting(
                "settings.ipConfiguration.pscConfigs",
                [{"pscEnabled": True, "allowedConsumerProjects": ["someone-elses-project"]}],
            ),
        ),
        "cloudsql-instance-psc-allowed-consumers",
        (INSTANCE, None),
    ),
    # Who can read or wipe the backups.
    Variant(
        "outside-user-reads-the-exports",
        "prod",
        on(BUCKET_MEMBER, setting("member", OUTSIDER), "export-job-reads-exports"),
        "iam-backup-bucket-principals-in-org",
        (BUCKET_MEMBER, "export-job-reads-exports"),
    ),
    Variant(
        "foreign-service-account-reads-the-exports",
        "staging",
        on(
            BUCKET_MEMBER,
            setting("member", "serviceAccount:reader@other-project.iam.gserviceaccount.com"),
            "export-job-reads-exports",
        ),
        "iam-backup-bucket-principals-in-org",
        (BUCKET_MEMBER, "export-job-reads-exports"),
    ),
    Variant(
        "partner-domain-reads-the-exports",
        "prod",
        lambda stack: add_copy(
            stack,
            BUCKET_MEMBER,
            "partner-reads-exports",
            group_reader("domain:partner.example"),
            "export-job-reads-exports",
        ),
        "iam-backup-bucket-principals-in-org",
        (BUCKET_MEMBER, "partner-reads-exports"),
    ),
    Variant(
        "outsider-can-mint-tokens-for-the-export-identity",
        "prod",
        with_resource(
            SA_MEMBER,
            "export-sa-token-creator",
            {
                "serviceAccountId": UNKNOWN,
                "role": "roles/iam.serviceAccountTokenCreator",
                "member": OUTSIDER,
            },
            {"serviceAccountId": ["export-job-sa"]},
        ),
        "iam-backup-identity-principals-in-org",
        (SA_MEMBER, "export-sa-token-creator"),
    ),
    Variant(
        "outsider-can-impersonate-every-service-account",
        "prod",
        lambda stack: add_copy(
            stack,
            PROJECT_MEMBER,
            "contractor-token-creator",
            outsider_impersonates_project,
            "export-job-exporter",
        ),
        "iam-backup-identity-principals-in-org",
        (PROJECT_MEMBER, "contractor-token-creator"),
    ),
    Variant(
        "key-for-the-export-identity",
        "prod",
        with_resource(
            SA_KEY,
            "export-sa-key",
            {"serviceAccountId": UNKNOWN},
            {"serviceAccountId": ["export-job-sa"]},
        ),
        "iam-backup-identity-no-keys",
        (SA_KEY, "export-sa-key"),
    ),
    Variant(
        "hmac-key-for-the-scheduler-identity",
        "staging",
        with_resource(
            HMAC_KEY,
            "scheduler-hmac",
            {"serviceAccountEmail": UNKNOWN},
            {"serviceAccountEmail": ["export-scheduler-sa"]},
        ),
        "iam-backup-identity-no-keys",
        (HMAC_KEY, "scheduler-hmac"),
    ),
    Variant(
        "exporter-is-cloudsql-admin",
        "prod",
        on(PROJECT_MEMBER, setting("role", "roles/cloudsql.admin"), "export-job-exporter"),
        "iam-export-identity-no-admin",
        (PROJECT_MEMBER, "export-job-exporter"),
    ),
    Variant(
        "exporter-role-can-delete-the-instance",
        "prod",
        on(CUSTOM_ROLE, add_permission("cloudsql.instances.delete"), "export-exporter-role"),
        "iam-export-identity-no-admin",
        (PROJECT_MEMBER, "export-job-exporter"),
    ),
    Variant(
        "transfer-deletes-exports-unique-in-the-sink",
        "prod",
        on(TRANSFER, setting("transferSpec.transferOptions.deleteObjectsUniqueInSink", True)),
        "storage-transfer-job-backup-sink-safe",
        (TRANSFER, None),
    ),
    Variant(
        "transfer-writes-at-the-bucket-root",
        "prod",
        on(TRANSFER, unsetting("transferSpec.gcsDataSink.path")),
        "storage-transfer-job-backup-sink-safe",
        (TRANSFER, None),
    ),
    Variant(
        "transfer-writes-over-the-exports",
        "prod",
        on(TRANSFER, setting("transferSpec.gcsDataSink.path", "cloudsql/")),
        "storage-transfer-job-backup-sink-safe",
        (TRANSFER, None),
    ),
    Variant(
        "transfer-agent-is-object-admin-bucket-wide",
        "prod",
        on(
            BUCKET_MEMBER,
            unconditioned_role("roles/storage.objectAdmin"),
            "dashboard-assets-agent-writes-backup",
        ),
        "storage-bucket-transfer-agent-least-privilege",
        (BUCKET_MEMBER, "dashboard-assets-agent-writes-backup"),
    ),
    Variant(
        "transfer-agent-condition-reaches-the-exports",
        "prod",
        on(
            BUCKET_MEMBER,
            setting(
                "condition.expression",
                'resource.name.startsWith("projects/_/buckets/any-bucket/objects/cloudsql/")',
            ),
            "dashboard-assets-agent-writes-backup",
        ),
        "storage-bucket-transfer-agent-least-privilege",
        (BUCKET_MEMBER, "dashboard-assets-agent-writes-backup"),
    ),
    # The export does what it claims.
    Variant(
        "scheduler-starts-a-job-in-another-project",
        "prod",
        on(SCHEDULER, retarget_scheduler("someone-elses-project")),
        "cloudscheduler-job-targets-stack-export",
        (SCHEDULER, None),
    ),
    Variant(
        "scheduler-names-the-project-by-number",
        "prod",
        on(SCHEDULER, retarget_scheduler("123456789012")),
        "cloudscheduler-job-targets-stack-export",
        (SCHEDULER, None),
    ),
    Variant(
        "scheduler-starts-another-job",
        "staging",
        on(
            SCHEDULER,
            retarget_scheduler("acme-scheduling-staging", "not-the-export"),
            "export-schedule",
        ),
        "cloudscheduler-job-targets-stack-export",
        (SCHEDULER, "export-schedule"),
    ),
    Variant(
        "export-image-floating-tag",
        "prod",
        on(
            RUN_JOB,
            setting(
                "template.template.containers[0].image",
                "gcr.io/google.com/cloudsdktool/google-cloud-cli:stable",
            ),
        ),
        "cloudrun-job-image-pinned",
        (RUN_JOB, None),
    ),
    Variant(
        "export-image-from-another-registry",
        "prod",
        on(
            RUN_JOB,
            setting("template.template.containers[0].image", "docker.io/someone/gcloud:1.2.3"),
        ),
        "cloudrun-job-image-allowed-registry",
        (RUN_JOB, None),
    ),
    Variant(
        "export-skips-the-data",
        "prod",
        on(RUN_JOB, set_env("EXPORT_DATABASES", "postgres")),
        "cloudrun-job-export-databases",
        (RUN_JOB, None),
    ),
]


def _urn_of(stack: RenderedStack, type_token: str, name: str | None) -> str:
    found = [r.urn for r in stack.resources if r.type == type_token and name in (None, r.name)]
    assert len(found) == 1, f"{type_token} {name}: {found}"
    return found[0]


@pytest.mark.parametrize("preview", [True, False], ids=["first-preview", "update"])
@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.id for variant in VARIANTS])
def test_variant_is_rejected_by_its_policy(
    analyzers: Analyzers, variant: Variant, preview: bool
) -> None:
    stack = variant.build(
        rendered(variant.stack, preview=preview, overrides=dict(variant.overrides))
    )

    result = analyzers.verdicts(stack)

    blamed = _urn_of(stack, *variant.blamed)
    found = [v for v in result.of_policy(variant.policy) if v.urn == blamed]
    assert found, f"{variant.policy} did not reject {variant.id}: {result.violations}"
    assert {v.level for v in found} == {"mandatory"}
    assert not any("cannot be verified" in v.detail for v in found), found


def test_every_new_policy_has_a_variant(analyzers: Analyzers) -> None:
    covered = {variant.policy for variant in VARIANTS}
    new = {
        policy.name
        for policy in analyzers.get("prod", True).policies
        if policy.name.startswith(
            (
                "monitoring-notification-channel",
                "monitoring-alert-policy-notifies",
                "iam-backup",
                "iam-export",
                "storage-transfer",
                "storage-bucket-transfer",
                "storage-bucket-location",
                "storage-bucket-noncurrent-minimum",
                "cloudrun-job-image",
                "cloudrun-job-export",
                "cloudscheduler-job-targets",
                "cloudsql-instance-always-running",
                "cloudsql-instance-retain-backups",
                "cloudsql-instance-final-backup-retention",
                "cloudsql-instance-backup-location",
                "cloudsql-instance-authorized",
                "cloudsql-instance-psc",
            )
        )
    }
    assert len(new) == 22
    assert new <= covered, new - covered
