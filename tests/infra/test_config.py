"""Invalid config fails before any resource is registered, with one message naming the key, the value
given and what is allowed."""

from __future__ import annotations

import contextvars
import functools
import io
import json
from typing import Any

import pulumi
import pytest
import yaml
from rich.console import Console

from tests.infra.stack_files import setting
from tools.stack_render import REPO_ROOT, ProgramFailed, render, stack_config


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
            "database_version = 'POSTGRES_9_6': allowed: 'POSTGRES_12', 'POSTGRES_13', 'POSTGRES_14', "
            "'POSTGRES_15', 'POSTGRES_16', 'POSTGRES_17' or 'POSTGRES_18'",
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


# --- Issue 11: strict stack files -------------------------------------------------------------------

NS = "cloudsql-backups"
DECLARED = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
BOOLEAN_KEYS = sorted(key for key, spec in DECLARED.items() if spec["type"] == "boolean")
LIST_KEYS = sorted(key for key, spec in DECLARED.items() if spec["type"] == "array")
UNKNOWN_KEY_ALLOWED = (
    "allowed: the keys declared in Pulumi.yaml, listed in the README's config reference"
)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("retained_backup", f"did you mean {NS}:retained_backups?"),
        ("deletion_protecton", f"did you mean {NS}:deletion_protection?"),
        ("export_shedule", f"did you mean {NS}:export_schedule?"),
        ("project", "did you mean gcp:project?"),
        ("zzz_frobnicate", "check the spelling"),
    ],
)
def test_an_unknown_key_is_refused_with_the_closest_declared_key(key: str, suggestion: str) -> None:
    message = config_error("prod", **{key: "3"})
    assert (
        f"  - {NS}:{key} = '3': unknown key, not read by this program ({suggestion}); "
        f"{UNKNOWN_KEY_ALLOWED}"
    ) in message.splitlines()


