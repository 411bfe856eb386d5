"""BackupAlerts and the export's log-based metrics, as the engine receives them, for both stacks.

The automated-backup alert is a log-match condition, so its filter is *evaluated* here against a saved
Cloud SQL audit log entry (``tests/data/automated_backup_failed_entry.json``) with a small evaluator of
the Logging query language subset the filters use. The sample follows the response Google documents in
"View audit logs for automated backups" (Cloud SQL docs, backup-recovery/view-audit-logs-for-automated-
backups): a System Event ``AuditLog`` entry with ``methodName`` ``cloudsql.instances.automatedBackup``,
``metadata`` of type ``speckle.AutomatedBackupEventLog`` carrying ``windowStatus`` (``STATUS_SUCCEEDED``,
``STATUS_ATTEMPT_FAILED``, ``STATUS_FAILED``, ``STATUS_SKIPPED``), on resource ``cloudsql_database``
labelled ``database_id`` = ``project:instance``. Google's sample is a success logged at INFO; the
failure's ``status`` and ``metadata.message`` texts are illustrative, and so are the skipped window's
(``tests/data/automated_backup_skipped_entry.json``: ``STATUS_SKIPPED``, the instance was not running,
logged below ERROR so only its window status can page).

Evaluator semantics (Logging query language): ``=`` equals, ``:`` has (substring), ordered comparisons
on ``severity`` follow LogSeverity (DEFAULT < DEBUG < ... < EMERGENCY); string comparisons are not case
sensitive; NOT binds tightest and, unlike most languages, OR binds tighter than AND; a comparison on a
field the entry lacks is false.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.stack_files import setting
from tools.stack_render import UNKNOWN, ProgramFailed, RegisteredResource, RenderedStack, render

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = REPO_ROOT / "DR_RUNBOOK.md"
FAILED_ENTRY = REPO_ROOT / "tests" / "data" / "automated_backup_failed_entry.json"
SKIPPED_ENTRY = REPO_ROOT / "tests" / "data" / "automated_backup_skipped_entry.json"
# The saved entry is the prod instance's; other stacks get their own project and instance.
SAMPLE_PROJECT = "acme-scheduling-prod"
SAMPLE_INSTANCE = "scheduling-prod"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
LOG_METRIC = "gcp:logging/metric:Metric"
RUN_EXECUTIONS = "run.googleapis.com/job/completed_execution_count"
# key: (title, severity)
POLICIES = {
    "automated-backup-failed": ("Automated backup failed", "CRITICAL"),
    "export-failed": ("Export failed", "CRITICAL"),
    "export-stale": ("Export stale", "CRITICAL"),
    "instance-down": ("Instance down", "CRITICAL"),
    "disk-nearly-full": ("Disk nearly full", "WARNING"),
    "dashboard-assets-transfer-failed": ("Dashboard assets transfer failed", "ERROR"),
}
# Only a stack that backs up a dashboard bucket watches the transfer.
TRANSFER_POLICY = "dashboard-assets-transfer-failed"


def expected_policies(stack: RenderedStack) -> list[str]:
    with_transfer = bool(setting(stack.stack, "dashboard_bucket"))
    return [key for key in POLICIES if with_transfer or key != TRANSFER_POLICY]


SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)


def project_of(stack: str) -> str:
    project: str = setting(stack, "gcp:project")
    return project


def database_id(stack: str) -> str:
    return f"{project_of(stack)}:{setting(stack, 'instance_name')}"


# -- A Logging query language evaluator (the subset the filters use) --------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>>=|<=|!=|=|:|>|<)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z0-9_@%./-]+)
    )""",
    re.VERBOSE,
)
_MISSING = object()


@dataclass(frozen=True)
class Comparison:
    path: str
    op: str
    value: str


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" or "OR"
    operands: tuple[Node, ...]


Node = Comparison | Not | BoolOp


