"""Alert policy rules: every Cloud Monitoring alert policy of the stack is enabled, pages someone
when an incident opens, and, when it matches log entries, carries the notification rate limit
Google requires for that. Notification channel rules: every channel the stack creates delivers
(enabled) and delivers inside the organisation (its email domain, webhook host or Pub/Sub project).

During a first preview the notification channels the stack creates have unknown names, but the
list of them, and so its length, is known: that is what the channel rule counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from policy_kit import Config, Resource, Setting, resource_policy, string_list
from property_access import describe
from pulumi_policy import ResourceValidationPolicy, Severity

ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
NOTIFICATION_CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
_ALERT_TYPES = frozenset({ALERT_POLICY})
_CHANNEL_TYPES = frozenset({NOTIFICATION_CHANNEL})
ORGANISATION_DOMAINS = ["acme.example"]
# Channel types whose destination the pack can place inside or outside the organisation.
JUDGED_CHANNEL_TYPES = ("email", "pubsub", "webhook_tokenauth", "webhook_basicauth")
_TOPIC = re.compile(r"^projects/(?P<project>[^/]+)/topics/[^/]+$")


def in_domains(host: str, domains: list[str]) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one (case-insensitive)."""
    host = host.lower().rstrip(".")
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains)


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


def _notifies_on_open(alert: Resource, _: Config) -> Iterator[str]:
    prompts = alert.props.at("alertStrategy.notificationPrompts")
    # Not set: Google notifies when an incident opens and when it closes.
    if prompts.value and "OPENED" not in prompts.value:
        yield (
            f"{prompts.path} = {prompts.value}: notifications go out only when an incident "
            "closes, never when it opens; add OPENED (or remove the setting)"
        )


def _channel_enabled(channel: Resource, _: Config) -> Iterator[str]:
    enabled = channel.props.at("enabled")
    # Google forwards notifications to a channel unless enabled is explicitly false.
    if enabled.value is False:
        yield (
            "enabled = false: alerts that use this channel notify no one through it; set it to "
            "true (or leave it unset)"
        )


def _channel_inside_org(channel: Resource, config: Config) -> Iterator[str]:
    channel_type = channel.props.at("type").value
    domains = list(config["allowedDomains"])
    if channel_type not in config["allowedTypes"]:
        yield (
            f"type = {describe(channel_type)}: not an allowed channel type (allowedTypes: "
            f"{', '.join(config['allowedTypes'])}); its destination cannot be shown to be inside "
            "the organisation"
        )
        return
    labels = channel.props.at("labels")
    if channel_type == "email":
        address = labels.at("email_address")
        domain = str(address.value or "").rpartition("@")[2]
        if not in_domains(domain, domains):
            yield (
                f"{address.path} = {describe(address.value)}: outside the organisation's domains "
                f"({', '.join(domains)}, allowedDomains); alerts would page someone else"
            )
    elif channel_type == "pubsub":
        topic = labels.at("topic")
        match = _TOPIC.match(str(topic.value or ""))
        projects = [channel.project(), *config["allowedProjects"]]
        if match is None or match.group("project") not in projects:
            yield (
                f"{topic.path} = {describe(topic.value)}: not a topic of the channel's project or "
                "of allowedProjects"
            )
    else:
        url = labels.at("url")
        host = urlsplit(str(url.value or "")).hostname or ""
        if not in_domains(host, domains):
            yield (
                f"{url.path} = {describe(url.value)}: the webhook's host is outside the "
                f"organisation's domains ({', '.join(domains)}, allowedDomains)"
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
        resource_policy(
            name="monitoring-alert-policy-notifies-on-open",
            description=(
                "Cloud Monitoring alert policies notify when an incident opens: "
                "alertStrategy.notificationPrompts, when set, includes OPENED."
            ),
            resource_types=_ALERT_TYPES,
            checks=[_notifies_on_open],
            severity=Severity.CRITICAL,
            remediation="Add OPENED to alert_strategy.notification_prompts, or remove the setting.",
        ),
        resource_policy(
            name="monitoring-notification-channel-enabled",
            description=(
                "Notification channels of the stack are enabled: a disabled channel silently drops "
                "every alert sent to it."
            ),
            resource_types=_CHANNEL_TYPES,
            checks=[_channel_enabled],
            severity=Severity.CRITICAL,
            remediation="Set enabled=True on the notification channel (or leave it unset).",
        ),
        resource_policy(
            name="monitoring-notification-channel-inside-org",
            description=(
                "Notification channels of the stack deliver inside the organisation: email "
                "addresses and webhook hosts in allowedDomains, Pub/Sub topics in the channel's "
                "project or allowedProjects; other channel types only when listed in allowedTypes."
            ),
            resource_types=_CHANNEL_TYPES,
            checks=[_channel_inside_org],
            settings=[
                string_list(
                    "allowedDomains",
                    list(ORGANISATION_DOMAINS),
                    "The organisation's domains: email and webhook destinations must be in one of "
                    "them (subdomains included).",
                    at_least_one=True,
                ),
                Setting(
                    "allowedTypes",
                    "array",
                    list(JUDGED_CHANNEL_TYPES),
                    "Channel types the stack may create.",
                    {
                        "items": {"type": "string", "enum": list(JUDGED_CHANNEL_TYPES)},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ),
                string_list(
                    "allowedProjects",
                    [],
                    "Projects besides the channel's own whose Pub/Sub topics may receive alerts.",
                ),
            ],
            severity=Severity.CRITICAL,
            remediation=(
                "Point the channel at an address, host or topic of the organisation, or add the "
                "domain to allowedDomains if it is the organisation's."
            ),
        ),
    ]
