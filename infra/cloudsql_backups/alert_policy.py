"""One way to declare a Cloud Monitoring alert policy, shared by every component that pages someone.

Every policy of the stack is enabled, combines its conditions with OR, carries its title in the
display name and the notification subject, documentation in Markdown that ends with where to look
next, and the stack's labels with ``alert=<key>``. Log-match conditions need a notification rate
limit ("Required for alert policies with a LogMatch condition", AlertStrategy in
https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies): ``log_match_strategy`` gives
both that and the auto-close every policy uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import standard_labels

ONE_DAY = "86400s"
LOG_MATCH_RATE_LIMIT = "3600s"


@dataclass(frozen=True)
class AlertSpec:
    """What one alert policy says and whom it notifies."""

    project: str
    environment: str
    key: str  # the `alert` label, stable across renames of the title
    title: str  # display name and notification subject
    conditions: Sequence[gcp.monitoring.AlertPolicyConditionArgs]
    channels: Sequence[pulumi.Input[str]]
    documentation: str  # Markdown: what happened, causes, first steps, where the runbook is
    strategy: gcp.monitoring.AlertPolicyAlertStrategyArgs
    severity: str = "CRITICAL"
    component: str = "alerting"  # the `component` label


def auto_close_strategy() -> gcp.monitoring.AlertPolicyAlertStrategyArgs:
    return gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=ONE_DAY)


def log_match_strategy(
    rate_limit: str = LOG_MATCH_RATE_LIMIT,
) -> gcp.monitoring.AlertPolicyAlertStrategyArgs:
    """At most one notification per ``rate_limit`` (required for log-match conditions)."""
    return gcp.monitoring.AlertPolicyAlertStrategyArgs(
        notification_rate_limit=gcp.monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(
            period=rate_limit
        ),
        auto_close=ONE_DAY,
    )


def alert_policy(
    resource_name: str, spec: AlertSpec, opts: pulumi.ResourceOptions
) -> gcp.monitoring.AlertPolicy:
    return gcp.monitoring.AlertPolicy(
        resource_name,
        gcp.monitoring.AlertPolicyArgs(
            project=spec.project,
            display_name=spec.title,
            combiner="OR",
            enabled=True,
            severity=spec.severity,
            conditions=list(spec.conditions),
            notification_channels=list(spec.channels),
            alert_strategy=spec.strategy,
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                subject=spec.title, mime_type="text/markdown", content=spec.documentation
            ),
            user_labels=standard_labels(spec.environment, spec.component, alert=spec.key),
        ),
        opts=opts,
    )
