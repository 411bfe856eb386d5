"""False-positive guards: ordinary, safe changes to a real stack (among them the weekly edits issue
#14 lists) must keep it clean, in a first preview, where unknown values make false alarms
likeliest, and in an update. A gate that blocks good changes gets switched off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import add_copy, edit, get, put
from tools.stack_render import RenderedStack

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
RUN_JOB = "gcp:cloudrunv2/job:Job"
ENVS = "template.template.containers[0].envs"


@dataclass(frozen=True)
class Change:
    id: str
    stack: str
    build: Callable[[RenderedStack], RenderedStack] = lambda stack: stack
    overrides: tuple[tuple[str, Any], ...] = ()


def add_env(env: dict[str, Any]) -> Callable[[RenderedStack], RenderedStack]:
    return lambda stack: edit(
        stack, RUN_JOB, lambda props: get(props, ENVS).append(env), "export-job"
    )


def replica(props: dict[str, Any]) -> None:
    props["name"] = "scheduling-prod-replica"
    props["masterInstanceName"] = "scheduling-prod"
    props["settings"]["backupConfiguration"] = {"enabled": False}
    del props["settings"]["finalBackupConfig"]


def unlabelled_bucket(props: dict[str, Any]) -> None:
    props["name"] = "acme-scheduling-prod-scratch"
    props["labels"] = {"env": "prod"}
    props["versioning"] = {"enabled": False}
    props["lifecycleRules"] = []


CHANGES = [
    Change("longer-retention", "prod", overrides=(("retained_backups", 60),)),
    Change(
        "another-email-channel",
        "prod",
        overrides=(("notification_emails", ["platform-oncall@acme.example", "dba@acme.example"]),),
    ),
    Change(
        "client-certificates-required",
        "prod",
        overrides=(("ssl_mode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"),),
    ),
    Change(
        "public-ip-limited-to-an-office",
        "staging",
        overrides=(("public_ip_enabled", True), ("authorized_networks", ["203.0.113.0/24"])),
    ),
    Change("exports-every-6-hours", "prod", overrides=(("export_schedule", "0 */6 * * *"),)),
    Change(
        "daily-export-in-a-dst-zone",
        "prod",
        overrides=(("export_schedule", "30 23 * * *"), ("export_time_zone", "Europe/London")),
    ),
    Change("no-retries", "staging", overrides=(("export_max_retries", 0),)),
    Change("standard-storage-class", "staging", overrides=(("backup_storage_class", "STANDARD"),)),
    Change("exports-twice-a-day", "prod", overrides=(("export_schedule", "0 11,23 * * *"),)),
    Change(
        "single-public-address",
        "prod",
        overrides=(("public_ip_enabled", True), ("authorized_networks", ["203.0.113.7/32"])),
    ),
    Change(
        "internal-group-reads-the-exports",
        "prod",
        lambda stack: add_copy(
            stack,
            BUCKET_MEMBER,
            "dba-reads-exports",
            lambda props: put(props, "member", "group:dba@acme.example"),
            "export-job-reads-exports",
        ),
    ),
    Change(
        "slim-export-image",
        "prod",
        lambda stack: edit(
            stack,
            RUN_JOB,
            lambda props: put(
                props,
                "template.template.containers[0].image",
                "gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-slim",
            ),
        ),
    ),
    Change("longer-final-backup", "prod", overrides=(("final_backup_retention_days", 90),)),
    Change(
        "two-office-networks",
        "staging",
        overrides=(
            ("public_ip_enabled", True),
            ("authorized_networks", ["203.0.113.0/24", "198.51.100.0/24"]),
        ),
    ),
    Change("longer-soft-delete", "prod", overrides=(("soft_delete_retention_days", 30),)),
    Change(
        "bucket-gets-another-label",
        "prod",
        lambda stack: edit(stack, BUCKET, lambda props: put(props, "labels.cost-center", "db")),
    ),
    Change(
        "password-from-secret-manager",
        "prod",
        add_env(
            {
                "name": "DB_PASSWORD",
                "valueSource": {"secretKeyRef": {"secret": "db-password", "version": "latest"}},
            }
        ),
    ),
    Change(
        "credentials-file-path",
        "prod",
        add_env({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/secrets/exporter/key.json"}),
    ),
    Change(
        "secret-name-not-value", "staging", add_env({"name": "SECRET_NAME", "value": "db-password"})
    ),
    Change(
        "image-digest-value",
        "prod",
        add_env(
            {
                "name": "TOOLS_IMAGE",
                "value": "gcr.io/acme/tools@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            }
        ),
    ),
    Change(
        "read-replica-without-own-backups",
        "prod",
        lambda stack: add_copy(stack, INSTANCE, "database-replica", replica),
    ),
    Change(
        "scratch-bucket-outside-the-backup-rules",
        "prod",
        lambda stack: add_copy(stack, BUCKET, "scratch-bucket", unlabelled_bucket),
    ),
]


@pytest.mark.parametrize("preview", [True, False], ids=["first-preview", "update"])
@pytest.mark.parametrize("change", CHANGES, ids=[change.id for change in CHANGES])
def test_benign_change_stays_clean(analyzers: Analyzers, change: Change, preview: bool) -> None:
    stack = change.build(rendered(change.stack, preview=preview, overrides=dict(change.overrides)))

    result = analyzers.verdicts(stack)

    assert result.mandatory_violations == [], "\n".join(
        f"{v.policy}: {v.detail}" for v in result.mandatory_violations
    )


def test_a_read_replica_is_not_judged_on_backups_it_cannot_take(analyzers: Analyzers) -> None:
    stack = add_copy(rendered("prod", preview=True), INSTANCE, "database-replica", replica)

    result = analyzers.verdicts(stack)

    skipped = {
        entry.policy for entry in result.not_applicable if entry.urn.endswith("::database-replica")
    }
    assert {"cloudsql-instance-backups-enabled", "cloudsql-instance-final-backup"} <= skipped
