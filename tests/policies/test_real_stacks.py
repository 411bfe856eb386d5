"""The real stacks pass the pack: as a pull request's first preview sees them (computed values
unknown) and as an update does (every value known), each with its own policy config."""

from __future__ import annotations

import pytest

from tests.policies.harness import STACKS, Analyzers, rendered
from tools.stack_render import UNKNOWN


@pytest.mark.parametrize("preview", [True, False], ids=["first-preview", "update"])
@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_has_no_mandatory_violation(
    analyzers: Analyzers, stack: str, preview: bool
) -> None:
    result = analyzers.verdicts(rendered(stack, preview=preview))

    assert result.resources > 0
    assert result.mandatory_violations == [], "\n".join(
        f"{v.policy}: {v.detail}" for v in result.mandatory_violations
    )


@pytest.mark.parametrize("stack", STACKS)
def test_first_preview_really_has_unknowns_to_cope_with(stack: str) -> None:
    # Guards the test above: a preview render without unknowns would prove nothing about them.
    texts = [str(resource.inputs) for resource in rendered(stack, preview=True).resources]
    assert any(UNKNOWN in text for text in texts)


@pytest.mark.parametrize("stack", STACKS)
def test_every_policy_runs_on_the_real_stack_it_guards(analyzers: Analyzers, stack: str) -> None:
    # Each resource type the pack judges is present, so "no violation" means "checked and fine".
    types = {resource.type for resource in rendered(stack, preview=True).resources}
    judged = {
        "gcp:sql/databaseInstance:DatabaseInstance",
        "gcp:storage/bucket:Bucket",
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        "gcp:projects/iAMMember:IAMMember",
        "gcp:cloudrunv2/job:Job",
        "gcp:cloudscheduler/job:Job",
        "gcp:monitoring/alertPolicy:AlertPolicy",
        "gcp:logging/metric:Metric",
    }
    assert judged <= types
