"""Every gcloud command in DR_RUNBOOK.md exists with the flags it uses, and enumerated flag values
are allowed, checked against the SDK surface captured by `python -m tools.gcloud_surface`
(tests/data/gcloud_surface.json: the SDK's static completion tree plus `--[no-]` flags from
`--help`). gcloud itself is never run here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.gcloud_surface import RUNBOOK, SURFACE, runbook_commands

SURFACE_DATA: dict[str, Any] = json.loads(SURFACE.read_text(encoding="utf-8"))
COMMANDS = runbook_commands(RUNBOOK.read_text(encoding="utf-8"))


def split_command(words: list[str]) -> tuple[str, list[str]]:
    """The longest known command path, and the words after it."""
    for length in range(len(words), 0, -1):
        key = " ".join(words[:length])
        if key in SURFACE_DATA["commands"]:
            return key, words[length:]
    raise AssertionError(
        f"gcloud {' '.join(words)}: command not in {SURFACE.name}; "
        "run `python -m tools.gcloud_surface` if it is new to the runbook"
    )


def flag_problems(words: list[str]) -> list[str]:
    key, rest = split_command(words)
    command = SURFACE_DATA["commands"][key]
    flags: dict[str, Any] = {**SURFACE_DATA["global_flags"], **command["flags"]}
    problems = []
    for word in rest:
        if not word.startswith("--"):
            continue
        name, has_value, value = word.partition("=")
        if name in flags:
            allowed = flags[name]
            if isinstance(allowed, list) and has_value and value not in allowed:
                problems.append(f"gcloud {key} {name}={value}: allowed {allowed}")
            continue
        positive = "--" + name.removeprefix("--no-")
        if name.startswith("--no-") and positive[2:] in command["negatable"]:
            continue
        problems.append(f"gcloud {key}: no flag {name}")
    return problems


def test_the_runbook_has_gcloud_commands_to_check() -> None:
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w)[:60])
def test_runbook_command_uses_existing_flags_and_allowed_values(words: list[str]) -> None:
    assert flag_problems(words) == []


def test_the_checker_catches_wrong_flags_and_values() -> None:
    assert flag_problems(["sql", "instances", "create", "x", "--availability-type=multi"]) == [
        "gcloud sql instances create --availability-type=multi: allowed ['regional', 'zonal']"
    ]
    assert flag_problems(["sql", "instances", "delete", "x", "--skip-final-backup"]) == [
        "gcloud sql instances delete: no flag --skip-final-backup"
    ]
    # --enable-final-backup is a plain switch: it has no --no- form.
    assert flag_problems(["sql", "instances", "delete", "x", "--no-enable-final-backup"]) == [
        "gcloud sql instances delete: no flag --no-enable-final-backup"
    ]
    assert flag_problems(["sql", "instances", "create", "x", "--no-assign-ip"]) == []


def test_region_loss_instance_matches_the_prod_stack() -> None:
    """The runbook's create command builds the stack's instance: network, tier, availability,
    PITR and flags as Pulumi.prod.yaml and the database component set them."""
    from infra.cloudsql_backups.database import AUDIT_DATABASE_FLAGS  # noqa: PLC0415
    from tests.infra.stack_files import setting  # noqa: PLC0415

    [create] = [w for w in COMMANDS if w[:3] == ["sql", "instances", "create"]]
    flags = dict(word.partition("=")[::2] for word in create if word.startswith("--"))
    assert flags["--tier"] == setting("prod", "tier")
    assert flags["--availability-type"] == setting("prod", "availability_type").lower()
    assert flags["--edition"] == setting("prod", "edition").lower()
    assert flags["--database-version"] == setting("prod", "database_version")
    assert flags["--retained-transaction-log-days"] == setting(
        "prod", "transaction_log_retention_days"
    )
    assert flags["--retained-backups-count"] == setting("prod", "retained_backups")
    assert flags["--storage-size"] == setting("prod", "disk_size_gb")
    assert flags["--network"] == "VPC"  # the stack's vpc_network (placeholder table)
    assert {"--enable-point-in-time-recovery", "--no-assign-ip", "--deletion-protection"} <= set(
        flags
    )
    database_flags = dict(pair.split("=") for pair in flags["--database-flags"].split(","))
    assert database_flags == AUDIT_DATABASE_FLAGS
