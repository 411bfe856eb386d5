"""Disaster-recovery wiring of the stack, as the engine receives it.

* The staging instance's service account may read production's exports (instances.import reads
  the dump as the *target* instance's service account), only objects under ``cloudsql/``.
* The adoption procedure of DR_RUNBOOK.md, offline half: with the new instance's name and
  ``adopt_existing_instance``, the program imports that instance and replaces nothing.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from ops.restore_drill.exports import export_prefix
from tests.infra.stack_files import setting
from tools.stack_render import ProgramFailed, RegisteredResource, RenderedStack, render

GRANT = "gcp:storage/bucketIAMMember:BucketIAMMember"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET_COMPONENT = "cloudsql-backups:storage:BackupBucket"
NEW_INSTANCE = "scheduling-prod-r1"  # the runbook's instance restored into after a loss


@cache
def _render(stack: str, preview: bool, overrides_json: str) -> RenderedStack:
    return render(stack, preview=preview, overrides=json.loads(overrides_json))


def rendered(
    stack: str, overrides: dict[str, Any] | None = None, preview: bool = True
) -> RenderedStack:
    return _render(stack, preview, json.dumps(overrides or {}, sort_keys=True))


def restore_reads(stack: RenderedStack) -> list[RegisteredResource]:
    return [r for r in stack.of_type(GRANT) if r.name.endswith("-restore-import-reader")]


def test_prod_lets_the_staging_instance_read_its_exports_only() -> None:
    # The address exists only once staging is deployed (README "Deploying for real"): take it from
    # staging's rendered instance, as `gcloud sql instances describe` would give it.
    staging_instance = rendered("staging", preview=False).one(INSTANCE)
    account = staging_instance.outputs["serviceAccountEmailAddress"]
    prod = rendered("prod", {"restore_import_service_account": account})
    [grant] = restore_reads(prod)
    bucket = setting("prod", "backup_bucket_name")

    assert grant.inputs["member"] == (
        f"serviceAccount:{staging_instance.outputs['serviceAccountEmailAddress']}"
    )
    assert grant.inputs["role"] == "roles/storage.objectViewer"
    assert grant.inputs["bucket"] == bucket
    assert grant.inputs["condition"]["expression"] == (
        f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/cloudsql/")'
    )
    # Every export the drill imports lies under that prefix.
    assert export_prefix("scheduling-prod", "scheduling").startswith("cloudsql/")
    parent = next(r for r in prod.resources if r.urn == grant.parent)
    assert parent.type == BUCKET_COMPONENT


def test_staging_grants_no_restore_reads() -> None:
    assert setting("staging", "restore_import_service_account") == ""
    assert restore_reads(rendered("staging")) == []


@pytest.mark.parametrize(
    "value", ["alice@example.com", "serviceAccount:x@p.iam.gserviceaccount.com"]
)
def test_a_restore_reader_must_be_a_service_account_email(value: str) -> None:
    with pytest.raises(ProgramFailed) as failure:
        rendered("prod", {"restore_import_service_account": value})
    assert f"cloudsql-backups:restore_import_service_account = {value!r}: allowed:" in str(
        failure.value
    )
    assert failure.value.registered == []


# --- adoption (DR_RUNBOOK.md, "Bring the new instance under Pulumi") -------------------------


ADOPT = {"instance_name": NEW_INSTANCE, "adopt_existing_instance": "true"}


def test_adoption_settings_plan_an_import_of_the_new_instance() -> None:
    adopted = rendered("prod", ADOPT).one(INSTANCE)
    project = setting("prod", "gcp:project")

    assert adopted.import_id == f"projects/{project}/instances/{NEW_INSTANCE}"
    assert adopted.inputs["name"] == NEW_INSTANCE
    # Still guarded once adopted: a later replacement is refused at preview.
    assert (adopted.protect, adopted.retain_on_delete) == (True, True)


def test_adoption_replaces_nothing_else_in_the_stack() -> None:
    """The same resources under the same URNs; only the instance is imported."""
    before = sorted(rendered("prod").resources, key=lambda r: r.urn)
    after = sorted(rendered("prod", ADOPT).resources, key=lambda r: r.urn)
    assert [r.urn for r in before] == [r.urn for r in after]
    assert [r.type for r in after if r.import_id] == [INSTANCE]


def test_without_adoption_the_new_name_would_be_a_replacement_of_a_protected_instance() -> None:
    """Why the runbook removes the old state entry first: a changed name with adoption off plans
    a new instance (no import) under the same URN, which Pulumi turns into a replacement that
    `protect` refuses."""
    renamed = rendered("prod", {"instance_name": NEW_INSTANCE}).one(INSTANCE)
    original = rendered("prod").one(INSTANCE)
    assert renamed.urn == original.urn
    assert renamed.import_id == ""
    assert renamed.protect is True
