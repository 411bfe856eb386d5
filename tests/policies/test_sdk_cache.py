"""The pack's speed-up for pulumi-policy (policies/sdk_cache.py) changes no verdict: the same
stacks get the same violations and not-applicable entries with it turned off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import UNKNOWN, edit, get, put, remove
from tools.policy_gate import GateResult, PolicyAnalyzer, policy_config_path
from tools.stack_render import RenderedStack


@pytest.fixture
def uncached() -> Iterator[PolicyAnalyzer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLICY_PACK_SDK_CACHE", "off")
        analyzer = PolicyAnalyzer("prod", preview=True, policy_config=policy_config_path("prod"))
        analyzer.start()
    try:
        yield analyzer
    finally:
        analyzer.close()


def _stacks() -> list[RenderedStack]:
    prod = rendered("prod", preview=True)
    instance = "gcp:sql/databaseInstance:DatabaseInstance"
    envs = "template.template.containers[0].envs"
    return [
        prod,
        edit(prod, instance, lambda p: put(p, "settings.backupConfiguration.enabled", False)),
        edit(prod, instance, lambda p: put(p, "settings.ipConfiguration.sslMode", UNKNOWN)),
        edit(
            prod,
            "gcp:storage/bucket:Bucket",
            lambda p: put(p, "lifecycleRules[0].condition.age", 2),
        ),
        edit(
            prod,
            "gcp:projects/iAMMember:IAMMember",
            lambda p: put(p, "role", "roles/owner"),
            "export-job-exporter",
        ),
        edit(
            prod,
            "gcp:cloudrunv2/job:Job",
            lambda p: get(p, envs).append({"name": "API_TOKEN", "value": "x" * 40}),
        ),
        remove(prod, "gcp:cloudscheduler/job:Job"),
    ]


def _verdicts(
    result: GateResult,
) -> tuple[set[tuple[str, str, str, str]], set[tuple[str, str, str]]]:
    return (
        {(v.policy, v.urn, v.level, v.message) for v in result.violations},
        {(n.policy, n.urn, n.reason) for n in result.not_applicable},
    )


def test_verdicts_are_the_same_without_the_cache(
    analyzers: Analyzers, uncached: PolicyAnalyzer
) -> None:
    for stack in _stacks():
        assert _verdicts(uncached.analyze(stack)) == _verdicts(analyzers.verdicts(stack))


def _stack_verdicts(analyzer: PolicyAnalyzer, stack: RenderedStack) -> tuple[set[Any], set[Any]]:
    result = analyzer.analyze_stack(stack)
    return (
        {(v.policy, v.urn, v.message) for v in result.violations},
        {(n.policy, n.urn, n.reason) for n in result.not_applicable},
    )


def test_stack_rules_share_nothing_between_two_analyses(
    analyzers: Analyzers, uncached: PolicyAnalyzer
) -> None:
    # Stack policies share one conversion of the stack and one index per AnalyzeStack call; two
    # different stacks analysed in turn by the same analyzer must each get their own verdicts.
    prod = rendered("prod", preview=True)
    broken = edit(
        remove(prod, "gcp:cloudscheduler/job:Job"),  # backup coverage (stack index)
        "gcp:storage/bucketIAMMember:BucketIAMMember",  # principals in org (access index)
        lambda p: put(p, "member", "user:contractor@gmail.example"),
        "export-job-reads-exports",
    )
    expected = [_stack_verdicts(uncached, stack) for stack in (prod, broken)]
    assert expected[0] != expected[1]
    shared = analyzers.get("prod", preview=True)
    for _ in range(2):
        assert [_stack_verdicts(shared, stack) for stack in (prod, broken)] == expected
