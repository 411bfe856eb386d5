"""deploy.yml runs the smoke test (ops/smoke) after each `pulumi up`, and prod waits for staging's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workflows.conftest import Workflow

REPO_ROOT = Path(__file__).resolve().parents[2]


def step_index(steps: list[dict[str, Any]], predicate: str) -> int:
    matching = [
        i for i, step in enumerate(steps) if predicate in str(step.get("run", step.get("uses", "")))
    ]
    assert len(matching) == 1, (predicate, matching)
    return matching[0]


@pytest.mark.parametrize("job", ["staging", "prod"])
def test_smoke_test_runs_after_pulumi_up(workflows: dict[str, Workflow], job: str) -> None:
    steps: list[dict[str, Any]] = workflows["deploy.yml"]["jobs"][job]["steps"]
    up = step_index(steps, "pulumi/actions@")
    smoke = step_index(steps, f"make smoke STACK={job}")
    assert steps[up]["with"]["command"] == "up"
    assert steps[up]["with"]["stack-name"] == job
    assert smoke > up
    # Reads the stack outputs through the Pulumi CLI; never skipped when an earlier step passed.
    assert steps[smoke]["env"] == steps[up]["env"]  # the same Pulumi token, from secrets
    assert "if" not in steps[smoke]
    assert "continue-on-error" not in steps[smoke]


def test_prod_waits_for_the_staging_smoke_test(workflows: dict[str, Workflow]) -> None:
    jobs = workflows["deploy.yml"]["jobs"]
    assert jobs["prod"]["needs"] == "staging"
    assert "if" not in jobs["prod"]


def test_make_smoke_runs_the_smoke_package_for_the_stack() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "smoke: setup ## " in makefile
    assert "\t$(RUN) python -m ops.smoke --stack $(STACK) $(ARGS)\n" in makefile
