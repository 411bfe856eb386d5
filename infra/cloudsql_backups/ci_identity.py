"""The identities GitHub Actions uses: Workload Identity Federation, no service-account key.

Two identities per stack, both in this stack's project:

- the *preview* identity, for pull requests: it can read what ``pulumi preview --refresh`` reads
  and nothing else (no write permission, no object data of any bucket);
- the *deployer*, for ``pulumi up`` and the on-demand export: usable only by a job of this
  repository that runs in the stack's GitHub environment, on ``main``, for a push or a dispatch.

GitHub mints a short-lived OIDC token per job. Each identity has its own provider in the pool, whose
attribute condition pins the repository *and* the token's subject, ref and event, and each service
account may be impersonated only by one subject (``principal://.../subject/<sub>``), so a token that
one provider accepts can never impersonate the other identity.

A human with admin rights applies this component (the deployer holds no role that could change it):
the pool, the providers, the custom roles, who may act as which service account and who may read the
backup bucket. Widening CI's access therefore always takes a human. ``README_ci_identity.md``
justifies each role and gives the break-glass path for deleting a backup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .custom_roles import CustomRole, declare_custom_role
from .naming import type_token

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
SERVICE_ACCOUNT_USER = "roles/iam.serviceAccountUser"
PROJECT_IAM_ADMIN = "roles/resourcemanager.projectIamAdmin"
# Deploys and the on-demand export run from this branch only.
PROTECTED_REF = "refs/heads/main"
DEPLOY_EVENTS = ("push", "workflow_dispatch")
PREVIEW_EVENT = "pull_request"
# The GitHub environment whose jobs may act as each stack's deployer (see the workflows). Names
# without ':' on purpose: GitHub writes ':' as '%3A' in the subject claim.
GITHUB_ENVIRONMENTS = {"prod": "production", "staging": "staging"}

# Basic ("primitive") roles span every service in the project: never for an automated identity.
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

# Roles no CI identity may hold at project level, and why: each one lets it widen its own access,
# read or delete the backups, or hide that it did.
FORBIDDEN_CI_ROLES: dict[str, str] = {
    "roles/iam.roleAdmin": "it could add permissions to a custom role that CI holds or grants",
    "roles/iam.organizationRoleAdmin": "it could add permissions to a custom role CI holds",
    SERVICE_ACCOUNT_USER: "project-wide it acts as every service account of the project",
    "roles/iam.serviceAccountTokenCreator": "project-wide it mints tokens of every account",
    "roles/iam.serviceAccountAdmin": "it could grant itself token creation on any account",
    "roles/iam.serviceAccountKeyAdmin": "it could create keys of any service account",
    "roles/iam.workloadIdentityPoolAdmin": "it could widen its own federation trust",
    "roles/iam.securityAdmin": "it can set any IAM policy",
    "roles/storage.admin": "it reads and deletes every object, the backups included",
    "roles/storage.objectAdmin": "it reads and deletes every object, the backups included",
    "roles/storage.objectUser": "it reads and deletes every object, the backups included",
    "roles/storage.objectViewer": "it reads every object, the backups included",
    "roles/logging.configWriter": "its exclusions and sinks could hide the Data Access logs",
    "roles/logging.admin": "its exclusions and sinks could hide the Data Access logs",
}

# What `pulumi up` of this stack needs from predefined roles (README_ci_identity.md justifies each).
DEFAULT_DEPLOYER_ROLES: tuple[str, ...] = (
    # gcp.sql.DatabaseInstance: backups, PITR, flags, deletion guards, replacement if ever needed.
    "roles/cloudsql.admin",
    # gcp.cloudrunv2.Job and JobIamMember (run.invoker for the scheduler on the job only).
    "roles/run.admin",
    # gcp.cloudscheduler.Job that starts the export.
    "roles/cloudscheduler.admin",
    # gcp.monitoring.AlertPolicy / NotificationChannel / Dashboard.
    "roles/monitoring.alertPolicyEditor",
    "roles/monitoring.notificationChannelEditor",
    "roles/monitoring.dashboardEditor",
    # gcp.projects.Service (enables the APIs the stack uses; never disables them).
    "roles/serviceusage.serviceUsageAdmin",
    # gcp.storage.TransferJob (dashboard assets) and the transfer service agent's lookup.
    "roles/storagetransfer.admin",
)

# What `pulumi preview --refresh` reads, from predefined viewer roles. Permission sets checked in
# Google's reference: https://cloud.google.com/iam/docs/roles-permissions (per service pages).
DEFAULT_PREVIEW_ROLES: tuple[str, ...] = (
    # Custom roles (iam.roles.get) and the project's allow policy and audit configs
    # (resourcemanager.projects.getIamPolicy): gcp.projects.IAMCustomRole, IAMMember, IAMAuditConfig.
    "roles/iam.roleViewer",
    # gcp.serviceaccount.Account and its IAMMember (get, getIamPolicy; key metadata, never keys).
    "roles/iam.serviceAccountViewer",
    # gcp.iam.WorkloadIdentityPool / WorkloadIdentityPoolProvider.
    "roles/iam.workloadIdentityPoolViewer",
    # gcp.cloudrunv2.Job and JobIamMember (run.jobs.get, run.jobs.getIamPolicy).
    "roles/run.viewer",
    # gcp.cloudscheduler.Job.
    "roles/cloudscheduler.viewer",
    # gcp.monitoring.AlertPolicy / NotificationChannel / Dashboard.
    "roles/monitoring.viewer",
    # gcp.projects.Service.
    "roles/serviceusage.serviceUsageViewer",
    # gcp.storage.TransferJob and get_transfer_project_service_account (projects.getServiceAccount).
    "roles/storagetransfer.viewer",
)

# Viewer roles that are not read-only. roles/cloudsql.viewer includes cloudsql.instances.export
# and cloudsql.backupRuns.export: it could copy the database into a bucket.
# https://cloud.google.com/iam/docs/roles-permissions/cloudsql#cloudsql.viewer
WRITING_VIEWER_ROLES = frozenset({"roles/cloudsql.viewer"})


# The custom roles below are applied by a human; CI cannot edit them (no roleAdmin).
# The backup bucket without object data and without its IAM policy: storage.buckets.setIamPolicy
# would let CI grant itself objectViewer on the dumps, so bucket grants are applied by a human.
BUCKET_MANAGER = CustomRole(
    "ciBucketManager",
    "CI bucket manager",
    "Create and configure buckets; no object data, no IAM changes, no bucket deletion.",
    (
        "storage.buckets.create",
        "storage.buckets.get",
        "storage.buckets.getIamPolicy",
        "storage.buckets.list",
        "storage.buckets.update",
    ),
)
# Runtime service accounts without their IAM policy (roles/iam.serviceAccountAdmin includes
# iam.serviceAccounts.setIamPolicy, which would let CI grant itself token creation on any account).
ACCOUNT_MANAGER = CustomRole(
    "ciServiceAccountManager",
    "CI service account manager",
    "Create, update and delete service accounts; never their IAM policy or keys.",
    (
        "iam.serviceAccounts.create",
        "iam.serviceAccounts.delete",
        "iam.serviceAccounts.get",
        "iam.serviceAccounts.list",
        "iam.serviceAccounts.update",
    ),
)
# Log-based metrics only: roles/logging.configWriter also edits exclusions, sinks and log buckets,
# which could drop the Data Access audit logs of the backup bucket.
LOG_METRIC_WRITER = CustomRole(
    "ciLogMetricWriter",
    "CI log-based metric writer",
    "Manage log-based metrics; no sinks, exclusions, log buckets or log reads.",
    (
        "logging.logMetrics.create",
        "logging.logMetrics.delete",
        "logging.logMetrics.get",
        "logging.logMetrics.list",
        "logging.logMetrics.update",
    ),
)
# The reads no predefined viewer role offers without more: Cloud SQL metadata without
# cloudsql.instances.export, bucket metadata and IAM policy without objects, log-based metrics
# without log entries.
PREVIEW_READER = CustomRole(
    "ciPreviewReader",
    "CI preview reader",
    "Read the metadata pulumi refresh needs; no data, no export, no write.",
    (
        "cloudsql.backupRuns.get",
        "cloudsql.backupRuns.list",
        "cloudsql.databases.get",
        "cloudsql.databases.list",
        "cloudsql.instances.get",
        "cloudsql.instances.list",
        "cloudsql.users.list",
        "logging.logMetrics.get",
        "logging.logMetrics.list",
        "storage.buckets.get",
        "storage.buckets.getIamPolicy",
        "storage.buckets.list",
    ),
)
# The post-deploy smoke test (ops/smoke) that gates prod: it lists the new export (name and size,
# never its contents: objects.get stays out) and reads the export job's log lines, which are not
# private logs (https://cloud.google.com/logging/docs/access-control#permissions_and_roles).
SMOKE_TESTER = CustomRole(
    "ciSmokeTester",
    "CI smoke tester",
    "List export objects (names and sizes, never contents) and read non-private log entries.",
    ("logging.logEntries.list", "storage.objects.list"),
)
DEPLOYER_CUSTOM_ROLES = (BUCKET_MANAGER, ACCOUNT_MANAGER, LOG_METRIC_WRITER, SMOKE_TESTER)
PREVIEW_CUSTOM_ROLES = (PREVIEW_READER,)

_GITHUB_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# Pool and provider IDs: 4-32 characters of [a-z0-9-]; Google reserves the "gcp-" prefix.
_WORKLOAD_IDENTITY_ID = re.compile(r"(?!gcp-)[a-z0-9-]{4,32}")
# Service account IDs: 6-30 characters, RFC 1035.
_SERVICE_ACCOUNT_ID = re.compile(r"[a-z](?:[-a-z0-9]{4,28}[a-z0-9])")
# google.subject is at most 127 bytes: https://cloud.google.com/iam/docs/workload-identity-federation (attribute mappings)
_MAX_SUBJECT_BYTES = 127


@dataclass(frozen=True)
class CiIdentityArgs:
    """Which repository may preview and deploy, into which project, with which roles.

    ``runtime_service_accounts``: resource names (``projects/P/serviceAccounts/EMAIL``) of the
    accounts the stack attaches to its workloads; the deployer may act as these and no other.
    ``grantable_project_roles``: the project-level roles the stack itself grants (the export job's
    custom role). The deployer gets Project IAM Admin *only* under an IAM condition that lets it
    grant or revoke exactly these roles; empty means no project IAM rights at all.
    """

    project: str
    environment: str
    github_repository: str
    runtime_service_accounts: tuple[pulumi.Input[str], ...] = ()
    grantable_project_roles: tuple[str, ...] = ()
    pool_id: str = "github-actions"
    deploy_provider_id: str = "github"
    preview_provider_id: str = "github-pr"
    deployer_account_id: str = "cloudsql-backups-deployer"
    preview_account_id: str = "cloudsql-backups-preview"
    deployer_roles: tuple[str, ...] = DEFAULT_DEPLOYER_ROLES
    preview_roles: tuple[str, ...] = DEFAULT_PREVIEW_ROLES

    def __post_init__(self) -> None:
        problems = [
            *_repository_problems(self.github_repository),
            *_environment_problems(self.environment),
            *_id_problems(self),
            *_role_problems("deployer_roles", self.deployer_roles),
            *_role_problems("grantable_project_roles", self.grantable_project_roles),
            *_preview_role_problems(self.preview_roles),
        ]
        if not problems:
            problems = _subject_problems(self)
        if problems:
            raise ValueError("CiIdentityArgs: " + "; ".join(problems))

    @property
    def github_environment(self) -> str:
        """The GitHub environment whose jobs may act as this stack's deployer."""
        return GITHUB_ENVIRONMENTS[self.environment]

    @property
    def deploy_subject(self) -> str:
        """The ``sub`` claim of a job of this repository that runs in the stack's environment."""
        return f"repo:{self.github_repository}:environment:{self.github_environment}"

    @property
    def preview_subject(self) -> str:
        """The ``sub`` claim of a pull-request job without an environment."""
        return f"repo:{self.github_repository}:pull_request"

    @property
    def deploy_condition(self) -> str:
        """CEL the deploy provider evaluates: this repository, this environment, main, no PR."""
        events = ", ".join(f'"{event}"' for event in DEPLOY_EVENTS)
        return " && ".join(
            (
                f'assertion.repository == "{self.github_repository}"',
                f'assertion.sub == "{self.deploy_subject}"',
                f'assertion.ref == "{PROTECTED_REF}"',
                f"assertion.event_name in [{events}]",
            )
        )

    @property
    def preview_condition(self) -> str:
        """CEL the preview provider evaluates: pull-request jobs of this repository only."""
        return " && ".join(
            (
                f'assertion.repository == "{self.github_repository}"',
                f'assertion.sub == "{self.preview_subject}"',
                f'assertion.event_name == "{PREVIEW_EVENT}"',
            )
        )