def test_unknown_keys_passed_by_the_cli_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Pulumi CLI hands the program its config as PULUMI_CONFIG; a key only there is read too.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({f"{NS}:retained_backup": "3"}))
    assert f"{NS}:retained_backup = '3': unknown key" in config_error("prod")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"backup_location": "mars"},
            f"{NS}:backup_location = 'mars': allowed: a Cloud SQL backup location in lowercase: the "
            "multi-region asia, eu or us, or a Cloud SQL region such as 'europe-west1'",
        ),
        (
            {"backup_location": "EU"},
            f"{NS}:backup_location = 'EU': allowed: a Cloud SQL backup location in lowercase",
        ),
        (
            {"backup_bucket_location": "moon"},
            f"{NS}:backup_bucket_location = 'moon': allowed: a Cloud Storage location: the "
            "multi-region ASIA, EU or US, the dual-region ASIA1, EUR4, EUR5, EUR7, EUR8 or NAM4, or a "
            "region such as 'EUROPE-WEST1'",
        ),
        (
            {"backup_bucket_location": "EUR9"},
            f"{NS}:backup_bucket_location = 'EUR9': allowed: a Cloud Storage location",
        ),
        (
            {"tier": "db-n1-standard-2"},
            f"{NS}:tier = 'db-n1-standard-2': allowed: for edition ENTERPRISE "
            "db-custom-<vCPUs>-<memory MB> (such as 'db-custom-2-7680'), db-f1-micro or db-g1-small; "
            "for edition ENTERPRISE_PLUS db-perf-optimized-N-<vCPUs> with 2, 4, 8, 16, 32, 48, 64, "
            "80, 96 or 128 vCPUs",
        ),
        (
            {"tier": "db-custom-3-11520"},
            f"{NS}:tier = 'db-custom-3-11520': 3 vCPUs: allowed: 1 or an even number from 2 to 96",
        ),
        (
            {"tier": "db-custom-98-200704"},
            f"{NS}:tier = 'db-custom-98-200704': 98 vCPUs: allowed: 1 or an even number from 2 to 96",
        ),
        (
            {"tier": "db-custom-4-16000"},
            f"{NS}:tier = 'db-custom-4-16000': 16000 MB of memory for 4 vCPUs: allowed: 3840 to "
            "26624 MB in steps of 256 MB (0.9 to 6.5 GB per vCPU, at least 3840 MB)",
        ),
        (
            {"tier": "db-custom-2-13568"},
            f"{NS}:tier = 'db-custom-2-13568': 13568 MB of memory for 2 vCPUs: allowed: 3840 to "
            "13312 MB",
        ),
        (
            {"tier": "db-custom-1-3584"},
            f"{NS}:tier = 'db-custom-1-3584': 3584 MB of memory for 1 vCPU: allowed: 3840 to 6656 MB",
        ),
        (
            {"tier": "db-custom-16-14592"},
            f"{NS}:tier = 'db-custom-16-14592': 14592 MB of memory for 16 vCPUs: allowed: 14848 to "
            "106496 MB",
        ),
        (
            {"tier": "db-perf-optimized-N-6", "edition": "ENTERPRISE_PLUS"},
            f"{NS}:tier = 'db-perf-optimized-N-6': allowed: for edition ENTERPRISE",
        ),
        (
            {"tier": "db-f1-micro", "edition": "ENTERPRISE_PLUS"},
            f"{NS}:tier = 'db-f1-micro' does not fit edition ENTERPRISE_PLUS: allowed: "
            "db-perf-optimized-N-<vCPUs> with 2, 4, 8, 16, 32, 48, 64, 80, 96 or 128 vCPUs; use "
            "edition ENTERPRISE for db-custom and shared-core tiers",
        ),
        (
            {"export_databases": "scheduling"},
            f"{NS}:export_databases = 'scheduling': allowed: a list (a YAML sequence, one '- item' "
            "per line), not a single value",
        ),
        (
            {"export_databases": []},
            f"{NS}:export_databases = []: allowed: a list with at least one entry",
        ),
        (
            {"instance_name": ["scheduling-prod"]},
            f"{NS}:instance_name = '[\"scheduling-prod\"]': allowed: lowercase letters",
        ),
        ({"gcp:project": None}, "gcp:project = '<not set>': required: set it in the stack file"),
        (
            {"gcp:project": "Acme"},
            "gcp:project = 'Acme': allowed: a project ID: 6 to 30 lowercase letters, digits and "
            "hyphens, starting with a letter and not ending with a hyphen",
        ),
        (
            {"environment": "staging"},
            f"{NS}:environment = 'staging' does not match the stack 'prod': allowed: the stack's name "
            "or the part of it before the first '-' (a stack named 'prod' or 'prod-eu' says prod, "
            "'staging' or 'staging-2' says staging)",
        ),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else "",
)
def test_values_google_would_reject_are_refused_in_words(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in config_error("prod", **overrides)


@pytest.mark.parametrize("key", BOOLEAN_KEYS)
@pytest.mark.parametrize("value", ["yes", "True", "1", "on"])
def test_booleans_are_true_or_false_only(key: str, value: str) -> None:
    assert f"{NS}:{key} = {value!r}: allowed: true or false" in config_error("prod", **{key: value})


@pytest.mark.parametrize("key", LIST_KEYS)
def test_list_keys_refuse_duplicates(key: str) -> None:
    entry = {
        "authorized_networks": "203.0.113.0/24",
        "export_databases": "scheduling",
        "restore_verification_databases": "scheduling",
        "notification_emails": "oncall@acme.example",
        "notification_channel_ids": "projects/acme-scheduling-prod/notificationChannels/42",
        "expected_backup_readers": "drill@acme-scheduling-prod.iam.gserviceaccount.com",
    }[key]
    overrides: dict[str, Any] = {
        key: [entry, "other" if key == "export_databases" else entry, entry]
    }
    if key == "authorized_networks":
        overrides["public_ip_enabled"] = "true"
    assert (
        f"{NS}:{key} = {overrides[key]!r}: allowed: each entry once; listed more than once: {entry!r}"
        in config_error("prod", **overrides)
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"backup_location": "europe-west1"},
        {"backup_location": "asia"},
        {"backup_bucket_location": "eur4"},
        {"backup_bucket_location": "NAM4"},
        {"backup_bucket_location": "europe-west1"},
        {"tier": "db-custom-1-3840"},
        {"tier": "db-custom-96-638976"},
        {"tier": "db-custom-16-14848"},
        {"tier": "db-g1-small"},
        {"tier": "db-perf-optimized-N-128", "edition": "ENTERPRISE_PLUS"},
        {"deletion_protection": "true", "export_offload": "false"},
    ],
    ids=str,
)
def test_values_google_accepts_pass(overrides: dict[str, Any]) -> None:
    render("prod", preview=True, overrides=overrides)


