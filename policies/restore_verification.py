"""Weekly restore verification rule: every staging instance (user label ``env`` in the configured
environments) is the target of a weekly restore verification, judged by what the resources do:

- a Cloud Run job whose environment names the instance (``VERIFY_STAGING_INSTANCE``);
- an active Cloud Scheduler job that starts it (``POST .../jobs/JOB:run`` with an OAuth token);
- a log-based metric counting its passed lines (filter on ``jsonPayload.event="restore_verification"``,
  ``jsonPayload.status="passed"`` and the job's name);
- a failed alert: a log-match condition on the job's ``restore_verification`` lines;
- a no-pass alert: a PromQL condition over that metric for the job, looking back at most
  ``maximumDaysWithoutPass`` days.

Each alert counts only if it can page (enabled, notifying when an incident opens, a usable channel).
Each missing piece is its own violation, attached to the instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from alert_meaning import paging_defects, summary
from alerting import ALERT_POLICY, NOTIFICATION_CHANNEL
from cloudsql import INSTANCE
from export import RUN_JOB, SCHEDULER_JOB
from policy_kit import Config, Finding, Resource, Setting, cannot_verify, stack_policy
from property_access import Node, ValueUnknown
from pulumi_policy import StackValidationPolicy
from schedules import InvalidScheduleError, gap_longer_than
from stack import (
    LOG_METRIC,
    StackIndex,
    _env,
    _mentions,
    _values,
    _window_hours,
    build_index,
    promql_names,
    usable_channels,
)

EVENT = "restore_verification"
TARGET_VARIABLE = "VERIFY_STAGING_INSTANCE"
RESOURCE_TYPES = frozenset(
    {INSTANCE, RUN_JOB, SCHEDULER_JOB, ALERT_POLICY, LOG_METRIC, NOTIFICATION_CHANNEL}
)


@dataclass(frozen=True)
class VerificationJob:
    name: str
    location: str | None
    instance: str


def _verification_jobs(resources: list[Resource]) -> list[VerificationJob]:
    jobs = []
    for job in resources:
        if job.type != RUN_JOB:
            continue
        env = _env(job)
        if TARGET_VARIABLE in env:
            jobs.append(
                VerificationJob(
                    name=str(job.props.at("name").value or job.name),
                    location=job.props.at("location").value or job.provider.at("region").value,
                    instance=str(env[TARGET_VARIABLE].at("value").value or ""),
                )
            )
    return jobs


def _passed_metrics(resources: list[Resource], job: str) -> set[str]:
    """PromQL names of the log-based metrics counting the job's passed verification lines."""
    names: set[str] = set()
    for metric in resources:
        log_filter = str(metric.props.at("filter").value or "") if metric.type == LOG_METRIC else ""
        if (
            _mentions(log_filter, "jsonPayload.event", EVENT)
            and _mentions(log_filter, "jsonPayload.status", "passed")
            and _mentions(log_filter, "resource.labels.job_name", job)
        ):
            names.update(promql_names(str(metric.props.at("name").value)))
    return names


def _log_filter(condition: Node) -> str:
    """A condition's log-match filter; '' while unknown (an alert the stack builds from other
    outputs, such as the backup-read audit's, cannot be the verification's, whose filter is fixed)."""
    node = condition.at("conditionMatchedLog.filter")
    return "" if node.unknown else str(node.value or "")


def _failed_alerts(alerts: list[Resource], job: str) -> list[Resource]:
    return [
        alert
        for alert in alerts
        for condition in alert.props.at("conditions").elements()
        if _mentions(_log_filter(condition), "jsonPayload.event", EVENT)
        and _mentions(_log_filter(condition), "resource.labels.job_name", job)
    ]


def _no_pass_alerts(
    alerts: list[Resource], job: str, metrics: set[str], max_hours: float
) -> tuple[list[Resource], list[str]]:
    """Alerts whose PromQL reads a passed-verification metric of ``job``; and, for those looking
    back too far, why."""
    found, too_long = [], []
    for alert in alerts:
        for condition in alert.props.at("conditions").elements():
            query = str(condition.at("conditionPrometheusQueryLanguage.query").value or "")
            if not any(name in query for name in metrics) or job not in _values(query, "job_name"):
                continue
            window = _window_hours(query)
            if window is None:
                too_long.append(f"{alert.name}'s query has no range selector")
            elif window > max_hours:
                too_long.append(f"{alert.name} looks back {window:g} h, more than {max_hours:g} h")
            else:
                found.append(alert)
    return found, too_long


def _gap(scheduler: Resource, hours: float) -> str:
    """Why the scheduler's runs can be more than ``hours`` apart ('' when they cannot)."""
    schedule = str(scheduler.props.at("schedule").value or "")
    zone = str(scheduler.props.at("timeZone").value or "Etc/UTC")
    try:
        gap = gap_longer_than(schedule, zone, hours)
    except InvalidScheduleError as invalid:
        return f"schedule {schedule!r} ({zone}): {invalid}"
    if gap is None:
        return ""
    return f"{gap.hours:g} hours between {gap.after:%Y-%m-%d %H:%M} and {gap.before:%Y-%m-%d %H:%M}"


