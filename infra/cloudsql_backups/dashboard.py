"""A Cloud Monitoring dashboard people read before they read logs: per instance, the automated backups,
the newest verified export and its age against the staleness line, export size and duration over time,
and failed export runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from .alerting import automated_backup_failed_filter, export_failed_filter
from .export_metrics import promql_metric_name
from .naming import type_token
from .restore_verification import verification_log_filter


@dataclass(frozen=True)
class BackupDashboardArgs:
    project: str
    environment: str
    instance_name: str
    job_name: str
    success_metric_name: str
    bytes_metric_name: str
    duration_metric_name: str
    staleness_hours: int
    # The weekly restore verification's job ('' = none in this stack).
    verification_job_name: str = ""


def dashboard_definition(args: BackupDashboardArgs) -> dict[str, Any]:
    """The dashboard as the Monitoring API's JSON (``projects.dashboards``)."""
    success = promql_metric_name(args.success_metric_name)
    selector = f'{{monitored_resource="cloud_run_job",job_name="{args.job_name}"}}'
    # The subquery keeps the newest sample's time in view for a week, not just the 5-minute lookback.
    newest = f"max by (database) (max_over_time(timestamp({success}{selector})[7d:10m]))"
    age_hours = f"(time() - {newest}) / 3600"
    tiles = [
        _tile(0, 0, _logs_panel("Automated backups (audit log)", _backup_log_filter(args))),
        _tile(
            6,
            0,
            _promql_chart(
                "Newest verified export age (h)", age_hours, threshold=args.staleness_hours
            ),
        ),
        _tile(
            0, 4, _distribution_chart("Export size (bytes)", args.bytes_metric_name, args.job_name)
        ),
        _tile(
            6,
            4,
            _distribution_chart("Export duration (s)", args.duration_metric_name, args.job_name),
        ),
        _tile(
            0,
            8,
            _filter_chart(
                "Export runs by result",
                _executions_filter(args.job_name),
                group_by="metric.label.result",
            ),
        ),
        _tile(6, 8, _filter_chart("Failed export runs", export_failed_filter(args.job_name))),
    ]
    if args.verification_job_name:
        tiles.append(_verification_tile(args.verification_job_name))
    return {
        "displayName": f"Cloud SQL backups ({args.environment}): {args.instance_name}",
        "mosaicLayout": {"columns": 12, "tiles": tiles},
        "labels": {"cloudsql-backups": ""},
    }


def _verification_tile(job_name: str) -> dict[str, Any]:
    """The last verified backup per database: each passed line names the export, its RPO and RTO."""
    passed = verification_log_filter(job_name, "passed")
    return {
        "xPos": 0,
        "yPos": 12,
        "width": 12,
        "height": 4,
        "widget": _logs_panel("Last verified backups (export, RPO, RTO per database)", passed),
    }


def _backup_log_filter(args: BackupDashboardArgs) -> str:
    failed_only = automated_backup_failed_filter(
        args.project, f"{args.project}:{args.instance_name}"
    )
    return failed_only.rsplit(" AND ", 1)[0]


def _executions_filter(job_name: str) -> str:
    return export_failed_filter(job_name).replace(' AND metric.labels.result="failed"', "")


def _tile(x: int, y: int, widget: dict[str, Any]) -> dict[str, Any]:
    return {"xPos": x, "yPos": y, "width": 6, "height": 4, "widget": widget}


def _logs_panel(title: str, log_filter: str) -> dict[str, Any]:
    return {"title": title, "logsPanel": {"filter": log_filter}}


def _promql_chart(title: str, query: str, threshold: float) -> dict[str, Any]:
    return {
        "title": title,
        "xyChart": {
            "dataSets": [{"timeSeriesQuery": {"prometheusQuery": query}, "plotType": "LINE"}],
            "thresholds": [
                {"value": threshold, "color": "RED", "direction": "ABOVE", "label": "stale"}
            ],
        },
    }


def _distribution_chart(title: str, log_metric: str, job_name: str) -> dict[str, Any]:
    metric_filter = (
        f'metric.type="logging.googleapis.com/user/{log_metric}" AND resource.type="cloud_run_job" '
        f'AND resource.labels.job_name="{job_name}"'
    )
    return _filter_chart(title, metric_filter, aligner="ALIGN_PERCENTILE_50", reducer="REDUCE_NONE")


def _filter_chart(
    title: str,
    metric_filter: str,
    aligner: str = "ALIGN_DELTA",
    reducer: str = "REDUCE_SUM",
    group_by: str | None = None,
) -> dict[str, Any]:
    aggregation: dict[str, Any] = {
        "alignmentPeriod": "3600s",
        "perSeriesAligner": aligner,
        "crossSeriesReducer": reducer,
    }
    if group_by:
        aggregation["groupByFields"] = [group_by]
    return {
        "title": title,
        "xyChart": {
            "dataSets": [
                {
                    "timeSeriesQuery": {
                        "timeSeriesFilter": {
                            "filter": metric_filter,
                            "aggregation": aggregation,
                        }
                    },
                    "plotType": "STACKED_BAR" if aligner == "ALIGN_DELTA" else "LINE",
                }
            ]
        },
    }


class BackupDashboard(pulumi.ComponentResource):
    dashboard: gcp.monitoring.Dashboard

    def __init__(
        self, name: str, args: BackupDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("monitoring", "BackupDashboard"), name, None, opts)
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            gcp.monitoring.DashboardArgs(
                project=args.project,
                dashboard_json=json.dumps(dashboard_definition(args), sort_keys=True),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"dashboard": self.dashboard.id})