def _repository_problems(repository: str) -> list[str]:
    if _GITHUB_REPOSITORY.fullmatch(repository):
        return []
    return [f"github_repository must be 'owner/name', got {repository!r}"]


def _environment_problems(environment: str) -> list[str]:
    if environment in GITHUB_ENVIRONMENTS:
        return []
    return [f"environment must be one of {sorted(GITHUB_ENVIRONMENTS)}, got {environment!r}"]


def _id_problems(args: CiIdentityArgs) -> list[str]:
    workload_ids = (
        ("pool_id", args.pool_id),
        ("deploy_provider_id", args.deploy_provider_id),
        ("preview_provider_id", args.preview_provider_id),
    )
    problems = [
        f"{label} must be 4-32 characters of [a-z0-9-] not starting with 'gcp-', got {value!r}"
        for label, value in workload_ids
        if not _WORKLOAD_IDENTITY_ID.fullmatch(value)
    ]
    problems += [
        f"{label} must be 6-30 characters, RFC 1035, got {value!r}"
        for label, value in (
            ("deployer_account_id", args.deployer_account_id),
            ("preview_account_id", args.preview_account_id),
        )
        if not _SERVICE_ACCOUNT_ID.fullmatch(value)
    ]
    if args.deploy_provider_id == args.preview_provider_id:
        problems.append("deploy_provider_id and preview_provider_id must differ")
    if args.deployer_account_id == args.preview_account_id:
        problems.append("deployer_account_id and preview_account_id must differ")
    return problems


