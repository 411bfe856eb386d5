"""The stack exports what the smoke test (ops/smoke) reads, and the names are the real resources'."""

from __future__ import annotations

from ops.smoke.smoke import StackUnderTest
from tests.infra.stack_files import setting
from tools.stack_render import RenderedStack

ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
LOG_METRIC = "gcp:logging/metric:Metric"


def test_smoke_test_reads_every_alert_policy_and_log_metric(stack: RenderedStack) -> None:
    under_test = StackUnderTest.from_outputs(stack.outputs)
    policies = [policy.outputs["name"] for policy in stack.of_type(ALERT_POLICY)]
    assert policies and all(name.startswith("projects/") for name in policies)
    assert sorted(under_test.alert_policies) == sorted(policies)
    assert sorted(under_test.log_metrics) == sorted(
        m.inputs["name"] for m in stack.of_type(LOG_METRIC)
    )
    assert under_test.job == f"sql-export-{stack.stack}"
    assert under_test.databases == tuple(setting(stack.stack, "export_databases"))
    assert under_test.instance == setting(stack.stack, "instance_name")
