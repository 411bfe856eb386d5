"""The policy reference, policies/README.md, is generated from the real analyzer and kept current."""

from __future__ import annotations

from tests.policies.harness import Analyzers
from tools.policy_docs import README, render_reference


def test_policy_reference_is_up_to_date(analyzers: Analyzers) -> None:
    expected = render_reference(analyzers.get("prod", True).info)

    assert README.read_text() == expected, "run `python -m tools.policy_docs` and commit the result"


def test_reference_lists_every_policy_with_its_config_and_the_staging_reasons(
    analyzers: Analyzers,
) -> None:
    text = README.read_text()
    info = analyzers.get("prod", True).info

    assert all(f"### {policy.name}" in text for policy in info.policies)
    assert "`minimumRetainedBackups` | integer | `21`" in text
    assert "`minimumRetainedBackups`: 21 → 7" in text
    assert "Staging runs ZONAL on purpose" in text
