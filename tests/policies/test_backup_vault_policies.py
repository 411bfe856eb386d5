"""The vault and retention rules (policies/backup_vault.py), through the real analyzer: each rejects
its one-edit variant of a real stack, on the right resource, and accepts the real stacks and the
other backup tier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import edit, put
from tools.stack_render import RenderedStack

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
VAULT = "gcp:backupdisasterrecovery/backupVault:BackupVault"
OWN_POLICIES = (
    "backupdr-vault-enforced-retention",
    "cloudsql-instance-backup-tier",
    "storage-bucket-object-retention",
)


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: put(props, path, value)


def urn_of(stack: RenderedStack, type_token: str, name: str | None = None) -> str:
    [found] = [r for r in stack.resources if r.type == type_token and name in (None, r.name)]
    return found.urn


def assert_rejected(
    analyzers: Analyzers, stack: RenderedStack, policy: str, blamed: str
) -> list[str]:
    result = analyzers.verdicts(stack)
    found = [v for v in result.of_policy(policy) if v.urn == blamed]
    assert found, f"{policy} did not reject the variant: {result.violations}"
    assert {v.level for v in found} == {"mandatory"}
    return [v.message for v in found]


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_real_stacks_pass_the_vault_and_retention_rules(
    analyzers: Analyzers, stack_name: str
) -> None:
    result = analyzers.verdicts(rendered(stack_name, preview=True))
    assert [v for v in result.violations if v.policy in OWN_POLICIES] == []


def test_prod_neither_vaulted_nor_on_standard_backups_is_rejected(analyzers: Analyzers) -> None:
    base = rendered("prod", preview=True, overrides={"backup_vault_enabled": False})
    stack = edit(base, INSTANCE, setting("settings.backupConfiguration.enabled", False))

    [message] = assert_rejected(
        analyzers, stack, "cloudsql-instance-backup-tier", urn_of(stack, INSTANCE)
    )
    assert "projects/acme-scheduling-prod/instances/scheduling-prod" in message


def test_prod_without_pitr_and_without_a_vault_is_rejected(analyzers: Analyzers) -> None:
    base = rendered("prod", preview=True, overrides={"backup_vault_enabled": False})
    stack = edit(
        base, INSTANCE, setting("settings.backupConfiguration.pointInTimeRecoveryEnabled", False)
    )

    assert_rejected(analyzers, stack, "cloudsql-instance-backup-tier", urn_of(stack, INSTANCE))


def test_a_vaulted_instance_passes_the_tier_rule_without_standard_backups(
    analyzers: Analyzers,
) -> None:
    stack = edit(
        rendered("prod", preview=True),
        INSTANCE,
        setting("settings.backupConfiguration.enabled", False),
    )

    result = analyzers.verdicts(stack)

    assert result.of_policy("cloudsql-instance-backup-tier") == []


@pytest.mark.parametrize("duration", ["86400s", "2591999s", "30d"])
def test_vault_retention_below_the_floor_is_rejected(analyzers: Analyzers, duration: str) -> None:
    stack = edit(
        rendered("prod", preview=True),
        VAULT,
        setting("backupMinimumEnforcedRetentionDuration", duration),
    )

    [message] = assert_rejected(
        analyzers, stack, "backupdr-vault-enforced-retention", urn_of(stack, VAULT)
    )
    assert "2592000s" in message


def test_vault_retention_longer_than_the_floor_is_accepted(analyzers: Analyzers) -> None:
    stack = edit(
        rendered("prod", preview=True),
        VAULT,
        setting("backupMinimumEnforcedRetentionDuration", f"{90 * 86_400}s"),
    )

    assert analyzers.verdicts(stack).of_policy("backupdr-vault-enforced-retention") == []


def test_prod_backup_bucket_without_object_retention_is_rejected(analyzers: Analyzers) -> None:
    stack = edit(
        rendered("prod", preview=True),
        BUCKET,
        setting("enableObjectRetention", False),
        "backups-bucket",
    )

    assert_rejected(
        analyzers, stack, "storage-bucket-object-retention", urn_of(stack, BUCKET, "backups-bucket")
    )
