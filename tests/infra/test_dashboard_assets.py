"""DashboardAssetsBackup's grants on the backup bucket, as the engine receives them (prod backs up a
dashboard bucket; staging does not).

Storage Transfer's sink needs storage.buckets.get and storage.objects.list on the bucket, and
storage.objects.create, .get and .delete on the objects it writes (delete: replacing a changed object;
docs: storage-transfer/docs/sink-cloud-storage). The object grant carries an IAM condition limiting it
to ``dashboard-assets/`` (Cloud Storage names objects ``projects/_/buckets/B/objects/NAME`` in
conditions), so the agent can never replace or delete an export under ``cloudsql/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tools.stack_render import RegisteredResource, RenderedStack

BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
TRANSFER_JOB = "gcp:storage/transferJob:TransferJob"
# CEL: the one function call the condition is made of.
STARTS_WITH = re.compile(r'resource\.name\.startsWith\("(?P<prefix>[^"]+)"\)')


@pytest.fixture
def prod(rendered: Callable[[str, bool], RenderedStack]) -> RenderedStack:
    return rendered("prod", False)


def agent_grants_on(stack: RenderedStack, bucket: str) -> list[RegisteredResource]:
    return [
        grant
        for grant in stack.of_type(BUCKET_IAM_MEMBER)
        if grant.inputs["bucket"] == bucket
        and grant.inputs["member"].endswith("@storage-transfer-service.iam.gserviceaccount.com")
    ]


def backup_bucket(stack: RenderedStack) -> str:
    name: str = stack.one(BUCKET).inputs["name"]
    return name


def test_agent_may_overwrite_only_under_dashboard_assets(prod: RenderedStack) -> None:
    bucket = backup_bucket(prod)
    grants = {grant.inputs["role"]: grant for grant in agent_grants_on(prod, bucket)}
    [sink_role] = [
        r for r in prod.of_type(CUSTOM_ROLE) if r.inputs["roleId"] == "dashboardAssetsSinkProd"
    ]
    assert sorted(sink_role.inputs["permissions"]) == [
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
    ]
    role_name = f"projects/{sink_role.inputs['project']}/roles/dashboardAssetsSinkProd"
    assert set(grants) == {"roles/storage.legacyBucketReader", role_name}
    # Bucket-level permissions (get, list) are checked on the bucket: no object condition there.
    assert "condition" not in grants["roles/storage.legacyBucketReader"].inputs
    condition = grants[role_name].inputs["condition"]
    match = STARTS_WITH.fullmatch(condition["expression"])
    assert match is not None, condition["expression"]
    prefix = match.group("prefix")
    assert f"projects/_/buckets/{bucket}/objects/dashboard-assets/logo.png".startswith(prefix)
    assert (
        not f"projects/_/buckets/{bucket}/objects/cloudsql/i/db/20260101T000000Z.sql.gz".startswith(
            prefix
        )
    )
    assert not f"projects/_/buckets/{bucket}-other/objects/dashboard-assets/x".startswith(prefix)


def test_transfer_overwrites_changed_assets_and_waits_for_its_grants(prod: RenderedStack) -> None:
    [transfer] = prod.of_type(TRANSFER_JOB)
    assert transfer.inputs["transferSpec"]["transferOptions"]["overwriteWhen"] == "DIFFERENT"
    assert transfer.inputs["name"] == "transferJobs/cloudsql-backups-dashboard-assets-prod"
    grant_urns = {grant.urn for grant in agent_grants_on(prod, backup_bucket(prod))}
    assert grant_urns <= set(transfer.dependencies)


def test_no_dashboard_bucket_no_grants(rendered: Callable[[str, bool], RenderedStack]) -> None:
    staging = rendered("staging", False)
    assert agent_grants_on(staging, backup_bucket(staging)) == []
    assert [
        r for r in staging.of_type(CUSTOM_ROLE) if r.inputs["roleId"].startswith("dashboard")
    ] == []
