"""Invalid config fails before any resource is registered, with one message naming the key, the value
given and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tools.stack_render import REPO_ROOT, ProgramFailed, render


def config_error(stack: str, **overrides: Any) -> str:
    with pytest.raises(ProgramFailed) as failure:
        render(stack, preview=True, overrides=overrides)
    assert failure.value.registered == [], "no resource may be registered when config is invalid"
    return str(failure.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"retained_backups": "0"},
            "cloudsql-backups:retained_backups = '0': allowed: an integer from 7 to 365",
        ),
        (
            {"retained_backups": "366"},
            "cloudsql-backups:retained_backups = '366': allowed: an integer from 7 to 365",
        ),
        (
            {"transaction_log_retention_days": "0"},
            "transaction_log_retention_days = '0': allowed: an integer from 1 to 35",
        ),
        (
            {"transaction_log_retention_days": "8"},
            "transaction_log_retention_days = 8: allowed 1..7 for edition ENTERPRISE",
        ),
        (
            {"backup_start_time": "2am"},
            "backup_start_time = '2am': allowed: a 24-hour UTC time 'HH:MM'",
        ),
        (
            {"backup_start_time": "24:00"},
            "backup_start_time = '24:00': allowed: a 24-hour UTC time 'HH:MM'",
        ),
        (
            {"database_version": "POSTGRES_9_6"},
            "database_version = 'POSTGRES_9_6': Input should be 'POSTGRES_12'",
        ),
        (
            {"tier": "db-custom-4-16384", "edition": "ENTERPRISE_PLUS"},
            "tier = 'db-custom-4-16384' does not fit edition ENTERPRISE_PLUS",
        ),
        (
            {"tier": "db-perf-optimized-N-4"},
            "tier = 'db-perf-optimized-N-4' needs edition ENTERPRISE_PLUS",
        ),
        (
            {"backup_object_retention_days": "0"},
            "backup_object_retention_days = '0': allowed: an integer from 1 to 3650",
        ),
        (
            {"backup_object_retention_days": "thirty"},
            "backup_object_retention_days = 'thirty': allowed: an integer from 1 to 3650",
        ),
        ({"deletion_protection": "false"}, "deletion_protection = false is not allowed in prod"),
        (
            {"point_in_time_recovery": "false"},
            "point_in_time_recovery = false is not allowed in prod",
        ),
        ({"availability_type": "ZONAL"}, "availability_type = ZONAL is not allowed in prod"),
        ({"gcp:region": "mars-north1"}, "gcp:region = 'mars-north1': allowed: a Cloud SQL region"),
        (
            {"export_schedule": "61 * * *"},
            "export_schedule = '61 * * *': allowed: a 5-field cron expression",
        ),
        (
            {"export_time_zone": "Mars/Olympus"},
            "export_time_zone = 'Mars/Olympus': allowed: an IANA time zone",
        ),
        ({"notification_emails": []}, "prod needs at least one notification target"),
        (
            {"public_ip_enabled": "true"},
            "public_ip_enabled = true needs cloudsql-backups:authorized_networks",
        ),
        (
            {"public_ip_enabled": "true", "authorized_networks": ["0.0.0.0/0"]},
            "authorized_networks.0 = ['0.0.0.0/0']: allowed: a specific CIDR block; a /0 network",
        ),
        (
            {"backup_storage_class": "COLDLINE"},
            "backup_storage_class = COLDLINE has a 90-day minimum storage duration",
        ),
        (
            {"export_image": "gcr.io/google.com/cloudsdktool/google-cloud-cli:latest"},
            "export_image = 'gcr.io/google.com/cloudsdktool/google-cloud-cli:latest': allowed: an image pinned",
        ),
        (
            {"soft_delete_retention_days": "0"},
            "soft_delete_retention_days = '0': allowed: an integer from 7 to 90",
        ),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else "",
)
def test_invalid_prod_config_is_refused_with_a_clear_message(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in config_error("prod", **overrides)


def test_every_problem_is_reported_at_once() -> None:
    message = config_error(
        "prod", retained_backups="0", export_schedule="nope", backup_start_time="25:00"
    )
    assert message.startswith("Invalid stack configuration:")
    assert message.count("\n  - ") == 3


def test_staging_may_relax_what_prod_may_not() -> None:
    staging = render(
        "staging",
        preview=True,
        overrides={"deletion_protection": "false", "notification_emails": []},
    )
    instance = staging.one("gcp:sql/databaseInstance:DatabaseInstance")
    assert instance.inputs["deletionProtection"] is False


def test_few_retained_backups_in_prod_warn_at_preview() -> None:
    prod = render("prod", preview=True, overrides={"retained_backups": "14"})
    assert any("retained_backups = 14" in warning and "21" in warning for warning in prod.warnings)


def test_unknown_keys_in_a_stack_file_are_not_silently_ignored() -> None:
    declared = set(yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"])
    for stack in ("prod", "staging"):
        keys = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        project_keys = {key.split(":", 1)[1] for key in keys if key.startswith("cloudsql-backups:")}
        assert project_keys <= declared, (
            f"Pulumi.{stack}.yaml sets undeclared keys {project_keys - declared}"
        )


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads_with_its_defaults() -> None:
    from cloudsql_backups.config import StackSettings  # noqa: PLC0415 - needs infra/ on sys.path

    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    fields = {
        name: field
        for name, field in StackSettings.model_fields.items()
        if name not in ("project", "region")
    }
    assert set(declared) == set(fields)
    for name, spec in declared.items():
        default = fields[name].default
        if "default" in spec:
            assert spec["default"] == (list(default) if isinstance(default, tuple) else default), (
                name
            )
        annotation = fields[name].annotation
        expected_type = {"bool": "boolean", "int": "integer"}.get(
            getattr(annotation, "__name__", "")
        )
        if expected_type:
            assert spec["type"] == expected_type, name
