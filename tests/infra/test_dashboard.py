"""BackupDashboard, as the engine receives it, and the metrics the dashboard and the alerts read.

Every metric referenced must exist: either a log-based metric this stack defines (as
``logging.googleapis.com/user/<name>`` in filters, ``logging_googleapis_com:user_<name>`` in PromQL,
following Google's "Mapping Cloud Monitoring metrics to PromQL" rules) or one of Google's own metrics
listed below (Cloud Run's ``job/completed_execution_count``; Cloud SQL's ``database/up`` and
``database/disk/utilization``). A typo in a metric type would chart nothing and alert on nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tools.stack_render import RenderedStack

DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
LOG_METRIC = "gcp:logging/metric:Metric"
RUN_EXECUTIONS = "run.googleapis.com/job/completed_execution_count"
SQL_UP = "cloudsql.googleapis.com/database/up"
SQL_DISK_UTILIZATION = "cloudsql.googleapis.com/database/disk/utilization"
SQL_INSTANCE_STATE = "cloudsql.googleapis.com/database/instance_state"
TRANSFER_ERRORS = "storagetransfer.googleapis.com/transferjob/error_count"
GOOGLE_METRICS = frozenset(
    {RUN_EXECUTIONS, SQL_UP, SQL_DISK_UTILIZATION, SQL_INSTANCE_STATE, TRANSFER_ERRORS}
)
STALENESS_HOURS = 36
METRIC_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
PROMQL_METRIC = re.compile(r"(?<![\w\"])([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+)")
TILE_TITLES = {
    "Automated backups (audit log)",
    "Newest verified export age (h)",
    "Export size (bytes)",
    "Export duration (s)",
    "Export runs by result",
    "Failed export runs",
}


def to_promql(metric_type: str) -> str:
    """Google's mapping: the first '/' becomes ':', every other special character '_'."""
    domain, path = metric_type.split("/", 1)
    return re.sub(r"[^a-zA-Z0-9_]", "_", domain) + ":" + re.sub(r"[^a-zA-Z0-9_]", "_", path)


def dashboard(stack: RenderedStack) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(stack.one(DASHBOARD).inputs["dashboardJson"])
    return definition


def tiles(stack: RenderedStack) -> dict[str, dict[str, Any]]:
    return {
        tile["widget"]["title"]: tile["widget"]
        for tile in dashboard(stack)["mosaicLayout"]["tiles"]
    }


def time_series_filter(widget: dict[str, Any]) -> dict[str, Any]:
    [data_set] = widget["xyChart"]["dataSets"]
    result: dict[str, Any] = data_set["timeSeriesQuery"]["timeSeriesFilter"]
    return result


def clauses(monitoring_filter: str) -> set[str]:
    return set(monitoring_filter.split(" AND "))


