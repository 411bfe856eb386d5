"""Stack rules: every Cloud SQL instance has the whole backup path around it, judged by what the
resources do (their properties), never by the names of Pulumi resources.

- export path: a backup bucket (label purpose=sql-backups); a Cloud Run export job for the
  instance (env ``EXPORT_INSTANCE`` = the instance's name, ``EXPORT_PROJECT`` its project when set)
  that writes to that bucket (``EXPORT_BUCKET``); and an active Cloud Scheduler job that starts it
  (``POST https://run.googleapis.com/v2/projects/P/locations/L/jobs/J:run`` with an OAuth token).
- alerts: a failed-backup alert (log-match filter on
  ``protoPayload.methodName="cloudsql.instances.automatedBackup"`` and
  ``resource.labels.database_id="PROJECT:INSTANCE"``); a failed-export alert (threshold filter on
  ``metric.type="run.googleapis.com/job/completed_execution_count"``, ``metric.labels.result="failed"``
  and ``resource.labels.job_name="J"``); a freshness alert (PromQL on ``job_name="J"`` over a log-based
  metric whose filter has ``jsonPayload.event="cloudsql_export"`` and ``jsonPayload.status="succeeded"``,
  looking back no more than maximumStalenessHours).

Each missing piece is its own violation, attached to the instance. A piece that cannot be found
because a value it depends on is unknown (preview) is reported as not verifiable, never as present.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from alert_meaning import (
    BACKUP_METHOD,
    EXECUTION_METRIC,
    backup_log_defects,
    failed_execution_defects,
    freshness_defects,
    paging_defects,
    success_metric_defects,
    summary,
)
from alerting import ALERT_POLICY, NOTIFICATION_CHANNEL
from cloudsql import INSTANCE
from export import RUN_JOB, SCHEDULER_JOB
from policy_kit import (
    Config,
    Finding,
    Resource,
    Setting,
    cannot_verify,
    per_analysis,
    stack_policy,
)
from property_access import Node, ValueUnknown
from pulumi_policy import StackValidationPolicy
from storage import BACKUP_LABEL_KEY, BACKUP_LABEL_VALUE, BUCKET, is_backup_bucket

LOG_METRIC = "gcp:logging/metric:Metric"
COVERAGE_TYPES = frozenset(
    {INSTANCE, BUCKET, RUN_JOB, SCHEDULER_JOB, ALERT_POLICY, LOG_METRIC, NOTIFICATION_CHANNEL}
)
_JOB_RUN_URI = re.compile(
    r"^https://run\.googleapis\.com/v2/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/jobs/(?P<job>[^/:]+):run$"
)
_RANGE = re.compile(r"\[((?:\d+(?:ms|[smhdwy]))+)(?::[^\]]*)?\]")
_DURATION_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_HOURS_PER_UNIT = {
    "ms": 1 / 3_600_000,
    "s": 1 / 3600,
    "m": 1 / 60,
    "h": 1,
    "d": 24,
    "w": 168,
    "y": 8760,
}


def _values(text: str, field_name: str) -> list[str]:
    """Every value compared for equality with ``field_name`` in a filter or query."""
    return re.findall(rf"(?<![\w.]){re.escape(field_name)}\s*=\s*[\"']([^\"']*)[\"']", text)


def _mentions(text: str, field_name: str, value: str) -> bool:
    return value in _values(text, field_name)


def _window_hours(query: str) -> float | None:
    """The longest range selector of a PromQL query, in hours (None when it has none)."""
    windows = [
        sum(int(n) * _HOURS_PER_UNIT[unit] for n, unit in _DURATION_PART.findall(match))
        for match in _RANGE.findall(query)
    ]
    return max(windows) if windows else None


def promql_names(metric_name: str) -> tuple[str, str]:
    """A log-based metric's PromQL name and its Cloud Monitoring type (usable quoted in PromQL)."""
    metric_type = f"logging.googleapis.com/user/{metric_name}"
    domain, _, path = metric_type.partition("/")
    sanitized = re.sub(r"[^A-Za-z0-9_]", "_", domain) + ":" + re.sub(r"[^A-Za-z0-9_]", "_", path)
    return sanitized, metric_type


