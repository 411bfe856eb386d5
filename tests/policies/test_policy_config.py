"""Policy config files: validated against the analyzer's own config schemas the way the CLI does
it, and more strictly (unknown names, unknown keys, missing reasons), with errors that say what is
wrong; and the staging relaxations really apply."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tools.policy_config import PolicyConfigError, load_policy_config
from tools.policy_gate import CONFIG_DIR

REASON = "Why this stack may depart from the bar."


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(document))
    return path


def refusal(analyzers: Analyzers, path: Path) -> str:
    policies = analyzers.get("prod", True).policies
    with pytest.raises(PolicyConfigError) as refused:
        load_policy_config(path, policies)
    return str(refused.value)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {
                "cloudsql-instance-retained-backups": {
                    "minimumRetainedBackups": "many",
                    "reason": REASON,
                }
            },
            r"cloudsql-instance-retained-backups: minimumRetainedBackups: 'many' is not of type 'integer'",
        ),
        (
            {"cloudsql-instance-retained-backups": {"minimumRetainedBackups": 0, "reason": REASON}},
            r"minimumRetainedBackups: 0 is less than the minimum of 1",
        ),
        (
            {"cloudrun-job-bounded-retries": {"maximumRetries": 11, "reason": REASON}},
            r"maximumRetries: 11 is greater than the maximum of 10",
        ),
        (
            {
                "cloudsql-instance-ssl-required": {
                    "allowedSslModes": ["ALLOW_UNENCRYPTED_AND_ENCRYPTED"],
                    "reason": REASON,
                }
            },
            r"allowedSslModes\.0: 'ALLOW_UNENCRYPTED_AND_ENCRYPTED' is not one of",
        ),
        (
            {"cloudsql-instance-retained-backup": {"minimumRetainedBackups": 7, "reason": REASON}},
            r"cloudsql-instance-retained-backup: no such policy in the pack",
        ),
        (
            {"cloudsql-instance-retained-backups": {"minimumBackups": 7, "reason": REASON}},
            r"unknown property 'minimumBackups' \(allowed: minimumRetainedBackups\)",
        ),
        (
            {"cloudsql-instance-retained-backups": {"minimumRetainedBackups": 7}},
            r"cloudsql-instance-retained-backups: says nothing about why",
        ),
        (
            {"cloudsql-instance-high-availability": "disabled"},
            r"cloudsql-instance-high-availability: says nothing about why",
        ),
        (
            {"cloudsql-instance-high-availability": {"enforcementLevel": "off", "reason": REASON}},
            r"'off' is not a valid enforcement level",
        ),
        (
            {"all": {"enforcementLevel": "advisory", "minimumDays": 3, "reason": REASON}},
            r"all: takes only enforcementLevel and reason",
        ),
        (["not", "an", "object"], r"must be a JSON object keyed by policy name"),
    ],
    ids=[
        "threshold-of-wrong-type",
        "threshold-below-minimum",
        "threshold-above-maximum",
        "value-outside-enum",
        "unknown-policy",
        "unknown-property",
        "missing-reason",
        "level-without-reason",
        "bad-level",
        "thresholds-for-all",
        "not-an-object",
    ],
)
def test_bad_config_is_a_clear_error(
    analyzers: Analyzers, tmp_path: Path, document: Any, expected: str
) -> None:
    message = refusal(analyzers, write(tmp_path, document))

    assert re.search(expected, message), message
    assert str(tmp_path) in message  # says which file


def test_every_problem_is_listed_at_once(analyzers: Analyzers, tmp_path: Path) -> None:
    message = refusal(
        analyzers,
        write(
            tmp_path,
            {
                "no-such-policy": {"reason": REASON},
                "cloudrun-job-timeout": {"maximumTimeoutHours": 500, "reason": REASON},
            },
        ),
    )

    assert "no-such-policy" in message
    assert "maximumTimeoutHours" in message


def test_invalid_json_is_a_clear_error(analyzers: Analyzers, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"cloudsql-instance-protected": ')

    assert "not valid JSON" in refusal(analyzers, path)


def test_a_refused_config_leaves_the_analyzer_as_it_was(
    analyzers: Analyzers, tmp_path: Path
) -> None:
    analyzer = analyzers.get("staging", True)
    with pytest.raises(PolicyConfigError):
        analyzer.configure(write(tmp_path, {"cloudsql-instance-protected": "disabled"}))

    assert analyzers.verdicts(rendered("staging", preview=True)).mandatory_violations == []


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_stack_config_files_are_valid(analyzers: Analyzers, stack: str) -> None:
    resolved = load_policy_config(CONFIG_DIR / f"{stack}.json", analyzers.get(stack, True).policies)

    assert set(resolved) == {policy.name for policy in analyzers.get(stack, True).policies}


def test_prod_is_held_to_every_default(analyzers: Analyzers) -> None:
    resolved = load_policy_config(CONFIG_DIR / "prod.json", analyzers.get("prod", True).policies)

    assert {config.level for config in resolved.values()} == {"mandatory"}
    assert resolved["cloudsql-instance-retained-backups"].properties["minimumRetainedBackups"] == 21


def test_staging_relaxations_are_what_lets_staging_pass(analyzers: Analyzers) -> None:
    # The same staging stack, judged with prod's config, fails exactly on the relaxed policies.
    staging = rendered("staging", preview=True)
    with analyzers.configured("staging", True, CONFIG_DIR / "prod.json") as analyzer:
        strict = analyzer.analyze(staging)
    relaxed = set(json.loads((CONFIG_DIR / "staging.json").read_text()))

    assert {v.policy for v in strict.mandatory_violations} == relaxed
    assert analyzers.verdicts(staging).mandatory_violations == []


def test_all_sets_every_level(analyzers: Analyzers, tmp_path: Path) -> None:
    path = write(tmp_path, {"all": {"enforcementLevel": "advisory", "reason": REASON}})

    resolved = load_policy_config(path, analyzers.get("prod", True).policies)

    assert {config.level for config in resolved.values()} == {"advisory"}
