"""DatabaseInstance, as the engine receives it: automated backups, PITR, retention, the deletion guards,
private networking and the adopted-instance path, for both real stacks.

Expected values come from the stack files (``Pulumi.<stack>.yaml``), the source of truth for each
environment, or are the invariants the component promises; never from the program's own objects.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.infra.stack_files import setting
from tools.stack_render import ProgramFailed, RegisteredResource, RenderedStack, render

REPO_ROOT = Path(__file__).resolve().parents[2]
EXISTING_INSTANCE_STATE = REPO_ROOT / "tests" / "data" / "existing_instance_state.json"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
PUBLIC_IP = {"public_ip_enabled": "true", "authorized_networks": ["203.0.113.0/24"]}
ADOPT = {"adopt_existing_instance": "true"}
# Fields whose change makes the provider replace the instance (a new, empty database).
REPLACEMENT_FIELDS = ("name", "region", "project", "databaseVersion")
REPLACEMENT_FIELDS_UNSET = ("encryptionKeyName", "masterInstanceName")
AUDIT_FLAGS = {
    "cloudsql.iam_authentication": "on",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_min_error_statement": "error",
    "log_temp_files": "0",
}


@cache
def _render_variant(stack: str, preview: bool, overrides_json: str) -> RenderedStack:
    return render(stack, preview=preview, overrides=json.loads(overrides_json))


def variant(stack: str, overrides: dict[str, Any], *, preview: bool = True) -> RenderedStack:
    return _render_variant(stack, preview, json.dumps(overrides, sort_keys=True))


def instance(rendered: RenderedStack) -> RegisteredResource:
    return rendered.one(INSTANCE)


def settings_of(rendered: RenderedStack) -> dict[str, Any]:
    settings: dict[str, Any] = instance(rendered).inputs["settings"]
    return settings


def is_prod(rendered: RenderedStack) -> bool:
    return rendered.stack == "prod"


def test_instance_identity_comes_from_the_stack_file(stack: RenderedStack) -> None:
    inputs = instance(stack).inputs
    assert inputs["name"] == setting(stack.stack, "instance_name")
    assert inputs["project"] == setting(stack.stack, "gcp:project")
    assert inputs["region"] == setting(stack.stack, "gcp:region")
    assert inputs["databaseVersion"] == setting(stack.stack, "database_version")
    assert settings_of(stack)["edition"] == setting(stack.stack, "edition")
    assert settings_of(stack)["tier"] == setting(stack.stack, "tier")


def test_automated_backups_run_daily_at_the_configured_time_and_location(
    stack: RenderedStack,
) -> None:
    backups = settings_of(stack)["backupConfiguration"]
    assert backups["enabled"] is True
    assert backups["startTime"] == setting(stack.stack, "backup_start_time")
    assert backups["location"] == setting(stack.stack, "backup_location")


def test_retained_backups_are_counted_as_the_stack_file_says(stack: RenderedStack) -> None:
    retention = settings_of(stack)["backupConfiguration"]["backupRetentionSettings"]
    assert retention == {
        "retainedBackups": int(setting(stack.stack, "retained_backups")),
        "retentionUnit": "COUNT",
    }


def test_point_in_time_recovery_keeps_the_configured_transaction_logs(
    stack: RenderedStack,
) -> None:
    backups = settings_of(stack)["backupConfiguration"]
    assert backups["pointInTimeRecoveryEnabled"] is True
    assert backups["transactionLogRetentionDays"] == int(
        setting(stack.stack, "transaction_log_retention_days")
    )


def test_prod_refuses_to_turn_point_in_time_recovery_off() -> None:
    with pytest.raises(ProgramFailed) as failure:
        variant("prod", {"point_in_time_recovery": "false"})
    assert "cloudsql-backups:point_in_time_recovery = false is not allowed in prod" in str(
        failure.value
    )
    assert failure.value.registered == []


def test_both_deletion_guards_are_on(stack: RenderedStack) -> None:
    inputs = instance(stack).inputs
    # Pulumi's own guard (provider side) and the Cloud SQL API's guard are independent.
    assert inputs["deletionProtection"] is True
    assert inputs["settings"]["deletionProtectionEnabled"] is True
    assert setting(stack.stack, "deletion_protection") == "true"


def test_prod_refuses_to_turn_deletion_protection_off() -> None:
    with pytest.raises(ProgramFailed) as failure:
        variant("prod", {"deletion_protection": "false"})
    assert "cloudsql-backups:deletion_protection = false is not allowed in prod" in str(
        failure.value
    )
    assert failure.value.registered == []


def test_deleting_the_instance_keeps_a_final_backup_and_the_automated_ones(
    stack: RenderedStack,
) -> None:
    settings = settings_of(stack)
    assert settings["finalBackupConfig"] == {
        "enabled": True,
        "retentionDays": int(setting(stack.stack, "final_backup_retention_days")),
    }
    assert settings["retainBackupsOnDelete"] is True


def test_protect_and_retain_on_delete_only_in_prod(stack: RenderedStack) -> None:
    resource = instance(stack)
    assert resource.protect is is_prod(stack)
    assert resource.retain_on_delete is is_prod(stack)


def test_availability_type(stack: RenderedStack) -> None:
    expected = {"prod": "REGIONAL", "staging": "ZONAL"}[stack.stack]
    assert settings_of(stack)["availabilityType"] == expected
    assert setting(stack.stack, "availability_type") == expected


def test_maintenance_window(stack: RenderedStack) -> None:
    assert settings_of(stack)["maintenanceWindow"] == {
        "day": int(setting(stack.stack, "maintenance_day")),
        "hour": int(setting(stack.stack, "maintenance_hour")),
        "updateTrack": "stable",
    }


def test_query_insights_are_on(stack: RenderedStack) -> None:
    insights = settings_of(stack)["insightsConfig"]
    assert insights["queryInsightsEnabled"] is True
    assert insights["recordClientAddress"] is False


def test_labels(stack: RenderedStack) -> None:
    assert settings_of(stack)["userLabels"] == {
        "env": stack.stack,
        "managed-by": "pulumi",
        "component": "database",
    }


def test_private_ip_only_on_the_configured_vpc(stack: RenderedStack) -> None:
    network = settings_of(stack)["ipConfiguration"]
    assert network["privateNetwork"] == setting(stack.stack, "vpc_network")
    assert network["privateNetwork"] == (
        f"projects/{setting(stack.stack, 'gcp:project')}/global/networks/scheduling-vpc"
    )
    assert network["ipv4Enabled"] is False
    assert network.get("authorizedNetworks", []) == []
    assert network["sslMode"] == "ENCRYPTED_ONLY"


def test_audit_logging_and_iam_authentication_flags(stack: RenderedStack) -> None:
    flags = settings_of(stack)["databaseFlags"]
    names = [flag["name"] for flag in flags]
    assert len(names) == len(set(names)), "a flag is set twice"
    assert {flag["name"]: flag["value"] for flag in flags} == AUDIT_FLAGS


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_public_ip_appears_with_its_authorized_network(stack_name: str) -> None:
    network = settings_of(variant(stack_name, PUBLIC_IP))["ipConfiguration"]
    assert network["ipv4Enabled"] is True
    assert network["authorizedNetworks"] == [{"name": "authorized-0", "value": "203.0.113.0/24"}]
    assert network["sslMode"] == "ENCRYPTED_ONLY"
    assert network["privateNetwork"] == setting(stack_name, "vpc_network")


def test_public_ip_without_authorized_networks_is_refused() -> None:
    with pytest.raises(ProgramFailed) as failure:
        variant("prod", {"public_ip_enabled": "true"})
    assert (
        "cloudsql-backups:public_ip_enabled = true needs cloudsql-backups:authorized_networks"
        in (str(failure.value))
    )
    assert failure.value.registered == []


def test_a_new_instance_is_created_not_imported(stack: RenderedStack) -> None:
    assert instance(stack).import_id == ""


def test_adopted_instance_is_imported_by_its_full_name() -> None:
    adopted = instance(variant("prod", ADOPT))
    assert adopted.import_id == "projects/acme-scheduling-prod/instances/scheduling-prod"
    assert adopted.import_id == (
        f"projects/{setting('prod', 'gcp:project')}/instances/{setting('prod', 'instance_name')}"
    )


def test_adopting_requests_no_replacement_of_the_existing_instance() -> None:
    """The inputs of every replacement-forcing field equal the live instance's provider state, so
    the import is followed by at most an in-place update; and ``protect`` refuses any replacement."""
    state: dict[str, Any] = json.loads(EXISTING_INSTANCE_STATE.read_text())
    adopted = instance(variant("prod", ADOPT))
    inputs = adopted.inputs
    for field in REPLACEMENT_FIELDS:
        assert inputs[field] == state[field], field
    for field in REPLACEMENT_FIELDS_UNSET:
        assert field not in inputs, field
        assert state.get(field) in (None, ""), field
    # The saved state is the instance the import ID names.
    assert adopted.import_id == f"projects/{state['project']}/instances/{state['name']}"
    assert state["connectionName"] == f"{state['project']}:{state['region']}:{state['name']}"
    assert adopted.protect is True
    assert adopted.retain_on_delete is True


def test_replacement_fields_are_known_at_preview(preview_stack: RenderedStack) -> None:
    inputs = instance(preview_stack).inputs
    for field in REPLACEMENT_FIELDS:
        assert isinstance(inputs[field], str), field
        assert inputs[field] == setting(
            preview_stack.stack,
            {
                "name": "instance_name",
                "region": "gcp:region",
                "project": "gcp:project",
                "databaseVersion": "database_version",
            }[field],
        )