def tokenize(query: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    query = query.rstrip()
    while position < len(query):
        match = _TOKEN.match(query, position)
        assert match is not None, f"cannot parse {query[position:]!r}"
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """expression = conjunction; conjunction = disjunction {["AND"] disjunction};
    disjunction = unary {"OR" unary}; unary = "NOT" unary | "(" expression ")" | comparison."""

    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node:
        node = self.conjunction()
        assert self.peek() is None, f"unexpected {self.peek()}"
        return node

    def conjunction(self) -> Node:
        operands = [self.disjunction()]
        while (token := self.peek()) is not None and token != ("paren", ")"):
            if token == ("word", "AND"):
                self.take()
            operands.append(self.disjunction())  # a bare sequence is an implicit AND
        return operands[0] if len(operands) == 1 else BoolOp("AND", tuple(operands))

    def disjunction(self) -> Node:
        operands = [self.unary()]
        while self.peek() == ("word", "OR"):
            self.take()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else BoolOp("OR", tuple(operands))

    def unary(self) -> Node:
        if self.peek() == ("word", "NOT"):
            self.take()
            return Not(self.unary())
        if self.peek() == ("paren", "("):
            self.take()
            node = self.conjunction()
            assert self.take() == ("paren", ")"), "unbalanced parentheses"
            return node
        kind, path = self.take()
        assert kind == "word", f"expected a field path, got {path!r}"
        op_kind, op = self.take()
        assert op_kind == "op", f"expected an operator after {path}, got {op!r}"
        value_kind, value = self.take()
        if value_kind == "string":
            value = json.loads(value)
        else:
            assert value_kind == "word", f"expected a value after {path}{op}"
        return Comparison(path, op, value)


def parse_query(query: str) -> Node:
    return _Parser(query).parse()


def field_paths(node: Node) -> Iterator[str]:
    if isinstance(node, Comparison):
        yield node.path
    elif isinstance(node, Not):
        yield from field_paths(node.operand)
    else:
        for operand in node.operands:
            yield from field_paths(operand)


def resolve(entry: Any, path: str) -> Any:
    value = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(actual: Any, op: str, expected: str, *, severity: bool) -> bool:
    if op in (">=", "<=", ">", "<"):
        left: float
        right: float
        if severity:
            left, right = SEVERITIES.index(str(actual).upper()), SEVERITIES.index(expected.upper())
        else:
            left, right = float(actual), float(expected)
        return {">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right}[op]
    text, wanted = str(actual).lower(), expected.lower()
    if op == ":":
        return wanted in text
    if op == "=":
        return text == wanted
    return text != wanted  # "!="


def evaluate(node: Node, entry: dict[str, Any]) -> bool:
    if isinstance(node, Not):
        return not evaluate(node.operand, entry)
    if isinstance(node, BoolOp):
        results = (evaluate(operand, entry) for operand in node.operands)
        return all(results) if node.op == "AND" else any(results)
    actual = resolve(entry, node.path)
    if actual is _MISSING or isinstance(actual, dict | list):
        return False
    return _compare(actual, node.op, node.value, severity=node.path == "severity")


def matches(query: str, entry: dict[str, Any]) -> bool:
    return evaluate(parse_query(query), entry)


def test_evaluator_follows_the_logging_query_language() -> None:
    entry = {"severity": "WARNING", "a": {"b": "Hello World"}, "c": "x"}
    assert matches('a.b:"world"', entry)  # has, case-insensitive
    assert not matches('a.b="hello"', entry)
    assert matches('a.b="HELLO WORLD"', entry)
    assert matches("severity>=WARNING AND severity<ERROR", entry)
    assert not matches("severity>=ERROR", entry)
    assert not matches('a.missing:"x"', entry)
    assert not matches('a:"Hello"', entry)  # a mapping is not a string
    # OR binds tighter than AND: a AND (b OR c).
    assert matches('c="x" AND c="y" OR c="x"', entry)
    assert not matches('c="y" AND c="y" OR c="x"', entry)
    assert matches('NOT c="y" c="x"', entry)  # juxtaposition is AND
    assert list(field_paths(parse_query('(a.b:"x" OR severity>=ERROR) AND c="y"'))) == [
        "a.b",
        "severity",
        "c",
    ]


# -- Helpers over the rendered stack ---------------------------------------------------------


def policy(stack: RenderedStack, key: str) -> RegisteredResource:
    found = stack.by_name(f"alerts-{key}")
    assert found.type == ALERT_POLICY
    assert found.inputs["userLabels"]["alert"] == key
    return found


def condition(stack: RenderedStack, key: str) -> dict[str, Any]:
    [only] = policy(stack, key).inputs["conditions"]
    result: dict[str, Any] = only
    return result


def clauses(monitoring_filter: str) -> set[str]:
    return set(monitoring_filter.split(" AND "))


def log_metric(stack: RenderedStack, name: str) -> RegisteredResource:
    [found] = [m for m in stack.of_type(LOG_METRIC) if m.inputs["name"] == name]
    return found


def backup_filter(stack: RenderedStack) -> str:
    log_filter: str = condition(stack, "automated-backup-failed")["conditionMatchedLog"]["filter"]
    return log_filter


def sample_entry(
    project: str, instance: str, sample: Path = FAILED_ENTRY, **changes: Any
) -> dict[str, Any]:
    """A saved backup entry, for ``project``/``instance``, with ``changes`` at double-underscore paths
    (``None`` removes a field)."""
    text = sample.read_text()
    text = text.replace(SAMPLE_PROJECT, "{{PROJECT}}").replace(SAMPLE_INSTANCE, "{{INSTANCE}}")
    entry: dict[str, Any] = json.loads(
        text.replace("{{PROJECT}}", project).replace("{{INSTANCE}}", instance)
    )
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = entry
        for part in parents:
            target = target[part]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return entry


def entry_for(stack: RenderedStack, **changes: Any) -> dict[str, Any]:
    return sample_entry(project_of(stack.stack), setting(stack.stack, "instance_name"), **changes)


def succeeded_entry(stack: RenderedStack) -> dict[str, Any]:
    """The same window, succeeded, as Google's documented sample logs it (INFO, status OK)."""
    return entry_for(
        stack,
        severity="INFO",
        protoPayload__status={"message": "OK"},
        protoPayload__metadata__windowStatus="STATUS_SUCCEEDED",
        protoPayload__metadata__message="",
        protoPayload__metadata__backupStartTime="2026-01-14T02:11:16.631Z",
        protoPayload__metadata__backupCompletionTime="2026-01-14T02:13:57.347Z",
    )


def github_slug(heading: str) -> str:
    """The anchor GitHub renders for a Markdown heading."""
    text = unicodedata.normalize("NFKC", heading.strip()).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


# -- The saved sample ------------------------------------------------------------------------


def test_saved_sample_is_a_failed_automated_backup_system_event() -> None:
    entry = json.loads(FAILED_ENTRY.read_text())
    payload = entry["protoPayload"]
    assert payload["@type"] == "type.googleapis.com/google.cloud.audit.AuditLog"
    assert payload["serviceName"] == "cloudsql.googleapis.com"
    assert payload["methodName"] == "cloudsql.instances.automatedBackup"
    assert payload["resourceName"] == "projects/acme-scheduling-prod/instances/scheduling-prod"
    assert payload["metadata"]["@type"] == "type.googleapis.com/speckle.AutomatedBackupEventLog"
    assert payload["metadata"]["windowStatus"] == "STATUS_FAILED"
    assert entry["resource"] == {
        "type": "cloudsql_database",
        "labels": {
            "region": "europe-west1",
            "project_id": "acme-scheduling-prod",
            "database_id": "acme-scheduling-prod:scheduling-prod",
        },
    }
    assert entry["logName"] == (
        "projects/acme-scheduling-prod/logs/cloudaudit.googleapis.com%2Fsystem_event"
    )
    assert entry["severity"] == "ERROR"


# -- Automated backup failed ------------------------------------------------------------------


def test_backup_filter_selects_this_instances_automated_backup_system_events(
    stack: RenderedStack,
) -> None:
    node = parse_query(backup_filter(stack))
    assert isinstance(node, BoolOp)
    assert node.op == "AND"
    assert set(node.operands[:4]) == {
        Comparison(
            "logName",
            "=",
            f"projects/{project_of(stack.stack)}/logs/cloudaudit.googleapis.com%2Fsystem_event",
        ),
        Comparison("resource.type", "=", "cloudsql_database"),
        Comparison("resource.labels.database_id", "=", database_id(stack.stack)),
        Comparison("protoPayload.methodName", "=", "cloudsql.instances.automatedBackup"),
    }


def test_backup_filter_matches_a_failed_window(stack: RenderedStack) -> None:
    assert matches(backup_filter(stack), entry_for(stack))


def test_backup_filter_matches_a_failed_attempt_even_when_logged_below_error(
    stack: RenderedStack,
) -> None:
    entry = entry_for(
        stack, severity="WARNING", protoPayload__metadata__windowStatus="STATUS_ATTEMPT_FAILED"
    )
    assert matches(backup_filter(stack), entry)


def test_saved_skipped_sample_is_the_same_event_with_a_skipped_window() -> None:
    failed, skipped = json.loads(FAILED_ENTRY.read_text()), json.loads(SKIPPED_ENTRY.read_text())
    assert skipped["protoPayload"]["metadata"]["windowStatus"] == "STATUS_SKIPPED"
    assert skipped["protoPayload"]["methodName"] == failed["protoPayload"]["methodName"]
    assert skipped["resource"] == failed["resource"]
    assert skipped["logName"] == failed["logName"]
    assert SEVERITIES.index(skipped["severity"]) < SEVERITIES.index("ERROR")


def test_backup_filter_matches_a_skipped_window(stack: RenderedStack) -> None:
    """A stopped instance's backup is skipped: logged below ERROR, it must still page."""
    entry = sample_entry(
        project_of(stack.stack), setting(stack.stack, "instance_name"), SKIPPED_ENTRY
    )
    assert matches(backup_filter(stack), entry)
    for severity in ("INFO", "NOTICE", "WARNING"):
        assert matches(backup_filter(stack), {**entry, "severity": severity}), severity


def test_backup_filter_ignores_a_successful_window(stack: RenderedStack) -> None:
    assert not matches(backup_filter(stack), succeeded_entry(stack))


def test_backup_filter_ignores_another_instance(stack: RenderedStack) -> None:
    other = sample_entry(project_of(stack.stack), "reporting-replica")
    assert (
        other["resource"]["labels"]["database_id"] == f"{project_of(stack.stack)}:reporting-replica"
    )
    assert not matches(backup_filter(stack), other)


def test_backup_filter_ignores_another_projects_instance(stack: RenderedStack) -> None:
    other = sample_entry("acme-billing-prod", setting(stack.stack, "instance_name"))
    assert not matches(backup_filter(stack), other)


def test_every_field_the_backup_filter_reads_exists_in_the_sample(stack: RenderedStack) -> None:
    entry = entry_for(stack)
    paths = list(field_paths(parse_query(backup_filter(stack))))
    assert len(paths) == 7
    for path in paths:
        value = resolve(entry, path)
        assert value is not _MISSING, f"{path} is not a field of the audit log entry"
        assert isinstance(value, str), path


def test_backup_alert_is_rate_limited_and_closes_itself(stack: RenderedStack) -> None:
    inputs = policy(stack, "automated-backup-failed").inputs
    assert inputs["alertStrategy"] == {
        "notificationRateLimit": {"period": "3600s"},
        "autoClose": "86400s",
    }
    assert condition(stack, "automated-backup-failed")["displayName"] == (
        "Cloud SQL automated backup window failed or skipped"
    )


# -- Export failed ----------------------------------------------------------------------------


def test_export_failed_counts_failed_executions_of_this_job(stack: RenderedStack) -> None:
    threshold = condition(stack, "export-failed")["conditionThreshold"]
    assert clauses(threshold["filter"]) == {
        'resource.type="cloud_run_job"',
        f'metric.type="{RUN_EXECUTIONS}"',
        'metric.labels.result="failed"',
        f'resource.labels.job_name="sql-export-{stack.stack}"',
    }
    assert threshold["aggregations"] == [
        {
            "alignmentPeriod": "300s",
            "perSeriesAligner": "ALIGN_DELTA",
            "crossSeriesReducer": "REDUCE_SUM",
            "groupByFields": ["resource.labels.job_name"],
        }
    ]
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == 0
    assert threshold["duration"] == "0s"
    assert threshold["trigger"] == {"count": 1}
    assert policy(stack, "export-failed").inputs["alertStrategy"] == {"autoClose": "86400s"}


# -- Export stale -----------------------------------------------------------------------------


def test_export_stale_query_counts_verified_exports_per_database(stack: RenderedStack) -> None:
    env = stack.stack
    hours = int(setting(env, "export_staleness_hours"))
    assert hours == 36
    promql = condition(stack, "export-stale")["conditionPrometheusQueryLanguage"]
    query: str = promql["query"]
    assert f"logging_googleapis_com:user_cloudsql_export_success_{env}{{" in query
    assert f'job_name="sql-export-{env}"' in query
    assert 'monitored_resource="cloud_run_job"' in query
    assert f"[{hours}h]" in query
    assert re.findall(r"\[(\d+)h\]", query) == [str(hours)] * len(setting(env, "export_databases"))
    for database in setting(env, "export_databases"):
        assert f'database="{database}"' in query
        # No data at all for a database must count as zero exports, so the alert fires.
        assert f'label_replace(vector(0), "database", "{database}", "", "")' in query
    assert query.rstrip().endswith("< 1")
    # Pending for an hour first: the smoke test's export after a first deploy resolves it unpaged.
    assert promql["duration"] == "3600s"
    assert promql["evaluationInterval"] == "300s"
    assert condition(stack, "export-stale")["displayName"] == f"No verified export for {hours} h"


def cloud_run_log_entry(stack: RenderedStack, job: str, **payload: Any) -> dict[str, Any]:
    """A line of the export script as Cloud Logging stores it (stdout JSON -> jsonPayload)."""
    project = project_of(stack.stack)
    record = {
        "message": "Exported database scheduling of scheduling-prod to gs://b/o.sql.gz (1024 bytes)",
        "event": "cloudsql_export",
        "status": "succeeded",
        "project": project,
        "instance": setting(stack.stack, "instance_name"),
        "database": "scheduling",
        "object": "gs://bucket/scheduling/2026-01-14T033000Z.sql.gz",
        "bytes": 1024,
        "duration_s": 81.204,
        "attempts": 1,
        "error": None,
        "operation": "8f0e2f4a-1b2c-4d5e-9f00-42010a840002",
    }
    record.update(payload)
    return {
        "insertId": "6784a2c1000e3b1f9d7e5a42",
        "jsonPayload": record,
        "resource": {
            "type": "cloud_run_job",
            "labels": {
                "job_name": job,
                "location": setting(stack.stack, "gcp:region"),
                "project_id": project,
            },
        },
        "timestamp": "2026-01-14T03:31:24.118230Z",
        "severity": "INFO",
        "labels": {
            "run.googleapis.com/execution_name": f"{job}-x7k2p",
            "run.googleapis.com/task_attempt": "0",
            "run.googleapis.com/task_index": "0",
        },
        "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
    }


def test_success_metric_counts_only_verified_per_database_successes(
    stack: RenderedStack,
) -> None:
    env = stack.stack
    job = f"sql-export-{env}"
    metric = log_metric(stack, f"cloudsql_export_success_{env}")
    log_filter = metric.inputs["filter"]
    assert clauses(log_filter) == {
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{job}"',
        'jsonPayload.event="cloudsql_export"',
        'jsonPayload.status="succeeded"',
    }
    assert matches(log_filter, cloud_run_log_entry(stack, job))
    assert not matches(log_filter, cloud_run_log_entry(stack, job, status="failed"))
    # The closing summary of a run says "succeeded" too, but is not one verified export.
    assert not matches(log_filter, cloud_run_log_entry(stack, job, event="cloudsql_export_run"))
    other_env = "prod" if env == "staging" else "staging"
    assert not matches(log_filter, cloud_run_log_entry(stack, f"sql-export-{other_env}"))


def test_success_metric_extracts_the_database_label(stack: RenderedStack) -> None:
    metric = log_metric(stack, f"cloudsql_export_success_{stack.stack}")
    assert metric.inputs["labelExtractors"] == {"database": "EXTRACT(jsonPayload.database)"}
    extractor = re.fullmatch(r"EXTRACT\((.+)\)", metric.inputs["labelExtractors"]["database"])
    assert extractor is not None
    entry = cloud_run_log_entry(stack, f"sql-export-{stack.stack}")
    assert resolve(entry, extractor.group(1)) == "scheduling"
    descriptor = metric.inputs["metricDescriptor"]
    assert descriptor["metricKind"] == "DELTA"
    assert descriptor["valueType"] == "INT64"
    assert [label["key"] for label in descriptor["labels"]] == ["database"]


# -- Instance down, stopped; disk nearly full ------------------------------------------------

UP = "cloudsql.googleapis.com/database/up"
INSTANCE_STATE = "cloudsql.googleapis.com/database/instance_state"


def instance_clauses(stack: RenderedStack, metric: str) -> set[str]:
    return {
        'resource.type="cloudsql_database"',
        f'metric.type="{metric}"',
        f'resource.labels.database_id="{database_id(stack.stack)}"',
    }


def conditions_by_name(stack: RenderedStack, key: str) -> dict[str, dict[str, Any]]:
    return {c["displayName"]: c for c in policy(stack, key).inputs["conditions"]}


def test_instance_down_pages_when_up_drops(stack: RenderedStack) -> None:
    threshold = conditions_by_name(stack, "instance-down")["Instance reports down"][
        "conditionThreshold"
    ]
    assert clauses(threshold["filter"]) == instance_clauses(stack, UP)
    assert threshold["comparison"] == "COMPARISON_LT"
    assert threshold["thresholdValue"] == 1
    assert threshold["duration"] == "300s"
    assert threshold["aggregations"] == [
        {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MIN"}
    ]


def test_instance_down_pages_when_up_stops_reporting(stack: RenderedStack) -> None:
    """A stopped instance reports no database/up at all: only an absence condition sees that."""
    absent = conditions_by_name(stack, "instance-down")["Instance stopped reporting database/up"][
        "conditionAbsent"
    ]
    assert clauses(absent["filter"]) == instance_clauses(stack, UP)
    assert absent["duration"] == "600s"
    assert absent["trigger"] == {"count": 1}


def test_instance_down_pages_on_a_stopped_suspended_or_failed_state(stack: RenderedStack) -> None:
    threshold = conditions_by_name(stack, "instance-down")["Instance stopped, suspended or failed"][
        "conditionThreshold"
    ]
    monitoring_filter: str = threshold["filter"]
    base, _, states = monitoring_filter.partition(" AND (")
    assert clauses(base) == instance_clauses(stack, INSTANCE_STATE)
    # One BOOL series per state, only the current one TRUE; RUNNABLE is "stopped by owner".
    assert states == (
        'metric.labels.state="RUNNABLE" OR metric.labels.state="SUSPENDED" '
        'OR metric.labels.state="FAILED")'
    )
    series = {
        "resource": {
            "type": "cloudsql_database",
            "labels": {"database_id": database_id(stack.stack)},
        },
        "metric": {"type": INSTANCE_STATE, "labels": {"state": "RUNNABLE"}},
    }
    assert matches(monitoring_filter, series)
    for state in ("RUNNING", "MAINTENANCE", "PENDING_CREATE"):
        assert not matches(
            monitoring_filter,
            {**series, "metric": {"type": INSTANCE_STATE, "labels": {"state": state}}},
        )
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == 0
    assert threshold["aggregations"] == [
        {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_COUNT_TRUE"}
    ]


def test_instance_down_combines_its_conditions_with_or(stack: RenderedStack) -> None:
    inputs = policy(stack, "instance-down").inputs
    assert inputs["combiner"] == "OR"
    assert len(inputs["conditions"]) == 3


def test_disk_nearly_full_alert(stack: RenderedStack) -> None:
    assert int(setting(stack.stack, "disk_utilization_alert_percent")) == 85
    threshold = condition(stack, "disk-nearly-full")["conditionThreshold"]
    assert clauses(threshold["filter"]) == instance_clauses(
        stack, "cloudsql.googleapis.com/database/disk/utilization"
    )
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == pytest.approx(0.85)
    assert threshold["duration"] == "300s"
    assert threshold["aggregations"] == [
        {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MAX"}
    ]


# -- PromQL on the stack's own metrics -------------------------------------------------------


def test_promql_on_a_metric_the_stack_creates_skips_metric_validation(stack: RenderedStack) -> None:
    """Monitoring answers 404 for a PromQL condition on a metric with no data yet
    (terraform-provider-google#11102): a log-based metric made in the same update has none."""
    own_metrics = [
        f"logging_googleapis_com:user_{metric.inputs['name']}"
        for metric in stack.of_type(LOG_METRIC)
    ]
    assert own_metrics
    checked = 0
    for found in stack.of_type(ALERT_POLICY):
        for each in found.inputs["conditions"]:
            promql = each.get("conditionPrometheusQueryLanguage")
            if promql and any(name in promql["query"] for name in own_metrics):
                assert promql.get("disableMetricValidation") is True, found.name
                checked += 1
    assert checked >= 1


# -- Dashboard assets transfer ----------------------------------------------------------------

TRANSFER_ERRORS = "storagetransfer.googleapis.com/transferjob/error_count"
TRANSFER_JOB = "gcp:storage/transferJob:TransferJob"


def transfer_error_series(project: str, job_id: str) -> dict[str, Any]:
    """One point of Storage Transfer's error metric as Monitoring stores it: resource
    ``storage_transfer_job`` (project_id, job_id = TransferJob.name, location always ``global``),
    metric label ``code`` (docs: storage-transfer/docs/monitor-transfer-jobs)."""
    return {
        "resource": {
            "type": "storage_transfer_job",
            "labels": {"project_id": project, "job_id": job_id, "location": "global"},
        },
        "metric": {"type": TRANSFER_ERRORS, "labels": {"code": "PERMISSION_DENIED"}},
    }


def test_transfer_failure_pages_for_this_transfer_job(stack: RenderedStack) -> None:
    if TRANSFER_POLICY not in expected_policies(stack):
        assert stack.of_type(TRANSFER_JOB) == []
        assert TRANSFER_POLICY not in {
            p.inputs["userLabels"]["alert"] for p in stack.of_type(ALERT_POLICY)
        }
        return
    [transfer] = stack.of_type(TRANSFER_JOB)
    job_name = transfer.inputs["name"]
    assert re.fullmatch(r"transferJobs/(?!OPI)[A-Za-z0-9._~-]*[A-Za-z0-9]", job_name)
    threshold = condition(stack, TRANSFER_POLICY)["conditionThreshold"]
    project = project_of(stack.stack)
    assert matches(threshold["filter"], transfer_error_series(project, job_name))
    assert not matches(threshold["filter"], transfer_error_series(project, "transferJobs/other"))
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == 0
    assert threshold["aggregations"][0]["perSeriesAligner"] == "ALIGN_DELTA"


# -- Every policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(POLICIES))
def test_policy_is_enabled_with_severity_and_auto_close(stack: RenderedStack, key: str) -> None:
    if key not in expected_policies(stack):
        return
    title, severity = POLICIES[key]
    inputs = policy(stack, key).inputs
    instance = setting(stack.stack, "instance_name")
    assert inputs["enabled"] is True
    assert inputs["severity"] == severity
    assert inputs["combiner"] == "OR"
    assert inputs["alertStrategy"]["autoClose"] == "86400s"
    assert inputs["displayName"] == f"[{stack.stack}] {title}: {instance}"
    assert inputs["project"] == project_of(stack.stack)
    assert inputs["userLabels"] == {
        "env": stack.stack,
        "managed-by": "pulumi",
        "component": "alerting",
        "alert": key,
    }


@pytest.mark.parametrize("key", list(POLICIES))
def test_documentation_links_the_runbook_section(stack: RenderedStack, key: str) -> None:
    if key not in expected_policies(stack):
        return
    documentation = policy(stack, key).inputs["documentation"]
    repository = setting(stack.stack, "github_repository")
    assert documentation["mimeType"] == "text/markdown"
    assert "DR_RUNBOOK.md" in documentation["content"]
    assert documentation["content"].endswith(
        f"Runbook: https://github.com/{repository}/blob/main/DR_RUNBOOK.md#alert-{key}"
    )


@pytest.mark.parametrize("key", list(POLICIES))
def test_runbook_has_the_linked_heading(key: str) -> None:
    headings = [
        line.lstrip("#").strip()
        for line in RUNBOOK.read_text().splitlines()
        if re.match(r"^#{1,6} ", line)
    ]
    title = POLICIES[key][0]
    assert f"Alert: {title.lower()}" in headings
    assert f"alert-{key}" in {github_slug(heading) for heading in headings}


def test_github_slug_matches_the_runbook_headings() -> None:
    assert github_slug("Alert: automated backup failed") == "alert-automated-backup-failed"
    assert github_slug("Alert: disk nearly full") == "alert-disk-nearly-full"


# -- Notification channels ----------------------------------------------------------------------


def test_one_email_channel_per_configured_email(stack: RenderedStack) -> None:
    emails = setting(stack.stack, "notification_emails")
    assert len(emails) == 1
    channels = stack.of_type(CHANNEL)
    assert [channel.inputs["labels"] for channel in channels] == [
        {"email_address": email} for email in emails
    ]
    for channel in channels:
        assert channel.inputs["type"] == "email"
        assert channel.inputs["project"] == project_of(stack.stack)


@pytest.mark.parametrize("key", list(POLICIES))
def test_policies_notify_every_channel(stack: RenderedStack, key: str) -> None:
    if key not in expected_policies(stack):
        return
    channel_names = [channel.outputs["name"] for channel in stack.of_type(CHANNEL)]
    channel_names += setting(stack.stack, "notification_channel_ids")
    assert len(channel_names) == 1
    assert policy(stack, key).inputs["notificationChannels"] == channel_names


def test_preview_knows_how_many_channels_each_policy_notifies(
    preview_stack: RenderedStack,
) -> None:
    expected = len(setting(preview_stack.stack, "notification_emails")) + len(
        setting(preview_stack.stack, "notification_channel_ids")
    )
    assert expected == 1
    for key in expected_policies(preview_stack):
        channels = policy(preview_stack, key).inputs["notificationChannels"]
        assert isinstance(channels, list), f"{key}: the channel list is unknown at preview"
        assert len(channels) == expected, key
        # The names are the provider's: unknown until the channels exist.
        assert all(channel == UNKNOWN for channel in channels), key


# -- Config errors ----------------------------------------------------------------------------

NO_CHANNELS: dict[str, list[str]] = {"notification_emails": [], "notification_channel_ids": []}


def test_prod_without_any_notification_target_is_refused() -> None:
    with pytest.raises(ProgramFailed) as failure:
        render("prod", preview=True, overrides=NO_CHANNELS)
    message = str(failure.value)
    assert (
        "cloudsql-backups:notification_emails and notification_channel_ids are both empty: "
        "prod needs at least one notification target for backup alerts"
    ) in message
    assert failure.value.registered == []


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_staleness_not_longer_than_the_export_interval_is_refused(stack_name: str) -> None:
    with pytest.raises(ProgramFailed) as failure:
        render(stack_name, preview=True, overrides={"export_staleness_hours": "24"})
    message = str(failure.value)
    assert (
        "cloudsql-backups:export_staleness_hours = 24 is not longer than the longest gap between "
        "scheduled exports (24 h for '0 23 * * *')"
    ) in message
    assert failure.value.registered == []


def test_staleness_just_over_the_export_interval_is_accepted() -> None:
    rendered = render("staging", preview=True, overrides={"export_staleness_hours": "25"})
    assert (
        "[25h]" in condition(rendered, "export-stale")["conditionPrometheusQueryLanguage"]["query"]
    )


def test_every_line_of_a_config_error_names_its_key() -> None:
    with pytest.raises(ProgramFailed) as failure:
        render("prod", preview=True, overrides={"export_staleness_hours": "24"})
    header, *bullets = str(failure.value).splitlines()
    assert header == "Invalid stack configuration:"
    assert bullets
    for bullet in bullets:
        assert re.match(r"  - (cloudsql-backups|gcp):[a-z_]+", bullet), bullet


def test_staging_without_a_notification_target_is_allowed() -> None:
    rendered = render("staging", preview=True, overrides=NO_CHANNELS)
    assert rendered.of_type(CHANNEL) == []
    # BackupAlerts' own policies, plus the backup-read audit alert of the CI identity and the
    # weekly restore verification's two.
    policies = [p for p in rendered.of_type(ALERT_POLICY) if p.name.startswith("alerts-")]
    assert len(rendered.of_type(ALERT_POLICY)) == len(policies) + 3
    assert len(policies) == len(POLICIES) - 1  # staging backs up no dashboard bucket
    for found in policies:
        assert found.inputs["notificationChannels"] == []
