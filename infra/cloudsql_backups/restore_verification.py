"""The weekly restore verification: Cloud Scheduler starts a Cloud Run job that restores the newest
export of each database into a scratch database on this stack's (staging) instance, runs the
restore drill's checks, deletes the scratch database and logs one JSON line per database and per
run (``ops/restore_verification``). A log-based metric counts the passed lines; two alerts page
when a verification failed and when none passed for ``RESTORE_VERIFICATION_ALERT_DAYS`` days.

Where it lives: in the staging stack. The instance is private-IP only, so the job runs inside
staging's VPC (Direct VPC egress), and everything it may change (scratch databases) is on the
staging instance; production is never written to. It verifies production's exports when
``source_bucket``/``source_instance`` name them (production's stack lets the job list its bucket,
and the staging instance's service account read ``cloudsql/`` objects, see backup_bucket.py).

Least privilege, two identities:
- the job's service account: a custom role with only the Admin API calls the drill's export method
  makes (``instances.get`` and ``instances.import``, ``databases.get/create/delete``), plus
  ``roles/cloudsql.client`` and ``roles/cloudsql.instanceUser`` (connect, IAM database login), all
  bound with an IAM condition on this instance; an IAM database user on it; listing the exports is
  granted on the source bucket (never object reads: the instance reads the dump);
- the scheduler's service account may only run this job (``roles/run.invoker`` on the job).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .alert_policy import AlertSpec, alert_policy, auto_close_strategy, log_match_strategy
from .alerting import export_failed_filter, export_stale_query, runbook_reference
from .config import RESTORE_VERIFICATION_ALERT_DAYS
from .custom_roles import CustomRole, declare_custom_role
from .database import only_this_instance
from .export_job import CLOUD_PLATFORM_SCOPE, run_job_uri
from .naming import standard_labels, type_token

EVENT = "restore_verification"
# The Dockerfile (ops/restore_verification/Dockerfile) creates this virtualenv with `uv sync`.
COMMAND = ("/app/.venv/bin/python", "-m", "ops.restore_verification")
# What run_export_drill calls on the staging instance: instances.get (state, IP, operations),
# instances.import, databases.get/insert/delete
# (https://cloud.google.com/sql/docs/postgres/iam-permissions).
VERIFIER_ROLE = CustomRole(
    id_prefix="restoreVerifier",
    title="Restore verifier",
    description="Create, import into and delete scratch databases. Nothing else.",
    permissions=(
        "cloudsql.instances.get",
        "cloudsql.instances.import",
        "cloudsql.databases.get",
        "cloudsql.databases.create",
        "cloudsql.databases.delete",
    ),
)
# cloudsql.client: cloudsql.instances.connect (the connector's ephemeral certificate);
# instanceUser: cloudsql.instances.login (IAM database authentication)
# (https://cloud.google.com/sql/docs/postgres/iam-roles).
CONNECT_ROLES = ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
# Listing needs storage.objects.list on the bucket; no predefined role has it without object
# reads (https://cloud.google.com/storage/docs/access-control/iam-roles).
LISTER_ROLE = CustomRole(
    id_prefix="exportLister",
    title="Export lister",
    description="List the backup bucket's objects to find the newest export. No reads.",
    permissions=("storage.objects.list",),
)
# How long "no passing verification" must hold before it pages (a run takes at most its timeout).
MISSING_VERIFICATION_PENDING = "3600s"
IAM_SA_SUFFIX = ".gserviceaccount.com"


@dataclass(frozen=True)
class RestoreVerificationArgs:
    """What to verify (source exports), where to restore (this stack's instance), when and how."""

    project: str
    region: str
    environment: str
    instance_name: pulumi.Input[str]
    vpc_network: str
    subnetwork: str  # '' = the subnet named like the network
    source_bucket: pulumi.Input[str]
    source_instance: str
    databases: tuple[str, ...]
    schedule: str
    time_zone: str
    timeout_hours: int
    image: str
    export_interval_hours: float
    notification_channels: list[pulumi.Input[str]]
    github_repository: str = ""

    @property
    def job_name(self) -> str:
        return self.job_name_for(self.environment)

    @staticmethod
    def job_name_for(environment: str) -> str:
        return f"sql-verify-{environment}"

    @staticmethod
    def job_account_email(project: str, environment: str) -> str:
        """Known before deployment: the production stack grants it listing on its bucket."""
        return f"{_account_id('job', environment)}@{project}.iam{IAM_SA_SUFFIX}"

    @property
    def metric_name(self) -> str:
        return f"restore_verification_passed_{self.environment}"


def _account_id(role: str, environment: str) -> str:
    return f"sql-verify-{role}-{environment}"[:30]


def verification_log_filter(job_name: str, status: str) -> str:
    """The job's per-database result lines with ``status`` (see ops/restore_verification)."""
    return (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{job_name}" '
        f'AND jsonPayload.event="{EVENT}" AND jsonPayload.scope="database" '
        f'AND jsonPayload.status="{status}"'
    )


def verification_failed_log_filter(job_name: str) -> str:
    """Any line of the job at ERROR: a failed database, a failed run, invalid settings."""
    return (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{job_name}" '
        f'AND jsonPayload.event="{EVENT}" AND severity>=ERROR'
    )


def grant_export_listing(
    resource_name: str,
    bucket: pulumi.Input[str],
    member: pulumi.Input[str],
    project: str,
    environment: str,
    opts: pulumi.ResourceOptions,
) -> None:
    """Let ``member`` list the bucket's objects (names and metadata), nothing else."""
    role = declare_custom_role(f"{resource_name}-role", LISTER_ROLE, project, environment, opts)
    gcp.storage.BucketIAMMember(
        resource_name,
        gcp.storage.BucketIAMMemberArgs(bucket=bucket, role=role.name, member=member),
        opts=opts,
    )


class RestoreVerification(pulumi.ComponentResource):
    """Identities, permissions, the Cloud Run job, its weekly trigger, its metric and alerts."""

    job: gcp.cloudrunv2.Job
    scheduler_job: gcp.cloudscheduler.Job
    job_service_account: gcp.serviceaccount.Account
    passed_metric: gcp.logging.Metric
    policies: dict[str, gcp.monitoring.AlertPolicy]
    policy_names: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: RestoreVerificationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("verification", "RestoreVerification"), name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        self.job_service_account = self._service_account("job", "Weekly restore verification")
        scheduler_account = self._service_account("scheduler", "Starts the weekly verification")
        self._grant_instance_access()
        self.job = self._cloud_run_job()
        gcp.cloudrunv2.JobIamMember(
            f"{name}-scheduler-invoker",
            gcp.cloudrunv2.JobIamMemberArgs(
                project=args.project,
                location=args.region,
                name=self.job.name,
                role="roles/run.invoker",
                member=scheduler_account.member,
            ),
            opts=self._child,
        )
        self.scheduler_job = self._scheduler_job(scheduler_account)
        self.passed_metric = self._passed_metric()
        self.policies = {
            "restore-verification-failed": self._failed_alert(),
            "restore-verification-missing": self._no_pass_alert(),
        }
        self.policy_names = pulumi.Output.all(*(p.name for p in self.policies.values()))
        self.register_outputs(
            {
                "job_name": self.job.name,
                "scheduler_job_name": self.scheduler_job.name,
                "job_service_account": self.job_service_account.email,
                "metric": self.passed_metric.name,
                "policies": self.policy_names,
            }
        )

    def _service_account(self, role: str, purpose: str) -> gcp.serviceaccount.Account:
        args = self._args
        return gcp.serviceaccount.Account(
            f"{self._name}-{role}-sa",
            gcp.serviceaccount.AccountArgs(
                project=args.project,
                account_id=_account_id(role, args.environment),
                display_name=f"{purpose} ({args.environment})",
                description="See infra/cloudsql_backups/restore_verification.py.",
            ),
            opts=self._child,
        )

    def _grant_instance_access(self) -> None:
        args, member = self._args, self.job_service_account.member
        condition = gcp.projects.IAMMemberConditionArgs(
            title="only-the-staging-instance",
            description="The weekly verification may act on this instance only.",
            expression=only_this_instance(args.project, args.instance_name),
        )
        role = declare_custom_role(
            f"{self._name}-verifier-role",
            VERIFIER_ROLE,
            args.project,
            args.environment,
            self._child,
        )
        roles: list[tuple[str, pulumi.Input[str]]] = [("verifier", role.name)]
        roles += [(r.split(".")[-1], r) for r in CONNECT_ROLES]
        for key, granted in roles:
            gcp.projects.IAMMember(
                f"{self._name}-job-{key.lower()}",
                gcp.projects.IAMMemberArgs(
                    project=args.project, role=granted, member=member, condition=condition
                ),
                opts=self._child,
            )
        # The database user of IAM authentication for a service account is its email without
        # ".gserviceaccount.com" (https://cloud.google.com/sql/docs/postgres/add-manage-iam-users).
        gcp.sql.User(
            f"{self._name}-db-user",
            gcp.sql.UserArgs(
                project=args.project,
                instance=args.instance_name,
                name=self.job_service_account.email.apply(
                    lambda email: email.removesuffix(IAM_SA_SUFFIX)
                ),
                type="CLOUD_IAM_SERVICE_ACCOUNT",
            ),
            opts=self._child,
        )

    def _cloud_run_job(self) -> gcp.cloudrunv2.Job:
        args = self._args
        interface = gcp.cloudrunv2.JobTemplateTemplateVpcAccessNetworkInterfaceArgs(
            network=args.vpc_network, subnetwork=args.subnetwork or None
        )
        return gcp.cloudrunv2.Job(
            f"{self._name}-job",
            gcp.cloudrunv2.JobArgs(
                project=args.project,
                location=args.region,
                name=args.job_name,
                deletion_protection=False,
                labels=standard_labels(args.environment, "restore-verification"),
                template=gcp.cloudrunv2.JobTemplateArgs(
                    task_count=1,
                    parallelism=1,
                    template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                        service_account=self.job_service_account.email,
                        timeout=f"{args.timeout_hours * 3600}s",
                        # A retry would restore again and log again; the next week retries instead.
                        max_retries=0,
                        # Direct VPC egress: only private ranges (the instance's private IP) go
                        # through the VPC; Google APIs the usual way
                        # (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc).
                        vpc_access=gcp.cloudrunv2.JobTemplateTemplateVpcAccessArgs(
                            egress="PRIVATE_RANGES_ONLY", network_interfaces=[interface]
                        ),
                        containers=[
                            gcp.cloudrunv2.JobTemplateTemplateContainerArgs(
                                image=args.image,
                                commands=list(COMMAND),
                                envs=self._env(),
                                resources=gcp.cloudrunv2.JobTemplateTemplateContainerResourcesArgs(
                                    limits={"cpu": "1", "memory": "1Gi"}
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=self._child,
        )

    def _env(self) -> list[gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs]:
        args = self._args
        # Non-secret parameters only: the job authenticates as its service account.
        values: dict[str, pulumi.Input[str]] = {
            "VERIFY_SOURCE_BUCKET": args.source_bucket,
            "VERIFY_SOURCE_INSTANCE": args.source_instance,
            "VERIFY_DATABASES": ",".join(args.databases),
            "VERIFY_STAGING_PROJECT": args.project,
            "VERIFY_STAGING_INSTANCE": args.instance_name,
            "VERIFY_DB_USER": self.job_service_account.email,
            "VERIFY_EXPORT_INTERVAL_HOURS": f"{args.export_interval_hours:g}",
        }
        return [
            gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(name=k, value=v)
            for k, v in values.items()
        ]

    def _scheduler_job(self, account: gcp.serviceaccount.Account) -> gcp.cloudscheduler.Job:
        args = self._args
        return gcp.cloudscheduler.Job(
            f"{self._name}-schedule",
            gcp.cloudscheduler.JobArgs(
                project=args.project,
                region=args.region,
                name=f"{args.job_name}-schedule",
                description="Starts the weekly restore verification of the newest exports.",
                schedule=args.schedule,
                time_zone=args.time_zone,
                paused=False,
                attempt_deadline="60s",
                retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
                    retry_count=3, min_backoff_duration="60s", max_backoff_duration="600s"
                ),
                http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                    # Known at preview (the pack tells this trigger from the export's by it);
                    # depends_on below orders it after the job.
                    uri=run_job_uri(args.project, args.region, args.job_name),
                    http_method="POST",
                    oauth_token=gcp.cloudscheduler.JobHttpTargetOauthTokenArgs(
                        service_account_email=account.email, scope=CLOUD_PLATFORM_SCOPE
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                self._child, pulumi.ResourceOptions(depends_on=[self.job])
            ),
        )

    def _passed_metric(self) -> gcp.logging.Metric:
        args = self._args
        return gcp.logging.Metric(
            f"{self._name}-passed",
            gcp.logging.MetricArgs(
                project=args.project,
                name=args.metric_name,
                description="Passed weekly restore verifications (one per database per run).",
                filter=verification_log_filter(args.job_name, "passed"),
                metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                    metric_kind="DELTA",
                    value_type="INT64",
                    unit="1",
                    labels=[
                        gcp.logging.MetricMetricDescriptorLabelArgs(
                            key="database", value_type="STRING", description="Verified database"
                        )
                    ],
                ),
                label_extractors={"database": "EXTRACT(jsonPayload.database)"},
            ),
            opts=self._child,
        )

    def _policy(
        self,
        key: str,
        title: str,
        conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
        what_happened: str,
        strategy: gcp.monitoring.AlertPolicyAlertStrategyArgs,
    ) -> gcp.monitoring.AlertPolicy:
        args = self._args
        subject = f"[{args.environment}] {title}: {args.source_instance}"
        runbook = runbook_reference(args.github_repository, title)
        spec = AlertSpec(
            project=args.project,
            environment=args.environment,
            key=key,
            title=subject,
            conditions=conditions,
            channels=args.notification_channels,
            documentation=f"{what_happened}\n\nRunbook: {runbook}",
            strategy=strategy,
            severity="ERROR",
            component="restore-verification",
        )
        return alert_policy(f"{self._name}-{key}", spec, self._child)

    def _failed_alert(self) -> gcp.monitoring.AlertPolicy:
        job = self._args.job_name
        return self._policy(
            "restore-verification-failed",
            "Restore verification failed",
            [
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="The verification logged a failed database or run",
                    condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                        filter=verification_failed_log_filter(job),
                        label_extractors={"database": "EXTRACT(jsonPayload.database)"},
                    ),
                ),
                # A crash (out of memory, timeout) logs no line: its failed execution still pages.
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="Cloud Run verification execution failed",
                    condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                        filter=export_failed_filter(job),
                        comparison="COMPARISON_GT",
                        threshold_value=0,
                        duration="0s",
                        aggregations=[
                            gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                                alignment_period="300s",
                                per_series_aligner="ALIGN_DELTA",
                                cross_series_reducer="REDUCE_SUM",
                                group_by_fields=["resource.labels.job_name"],
                            )
                        ],
                    ),
                ),
            ],
            "The weekly restore verification could not restore the newest export, or a check failed "
            "on the restored data (the job's JSON line for the database names the checks that failed "
            "or could not run, and why). Treat the backup as unproven until a verification passes.",
            log_match_strategy(),
        )

    def _no_pass_alert(self) -> gcp.monitoring.AlertPolicy:
        args = self._args
        days = RESTORE_VERIFICATION_ALERT_DAYS
        return self._policy(
            "restore-verification-missing",
            "Restore verification missing",
            [
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=f"No passed restore verification for {days} days",
                    condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                        query=export_stale_query(
                            args.metric_name, args.job_name, args.databases, days * 24
                        ),
                        duration=MISSING_VERIFICATION_PENDING,
                        evaluation_interval="300s",
                        alert_rule="RestoreVerificationMissing",
                        rule_group="cloudsql-backups",
                        # The metric is created in the same update and has no data yet
                        # (https://github.com/hashicorp/terraform-provider-google/issues/11102).
                        disable_metric_validation=True,
                    ),
                )
            ],
            f"No restore verification has passed for {days} days for the database named in the "
            "incident: the weekly job failed, did not run (scheduler paused, permissions revoked, "
            "image gone), or has not run yet after the first deploy. Until one passes, nobody knows "
            "that the newest export restores.",
            auto_close_strategy(),
        )
