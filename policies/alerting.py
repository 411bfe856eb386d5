"""Alert policy rules: every Cloud Monitoring alert policy of the stack is enabled, pages someone,
and, when it matches log entries, carries the notification rate limit Google requires for that.

During a first preview the notification channels the stack creates have unknown names, but the
list of them, and so its length, is known: that is what the channel rule counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from policy_kit import Config, Resource, Setting, resource_policy
from property_access import describe
from pulumi_policy import ResourceValidationPolicy, Severity

ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
_ALERT_TYPES = frozenset({ALERT_POLICY})


def _enabled(alert: Resource, _: Config) -> Iterator[str]:
    enabled = alert.props.at("enabled")
    # Google enables an alert policy unless enabled is explicitly false.
    if enabled.value is False:
        yield "enabled = false: the alert never fires; set it to true"


def _notification_channels(alert: Resource, config: Config) -> Iterator[str]:
    channels = alert.props.at("notificationChannels").elements()
    minimum = config["minimumChannels"]
    if len(channels) < minimum:
        yield (
            f"notificationChannels has {len(channels)} channel(s), fewer than {minimum} "
            "(minimumChannels): the alert fires but pages no one; add a notification channel"
        )


def _log_match_rate_limit(alert: Resource, _: Config) -> Iterator[str]:
    conditions = alert.props.at("conditions").elements()
    if not any(condition.at("conditionMatchedLog").value is not None for condition in conditions):
        return
    period = alert.props.at("alertStrategy.notificationRateLimit.period")
    if not period.value:
        yield (
            f"{period.path} = {describe(period.value)}: Google rejects a log-match alert without a "
            "notification rate limit, so the alert would not exist; set e.g. period='3600s'"
        )


def policies() -> list[ResourceValidationPolicy]:
    """The alert policy rules, in the order the policy reference lists them."""
    return [
        resource_policy(
            name="monitoring-alert-policy-enabled",
            description="Cloud Monitoring alert policies of the stack are enabled.",
            resource_types=_ALERT_TYPES,
            checks=[_enabled],
            remediation="Set enabled=True (or leave it unset).",
        ),
        resource_policy(
            name="monitoring-alert-policy-notification-channels",
            description=(
                "Cloud Monitoring alert policies of the stack notify at least minimumChannels "
                "notification channels."
            ),
            resource_types=_ALERT_TYPES,
            checks=[_notification_channels],
            settings=[
                Setting(
                    "minimumChannels",
                    "integer",
                    1,
                    "Fewest notification channels an alert policy may notify.",
                    {"minimum": 1},
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="List the on-call channels in notification_channels.",
        ),
        resource_policy(
            name="monitoring-alert-policy-log-match-rate-limit",
            description=(
                "Alert policies with a log-match condition (conditionMatchedLog) set "
                "alertStrategy.notificationRateLimit, which Google requires for them."
            ),
            resource_types=_ALERT_TYPES,
            checks=[_log_match_rate_limit],
            severity=Severity.MEDIUM,
            remediation="Set alert_strategy.notification_rate_limit.period, e.g. '3600s'.",
        ),
    ]