def _role_problems(label: str, roles: Sequence[str]) -> list[str]:
    problems = [
        f"{label}: {role} is a basic role; grant the predefined roles the stack needs instead"
        for role in roles
        if role in PRIMITIVE_ROLES
    ]
    problems += [
        f"{label}: {role} is refused for CI: {FORBIDDEN_CI_ROLES[role]}"
        for role in roles
        if role in FORBIDDEN_CI_ROLES
    ]
    if PROJECT_IAM_ADMIN in roles:
        # Unconditional Project IAM Admin lets CI grant itself anything, i.e. it is Owner.
        problems.append(
            f"{label}: {PROJECT_IAM_ADMIN} is granted only through grantable_project_roles"
        )
    if len(set(roles)) != len(roles):
        problems.append(f"{label}: a role is listed twice")
    return problems


def _preview_role_problems(roles: Sequence[str]) -> list[str]:
    problems = _role_problems("preview_roles", roles)
    problems += [
        f"preview_roles: {role} is not a viewer role; the preview identity only reads"
        for role in roles
        if not role.lower().endswith("viewer") or role in WRITING_VIEWER_ROLES
    ]
    return problems


def _subject_problems(args: CiIdentityArgs) -> list[str]:
    return [
        f"the subject {subject!r} is longer than Google's {_MAX_SUBJECT_BYTES}-byte limit"
        for subject in (args.deploy_subject, args.preview_subject)
        if len(subject.encode()) > _MAX_SUBJECT_BYTES
    ]


