"""ExportJob, as the engine receives it: the Cloud Run job that runs the export script, the Cloud
Scheduler job that starts it, the three identities and what each may do, the APIs the stack enables,
the dashboard-assets transfer, and the config errors of this area.

Identities are compared by the emails the (mock) provider assigned, so a grant to the wrong account,
role or resource fails; the IAM scans cover every IAM resource type the stack registers.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from ops.export import cloudsql_export
from tests.infra.stack_files import setting
from tools.stack_render import (
    _SECRET_SIG,
    ProgramFailed,
    RegisteredResource,
    RenderedStack,
    render,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORT_SCRIPT = REPO_ROOT / "ops" / "export" / "cloudsql_export.py"
RUN_JOB = "gcp:cloudrunv2/job:Job"
RUN_JOB_IAM_MEMBER = "gcp:cloudrunv2/jobIamMember:JobIamMember"
SCHEDULER_JOB = "gcp:cloudscheduler/job:Job"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_IAM_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
SERVICE = "gcp:projects/service:Service"
TRANSFER_JOB = "gcp:storage/transferJob:TransferJob"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
FORBIDDEN_EXPORT_ROLES = PRIMITIVE_ROLES | {"roles/cloudsql.admin"}
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
REQUIRED_APIS = frozenset(
    {
        "sqladmin.googleapis.com",
        "run.googleapis.com",
        "cloudscheduler.googleapis.com",
        "storage.googleapis.com",
        "monitoring.googleapis.com",
        "logging.googleapis.com",
        "iam.googleapis.com",
    }
)
SECRET_LOOKING_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY($|_)")
PINNED_IMAGE = re.compile(
    r"^[a-z0-9.-]+(/[a-z0-9._-]+)+(:\d+\.\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Identities:
    """Member strings (``serviceAccount:<email>``) of the three export identities."""

    job: str
    scheduler: str
    instance: str

    def all(self) -> tuple[str, str, str]:
        return (self.job, self.scheduler, self.instance)


def identities(stack: RenderedStack) -> Identities:
    return Identities(
        job=f"serviceAccount:{stack.by_name('export-job-sa').outputs['email']}",
        scheduler=f"serviceAccount:{stack.by_name('export-scheduler-sa').outputs['email']}",
        instance=f"serviceAccount:{stack.one(INSTANCE).outputs['serviceAccountEmailAddress']}",
    )


@dataclass(frozen=True)
class Grant:
    """One (member, role) pair granted by an IAM resource, and on what."""

    resource: RegisteredResource
    member: str
    role: str


def is_iam_resource(resource: RegisteredResource) -> bool:
    kind = resource.type.rsplit(":", 1)[-1].lower()
    return kind.endswith(("iammember", "iambinding", "iampolicy"))


def grants(stack: RenderedStack) -> Iterator[Grant]:
    """Every grant of every IAM member, binding and policy resource in the stack."""
    for resource in stack.resources:
        if not resource.custom or not is_iam_resource(resource):
            continue
        inputs = resource.inputs
        if "policyData" in inputs:
            for binding in json.loads(inputs["policyData"]).get("bindings", []):
                for member in binding.get("members", []):
                    yield Grant(resource, member, binding["role"])
            continue
        members = inputs.get("members", [inputs.get("member")])
        for member in members:
            yield Grant(resource, member, inputs["role"])


def grants_to(stack: RenderedStack, member: str) -> list[Grant]:
    return [grant for grant in grants(stack) if grant.member == member]


def cloud_run_job(stack: RenderedStack) -> RegisteredResource:
    return stack.by_name("export-job")


def container(stack: RenderedStack) -> dict[str, Any]:
    [only] = cloud_run_job(stack).inputs["template"]["template"]["containers"]
    result: dict[str, Any] = only
    return result


# -- The Cloud Run job ------------------------------------------------------------------------


def test_job_name_and_location(stack: RenderedStack) -> None:
    inputs = cloud_run_job(stack).inputs
    assert inputs["name"] == f"sql-export-{stack.stack}"
    assert inputs["location"] == setting(stack.stack, "gcp:region")
    assert inputs["project"] == setting(stack.stack, "gcp:project")


def test_image_is_pinned(stack: RenderedStack) -> None:
    image = container(stack)["image"]
    assert image == setting(stack.stack, "export_image")
    assert image == "gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-slim"
    assert not image.endswith(":latest")
    assert PINNED_IMAGE.fullmatch(image)


def test_command_runs_the_export_script_inline(stack: RenderedStack) -> None:
    commands = container(stack)["commands"]
    assert commands == ["python3", "-c", EXPORT_SCRIPT.read_text()]
    assert "args" not in container(stack)


def test_environment_tells_the_script_what_to_export(stack: RenderedStack) -> None:
    name = stack.stack
    hours = int(setting(name, "export_timeout_hours"))
    envs = container(stack)["envs"]
    assert {env["name"]: env["value"] for env in envs} == {
        "EXPORT_PROJECT": setting(name, "gcp:project"),
        "EXPORT_INSTANCE": setting(name, "instance_name"),
        "EXPORT_BUCKET": setting(name, "backup_bucket_name"),
        "EXPORT_DATABASES": ",".join(setting(name, "export_databases")),
        "EXPORT_OFFLOAD": "false",
        "EXPORT_FORMAT": setting(name, "export_format"),
        # The task timeout itself: the script budgets its retries, wait and verification in it.
        "EXPORT_TASK_TIMEOUT_SECONDS": str(hours * 3600),
        # Object Retention Lock on each verified dump (README "Retention-locked exports").
        "EXPORT_RETENTION_MODE": setting(name, "export_retention_mode"),
        "EXPORT_RETENTION_DAYS": setting(name, "backup_object_retention_days"),
    }
    assert len(envs) == 9


def test_the_script_accepts_the_environment_the_job_sets(stack: RenderedStack) -> None:
    """The job's settings fit the script's time budget: it would otherwise exit 2 every day."""
    env = {env["name"]: env["value"] for env in container(stack)["envs"]}
    settings = cloudsql_export.parse_settings([], {**env, "EXPORT_GCLOUD": sys.executable})
    timeout = cloud_run_job(stack).inputs["template"]["template"]["timeout"]
    assert settings.task_timeout_seconds == int(timeout.removesuffix("s"))
    assert settings.budget.wait_seconds > 0


def test_no_environment_variable_carries_a_secret(stack: RenderedStack) -> None:
    job = cloud_run_job(stack)
    for env in container(stack)["envs"]:
        assert set(env) == {"name", "value"}, f"{env['name']} is not a plain value"
        assert not SECRET_LOOKING_NAME.search(env["name"]), env["name"]
        assert "-----BEGIN" not in env["value"]
    # Nothing in the job is a Pulumi secret either (the signature survives serialization).
    raw = json.dumps(json_format.MessageToDict(job.properties))
    assert _SECRET_SIG not in raw
    assert "secretKeyRef" not in raw
    assert "valueSource" not in raw


def test_task_timeout_retries_and_count(stack: RenderedStack) -> None:
    template = cloud_run_job(stack).inputs["template"]
    hours = int(setting(stack.stack, "export_timeout_hours"))
    assert hours == 6
    assert template["taskCount"] == 1
    assert template["template"]["timeout"] == f"{hours * 3600}s" == "21600s"
    assert template["template"]["maxRetries"] == int(setting(stack.stack, "export_max_retries"))


def test_job_runs_as_its_own_service_account(stack: RenderedStack) -> None:
    email = stack.by_name("export-job-sa").outputs["email"]
    assert (
        email
        == f"sql-export-job-{stack.stack}@{setting(stack.stack, 'gcp:project')}.iam.gserviceaccount.com"
    )
    assert cloud_run_job(stack).inputs["template"]["template"]["serviceAccount"] == email


# -- The Cloud Scheduler job --------------------------------------------------------------------


def test_scheduler_calls_the_run_endpoint_of_this_job(stack: RenderedStack) -> None:
    project = setting(stack.stack, "gcp:project")
    region = setting(stack.stack, "gcp:region")
    target = stack.by_name("export-schedule").inputs["httpTarget"]
    assert target["uri"] == (
        f"https://run.googleapis.com/v2/projects/{project}/locations/{region}"
        f"/jobs/sql-export-{stack.stack}:run"
    )
    assert target["httpMethod"] == "POST"


def test_scheduler_authenticates_with_an_oauth_token_of_its_account(
    stack: RenderedStack,
) -> None:
    target = stack.by_name("export-schedule").inputs["httpTarget"]
    assert target["oauthToken"] == {
        "serviceAccountEmail": stack.by_name("export-scheduler-sa").outputs["email"],
        "scope": CLOUD_PLATFORM_SCOPE,
    }
    assert "oidcToken" not in target


def test_schedule_and_time_zone(stack: RenderedStack) -> None:
    inputs = stack.by_name("export-schedule").inputs
    assert inputs["schedule"] == setting(stack.stack, "export_schedule") == "0 23 * * *"
    assert inputs["timeZone"] == setting(stack.stack, "export_time_zone") == "Etc/UTC"
    assert inputs["paused"] is False
    assert inputs["region"] == setting(stack.stack, "gcp:region")


def test_scheduler_retries_and_deadline(stack: RenderedStack) -> None:
    inputs = stack.by_name("export-schedule").inputs
    assert inputs["attemptDeadline"] == "60s"
    assert inputs["retryConfig"] == {
        "retryCount": 3,
        "minBackoffDuration": "60s",
        "maxBackoffDuration": "600s",
        "maxDoublings": 3,
        "maxRetryDuration": "3600s",
    }


# -- IAM --------------------------------------------------------------------------------------


def test_scheduler_may_invoke_this_job_only(stack: RenderedStack) -> None:
    who = identities(stack)
    invoker = stack.by_name("export-scheduler-invoker")
    assert invoker.inputs == {
        "project": setting(stack.stack, "gcp:project"),
        "location": setting(stack.stack, "gcp:region"),
        "name": f"sql-export-{stack.stack}",
        "role": "roles/run.invoker",
        "member": who.scheduler,
    }
    assert [(grant.resource.type, grant.role) for grant in grants_to(stack, who.scheduler)] == [
        (RUN_JOB_IAM_MEMBER, "roles/run.invoker")
    ]


def test_no_project_level_run_role_for_the_export_identities(stack: RenderedStack) -> None:
    who = identities(stack)
    for grant in grants(stack):
        if grant.resource.type.startswith("gcp:projects/") and grant.member in who.all():
            assert not grant.role.startswith("roles/run."), grant


def exporter_role(stack: RenderedStack) -> RegisteredResource:
    [role] = [
        r for r in stack.of_type(CUSTOM_ROLE) if r.inputs["roleId"].startswith("cloudsqlExporter")
    ]
    return role


def test_exporter_role_holds_exactly_export_and_get(stack: RenderedStack) -> None:
    role = exporter_role(stack)
    assert sorted(role.inputs["permissions"]) == [
        "cloudsql.instances.export",
        "cloudsql.instances.get",
    ]
    assert role.inputs["roleId"] == f"cloudsqlExporter{stack.stack.capitalize()}"
    assert role.inputs["stage"] == "GA"


def test_exporter_role_is_bound_to_the_job_for_this_instance_only(stack: RenderedStack) -> None:
    who = identities(stack)
    project = setting(stack.stack, "gcp:project")
    role_name = exporter_role(stack).outputs["name"]
    assert role_name == f"projects/{project}/roles/cloudsqlExporter{stack.stack.capitalize()}"
    [binding] = [
        grant.resource
        for grant in grants_to(stack, who.job)
        if grant.resource.type == PROJECT_IAM_MEMBER
    ]
    assert binding.inputs["role"] == role_name
    assert binding.inputs["condition"]["expression"] == (
        'resource.type != "sqladmin.googleapis.com/Instance" || '
        f'resource.name == "projects/{project}/instances/{setting(stack.stack, "instance_name")}"'
    )


def test_instance_account_may_write_to_the_backup_bucket_only(stack: RenderedStack) -> None:
    who = identities(stack)
    bucket_name = stack.one(BUCKET).inputs["name"]
    found = [
        (grant.resource.type, grant.resource.inputs.get("bucket"), grant.role)
        for grant in grants_to(stack, who.instance)
    ]
    assert found == [(BUCKET_IAM_MEMBER, bucket_name, "roles/storage.objectAdmin")]


def test_job_account_may_read_the_backup_bucket(stack: RenderedStack) -> None:
    who = identities(stack)
    bucket_name = stack.one(BUCKET).inputs["name"]
    on_buckets = [
        (grant.resource.inputs["bucket"], grant.role)
        for grant in grants_to(stack, who.job)
        if grant.resource.type == BUCKET_IAM_MEMBER
    ]
    retention_setter = f"projects/{setting(stack.stack, 'gcp:project')}/roles/exportRetentionSetter"
    assert sorted(on_buckets) == sorted(
        [
            (bucket_name, "roles/storage.objectViewer"),
            (bucket_name, retention_setter + stack.stack.capitalize()),
        ]
    )
    # And nothing else than those and the conditional exporter role.
    assert len(grants_to(stack, who.job)) == 3


def test_no_broad_role_for_any_export_identity(stack: RenderedStack) -> None:
    who = identities(stack)
    checked = 0
    for grant in grants(stack):
        assert grant.role not in PRIMITIVE_ROLES, grant
        if grant.member in who.all():
            checked += 1
            assert grant.role not in FORBIDDEN_EXPORT_ROLES, grant
    assert checked == 5  # invoker, exporter role, job reads, job sets retention, instance writes


def test_nothing_is_granted_to_the_public(stack: RenderedStack) -> None:
    for grant in grants(stack):
        assert grant.member not in PUBLIC_MEMBERS, grant
    everything = json.dumps([resource.inputs for resource in stack.resources])
    for member in PUBLIC_MEMBERS:
        assert member not in everything


def test_iam_scan_sees_every_iam_resource_type(stack: RenderedStack) -> None:
    kinds = {resource.type for resource in stack.resources if is_iam_resource(resource)}
    assert {RUN_JOB_IAM_MEMBER, PROJECT_IAM_MEMBER, BUCKET_IAM_MEMBER} <= kinds


# -- APIs and the dashboard-assets transfer ---------------------------------------------------


def test_required_apis_are_enabled_and_never_disabled(stack: RenderedStack) -> None:
    services = stack.of_type(SERVICE)
    enabled = {service.inputs["service"] for service in services}
    assert enabled >= REQUIRED_APIS
    for service in services:
        assert service.inputs["disableOnDestroy"] is False, service.inputs["service"]
        assert service.inputs["project"] == setting(stack.stack, "gcp:project")


def test_dashboard_assets_are_copied_in_prod_only(stack: RenderedStack) -> None:
    transfers = stack.of_type(TRANSFER_JOB)
    if stack.stack == "staging":
        assert setting("staging", "dashboard_bucket") == ""
        assert transfers == []
        return
    [transfer] = transfers
    spec = transfer.inputs["transferSpec"]
    assert spec["gcsDataSource"] == {"bucketName": "acme-scheduling-prod-dashboard-assets"}
    assert spec["gcsDataSource"]["bucketName"] == setting("prod", "dashboard_bucket")
    assert spec["gcsDataSink"] == {
        "bucketName": stack.one(BUCKET).inputs["name"],
        "path": "dashboard-assets/",
    }
    assert spec["transferOptions"]["deleteObjectsFromSourceAfterTransfer"] is False
    assert transfer.inputs["status"] == "ENABLED"


# -- Config errors ----------------------------------------------------------------------------

CONFIG_ERRORS = [
    pytest.param(
        {"export_schedule": "61 * * *"},
        "cloudsql-backups:export_schedule = '61 * * *': allowed: a 5-field cron expression",
        id="malformed-cron",
    ),
    pytest.param(
        {"export_time_zone": "Mars/Olympus_Mons"},
        "cloudsql-backups:export_time_zone = 'Mars/Olympus_Mons': allowed: an IANA time zone",
        id="unknown-time-zone",
    ),
    pytest.param(
        {"export_databases": []},
        "cloudsql-backups:export_databases = []: allowed: a list with at least one entry",
        id="no-databases",
    ),
    pytest.param(
        {"export_timeout_hours": "0"},
        "cloudsql-backups:export_timeout_hours = '0': allowed: an integer from 1 to 168",
        id="timeout-0",
    ),
    pytest.param(
        {"export_timeout_hours": "169"},
        "cloudsql-backups:export_timeout_hours = '169': allowed: an integer from 1 to 168",
        id="timeout-169",
    ),
]


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
@pytest.mark.parametrize(("overrides", "message"), CONFIG_ERRORS)
def test_invalid_export_config_fails_before_anything_is_registered(
    stack_name: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProgramFailed) as failure:
        render(stack_name, preview=True, overrides=overrides)
    assert message in str(failure.value)
    assert str(failure.value).startswith("Invalid stack configuration:")
    assert failure.value.registered == []


def test_timeout_at_the_cloud_run_maximum_is_accepted() -> None:
    rendered = render("staging", preview=True, overrides={"export_timeout_hours": "168"})
    template = cloud_run_job(rendered).inputs["template"]["template"]
    assert template["timeout"] == "604800s"


# -- Parallel export (directory dump) ---------------------------------------------------------


def test_a_parallel_export_stack_tells_the_script_its_format_and_threads() -> None:
    stack = render("staging", overrides={"export_format": "parallel", "export_threads": "2"})
    env = {env["name"]: env["value"] for env in container(stack)["envs"]}

    assert env["EXPORT_FORMAT"] == "parallel"
    assert env["EXPORT_THREADS"] == "2"
    settings = cloudsql_export.parse_settings([], {**env, "EXPORT_GCLOUD": sys.executable})
    assert settings.parallel
    assert settings.threads == 2


def test_without_threads_the_script_lets_cloud_sql_choose() -> None:
    stack = render("staging", overrides={"export_format": "parallel"})
    env = {env["name"]: env["value"] for env in container(stack)["envs"]}

    assert env["EXPORT_FORMAT"] == "parallel"
    assert "EXPORT_THREADS" not in env


def test_a_parallel_export_needs_no_wider_access_than_a_single_file() -> None:
    """The instance's account writes the folder's files (objectAdmin covers the create, list and
    delete a parallel export needs); the job's objectViewer lists the folder and reads each file
    (roles/storage.objectViewer holds storage.objects.get and storage.objects.list)."""
    single = render("staging", preview=False)
    parallel = render("staging", preview=False, overrides={"export_format": "parallel"})

    def bucket_roles(stack: RenderedStack) -> list[tuple[str, str]]:
        return sorted(
            (grant.member, grant.role)
            for grant in grants(stack)
            if grant.resource.type == BUCKET_IAM_MEMBER
        )

    assert bucket_roles(parallel) == bucket_roles(single)
    who = identities(parallel)
    assert (who.instance, "roles/storage.objectAdmin") in bucket_roles(parallel)
    assert (who.job, "roles/storage.objectViewer") in bucket_roles(parallel)