def _env(job: Resource) -> dict[str, Node]:
    """The job's environment variables by name (first container that sets each)."""
    found: dict[str, Node] = {}
    for container in job.props.at("template.template.containers").elements():
        for env in container.at("envs").elements():
            found.setdefault(str(env.at("name").value), env)
    return found


@dataclass(frozen=True)
class ExportJob:
    resource: Resource
    name: str
    location: str | None
    project: str | None
    instance: str
    instance_project: str | None
    bucket: str | None

    @property
    def run_uri(self) -> str:
        return (
            f"https://run.googleapis.com/v2/projects/{self.project or '<project>'}/locations/"
            f"{self.location or '<region>'}/jobs/{self.name}:run"
        )


def _export_job(job: Resource) -> ExportJob | None:
    env = _env(job)
    if "EXPORT_INSTANCE" not in env:
        return None

    def value(key: str) -> str | None:
        node = env[key].at("value") if key in env else Node(None)
        return str(node.value) if node.value else None

    return ExportJob(
        resource=job,
        name=str(job.props.at("name").value or job.name),
        location=job.props.at("location").value or job.provider.at("region").value,
        project=job.project(),
        instance=value("EXPORT_INSTANCE") or "",
        instance_project=value("EXPORT_PROJECT"),
        bucket=value("EXPORT_BUCKET"),
    )


@dataclass(frozen=True)
class Trigger:
    """A Cloud Scheduler job that calls a Cloud Run job's :run endpoint."""

    resource: Resource
    project: str
    problems: tuple[str, ...]  # why it would not start the job (empty: it would)


def _trigger(scheduler: Resource) -> tuple[tuple[str, str], Trigger] | None:
    uri = scheduler.props.at("httpTarget.uri").value
    match = _JOB_RUN_URI.match(str(uri or ""))
    if match is None:
        return None
    problems = []
    if scheduler.props.at("paused").value is True:
        problems.append("is paused")
    method = scheduler.props.at("httpTarget.httpMethod").value
    if method not in (None, "POST"):
        problems.append(f"calls it with {method}, not POST")
    email = scheduler.props.at("httpTarget.oauthToken.serviceAccountEmail")
    # Only its presence matters: the service account the stack creates is unknown in a preview.
    if not (email.unknown or email.value):
        problems.append("has no oauthToken, so Cloud Run refuses the call")
    trigger = Trigger(scheduler, match.group("project"), tuple(problems))
    return (match.group("location"), match.group("job")), trigger


@dataclass(frozen=True)
class Candidate:
    """An alert policy that watches the right thing, with every reason it could never page."""

    resource: Resource
    defects: tuple[str, ...]


@dataclass(frozen=True)
class FreshnessAlert:
    resource: Resource
    window_hours: float | None
    condition: Node
    metric_filter: str
    paging: tuple[str, ...]  # why it could never reach anyone, whatever its query

    def defects(self, job: str, project: str | None, maximum: float) -> list[str]:
        return [
            *self.paging,
            *freshness_defects(self.condition, self.window_hours, maximum),
            *success_metric_defects(self.metric_filter, job, project),
        ]


