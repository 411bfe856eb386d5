"""The weekly restore verification rule (policies/restore_verification.py) and the scheduler rules
it touches, through the real analyzer: each one-edit variant of the staging stack is rejected on
the staging instance with the missing piece named; the real stacks are accepted."""

from __future__ import annotations

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import edit, put, remove
from tools.stack_render import RenderedStack

POLICY = "cloudsql-instance-weekly-restore-verification"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
SCHEDULER = "gcp:cloudscheduler/job:Job"
FAILED = "restore-verification-restore-verification-failed"
MISSING = "restore-verification-restore-verification-missing"
TRIGGER = "restore-verification-schedule"
SCHEDULER_RULES = ("cloudscheduler-job-frequency", "cloudscheduler-job-targets-stack-export")


def staging() -> RenderedStack:
    return rendered("staging", preview=True)


def rejection(analyzers: Analyzers, stack: RenderedStack) -> str:
    result = analyzers.verdicts(stack)
    [instance] = [r.urn for r in stack.resources if r.type == INSTANCE]
    found = [v for v in result.of_policy(POLICY) if v.urn == instance]
    assert found, f"{POLICY} did not reject the variant: {result.violations}"
    assert {v.level for v in found} == {"mandatory"}
    return " | ".join(v.message for v in found)


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_real_stacks_pass_the_verification_and_scheduler_rules(
    analyzers: Analyzers, stack_name: str
) -> None:
    result = analyzers.verdicts(rendered(stack_name, preview=True))
    own = [v for v in result.violations if v.policy in (POLICY, *SCHEDULER_RULES)]
    assert own == []


def test_staging_without_the_verification_is_rejected(analyzers: Analyzers) -> None:
    stack = rendered("staging", preview=True, overrides={"restore_verification_enabled": False})
    assert "scheduling-staging has no weekly restore verification" in rejection(analyzers, stack)


def test_without_the_failed_alert_it_is_rejected(analyzers: Analyzers) -> None:
    message = rejection(analyzers, remove(staging(), ALERT, FAILED))
    assert "sql-verify-staging has no failed alert" in message


def test_without_the_no_pass_alert_it_is_rejected(analyzers: Analyzers) -> None:
    message = rejection(analyzers, remove(staging(), ALERT, MISSING))
    assert "sql-verify-staging has no no-pass alert" in message


def test_a_no_pass_alert_looking_back_too_far_is_rejected(analyzers: Analyzers) -> None:
    def widen(props: dict[str, object]) -> None:
        query = props["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]  # type: ignore[index]
        put(
            props,
            "conditions[0].conditionPrometheusQueryLanguage.query",
            query.replace("[192h]", "[30d]"),
        )

    message = rejection(analyzers, edit(staging(), ALERT, widen, MISSING))
    assert "looks back 720 h, more than 192 h" in message


def test_a_disabled_failed_alert_is_rejected(analyzers: Analyzers) -> None:
    stack = edit(staging(), ALERT, lambda props: put(props, "enabled", False), FAILED)
    assert "its failed alert can never page anyone" in rejection(analyzers, stack)


def test_a_paused_trigger_is_rejected(analyzers: Analyzers) -> None:
    stack = edit(staging(), SCHEDULER, lambda props: put(props, "paused", True), TRIGGER)
    assert "sql-verify-staging is never started: is paused" in rejection(analyzers, stack)


def test_a_monthly_trigger_is_rejected_and_a_weekly_one_is_not_held_to_the_daily_bar(
    analyzers: Analyzers,
) -> None:
    stack = edit(staging(), SCHEDULER, lambda props: put(props, "schedule", "0 7 1 * *"), TRIGGER)
    assert "runs less often than every 168 hours" in rejection(analyzers, stack)
    # The export's own trigger is still held to the daily bar.
    export = edit(
        staging(), SCHEDULER, lambda props: put(props, "schedule", "0 7 * * 1"), "export-schedule"
    )
    assert analyzers.verdicts(export).of_policy("cloudscheduler-job-frequency")
