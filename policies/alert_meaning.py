"""What an alert policy *means*: whether it can ever fire on the failure it is named for, and whether
anyone is told when it does. Each function returns the defects it finds, in plain words (empty: the
alert works); the backup-coverage rule counts an alert only when it has none.

The judgement is by meaning, not by text: a log filter is evaluated (``log_filter``) on the entry
Google writes for the failure; a threshold is checked against the value one failure produces; a
PromQL freshness query must fire when there is no export at all. So a reformatted filter or an
extra option (e.g. disable_metric_validation) changes nothing, while an inverted comparison does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from log_filter import UnsupportedFilterError, matches
from policy_kit import Resource
from property_access import Node, describe, numeric

BACKUP_METHOD: Final = "cloudsql.instances.automatedBackup"
EXECUTION_METRIC: Final = "run.googleapis.com/job/completed_execution_count"
# Automated backups are logged in the System Event audit log of the instance's project, on
# resource type cloudsql_database, with the window's outcome in protoPayload.metadata.windowStatus
# (https://cloud.google.com/sql/docs/postgres/backup-recovery/view-audit-logs-for-automated-backups).
SYSTEM_EVENT_LOG: Final = "projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event"
FAILED_WINDOW_STATUS: Final = "STATUS_FAILED"
# Google does not document the severity of that entry: a filter must catch it at either level.
_AUDIT_SEVERITIES: Final = ("NOTICE", "ERROR")
# Aligners whose value for one failed execution in the period is 1 (ALIGN_RATE divides by the period).
_COUNTING_ALIGNERS: Final = frozenset(
    {"ALIGN_DELTA", "ALIGN_SUM", "ALIGN_MAX", "ALIGN_COUNT", "ALIGN_NONE"}
)
_PASSING_REDUCERS: Final = frozenset({"REDUCE_SUM", "REDUCE_MAX", "REDUCE_COUNT", "REDUCE_NONE"})
_ALL_CONDITIONS: Final = frozenset({"AND", "AND_WITH_MATCHING_RESOURCE"})
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)s$")
# A trailing PromQL comparison with a number, e.g. "< 1", "== 0", "<= bool 0".
_TRAILING_COMPARISON: Final = re.compile(
    r"(?P<op><=|>=|==|!=|<|>)\s*(?:bool\s+)?(?P<value>\d+(?:\.\d+)?)\s*$"
)
_ABSENT_GUARD: Final = re.compile(r"\babsent(?:_over_time)?\s*\(|\bor\b.*?\bvector\s*\(", re.S)


def seconds(value: object) -> float | None:
    """A protobuf duration such as '300s' in seconds (None when absent or not a duration)."""
    match = _DURATION.match(str(value or ""))
    return float(match.group(1)) if match else None


def paging_defects(alert: Resource, usable_channels: int) -> list[str]:
    """Why the alert would never reach anyone, whatever its condition."""
    defects = []
    if alert.props.at("enabled").value is False:
        defects.append("it is disabled (enabled = false)")
    prompts = alert.props.at("alertStrategy.notificationPrompts").value
    # Not set: Google notifies when an incident opens (and closes).
    if prompts and "OPENED" not in prompts:
        defects.append(
            f"alertStrategy.notificationPrompts = {prompts}: it notifies only when an incident "
            "closes, never when it opens"
        )
    conditions = alert.props.at("conditions").elements()
    combiner = alert.props.at("combiner").value
    if combiner in _ALL_CONDITIONS and len(conditions) > 1:
        defects.append(
            f"combiner = {combiner} with {len(conditions)} conditions: it fires only when all of "
            "them hold at once"
        )
    if usable_channels == 0:
        defects.append(
            "none of its notification channels is an enabled channel of the stack or of its own "
            "project, so no one is told"
        )
    return defects


def backup_log_defects(log_filter: str, database_id: str) -> list[str]:
    """Whether a log-match filter catches the entry Cloud SQL writes for a failed backup window."""
    project, _, instance = database_id.partition(":")
    entry = {
        "logName": SYSTEM_EVENT_LOG.format(project=project),
        "resource.type": "cloudsql_database",
        "resource.labels.database_id": database_id,
        "resource.labels.project_id": project,
        "protoPayload.methodName": BACKUP_METHOD,
        "protoPayload.serviceName": "cloudsql.googleapis.com",
        "protoPayload.metadata.windowStatus": FAILED_WINDOW_STATUS,
    }
    try:
        missed = [
            severity
            for severity in _AUDIT_SEVERITIES
            if not matches(log_filter, {**entry, "severity": severity})
        ]
    except UnsupportedFilterError as unsupported:
        return [f"its log filter cannot be judged ({unsupported}), so it may never match"]
    if not missed:
        return []
    return [
        "its log filter does not match the entry Cloud SQL writes when an automated backup of "
        f"{instance} fails (logName={entry['logName']}, resource.type=cloudsql_database, "
        f"protoPayload.methodName={BACKUP_METHOD}, protoPayload.metadata.windowStatus="
        f"{FAILED_WINDOW_STATUS}, severity {' or '.join(missed)})"
    ]


def _monitoring_entry(job: str, metric_type: str, labels: Mapping[str, str]) -> dict[str, str]:
    entry = {
        "resource.type": "cloud_run_job",
        "resource.labels.job_name": job,
        "resource.label.job_name": job,
        "metric.type": metric_type,
    }
    for key, value in labels.items():
        entry[f"metric.labels.{key}"] = value
        entry[f"metric.label.{key}"] = value
    return entry


def failed_execution_defects(condition: Node, job: str) -> list[str]:
    """Whether a threshold condition fires on one failed execution of ``job``."""
    threshold = condition.at("conditionThreshold")
    text = str(threshold.at("filter").value or "")
    defects = []
    if re.search(r"\bOR\b", text):
        # Cloud Monitoring filters are judged as conjunctions only.
        defects.append("its filter uses OR, which the pack cannot judge; list the terms with AND")
    else:
        try:
            failed = matches(text, _monitoring_entry(job, EXECUTION_METRIC, {"result": "failed"}))
        except UnsupportedFilterError as unsupported:
            defects.append(f"its filter cannot be judged ({unsupported})")
        else:
            if not failed:
                defects.append(
                    f'its filter does not select failed executions of {job} (resource.type="'
                    f'cloud_run_job", metric.type="{EXECUTION_METRIC}", metric.labels.result="failed")'
                )
    defects.extend(_one_failure_crosses(threshold))
    return defects


def _one_failure_crosses(threshold: Node) -> list[str]:
    """Whether the value one failed execution produces crosses the threshold for long enough."""
    aggregations = threshold.at("aggregations").elements()
    aggregation = aggregations[0] if aggregations else Node({})
    aligner = aggregation.at("perSeriesAligner").value or "ALIGN_NONE"
    period = seconds(aggregation.at("alignmentPeriod").value) or 60.0
    defects = []
    if aligner == "ALIGN_RATE":
        one_failure = 1 / period
    elif aligner in _COUNTING_ALIGNERS:
        one_failure = 1.0
    else:
        return [f"perSeriesAligner = {aligner}: the value of one failure cannot be judged"]
    reducer = aggregation.at("crossSeriesReducer").value or "REDUCE_NONE"
    if reducer not in _PASSING_REDUCERS:
        defects.append(f"crossSeriesReducer = {reducer} can hide a single failure")
    comparison = threshold.at("comparison").value
    value = numeric(threshold.at("thresholdValue").value, 0.0) or 0.0
    crosses = {
        "COMPARISON_GT": one_failure > value,
        "COMPARISON_GE": one_failure >= value,
    }.get(str(comparison), False)
    if not crosses:
        defects.append(
            f"comparison {describe(comparison)} with thresholdValue {describe(value)}: one failed "
            f"execution ({one_failure:g} per {period:g} s) never crosses it"
        )
    duration = seconds(threshold.at("duration").value) or 0.0
    if duration >= period:
        defects.append(
            f"duration = {duration:g}s is not shorter than the alignment period ({period:g}s): a "
            "single failure does not last long enough to fire"
        )
    count = numeric(threshold.at("trigger.count").value, 1.0) or 1.0
    if count > 1:
        defects.append(
            f"trigger.count = {count:g}: it waits for that many failing jobs at once, and there "
            "is one"
        )
    return defects


def freshness_defects(condition: Node, window_hours: float | None, maximum: float) -> list[str]:
    """Whether a PromQL condition fires when no export succeeded within ``maximum`` hours."""
    promql = condition.at("conditionPrometheusQueryLanguage")
    query = str(promql.at("query").value or "")
    defects = []
    if window_hours is None:
        defects.append("its query has no range selector, so it does not look back at all")
    delay = (seconds(promql.at("duration").value) or 0.0) / 3600
    if window_hours is not None and window_hours + delay > maximum:
        defects.append(
            f"it looks back {window_hours:g} h and waits {delay:g} h more before firing, longer "
            f"than {maximum:g} hours (maximumStalenessHours)"
        )
    if not _ABSENT_GUARD.search(query):
        defects.append(
            "with no export at all the query returns no series, so it never fires: add "
            "'or vector(0)' (or absent_over_time) for the no-data case"
        )
    if not re.search(r"\babsent(?:_over_time)?\s*\(", query):
        comparison = _TRAILING_COMPARISON.search(query)
        if comparison is None or not _zero_passes(
            comparison.group("op"), comparison.group("value")
        ):
            found = comparison.group(0).strip() if comparison else "no trailing comparison"
            defects.append(
                f"its query ends with {found!r}: zero successful exports must satisfy it (e.g. '< 1')"
            )
    return defects


def _zero_passes(operator: str, value: str) -> bool:
    threshold = float(value)
    return {
        "<": threshold > 0,
        "<=": threshold >= 0,
        "==": threshold == 0,
        "!=": threshold != 0,
        ">": False,
        ">=": threshold <= 0,
    }[operator]


def success_metric_defects(log_filter: str, job: str, project: str | None) -> list[str]:
    """Whether a log-based metric counts the export's success lines of ``job``, and only those."""
    line = {
        "logName": f"projects/{project or 'PROJECT'}/logs/run.googleapis.com%2Fstdout",
        "resource.type": "cloud_run_job",
        "resource.labels.job_name": job,
        "jsonPayload.event": "cloudsql_export",
        "jsonPayload.status": "succeeded",
        "severity": "INFO",
    }
    failed = {**line, "jsonPayload.status": "failed", "severity": "ERROR"}
    try:
        counts_success = matches(log_filter, line)
        counts_failure = matches(log_filter, failed)
    except UnsupportedFilterError as unsupported:
        return [f"its success metric's filter cannot be judged ({unsupported})"]
    defects = []
    if not counts_success:
        defects.append(f"its success metric's filter does not match the success lines of {job}")
    if counts_failure:
        defects.append(f"its success metric also counts failed exports of {job}")
    return defects


def summary(name: str, defects: Sequence[str]) -> str:
    return f"{name}: {'; '.join(defects)}"