def strings_under(value: Any, keys: frozenset[str]) -> Iterator[str]:
    """Every string stored under one of ``keys``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            else:
                yield from strings_under(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from strings_under(item, keys)


def referenced_metrics(document: Any) -> tuple[set[str], set[str]]:
    """(metric types in Monitoring filters, metric names in PromQL queries)."""
    filters = strings_under(document, frozenset({"filter"}))
    queries = strings_under(document, frozenset({"prometheusQuery", "query"}))
    types = {metric for text in filters for metric in METRIC_TYPE.findall(text)}
    names = {metric for text in queries for metric in PROMQL_METRIC.findall(text)}
    return types, names


def allowed_metrics(stack: RenderedStack) -> tuple[set[str], set[str]]:
    user = {f"logging.googleapis.com/user/{m.inputs['name']}" for m in stack.of_type(LOG_METRIC)}
    types = user | set(GOOGLE_METRICS)
    return types, {to_promql(metric) for metric in types}


def test_promql_mapping_follows_googles_rules() -> None:
    assert to_promql("compute.googleapis.com/instance/cpu/utilization") == (
        "compute_googleapis_com:instance_cpu_utilization"
    )
    assert to_promql("logging.googleapis.com/user/cloudsql_export_success_prod") == (
        "logging_googleapis_com:user_cloudsql_export_success_prod"
    )


def test_dashboard_json_parses_and_is_named_for_the_instance(stack: RenderedStack) -> None:
    definition = dashboard(stack)
    assert (
        definition["displayName"] == f"Cloud SQL backups ({stack.stack}): scheduling-{stack.stack}"
    )
    assert definition["mosaicLayout"]["columns"] == 12
    assert stack.one(DASHBOARD).inputs["project"] == f"acme-scheduling-{stack.stack}"


VERIFIED_TILE = "Last verified backups (export, RPO, RTO per database)"


def test_dashboard_has_the_backup_tiles(stack: RenderedStack) -> None:
    verified = {VERIFIED_TILE} if stack.stack == "staging" else set()
    assert set(tiles(stack)) == TILE_TITLES | verified
    for tile in dashboard(stack)["mosaicLayout"]["tiles"]:
        assert tile["xPos"] + tile["width"] <= 12


def test_automated_backups_tile_shows_this_instances_backup_audit_log(
    stack: RenderedStack,
) -> None:
    project = f"acme-scheduling-{stack.stack}"
    log_filter = tiles(stack)["Automated backups (audit log)"]["logsPanel"]["filter"]
    assert clauses(log_filter) == {
        f'logName="projects/{project}/logs/cloudaudit.googleapis.com%2Fsystem_event"',
        'resource.type="cloudsql_database"',
        f'resource.labels.database_id="{project}:scheduling-{stack.stack}"',
        'protoPayload.methodName="cloudsql.instances.automatedBackup"',
    }


def test_export_age_tile_draws_the_staleness_line(stack: RenderedStack) -> None:
    widget = tiles(stack)["Newest verified export age (h)"]
    [data_set] = widget["xyChart"]["dataSets"]
    query = data_set["timeSeriesQuery"]["prometheusQuery"]
    assert f"logging_googleapis_com:user_cloudsql_export_success_{stack.stack}{{" in query
    assert f'job_name="sql-export-{stack.stack}"' in query
    assert "by (database)" in query
    assert query.endswith("/ 3600")
    assert widget["xyChart"]["thresholds"] == [
        {"value": STALENESS_HOURS, "color": "RED", "direction": "ABOVE", "label": "stale"}
    ]


@pytest.mark.parametrize(
    ("title", "metric"),
    [("Export size (bytes)", "bytes"), ("Export duration (s)", "duration")],
)
def test_size_and_duration_tiles_chart_the_distribution_metrics(
    stack: RenderedStack, title: str, metric: str
) -> None:
    series = time_series_filter(tiles(stack)[title])
    assert clauses(series["filter"]) == {
        f'metric.type="logging.googleapis.com/user/cloudsql_export_{metric}_{stack.stack}"',
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="sql-export-{stack.stack}"',
    }
    assert series["aggregation"]["perSeriesAligner"] == "ALIGN_PERCENTILE_50"


def test_failed_runs_tile(stack: RenderedStack) -> None:
    series = time_series_filter(tiles(stack)["Failed export runs"])
    assert clauses(series["filter"]) == {
        'resource.type="cloud_run_job"',
        f'metric.type="{RUN_EXECUTIONS}"',
        'metric.labels.result="failed"',
        f'resource.labels.job_name="sql-export-{stack.stack}"',
    }
    assert series["aggregation"]["perSeriesAligner"] == "ALIGN_DELTA"


def test_runs_by_result_tile_keeps_the_result_apart(stack: RenderedStack) -> None:
    series = time_series_filter(tiles(stack)["Export runs by result"])
    assert f'metric.type="{RUN_EXECUTIONS}"' in clauses(series["filter"])
    group_by = series["aggregation"].get("groupByFields", [])
    assert any(re.fullmatch(r'metric\.labels?\."?result"?', field) for field in group_by)


def test_dashboard_reads_only_metrics_that_exist(stack: RenderedStack) -> None:
    types, names = referenced_metrics(dashboard(stack))
    allowed_types, allowed_names = allowed_metrics(stack)
    assert types <= allowed_types, types - allowed_types
    assert names <= allowed_names, names - allowed_names
    env = stack.stack
    assert types == {
        f"logging.googleapis.com/user/cloudsql_export_bytes_{env}",
        f"logging.googleapis.com/user/cloudsql_export_duration_{env}",
        RUN_EXECUTIONS,
    }
    assert names == {f"logging_googleapis_com:user_cloudsql_export_success_{env}"}


def test_alerts_read_only_metrics_that_exist(stack: RenderedStack) -> None:
    policies = [policy.inputs for policy in stack.of_type(ALERT_POLICY)]
    types, names = referenced_metrics(policies)
    allowed_types, allowed_names = allowed_metrics(stack)
    assert types <= allowed_types, types - allowed_types
    assert names <= allowed_names, names - allowed_names
    # The Google metrics the alerts rely on, each verified in Google's metric lists.
    expected = {RUN_EXECUTIONS, SQL_UP, SQL_DISK_UTILIZATION, SQL_INSTANCE_STATE}
    if stack.stack == "prod":  # only prod backs up a dashboard bucket
        expected.add(TRANSFER_ERRORS)
    assert types == expected
    vaulted = (
        {"logging_googleapis_com:user_vault_backup_succeeded_prod"}
        if stack.stack == "prod"
        else set()
    )
    # The weekly restore verification runs in staging only (README "Weekly restore verification").
    verified = (
        {"logging_googleapis_com:user_restore_verification_passed_staging"}
        if stack.stack == "staging"
        else set()
    )
    assert (
        names
        == {f"logging_googleapis_com:user_cloudsql_export_success_{stack.stack}"}
        | vaulted
        | verified
    )


def test_metric_scan_catches_a_misspelt_metric(stack: RenderedStack) -> None:
    allowed_types, allowed_names = allowed_metrics(stack)
    document = {
        "filter": 'metric.type="cloudsql.googleapis.com/database/backup/count"',
        "prometheusQuery": "sum(logging_googleapis_com:user_cloudsql_export_sucess_prod)",
    }
    types, names = referenced_metrics(document)
    assert types == {"cloudsql.googleapis.com/database/backup/count"}
    assert not types <= allowed_types
    assert names == {"logging_googleapis_com:user_cloudsql_export_sucess_prod"}
    assert not names <= allowed_names
