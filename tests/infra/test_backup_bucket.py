"""BackupBucket, as the engine receives it: a dedicated, private, versioned bucket whose exports (live
and noncurrent) are deleted on a schedule, restorable for a soft-delete window, for both stacks."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tests.infra.stack_files import setting
from tools.stack_render import RegisteredResource, RenderedStack, render

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "gcp:storage/bucket:Bucket"
SECONDS_PER_DAY = 86_400
SOFT_DELETE_DAYS = {"prod": 14, "staging": 7}
KMS_KEY = "projects/acme-scheduling-prod/locations/eu/keyRings/sql-backups/cryptoKeys/exports"


@cache
def _render_variant(stack: str, overrides_json: str) -> RenderedStack:
    return render(stack, preview=True, overrides=json.loads(overrides_json))


def bucket(rendered: RenderedStack) -> RegisteredResource:
    return rendered.one(BUCKET)


def test_the_bucket_is_dedicated_to_sql_exports(stack: RenderedStack) -> None:
    name = bucket(stack).inputs["name"]
    assert name == setting(stack.stack, "backup_bucket_name")
    assert name == f"acme-scheduling-{stack.stack}-sql-backups"
    assert name != setting(stack.stack, "dashboard_bucket")
    assert bucket(stack).inputs["project"] == setting(stack.stack, "gcp:project")


def test_labels(stack: RenderedStack) -> None:
    assert bucket(stack).inputs["labels"] == {
        "purpose": "sql-backups",
        "env": stack.stack,
        "managed-by": "pulumi",
        "component": "backup-bucket",
    }


def test_location_and_storage_class(stack: RenderedStack) -> None:
    inputs = bucket(stack).inputs
    assert inputs["location"] == setting(stack.stack, "backup_bucket_location")
    assert inputs["location"] == "EU"
    assert inputs["storageClass"] == "NEARLINE"


def test_never_public(stack: RenderedStack) -> None:
    inputs = bucket(stack).inputs
    assert inputs["uniformBucketLevelAccess"] is True
    assert inputs["publicAccessPrevention"] == "enforced"


def test_never_destroyed_with_its_objects(stack: RenderedStack) -> None:
    assert bucket(stack).inputs["forceDestroy"] is False


def test_versioned(stack: RenderedStack) -> None:
    assert bucket(stack).inputs["versioning"] == {"enabled": True}


def test_lifecycle_deletes_old_exports_and_old_noncurrent_versions(stack: RenderedStack) -> None:
    retention = int(setting(stack.stack, "backup_object_retention_days"))
    noncurrent = int(setting(stack.stack, "noncurrent_version_retention_days"))
    assert (retention, noncurrent) == (30, 30)
    assert bucket(stack).inputs["lifecycleRules"] == [
        {"action": {"type": "Delete"}, "condition": {"age": retention, "withState": "ANY"}},
        {
            "action": {"type": "Delete"},
            "condition": {"daysSinceNoncurrentTime": noncurrent, "withState": "ARCHIVED"},
        },
    ]


def test_soft_delete_window(stack: RenderedStack) -> None:
    days = SOFT_DELETE_DAYS[stack.stack]
    assert int(setting(stack.stack, "soft_delete_retention_days")) == days
    assert bucket(stack).inputs["softDeletePolicy"] == {
        "retentionDurationSeconds": days * SECONDS_PER_DAY
    }


def test_protect_and_retain_on_delete_only_in_prod(stack: RenderedStack) -> None:
    resource = bucket(stack)
    assert resource.protect is (stack.stack == "prod")
    assert resource.retain_on_delete is (stack.stack == "prod")


def test_google_managed_encryption_by_default(stack: RenderedStack) -> None:
    assert setting(stack.stack, "backup_bucket_kms_key") == ""
    assert "encryption" not in bucket(stack).inputs


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_cmek_key_when_configured(stack_name: str) -> None:
    rendered = _render_variant(stack_name, json.dumps({"backup_bucket_kms_key": KMS_KEY}))
    assert bucket(rendered).inputs["encryption"] == {"defaultKmsKeyName": KMS_KEY}


def test_stack_outputs_name_the_bucket(stack: RenderedStack) -> None:
    name = setting(stack.stack, "backup_bucket_name")
    assert stack.outputs["backup_bucket_name"] == name
    assert stack.outputs["backup_bucket_url"] == f"gs://{name}"


def test_bucket_name_is_known_at_preview(preview_stack: RenderedStack) -> None:
    assert preview_stack.outputs["backup_bucket_name"] == setting(
        preview_stack.stack, "backup_bucket_name"
    )
    assert bucket(preview_stack).inputs["name"] == setting(
        preview_stack.stack, "backup_bucket_name"
    )
