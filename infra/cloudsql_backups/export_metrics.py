"""Log-based metrics built from the export script's structured log lines (see ``ops/export/README.md``).

The script writes one JSON line per database to stdout; Cloud Run sends it to Cloud Logging, which
parses it into ``jsonPayload``. Counting the ``succeeded`` lines gives a "last successful export"
signal that only a verified export can produce: a job that never starts, fails, or "succeeds" without
writing an object produces no such line.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import type_token

EXPORT_EVENT = "cloudsql_export"


@dataclass(frozen=True)
class ExportMetricsArgs:
    project: str
    environment: str
    job_name: str


def export_log_filter(job_name: str, status: str) -> str:
    """Cloud Logging filter for the script's per-database result lines of one job."""
    return (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{job_name}" '
        f'AND jsonPayload.event="{EXPORT_EVENT}" AND jsonPayload.status="{status}"'
    )


def promql_metric_name(log_metric_name: str) -> str:
    """How Cloud Monitoring's PromQL names a user-defined log-based metric."""
    return f"logging_googleapis_com:user_{log_metric_name}"


class ExportMetrics(pulumi.ComponentResource):
    """Counts successful exports per database, and records export size and duration."""

    success_metric_name: str
    bytes_metric_name: str
    duration_metric_name: str
    metrics: list[gcp.logging.Metric]

    def __init__(
        self, name: str, args: ExportMetricsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("monitoring", "ExportMetrics"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.success_metric_name = f"cloudsql_export_success_{args.environment}"
        self.bytes_metric_name = f"cloudsql_export_bytes_{args.environment}"
        self.duration_metric_name = f"cloudsql_export_duration_{args.environment}"
        database_label = gcp.logging.MetricMetricDescriptorLabelArgs(
            key="database", value_type="STRING", description="Exported database"
        )
        succeeded = export_log_filter(args.job_name, "succeeded")
        self.metrics = [
            gcp.logging.Metric(
                f"{name}-success",
                gcp.logging.MetricArgs(
                    project=args.project,
                    name=self.success_metric_name,
                    description="Verified, successful logical exports (one per database per run).",
                    filter=succeeded,
                    metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                        metric_kind="DELTA", value_type="INT64", unit="1", labels=[database_label]
                    ),
                    label_extractors={"database": "EXTRACT(jsonPayload.database)"},
                ),
                opts=child,
            ),
            _distribution(
                f"{name}-bytes", self.bytes_metric_name, "bytes", "By", args, database_label, child
            ),
            _distribution(
                f"{name}-duration",
                self.duration_metric_name,
                "duration_s",
                "s",
                args,
                database_label,
                child,
            ),
        ]
        self.register_outputs({"success_metric": self.success_metric_name})


def _distribution(
    resource_name: str,
    metric_name: str,
    json_field: str,
    unit: str,
    args: ExportMetricsArgs,
    label: gcp.logging.MetricMetricDescriptorLabelArgs,
    opts: pulumi.ResourceOptions,
) -> gcp.logging.Metric:
    return gcp.logging.Metric(
        resource_name,
        gcp.logging.MetricArgs(
            project=args.project,
            name=metric_name,
            description=f"Export {json_field} per database, from the script's success lines.",
            filter=export_log_filter(args.job_name, "succeeded"),
            metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                metric_kind="DELTA", value_type="DISTRIBUTION", unit=unit, labels=[label]
            ),
            value_extractor=f"EXTRACT(jsonPayload.{json_field})",
            label_extractors={"database": "EXTRACT(jsonPayload.database)"},
            bucket_options=gcp.logging.MetricBucketOptionsArgs(
                exponential_buckets=gcp.logging.MetricBucketOptionsExponentialBucketsArgs(
                    num_finite_buckets=40, growth_factor=2, scale=1
                )
            ),
        ),
        opts=opts,
    )
