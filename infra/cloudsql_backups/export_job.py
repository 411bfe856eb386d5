"""The scheduled logical export: Cloud Scheduler starts a Cloud Run job that runs
``ops/export/cloudsql_export.py`` (the same script as ``make export``) in Google's Cloud SDK image.

How the script reaches the container: it is passed inline (``python3 -c <script>``), so the job needs
no image of its own, and any change to the script shows in ``pulumi preview`` as a change to the job.
The image must ship ``python3`` on x86_64: the ``-slim`` variant does, ``-stable`` does not (see
``sdk_image.py``); the component refuses an image whose variant lacks the interpreter.

Least privilege, three identities:
- the job's service account may export and read *this* instance only (a custom role with
  ``cloudsql.instances.export`` and ``cloudsql.instances.get``, bound with an IAM condition on the
  instance) and read objects in the backup bucket (to check an export landed);
- the scheduler's service account may only run *this* job (``roles/run.invoker`` on the job);
- the instance's own service account, which Cloud SQL uses to write the dump, may manage objects in
  the backup bucket only (``roles/storage.objectAdmin``, the role Google's export docs grant; a create-only
  role has failed in practice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp

from .custom_roles import CustomRole, declare_custom_role
from .database import only_this_instance
from .naming import standard_labels, type_token
from .sdk_image import require_interpreter

EXPORT_SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "export" / "cloudsql_export.py"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
EXPORTER_PERMISSIONS = ("cloudsql.instances.export", "cloudsql.instances.get")
EXPORTER_ROLE = CustomRole(
    "cloudsqlExporter",
    "Cloud SQL exporter",
    "Start a SQL export of an instance and read its state. Nothing else.",
    EXPORTER_PERMISSIONS,
)
# The interpreter the job's command names; the image's variant must ship it (sdk_image.py).
EXPORT_INTERPRETER = "python3"
# Setting an object's retain-until needs setRetention and update; shortening or removing an Unlocked one
# would also need overrideUnlockedRetention, which the job never gets
# (https://cloud.google.com/storage/docs/using-object-lock#required-roles).
RETENTION_SETTER_PERMISSIONS = ("storage.objects.setRetention", "storage.objects.update")
RETENTION_SETTER_ROLE = CustomRole(
    "exportRetentionSetter",
    "Export retention setter",
    "Set the retention of verified exports. Cannot shorten or remove one.",
    RETENTION_SETTER_PERMISSIONS,
)


@dataclass(frozen=True)
class ExportJobArgs:
    """What to export, where, when, and with which image."""

    project: str
    region: str
    environment: str
    instance_name: pulumi.Input[str]
    instance_service_account_email: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    databases: tuple[str, ...]
    schedule: str
    time_zone: str
    offload: bool
    timeout_hours: int
    max_retries: int
    image: str
    # Object Retention Lock on each verified dump: "Locked", "Unlocked" or "none" (not set).
    retention_mode: str = "none"
    retention_days: int = 0

    @property
    def job_name(self) -> str:
        return self.job_name_for(self.environment)

    @staticmethod
    def job_name_for(environment: str) -> str:
        return f"sql-export-{environment}"

    @staticmethod
    def exporter_role_id(environment: str) -> str:
        return EXPORTER_ROLE.role_id(environment)

    @staticmethod
    def retention_setter_role_id(environment: str) -> str:
        return RETENTION_SETTER_ROLE.role_id(environment)

    @staticmethod
    def exporter_role_name(project: str, environment: str) -> str:
        return EXPORTER_ROLE.role_name(project, environment)


def run_job_uri(project: str, region: str, job_name: str) -> str:
    """The Cloud Run Admin API v2 endpoint that starts one execution of a job."""
    return (
        f"https://run.googleapis.com/v2/projects/{project}/locations/{region}/jobs/{job_name}:run"
    )


class ExportJob(pulumi.ComponentResource):
    """Identities, permissions, the Cloud Run job and its schedule."""

    job: gcp.cloudrunv2.Job
    scheduler_job: gcp.cloudscheduler.Job
    job_service_account: gcp.serviceaccount.Account
    scheduler_service_account: gcp.serviceaccount.Account

    def __init__(
        self, name: str, args: ExportJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Before anything is registered: a job whose command cannot start must never be deployed.
        require_interpreter(args.image, EXPORT_INTERPRETER)
        super().__init__(type_token("export", "ExportJob"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.job_service_account = _service_account(f"{name}-job-sa", args, "job", child)
        self.scheduler_service_account = _service_account(
            f"{name}-scheduler-sa", args, "scheduler", child
        )
        self._grant_job_permissions(name, args, child)
        self.job = self._cloud_run_job(name, args, child)
        gcp.cloudrunv2.JobIamMember(
            f"{name}-scheduler-invoker",
            gcp.cloudrunv2.JobIamMemberArgs(
                project=args.project,
                location=args.region,
                name=self.job.name,
                role="roles/run.invoker",
                member=self.scheduler_service_account.member,
            ),
            opts=child,
        )
        self.scheduler_job = self._scheduler_job(name, args, child)
        self.register_outputs(
            {
                "job_name": self.job.name,
                "scheduler_job_name": self.scheduler_job.name,
                "job_service_account": self.job_service_account.email,
            }
        )

    def _grant_job_permissions(
        self, name: str, args: ExportJobArgs, child: pulumi.ResourceOptions
    ) -> None:
        exporter_role = declare_custom_role(
            f"{name}-exporter-role", EXPORTER_ROLE, args.project, args.environment, child
        )
        gcp.projects.IAMMember(
            f"{name}-job-exporter",
            gcp.projects.IAMMemberArgs(
                project=args.project,
                role=exporter_role.name,
                member=self.job_service_account.member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="only-the-backed-up-instance",
                    description="The export job may act on the backed-up instance only.",
                    # Instance permissions only on this instance; reading the export's operation
                    # (checked on a resource that is not an instance) stays possible.
                    expression=only_this_instance(args.project, args.instance_name),
                ),
            ),
            opts=child,
        )
        gcp.storage.BucketIAMMember(
            f"{name}-job-reads-exports",
            gcp.storage.BucketIAMMemberArgs(
                bucket=args.bucket_name,
                role="roles/storage.objectViewer",
                member=self.job_service_account.member,
            ),
            opts=child,
        )
        if args.retention_mode != "none":
            self._grant_retention_setter(name, args, child)
        gcp.storage.BucketIAMMember(
            f"{name}-instance-writes-exports",
            gcp.storage.BucketIAMMemberArgs(
                bucket=args.bucket_name,
                role="roles/storage.objectAdmin",
                member=pulumi.Output.concat("serviceAccount:", args.instance_service_account_email),
            ),
            opts=child,
        )

    def _grant_retention_setter(
        self, name: str, args: ExportJobArgs, child: pulumi.ResourceOptions
    ) -> None:
        """The job may set retain-until on objects of the backup bucket, and nothing more there."""
        role = declare_custom_role(
            f"{name}-retention-setter-role",
            RETENTION_SETTER_ROLE,
            args.project,
            args.environment,
            child,
        )
        gcp.storage.BucketIAMMember(
            f"{name}-job-sets-retention",
            gcp.storage.BucketIAMMemberArgs(
                bucket=args.bucket_name,
                role=role.name,
                member=self.job_service_account.member,
            ),
            opts=child,
        )

    def _cloud_run_job(
        self, name: str, args: ExportJobArgs, child: pulumi.ResourceOptions
    ) -> gcp.cloudrunv2.Job:
        return gcp.cloudrunv2.Job(
            f"{name}-job",
            gcp.cloudrunv2.JobArgs(
                project=args.project,
                location=args.region,
                name=args.job_name,
                deletion_protection=False,
                labels=standard_labels(args.environment, "export-job"),
                template=gcp.cloudrunv2.JobTemplateArgs(
                    task_count=1,
                    parallelism=1,
                    template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                        service_account=self.job_service_account.email,
                        timeout=f"{args.timeout_hours * 3600}s",
                        max_retries=args.max_retries,
                        containers=[
                            gcp.cloudrunv2.JobTemplateTemplateContainerArgs(
                                image=args.image,
                                commands=[EXPORT_INTERPRETER, "-c", EXPORT_SCRIPT.read_text()],
                                envs=_export_env(args),
                                resources=gcp.cloudrunv2.JobTemplateTemplateContainerResourcesArgs(
                                    limits={"cpu": "1", "memory": "512Mi"}
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=child,
        )

    def _scheduler_job(
        self, name: str, args: ExportJobArgs, child: pulumi.ResourceOptions
    ) -> gcp.cloudscheduler.Job:
        return gcp.cloudscheduler.Job(
            f"{name}-schedule",
            gcp.cloudscheduler.JobArgs(
                project=args.project,
                region=args.region,
                name=f"{args.job_name}-schedule",
                description="Starts the daily logical export of Cloud SQL to the backup bucket.",
                schedule=args.schedule,
                time_zone=args.time_zone,
                paused=False,
                # The run call only starts an execution and answers at once; the export itself can take hours.
                attempt_deadline="60s",
                retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
                    retry_count=3,
                    min_backoff_duration="60s",
                    max_backoff_duration="600s",
                    max_doublings=3,
                    max_retry_duration="3600s",
                ),
                http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                    uri=self.job.name.apply(
                        lambda job: run_job_uri(args.project, args.region, job)
                    ),
                    http_method="POST",
                    oauth_token=gcp.cloudscheduler.JobHttpTargetOauthTokenArgs(
                        service_account_email=self.scheduler_service_account.email,
                        scope=CLOUD_PLATFORM_SCOPE,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.job])),
        )


def _service_account(
    resource_name: str, args: ExportJobArgs, role: str, opts: pulumi.ResourceOptions
) -> gcp.serviceaccount.Account:
    return gcp.serviceaccount.Account(
        resource_name,
        gcp.serviceaccount.AccountArgs(
            project=args.project,
            account_id=f"sql-export-{role}-{args.environment}"[:30],
            display_name=f"Cloud SQL export {role} ({args.environment})",
            description=f"Identity of the scheduled Cloud SQL export {role}; see infra/cloudsql_backups/export_job.py.",
        ),
        opts=opts,
    )


def _export_env(args: ExportJobArgs) -> list[gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs]:
    # Non-secret parameters only: the job authenticates as its service account, never with a key.
    values: dict[str, pulumi.Input[str]] = {
        "EXPORT_PROJECT": args.project,
        "EXPORT_INSTANCE": args.instance_name,
        "EXPORT_BUCKET": args.bucket_name,
        "EXPORT_DATABASES": ",".join(args.databases),
        "EXPORT_OFFLOAD": "true" if args.offload else "false",
        # The script splits the task timeout itself (retries, wait, verification, last log lines)
        # and refuses settings that cannot fit, so it always logs its result before Cloud Run stops it.
        "EXPORT_TASK_TIMEOUT_SECONDS": str(args.timeout_hours * 3600),
        "EXPORT_RETENTION_MODE": args.retention_mode,
        "EXPORT_RETENTION_DAYS": str(args.retention_days),
    }
    return [
        gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(name=k, value=v)
        for k, v in values.items()
    ]