def subject_principal(pool_name: str, subject: str) -> str:
    """The single workload identity whose ``google.subject`` is ``subject`` in the pool."""
    return f"principal://iam.googleapis.com/{pool_name}/subject/{subject}"


def grant_limit_expression(grantable_roles: Sequence[str]) -> str:
    """IAM condition that lets Project IAM Admin grant or revoke only ``grantable_roles``."""
    quoted = ", ".join(f"'{role}'" for role in grantable_roles)
    return f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{quoted}])"


def role_resource_suffix(role: str) -> str:
    """A stable, readable resource-name suffix: roles/cloudsql.admin -> cloudsql-admin."""
    return role.rsplit("/", 1)[-1].replace(".", "-").replace("_", "-").lower()


@dataclass(frozen=True)
class _Identity:
    """What distinguishes the two identities when the component builds them."""

    kind: str  # "deployer" or "preview"
    provider_id: str
    account_id: str
    subject: str
    condition: str
    roles: tuple[str, ...]
    custom_roles: tuple[CustomRole, ...]
    display_name: str


class CiIdentity(pulumi.ComponentResource):
    """Workload Identity pool, one provider and one service account per identity, their roles."""

    pool: gcp.iam.WorkloadIdentityPool
    deploy_provider: gcp.iam.WorkloadIdentityPoolProvider
    preview_provider: gcp.iam.WorkloadIdentityPoolProvider
    deployer_account: gcp.serviceaccount.Account
    preview_account: gcp.serviceaccount.Account

    def __init__(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("ci", "CiIdentity"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._args, self._child = name, args, child
        self.pool = self._create_pool()
        deployer, preview = _identities(args)
        self.deploy_provider, self.deployer_account = self._create_identity(deployer)
        self.preview_provider, self.preview_account = self._create_identity(preview)
        self._let_deployer_attach_runtime_accounts()
        self._let_deployer_grant_stack_roles()
        self.register_outputs(
            {
                "deploy_workload_identity_provider": self.deploy_provider.name,
                "deployer_service_account_email": self.deployer_account.email,
                "preview_workload_identity_provider": self.preview_provider.name,
                "preview_service_account_email": self.preview_account.email,
            }
        )

    def _create_pool(self) -> gcp.iam.WorkloadIdentityPool:
        return gcp.iam.WorkloadIdentityPool(
            f"{self._name}-pool",
            gcp.iam.WorkloadIdentityPoolArgs(
                project=self._args.project,
                workload_identity_pool_id=self._args.pool_id,
                display_name="GitHub Actions",
                description=f"GitHub Actions OIDC tokens of {self._args.github_repository}",
            ),
            opts=self._child,
        )

    def _create_identity(
        self, identity: _Identity
    ) -> tuple[gcp.iam.WorkloadIdentityPoolProvider, gcp.serviceaccount.Account]:
        provider = self._create_provider(identity)
        account = gcp.serviceaccount.Account(
            f"{self._name}-{identity.kind}",
            gcp.serviceaccount.AccountArgs(
                project=self._args.project,
                account_id=identity.account_id,
                display_name=identity.display_name,
                description=(
                    f"Impersonated by {identity.subject} via Workload Identity; "
                    "see infra/cloudsql_backups/ci_identity.py."
                ),
            ),
            opts=self._child,
        )
        # Only the one subject may impersonate the account: a second check after the provider's.
        gcp.serviceaccount.IAMMember(
            f"{self._name}-{identity.kind}-workload-identity-user",
            gcp.serviceaccount.IAMMemberArgs(
                service_account_id=account.name,
                role=WORKLOAD_IDENTITY_USER,
                member=self.pool.name.apply(
                    lambda pool_name: subject_principal(pool_name, identity.subject)
                ),
            ),
            opts=self._child,
        )
        roles: list[pulumi.Input[str]] = list(identity.roles)
        roles += [self._custom_role(role).name for role in identity.custom_roles]
        suffixes = [role_resource_suffix(role) for role in identity.roles]
        suffixes += [role_resource_suffix(role.id_prefix) for role in identity.custom_roles]
        for role, suffix in zip(roles, suffixes, strict=True):
            gcp.projects.IAMMember(
                f"{self._name}-{identity.kind}-{suffix}",
                gcp.projects.IAMMemberArgs(
                    project=self._args.project, role=role, member=account.member
                ),
                opts=self._child,
            )
        return provider, account

    def _create_provider(self, identity: _Identity) -> gcp.iam.WorkloadIdentityPoolProvider:
        # The deploy provider keeps the resource name it had when it was the only provider.
        aliases = (
            [pulumi.Alias(name=f"{self._name}-provider")] if identity.kind == "deployer" else []
        )
        return gcp.iam.WorkloadIdentityPoolProvider(
            f"{self._name}-{identity.kind}-provider",
            gcp.iam.WorkloadIdentityPoolProviderArgs(
                project=self._args.project,
                workload_identity_pool_id=self.pool.workload_identity_pool_id,
                workload_identity_pool_provider_id=identity.provider_id,
                display_name=f"GitHub ({identity.kind})",
                description=f"Accepts only {identity.subject}"[:256],
                # Claims must be mapped before a condition or a principal can refer to them.
                attribute_mapping={
                    "google.subject": "assertion.sub",
                    "attribute.repository": "assertion.repository",
                    "attribute.ref": "assertion.ref",
                    "attribute.event_name": "assertion.event_name",
                    "attribute.actor": "assertion.actor",
                },
                # GitHub uses one issuer for every repository: without a condition any repository's
                # token would be accepted. https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines
                attribute_condition=identity.condition,
                oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(issuer_uri=GITHUB_OIDC_ISSUER),
            ),
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(aliases=aliases)),
        )

    def _custom_role(self, role: CustomRole) -> gcp.projects.IAMCustomRole:
        return declare_custom_role(
            f"{self._name}-{role_resource_suffix(role.id_prefix)}",
            role,
            self._args.project,
            self._args.environment,
            self._child,
        )

    def _let_deployer_attach_runtime_accounts(self) -> None:
        """actAs on each runtime account only (attaching it to the job and the scheduler)."""
        for index, account_name in enumerate(self._args.runtime_service_accounts):
            gcp.serviceaccount.IAMMember(
                f"{self._name}-deployer-acts-as-{index}",
                gcp.serviceaccount.IAMMemberArgs(
                    service_account_id=account_name,
                    role=SERVICE_ACCOUNT_USER,
                    member=self.deployer_account.member,
                ),
                opts=self._child,
            )

    def _let_deployer_grant_stack_roles(self) -> None:
        if not self._args.grantable_project_roles:
            return
        gcp.projects.IAMMember(
            f"{self._name}-deployer-{role_resource_suffix(PROJECT_IAM_ADMIN)}",
            gcp.projects.IAMMemberArgs(
                project=self._args.project,
                role=PROJECT_IAM_ADMIN,
                member=self.deployer_account.member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="grant-only-stack-roles",
                    description="May grant or revoke only the roles this stack manages",
                    expression=grant_limit_expression(self._args.grantable_project_roles),
                ),
            ),
            opts=self._child,
        )


def _identities(args: CiIdentityArgs) -> tuple[_Identity, _Identity]:
    deployer = _Identity(
        kind="deployer",
        provider_id=args.deploy_provider_id,
        account_id=args.deployer_account_id,
        subject=args.deploy_subject,
        condition=args.deploy_condition,
        roles=args.deployer_roles,
        custom_roles=DEPLOYER_CUSTOM_ROLES,
        display_name=f"cloudsql-backups deployer ({args.environment}, GitHub Actions)",
    )
    preview = _Identity(
        kind="preview",
        provider_id=args.preview_provider_id,
        account_id=args.preview_account_id,
        subject=args.preview_subject,
        condition=args.preview_condition,
        roles=args.preview_roles,
        custom_roles=PREVIEW_CUSTOM_ROLES,
        display_name=f"cloudsql-backups preview ({args.environment}, pull requests)",
    )
    return deployer, preview