def _paging(index: StackIndex, alerts: list[Resource]) -> tuple[bool, str]:
    """Whether one of ``alerts`` can page, and why none can."""
    reasons = []
    for alert in alerts:
        defects = paging_defects(alert, usable_channels(index, alert))
        if not defects:
            return True, ""
        reasons.append(summary(alert.name, tuple(defects)))
    return False, " | ".join(reasons)


def _instance_findings(
    resources: list[Resource], index: StackIndex, instance: Resource, config: Config
) -> Iterator[Finding]:
    name = str(instance.props.at("name").value or instance.name)
    jobs = [job for job in _verification_jobs(resources) if job.instance == name]
    if not jobs:
        yield Finding(
            f"staging instance {name} has no weekly restore verification: no Cloud Run job sets "
            f"{TARGET_VARIABLE}={name}",
            instance.urn,
        )
        return
    alerts = [r for r in resources if r.type == ALERT_POLICY]
    max_hours = float(config["maximumDaysWithoutPass"]) * 24
    for job in jobs:
        yield from _job_findings(resources, index, instance, alerts, job, max_hours)


def _job_findings(
    resources: list[Resource],
    index: StackIndex,
    instance: Resource,
    alerts: list[Resource],
    job: VerificationJob,
    max_hours: float,
) -> Iterator[Finding]:
    triggers = index.triggers.get((job.location or "", job.name), [])
    if not any(not trigger.problems for trigger in triggers):
        problems = "; ".join(p for t in triggers for p in t.problems) or "none calls its :run"
        yield Finding(f"verification job {job.name} is never started: {problems}", instance.urn)
    # A failed run must be followed by another before the no-pass alert fires.
    every = max_hours - 24
    gaps = [_gap(trigger.resource, every) for trigger in triggers if not trigger.problems]
    if gaps and all(gaps):
        yield Finding(
            f"verification job {job.name} runs less often than every {every:g} hours: {gaps[0]}",
            instance.urn,
        )
    failed = _failed_alerts(alerts, job.name)
    if not failed:
        yield Finding(
            f"verification job {job.name} has no failed alert: no alert policy has a log-match "
            f'condition on jsonPayload.event="{EVENT}" and resource.labels.job_name="{job.name}"',
            instance.urn,
        )
    metrics = _passed_metrics(resources, job.name)
    no_pass, too_long = _no_pass_alerts(alerts, job.name, metrics, max_hours)
    if not no_pass:
        detail = "; ".join(too_long) or (
            f'no alert policy has a PromQL condition on job_name="{job.name}" over a log-based '
            f'metric whose filter has jsonPayload.event="{EVENT}" and jsonPayload.status="passed"'
        )
        yield Finding(f"verification job {job.name} has no no-pass alert: {detail}", instance.urn)
    for kind, candidates in (("failed", failed), ("no-pass", no_pass)):
        can_page, reasons = _paging(index, candidates)
        if candidates and not can_page:
            yield Finding(
                f"verification job {job.name}: its {kind} alert can never page anyone: {reasons}",
                instance.urn,
            )


def weekly_verification(resources: list[Resource], config: Config) -> Iterator[Finding]:
    environments = set(config["environments"])
    index = build_index(resources)
    for instance in resources:
        if instance.type != INSTANCE:
            continue
        try:
            if instance.props.at("masterInstanceName").value:
                continue
            if instance.props.at("settings.userLabels.env").value not in environments:
                continue
            yield from _instance_findings(resources, index, instance, config)
        except ValueUnknown as missing:
            yield Finding(cannot_verify(f"{instance.name} {missing.path}"), instance.urn)


def policies() -> list[StackValidationPolicy]:
    return [
        stack_policy(
            name="cloudsql-instance-weekly-restore-verification",
            description=(
                "Every staging Cloud SQL instance (user label env in the configured environments) "
                "is the target of a weekly restore verification: a Cloud Run job that restores the "
                f"newest exports into it ({TARGET_VARIABLE}), an active Cloud Scheduler job that "
                "starts it, a log-based metric counting its passed lines, an alert on a failed "
                "verification (log match on its restore_verification lines) and an alert when none "
                "passed within maximumDaysWithoutPass days (PromQL over that metric). Each alert "
                "counts only if it can page. Each missing piece is a separate violation naming the "
                "instance."
            ),
            resource_types=RESOURCE_TYPES,
            check=weekly_verification,
            settings=[
                Setting(
                    "maximumDaysWithoutPass",
                    "number",
                    8,
                    "Longest time without a passed verification before the no-pass alert must "
                    "fire (days; the range of its PromQL query).",
                    {"exclusiveMinimum": 0, "maximum": 90},
                ),
                Setting(
                    "environments",
                    "array",
                    ["staging"],
                    "Values of the instance's env user label that require the verification.",
                    {"items": {"type": "string"}},
                ),
            ],
            remediation=(
                "Enable restore_verification in the staging stack (README 'Weekly restore "
                "verification'), or add the missing piece named in the message."
            ),
        ),
    ]