@dataclass
class StackIndex:
    """The stack's backup path, indexed for lookups by instance and job (one pass over resources)."""

    instances: list[Resource] = field(default_factory=list)
    jobs_by_instance: dict[str, list[ExportJob]] = field(default_factory=lambda: defaultdict(list))
    backup_buckets: set[str] = field(default_factory=set)
    triggers: dict[tuple[str, str], list[Trigger]] = field(
        default_factory=lambda: defaultdict(list)
    )
    backup_alerts: dict[str, list[Candidate]] = field(default_factory=lambda: defaultdict(list))
    failure_alerts: dict[str, list[Candidate]] = field(default_factory=lambda: defaultdict(list))
    freshness_alerts: dict[str, list[FreshnessAlert]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Log-based success metrics by their PromQL name and metric type: their filters.
    success_metrics: dict[str, str] = field(default_factory=dict)
    channels: dict[str, Resource] = field(default_factory=dict)  # by URN
    channel_names: set[str] = field(default_factory=set)
    # Per kind of resource, the first unknown value that kept one of them from being read.
    unknown: dict[str, str] = field(default_factory=dict)

    def read(
        self, kind: str, resources: Iterable[Resource], reader: Callable[[Resource], None]
    ) -> None:
        for resource in resources:
            try:
                reader(resource)
            except ValueUnknown as missing:
                self.unknown.setdefault(kind, f"{resource.name} {missing.path}")

    def missing(self, instance: Resource, kinds: tuple[str, ...], message: str) -> Finding:
        """``message``, unless an unknown value might have hidden the missing piece."""
        for kind in kinds:
            if kind in self.unknown:
                return Finding(cannot_verify(self.unknown[kind]), instance.urn)
        return Finding(message, instance.urn)

    def jobs_for(self, name: str, project: str | None) -> list[ExportJob]:
        return [
            job
            for job in self.jobs_by_instance.get(name, [])
            if None in (job.instance_project, project) or job.instance_project == project
        ]

    def triggers_for(self, job: ExportJob) -> list[Trigger]:
        return [
            trigger
            for trigger in self.triggers.get((job.location or "", job.name), [])
            # The URI may name the project by ID or by number; a number cannot be checked offline.
            if trigger.project.isdigit() or job.project in (None, trigger.project)
        ]


@per_analysis  # both stack rules read the same index: built once per analysis
def build_index(resources: list[Resource]) -> StackIndex:
    by_type: dict[str, list[Resource]] = defaultdict(list)
    for resource in resources:
        by_type[resource.type].append(resource)
    index = StackIndex()
    index.read("instances", by_type[INSTANCE], index.instances.append)
    index.read("buckets", by_type[BUCKET], lambda bucket: _index_bucket(index, bucket))
    index.read("jobs", by_type[RUN_JOB], lambda job: _index_job(index, job))
    index.read("schedulers", by_type[SCHEDULER_JOB], lambda s: _index_scheduler(index, s))
    index.read("metrics", by_type[LOG_METRIC], lambda metric: _index_metric(index, metric))
    index.read("channels", by_type[NOTIFICATION_CHANNEL], lambda c: _index_channel(index, c))
    index.read("alerts", by_type[ALERT_POLICY], lambda alert: _index_alert(index, alert))
    return index


def _index_bucket(index: StackIndex, bucket: Resource) -> None:
    if is_backup_bucket(bucket):
        index.backup_buckets.add(str(bucket.props.at("name").value or bucket.name))


def _index_job(index: StackIndex, job: Resource) -> None:
    export = _export_job(job)
    if export is not None:
        index.jobs_by_instance[export.instance].append(export)


def _index_scheduler(index: StackIndex, scheduler: Resource) -> None:
    found = _trigger(scheduler)
    if found is not None:
        key, trigger = found
        index.triggers[key].append(trigger)


def _index_metric(index: StackIndex, metric: Resource) -> None:
    log_filter = str(metric.props.at("filter").value or "")
    # Recognised by what it is about; whether it counts successes only is judged with its alert.
    if _mentions(log_filter, "jsonPayload.event", "cloudsql_export"):
        for name in promql_names(str(metric.props.at("name").value)):
            index.success_metrics[name] = log_filter


def _index_channel(index: StackIndex, channel: Resource) -> None:
    index.channels[channel.urn] = channel
    name = channel.props.at("name")
    if not name.unknown and name.value:
        index.channel_names.add(str(name.value))


def usable_channels(index: StackIndex, alert: Resource) -> int:
    """How many of the alert's channels would deliver: enabled channels of the stack, plus
    channels named by ID (not created by the stack) in the alert's own project."""
    from_stack = [
        index.channels[urn]
        for urn in alert.depends_on("notificationChannels")
        if urn in index.channels
    ]
    usable = sum(1 for channel in from_stack if channel.props.at("enabled").value is not False)
    entries = alert.props.at("notificationChannels").elements()
    # Entries the stack's channels account for are judged above, by the channel itself.
    external_slots = max(0, len(entries) - len(from_stack))
    own_prefix = f"projects/{alert.project()}/notificationChannels/"
    external = [
        entry
        for entry in entries
        if not entry.unknown
        and str(entry.value) not in index.channel_names
        and str(entry.value).startswith(own_prefix)
    ]
    return usable + min(external_slots, len(external))


def _index_alert(index: StackIndex, alert: Resource) -> None:
    paging = tuple(paging_defects(alert, usable_channels(index, alert)))
    for condition in alert.props.at("conditions").elements():
        log_filter = str(condition.at("conditionMatchedLog.filter").value or "")
        if _mentions(log_filter, "protoPayload.methodName", BACKUP_METHOD):
            for database in _values(log_filter, "resource.labels.database_id"):
                defects = (*paging, *backup_log_defects(log_filter, database))
                index.backup_alerts[database].append(Candidate(alert, defects))
        threshold = str(condition.at("conditionThreshold.filter").value or "")
        if _mentions(threshold, "metric.type", EXECUTION_METRIC):
            for job in _values(threshold, "resource.labels.job_name"):
                defects = (*paging, *failed_execution_defects(condition, job))
                index.failure_alerts[job].append(Candidate(alert, defects))
        query = str(condition.at("conditionPrometheusQueryLanguage.query").value or "")
        metric_filters = [f for name, f in index.success_metrics.items() if name in query]
        if metric_filters:
            for job in _values(query, "job_name"):
                index.freshness_alerts[job].append(
                    FreshnessAlert(
                        alert, _window_hours(query), condition, metric_filters[0], paging
                    )
                )


InstanceRule = Callable[[StackIndex, Resource, str, "str | None"], Iterator[Finding]]


def _per_primary_instance(index: StackIndex, rule: InstanceRule) -> Iterator[Finding]:
    """``rule``'s findings for each primary instance (replicas take no backups of their own);
    an unknown value needed for one instance is reported on that instance."""
    for instance in index.instances:
        try:
            if instance.props.at("masterInstanceName").value:
                continue
            name = str(instance.props.at("name").value or instance.name)
            yield from rule(index, instance, name, instance.project())
        except ValueUnknown as missing:
            yield Finding(cannot_verify(f"{instance.name} {missing.path}"), instance.urn)


def backup_coverage(resources: list[Resource], config: Config) -> Iterator[Finding]:
    """Every missing piece of every primary instance's backup path."""
    maximum_staleness = float(config["maximumStalenessHours"])

    def rule(
        index: StackIndex, instance: Resource, name: str, project: str | None
    ) -> Iterator[Finding]:
        yield from _export_findings(index, instance, name, project)
        yield from _alert_findings(index, instance, name, project, maximum_staleness)

    yield from _per_primary_instance(build_index(resources), rule)


def _export_findings(
    index: StackIndex, instance: Resource, name: str, project: str | None
) -> Iterator[Finding]:
    jobs = index.jobs_for(name, project)
    if not index.backup_buckets:
        yield index.missing(
            instance,
            ("buckets",),
            f"instance {name} has no backup bucket: no {BUCKET} labelled "
            f"{BACKUP_LABEL_KEY}={BACKUP_LABEL_VALUE} in the stack",
        )
    if not jobs:
        yield index.missing(
            instance,
            ("jobs",),
            f"instance {name} has no export job: no {RUN_JOB} runs with EXPORT_INSTANCE={name}",
        )
        return
    to_backup_bucket = [job for job in jobs if job.bucket in index.backup_buckets]
    if index.backup_buckets and not to_backup_bucket:
        writes = ", ".join(
            f"{job.name} -> {job.bucket or '<EXPORT_BUCKET not set>'}" for job in jobs
        )
        yield index.missing(
            instance,
            ("buckets",),
            f"instance {name}: no export job writes to a backup bucket of the stack ({writes})",
        )
    yield from _schedule_findings(index, instance, name, to_backup_bucket or jobs)


def _schedule_findings(
    index: StackIndex, instance: Resource, name: str, jobs: list[ExportJob]
) -> Iterator[Finding]:
    triggers = [(job, trigger) for job in jobs for trigger in index.triggers_for(job)]
    if any(not trigger.problems for _, trigger in triggers):
        return
    near_misses = "; ".join(
        f"{trigger.resource.name} targets {job.name} but {' and '.join(trigger.problems)}"
        for job, trigger in triggers
    )
    expected = " or ".join(f"POST {job.run_uri}" for job in jobs)
    yield index.missing(
        instance,
        ("schedulers",),
        f"instance {name}: no active {SCHEDULER_JOB} starts its export ({expected})"
        + (f": {near_misses}" if near_misses else ""),
    )


def _alert_findings(
    index: StackIndex, instance: Resource, name: str, project: str | None, max_staleness: float
) -> Iterator[Finding]:
    database_id = f"{project}:{name}" if project else None
    backup_alerts = [
        candidate
        for db, candidates in index.backup_alerts.items()
        if db == database_id or (database_id is None and db.endswith(f":{name}"))
        for candidate in candidates
    ]
    if not backup_alerts:
        yield index.missing(
            instance,
            ("alerts",),
            f"instance {name} has no failed-backup alert: no alert policy has a log-match condition "
            f'filtering protoPayload.methodName="{BACKUP_METHOD}" and resource.labels.database_id='
            f'"{database_id or "<project>:" + name}"',
        )
    else:
        yield from _never_pages(instance, name, "failed-backup", backup_alerts)
    jobs = index.jobs_for(name, project)
    if not jobs:
        for alert in ("failed-export", "freshness"):
            yield index.missing(
                instance,
                ("jobs",),
                f"instance {name} has no {alert} alert: it has no export job to watch",
            )
        return
    yield from _failure_alert_findings(index, instance, name, jobs)
    yield from _freshness_findings(index, instance, name, jobs, max_staleness)


def _failure_alert_findings(
    index: StackIndex, instance: Resource, name: str, jobs: list[ExportJob]
) -> Iterator[Finding]:
    candidates = [c for job in jobs for c in index.failure_alerts.get(job.name, [])]
    if candidates:
        yield from _never_pages(instance, name, "failed-export", candidates)
        return
    job_names = " or ".join(f'"{job.name}"' for job in jobs)
    yield index.missing(
        instance,
        ("alerts",),
        f"instance {name} has no failed-export alert: no alert policy has a threshold condition "
        f'filtering metric.type="{EXECUTION_METRIC}", metric.labels.result="failed" and '
        f"resource.labels.job_name={job_names}",
    )


def _freshness_findings(
    index: StackIndex, instance: Resource, name: str, jobs: list[ExportJob], maximum: float
) -> Iterator[Finding]:
    alerts = [(job, alert) for job in jobs for alert in index.freshness_alerts.get(job.name, [])]
    if not alerts:
        job_names = " or ".join(f'"{job.name}"' for job in jobs)
        yield index.missing(
            instance,
            ("alerts", "metrics"),
            f"instance {name} has no freshness alert: no alert policy has a PromQL condition on "
            f"job_name={job_names} over a log-based metric whose filter has "
            'jsonPayload.event="cloudsql_export" and jsonPayload.status="succeeded"',
        )
        return
    candidates = [
        Candidate(alert.resource, tuple(alert.defects(job.name, job.project, maximum)))
        for job, alert in alerts
    ]
    yield from _never_pages(instance, name, "freshness", candidates)


def _never_pages(
    instance: Resource, name: str, kind: str, candidates: list[Candidate]
) -> Iterator[Finding]:
    """A finding when every alert of ``kind`` for the instance has a defect (none can page)."""
    if any(not candidate.defects for candidate in candidates):
        return
    reasons = " | ".join(summary(c.resource.name, c.defects) for c in candidates)
    yield Finding(
        f"instance {name}: its {kind} alert can never page anyone: {reasons}", instance.urn
    )


def scheduler_targets(resources: list[Resource], _: Config) -> Iterator[Finding]:
    """Every scheduler that calls Cloud Run starts an export job of the stack in its own project."""
    index = build_index(resources)
    jobs = {
        (job.project, job.location, job.name)
        for found in index.jobs_by_instance.values()
        for job in found
    }
    # The weekly restore verification's job (policies/restore_verification.py) is the stack's too.
    jobs |= {
        (job.project(), job.props.at("location").value, str(job.props.at("name").value))
        for job in resources
        if job.type == RUN_JOB and "VERIFY_STAGING_INSTANCE" in _env(job)
    }
    for scheduler in (r for r in resources if r.type == SCHEDULER_JOB):
        try:
            yield from _target_findings(scheduler, jobs, index)
        except ValueUnknown as missing:
            yield Finding(cannot_verify(f"{scheduler.name} {missing.path}"), scheduler.urn)


def _target_findings(
    scheduler: Resource, jobs: set[tuple[str | None, str | None, str]], index: StackIndex
) -> Iterator[Finding]:
    uri = str(scheduler.props.at("httpTarget.uri").value or "")
    host = re.sub(r"^https?://", "", uri).split("/")[0]
    if not host.endswith("run.googleapis.com"):
        return  # not a Cloud Run call: other rules judge what starts the export
    match = _JOB_RUN_URI.match(uri)
    own = scheduler.project()
    if match is None:
        yield Finding(
            f"httpTarget.uri = {uri!r}: not POST .../v2/projects/{own}/locations/REGION/jobs/JOB:run, "
            "the form the program writes; the pack cannot tell which job it starts",
            scheduler.urn,
        )
        return
    project, location, job = match.group("project", "location", "job")
    if project != own:
        yield Finding(
            f"httpTarget.uri names project {project!r}, not the scheduler's own project {own!r} "
            "(by ID, as the program writes it): it would start a job somewhere else",
            scheduler.urn,
        )
        return
    if (project, location, job) not in jobs and "jobs" not in index.unknown:
        known = ", ".join(f"{loc}/{name}" for _, loc, name in sorted(jobs, key=str)) or "none"
        yield Finding(
            f"httpTarget.uri starts {location}/{job}, which is not an export job of the stack "
            f"(export jobs: {known})",
            scheduler.urn,
        )


def policies() -> list[StackValidationPolicy]:
    """The stack rules (few: the SDK deserializes the whole stack once per stack policy)."""
    return [
        stack_policy(
            name="cloudsql-instance-backup-coverage",
            description=(
                "Every Cloud SQL instance of the stack has its whole backup path: a backup bucket "
                f"(label {BACKUP_LABEL_KEY}={BACKUP_LABEL_VALUE}); a Cloud Run export job for it "
                "(EXPORT_INSTANCE) that writes to that bucket (EXPORT_BUCKET); an active Cloud "
                "Scheduler job that starts the export (POST .../jobs/JOB:run with an OAuth token); "
                "a failed-backup alert (log match on its automated backups); a failed-export alert "
                "(failed executions of its export job); and a freshness alert (PromQL over the "
                "export's success log metric, looking back at most maximumStalenessHours). Each "
                "alert counts only if it can page: enabled, notifying when an incident opens, with "
                "an enabled channel, and a condition that fires on the failure (its log filter "
                "matches the entry Google writes for a failed backup window; one failed execution "
                "crosses its threshold and comparison within its window; the freshness query fires "
                "when no export succeeded, no data included, and its metric counts successes "
                "only). Each missing piece is a separate violation naming the instance."
            ),
            resource_types=COVERAGE_TYPES,
            check=backup_coverage,
            settings=[
                Setting(
                    "maximumStalenessHours",
                    "number",
                    48,
                    "Longest time without a successful export before the freshness alert must fire "
                    "(hours; the range of its PromQL query).",
                    {"exclusiveMinimum": 0, "maximum": 720},
                ),
            ],
            remediation=(
                "Add the missing piece named in the message (backup bucket, export job, scheduler "
                "trigger, or alert policy), with the filter or query terms it lists, or fix the "
                "defect that keeps an alert from paging."
            ),
        ),
        stack_policy(
            name="cloudscheduler-job-targets-stack-export",
            description=(
                "Every Cloud Scheduler job that calls Cloud Run starts an export job of this stack, "
                "in the scheduler's own project named by ID (POST https://run.googleapis.com/v2/"
                "projects/PROJECT/locations/REGION/jobs/JOB:run), never a job elsewhere."
            ),
            resource_types=COVERAGE_TYPES,
            check=scheduler_targets,
            remediation="Point httpTarget.uri at the stack's export job, in its own project.",
        ),
    ]