@pytest.mark.parametrize(("stack", "environment"), [("prod-eu", "prod"), ("staging-2", "staging")])
def test_a_stack_named_after_its_environment_with_a_suffix_is_accepted(
    stack: str, environment: str
) -> None:
    from cloudsql_backups.config import RawConfig, parse_settings  # noqa: PLC0415

    def parse() -> str:
        pulumi.runtime.set_all_config(stack_config(environment))
        return str(parse_settings(RawConfig.from_pulumi().values, stack=stack).environment)

    assert contextvars.copy_context().run(parse) == environment


def test_every_key_refuses_nonsense_in_words_never_a_pattern_or_validator_sentence() -> None:
    nonsense: dict[str, Any] = {
        key: (["§", "§"] if spec["type"] == "array" else "§nonsense§")
        for key, spec in DECLARED.items()
    }
    lines = config_error("prod", **nonsense).splitlines()[1:]
    internal_phrases = ("Input should", "should be", "should have", "has to be", "^", "$]", "[a-z")
    for key in DECLARED:
        line = next(line for line in lines if line.startswith(f"  - {NS}:{key}"))
        assert "allowed:" in line, line
        for phrase in internal_phrases:
            assert phrase not in line, line
    # A list whose entries are all refused is not also reported as empty.
    assert not any(line.endswith("allowed: a list with at least one entry") for line in lines)


# --- Issue 10: exports never collide with backups or maintenance --------------------------------------

