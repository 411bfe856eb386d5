"""The offline gate as make check uses it: the pack names itself and its mandatory policies, the
CLI passes the real stacks and prints its verdicts as a table people can read."""

from __future__ import annotations

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import edit, put
from tools.policy_gate import GateResult, format_table, main


def test_analyzer_describes_a_mandatory_pack_with_a_schema_for_every_policy(
    analyzers: Analyzers,
) -> None:
    info = analyzers.get("prod", True).info

    assert info.name == "cloudsql-backups-policies"
    assert len(info.policies) >= 30
    for policy in info.policies:
        assert policy.name.count("-") >= 2, policy.name  # <service>-<resource>-<rule>
        assert policy.description
        assert policy.enforcementLevel == 1  # MANDATORY
        assert "reason" in policy.configSchema.properties


def test_table_shows_policy_resource_level_and_message(analyzers: Analyzers) -> None:
    stack = edit(
        rendered("prod", preview=True),
        "gcp:storage/bucket:Bucket",
        lambda props: put(props, "forceDestroy", True),
    )
    result = analyzers.verdicts(stack)

    table = format_table(result)

    assert "storage-bucket-force-destroy" in table
    assert "Bucket backups-bucket" in table
    assert "mandatory" in table
    assert "forceDestroy = true" in table
    assert "prod (preview)" in table


def test_an_empty_result_still_says_what_was_checked() -> None:
    table = format_table(GateResult("staging", True, 56, ()))

    assert "staging (preview): 56 resources, 0 mandatory" in table


def test_cli_passes_the_real_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staging", "prod"]) == 0
    assert "pass every mandatory policy" in capsys.readouterr().out
