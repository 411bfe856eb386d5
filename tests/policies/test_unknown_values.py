"""Previews must not hide violations: a rule whose input is unknown reports, at the policy's own
level, "cannot be verified until the value is known: <path>", while what is known during a preview
(the length of a list of not-yet-created channels, a computed service account) stays judgeable.

pulumi-policy on its own would turn such a policy into an advisory "can't run policy" note; the
harness fails any test where that note appears.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import UNKNOWN, add_copy, add_resource, edit, get, put
from tools.policy_gate import GateResult
from tools.stack_render import RenderedStack

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
RUN_JOB = "gcp:cloudrunv2/job:Job"
SCHEDULER = "gcp:cloudscheduler/job:Job"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
BACKUP_ALERT = "alerts-automated-backup-failed"
RETAINED = "settings.backupConfiguration.backupRetentionSettings.retainedBackups"


def unknown_at(
    stack: RenderedStack, type_token: str, path: str, name: str | None = None
) -> RenderedStack:
    return edit(stack, type_token, lambda props: put(props, path, UNKNOWN), name)


def reports(result: GateResult, policy: str, path: str) -> list[str]:
    message = f"cannot be verified until the value is known: {path}"
    return [v.level for v in result.of_policy(policy) if v.detail == message]


def test_an_unknown_threshold_value_is_reported_not_passed(analyzers: Analyzers) -> None:
    stack = unknown_at(rendered("prod", preview=True), INSTANCE, RETAINED)

    result = analyzers.verdicts(stack)

    assert reports(result, "cloudsql-instance-retained-backups", RETAINED) == ["mandatory"]


def test_an_unknown_value_is_reported_at_the_policys_own_level(
    analyzers: Analyzers, tmp_path: Path
) -> None:
    config = tmp_path / "advisory.json"
    config.write_text(
        json.dumps(
            {
                "cloudsql-instance-retained-backups": {
                    "enforcementLevel": "advisory",
                    "reason": "A test stack where this policy only warns.",
                }
            }
        )
    )
    stack = unknown_at(rendered("prod", preview=True), INSTANCE, RETAINED)

    with analyzers.configured("prod", True, config) as analyzer:
        result = analyzer.analyze(stack)

    assert reports(result, "cloudsql-instance-retained-backups", RETAINED) == ["advisory"]


def test_an_unknown_property_does_not_hide_a_known_violation_of_the_same_policy(
    analyzers: Analyzers,
) -> None:
    def both(props: dict[str, Any]) -> None:
        put(props, "deletionProtection", False)
        put(props, "settings.deletionProtectionEnabled", UNKNOWN)

    result = analyzers.verdicts(edit(rendered("prod", preview=True), INSTANCE, both))

    details = [v.detail for v in result.of_policy("cloudsql-instance-deletion-protection")]
    assert any(detail.startswith("deletionProtection = false") for detail in details)
    assert (
        "cannot be verified until the value is known: settings.deletionProtectionEnabled" in details
    )


def test_unknown_channel_names_count_but_an_unknown_list_does_not(analyzers: Analyzers) -> None:
    base = rendered("prod", preview=True)
    channels = get(
        json.loads(json.dumps(next(r for r in base.resources if r.name == BACKUP_ALERT).inputs)),
        "notificationChannels",
    )
    assert channels and all(channel == UNKNOWN for channel in channels)  # the real preview shape
    two_unknown = edit(
        base,
        ALERT,
        lambda props: put(props, "notificationChannels", [UNKNOWN, UNKNOWN]),
        BACKUP_ALERT,
    )
    whole_list = unknown_at(base, ALERT, "notificationChannels", BACKUP_ALERT)

    assert (
        analyzers.verdicts(two_unknown).of_policy("monitoring-alert-policy-notification-channels")
        == []
    )
    assert reports(
        analyzers.verdicts(whole_list),
        "monitoring-alert-policy-notification-channels",
        "notificationChannels",
    ) == ["mandatory"]


def test_a_computed_member_is_not_mistaken_for_a_public_one(analyzers: Analyzers) -> None:
    stack = unknown_at(
        rendered("prod", preview=False), BUCKET_MEMBER, "member", "export-job-reads-exports"
    )

    assert analyzers.verdicts(stack).of_policy("iam-member-no-public-principals") == []


def test_an_unknown_schedule_is_reported(analyzers: Analyzers) -> None:
    result = analyzers.verdicts(
        unknown_at(rendered("staging", preview=True), SCHEDULER, "schedule", "export-schedule")
    )

    assert reports(result, "cloudscheduler-job-frequency", "schedule") == ["mandatory"]


def test_an_unknown_label_leaves_it_open_whether_a_bucket_holds_backups(
    analyzers: Analyzers,
) -> None:
    result = analyzers.verdicts(unknown_at(rendered("prod", preview=True), BUCKET, "labels"))

    assert reports(result, "storage-bucket-versioning", "labels") == ["mandatory"]


def test_a_secret_named_variable_with_a_computed_value_is_reported(analyzers: Analyzers) -> None:
    added_at: list[int] = []

    def add(props: dict[str, Any]) -> None:
        envs = get(props, "template.template.containers[0].envs")
        added_at.append(len(envs))
        envs.append({"name": "DB_PASSWORD", "value": UNKNOWN})

    result = analyzers.verdicts(edit(rendered("prod", preview=True), RUN_JOB, add))

    path = f"template.template.containers[0].envs[{added_at[0]}].value"
    assert reports(result, "cloudrun-job-no-plaintext-secrets", path) == ["mandatory"]


def test_the_stack_rule_says_unverifiable_rather_than_missing(analyzers: Analyzers) -> None:
    def unknown_instance(props: dict[str, Any]) -> None:
        for env in get(props, "template.template.containers[0].envs"):
            if env["name"] == "EXPORT_INSTANCE":
                env["value"] = UNKNOWN

    result = analyzers.verdicts(edit(rendered("prod", preview=True), RUN_JOB, unknown_instance))

    details = [v.detail for v in result.of_policy("cloudsql-instance-backup-coverage")]
    assert details, "an export job whose target is unknown must not count as covering the instance"
    assert all(
        detail.startswith("cannot be verified until the value is known: export-job ")
        for detail in details
    )
    assert {v.level for v in result.of_policy("cloudsql-instance-backup-coverage")} == {"mandatory"}


def test_a_member_computed_from_nothing_the_stack_knows_is_reported_on_a_backup_bucket(
    analyzers: Analyzers,
) -> None:
    base = rendered("prod", preview=True)
    stack = add_copy(
        base,
        BUCKET_MEMBER,
        "reader-from-elsewhere",
        lambda props: put(props, "member", UNKNOWN),
        "dashboard-assets-agent-lists-backup",  # no property dependency on its member
    )

    result = analyzers.verdicts(stack)

    found = result.of_policy("iam-backup-bucket-principals-in-org")
    assert [(v.level, v.detail) for v in found] == [
        ("mandatory", "cannot be verified until the value is known: reader-from-elsewhere member")
    ]


def test_a_member_computed_from_a_service_account_of_the_stack_is_judged_by_its_project(
    analyzers: Analyzers,
) -> None:
    # The real preview: the export job's reader grant names a service account not created yet.
    base = rendered("prod", preview=True)
    foreign = edit(
        base,
        "gcp:serviceaccount/account:Account",
        lambda props: put(props, "project", "someone-elses-project"),
        "export-job-sa",
    )

    assert analyzers.verdicts(base).of_policy("iam-backup-bucket-principals-in-org") == []
    details = [
        v.detail
        for v in analyzers.verdicts(foreign).of_policy("iam-backup-bucket-principals-in-org")
    ]
    assert any("computed from export-job-sa" in d and "someone-elses-project" in d for d in details)


def test_an_unknown_email_channel_is_reported(analyzers: Analyzers) -> None:
    stack = unknown_at(
        rendered("prod", preview=True),
        "gcp:monitoring/notificationChannel:NotificationChannel",
        "labels.email_address",
    )

    result = analyzers.verdicts(stack)

    assert reports(
        result, "monitoring-notification-channel-inside-org", "labels.email_address"
    ) == ["mandatory"]


def test_a_key_for_an_account_nobody_can_name_yet_is_reported(analyzers: Analyzers) -> None:
    stack = add_resource(
        rendered("prod", preview=True),
        "gcp:serviceaccount/key:Key",
        "mystery-key",
        {"serviceAccountId": UNKNOWN},
    )

    result = analyzers.verdicts(stack)

    assert [(v.level, v.detail) for v in result.of_policy("iam-backup-identity-no-keys")] == [
        ("mandatory", "cannot be verified until the value is known: mystery-key serviceAccountId")
    ]