OFFLOAD_HINT = (
    f"{NS}:export_offload = true (a serverless export runs on a temporary instance and leaves the "
    "primary free)"
)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"export_schedule": "30 3 * * *"},
            f"{NS}:export_schedule = '30 3 * * *' in Etc/UTC starts exports inside the "
            f"automated-backup window 02:00 to 06:00 UTC set by {NS}:backup_start_time = '02:00' (a "
            "backup may start any time in the 4 hours from it, and fails while an export holds the "
            "instance), the first at 2026-01-01 03:30 UTC; allowed: a schedule whose every run "
            f"starts outside 02:00 to 06:00 UTC, or {OFFLOAD_HINT}",
        ),
        (
            # Midnight wrap: a window from 22:00 runs to 02:00 the next day.
            {"export_schedule": "15 1 * * *", "backup_start_time": "22:00"},
            f"{NS}:export_schedule = '15 1 * * *' in Etc/UTC starts exports inside the "
            "automated-backup window 22:00 to 02:00 UTC",
        ),
        (
            # 23:30 in New York is 04:30 UTC in winter: inside 02:00 to 06:00 UTC.
            {"export_schedule": "30 23 * * *", "export_time_zone": "America/New_York"},
            f"{NS}:export_schedule = '30 23 * * *' in America/New_York starts exports inside the "
            "automated-backup window 02:00 to 06:00 UTC",
        ),
        (
            # 04:30 in London is 04:30 UTC in winter (outside) but 03:30 UTC in summer (inside).
            {
                "export_schedule": "30 4 * * *",
                "export_time_zone": "Europe/London",
                "backup_start_time": "00:00",
                "maintenance_hour": "10",
            },
            "set by cloudsql-backups:backup_start_time = '00:00' (a backup may start any time in the "
            "4 hours from it, and fails while an export holds the instance), the first at "
            "2026-03-29 03:30 UTC",
        ),
        (
            {"export_schedule": "30 4 * * *", "backup_start_time": "10:00"},
            f"{NS}:export_schedule = '30 4 * * *' in Etc/UTC starts exports inside the maintenance "
            f"window Sunday 04:00 to 05:00 UTC set by {NS}:maintenance_day = 7 and "
            f"{NS}:maintenance_hour = 4 (maintenance restarts the instance under a running export), "
            "the first at 2026-01-04 04:30 UTC; allowed: a schedule whose every run starts outside "
            f"Sunday 04:00 to 05:00 UTC, or {OFFLOAD_HINT}",
        ),
        (
            {"export_schedule": "0 22 * * *", "maintenance_day": "2", "maintenance_hour": "22"},
            "inside the maintenance window Tuesday 22:00 to 23:00 UTC set by "
            f"{NS}:maintenance_day = 2 and {NS}:maintenance_hour = 22",
        ),
    ],
    ids=lambda value: str(value)[:60] if isinstance(value, dict) else "",
)
def test_an_export_starting_in_the_backup_or_maintenance_window_is_refused(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in config_error("prod", **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"export_schedule": "30 3 * * *"},
        {"export_schedule": "30 4 * * *", "backup_start_time": "10:00"},
    ],
    ids=str,
)
def test_an_offloaded_export_may_run_in_either_window(overrides: dict[str, Any]) -> None:
    render("prod", preview=True, overrides={**overrides, "export_offload": "true"})


def test_an_export_just_after_the_backup_window_is_accepted() -> None:
    render("prod", preview=True, overrides={"export_schedule": "0 6 * * *"})


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_stack_files_and_the_defaults_schedule_exports_outside_both_windows(
    stack: str,
) -> None:
    assert setting(stack, "export_offload") == "false", "the stack must not need offload"
    render(stack, preview=True)
    schedule_keys = ("export_schedule", "export_time_zone", "backup_start_time", "maintenance_day")
    render(stack, preview=True, overrides=dict.fromkeys((*schedule_keys, "maintenance_hour")))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"retained_backups": "7", "transaction_log_retention_days": "7"},
            f"{NS}:retained_backups = 7 is not greater than {NS}:transaction_log_retention_days = 7: "
            "Cloud SQL refuses it (backup retention should be > transaction log retention); allowed: "
            "retained_backups of at least 8, or fewer transaction-log days",
        ),
        (
            {
                "edition": "ENTERPRISE_PLUS",
                "tier": "db-perf-optimized-N-4",
                "retained_backups": "21",
                "transaction_log_retention_days": "35",
            },
            f"{NS}:retained_backups = 21 is not greater than {NS}:transaction_log_retention_days = 35",
        ),
    ],
    ids=["equal", "fewer"],
)
def test_backups_must_outlast_transaction_logs(overrides: dict[str, Any], expected: str) -> None:
    assert expected in config_error("prod", **overrides)


# --- make check prints a refused config verbatim ------------------------------------------------------


def test_make_check_prints_a_refused_config_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools import render as make_check  # noqa: PLC0415

    # '[true]' is what rich markup would swallow; the long line is what it would wrap.
    overrides = {"deletion_protection": "[true]", "retained_backup": "3"}
    raised = config_error("prod", **overrides)
    output = io.StringIO()
    monkeypatch.setattr(make_check, "console", Console(file=output, width=80, color_system=None))
    monkeypatch.setattr(make_check, "render", functools.partial(render, overrides=overrides))
    assert make_check.main(["prod"]) == 1
    assert output.getvalue() == (
        f"Stack prod: the program refused its config\n{raised}\nprod: configuration refused\n"
    )
    assert f"{NS}:deletion_protection = '[true]': allowed: true or false" in raised
