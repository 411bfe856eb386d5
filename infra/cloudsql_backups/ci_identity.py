"""The identity GitHub Actions deploys with: Workload Identity Federation, no service-account key.

GitHub mints a short-lived OIDC token for each workflow run; the Workload Identity provider below
accepts it only when the token's ``repository`` claim is this repository, and only that repository's
principal set may impersonate the deployer service account. Nothing long-lived exists to leak.

A human with admin rights bootstraps the component (the deployer cannot create its own trust),
and the deployer is deliberately unable to change it afterwards: widening CI's own access always
takes a human. See ``README_ci_identity.md`` for why each role is granted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import type_token

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
PROJECT_IAM_ADMIN = "roles/resourcemanager.projectIamAdmin"

# Basic ("primitive") roles span every service in the project: never for an automated identity.
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

# What `pulumi up` of this stack needs, and nothing wider (README_ci_identity.md justifies each).
DEFAULT_DEPLOYER_ROLES: tuple[str, ...] = (
    # Create and reconfigure the instance: backups, PITR, flags, deletion protection. The narrower
    # cloudsql.editor cannot delete or replace instances nor manage users, which `up` may need.
    "roles/cloudsql.admin",
    # Create the export bucket and set its bucket-level IAM (storage.buckets.setIamPolicy).
    "roles/storage.admin",
    # Create the export Cloud Run job and set job-level IAM (run.invoker for the scheduler).
    "roles/run.admin",
    # Create and update the Cloud Scheduler job that starts the export.
    "roles/cloudscheduler.admin",
    # Create the runtime service accounts (export job, scheduler) and their IAM.
    "roles/iam.serviceAccountAdmin",
    # Attach those service accounts to the Cloud Run job and the scheduler (actAs).
    "roles/iam.serviceAccountUser",
    # Manage the custom role that grants the export job only cloudsql.instances.export/get.
    "roles/iam.roleAdmin",
    # Backup alerts, the channels they page, and the backup dashboard.
    "roles/monitoring.alertPolicyEditor",
    "roles/monitoring.notificationChannelEditor",
    "roles/monitoring.dashboardEditor",
    # Log-based metrics built from the export's own log lines.
    "roles/logging.configWriter",
    # Enable the APIs the stack depends on (gcp.projects.Service; it never disables them).
    "roles/serviceusage.serviceUsageAdmin",
    # The daily Storage Transfer job that copies the dashboard-assets bucket, and reading the
    # project's transfer service agent that the job runs as.
    "roles/storagetransfer.admin",
)

_GITHUB_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# Pool and provider IDs: 4-32 characters of [a-z0-9-]; Google reserves the "gcp-" prefix.
_WORKLOAD_IDENTITY_ID = re.compile(r"(?!gcp-)[a-z0-9-]{4,32}")
# Service account IDs: 6-30 characters, RFC 1035.
_SERVICE_ACCOUNT_ID = re.compile(r"[a-z](?:[-a-z0-9]{4,28}[a-z0-9])")


@dataclass(frozen=True)
class CiIdentityArgs:
    """Which repository may deploy, into which project, with which roles.

    ``grantable_project_roles``: the project-level roles the stack itself grants (for example the
    export job's custom role). The deployer gets Project IAM Admin *only* under an IAM condition
    that lets it grant or revoke exactly these roles; empty means no project IAM rights at all.
    """

    project: str
    github_repository: str
    pool_id: str = "github-actions"
    provider_id: str = "github"
    service_account_id: str = "cloudsql-backups-deployer"
    deployer_roles: tuple[str, ...] = DEFAULT_DEPLOYER_ROLES
    grantable_project_roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = [
            *_repository_problems(self.github_repository),
            *_id_problems(self.pool_id, self.provider_id, self.service_account_id),
            *_role_problems("deployer_roles", self.deployer_roles),
            *_role_problems("grantable_project_roles", self.grantable_project_roles),
        ]
        if problems:
            raise ValueError("CiIdentityArgs: " + "; ".join(problems))

    @property
    def attribute_condition(self) -> str:
        """CEL expression the provider evaluates: tokens from any other repository are refused."""
        return f'assertion.repository == "{self.github_repository}"'


def _repository_problems(repository: str) -> list[str]:
    if _GITHUB_REPOSITORY.fullmatch(repository):
        return []
    return [f"github_repository must be 'owner/name', got {repository!r}"]


def _id_problems(pool_id: str, provider_id: str, service_account_id: str) -> list[str]:
    problems = [
        f"{label} must be 4-32 characters of [a-z0-9-] not starting with 'gcp-', got {value!r}"
        for label, value in (("pool_id", pool_id), ("provider_id", provider_id))
        if not _WORKLOAD_IDENTITY_ID.fullmatch(value)
    ]
    if not _SERVICE_ACCOUNT_ID.fullmatch(service_account_id):
        problems.append(
            f"service_account_id must be 6-30 characters, RFC 1035, got {service_account_id!r}"
        )
    return problems


def _role_problems(label: str, roles: Sequence[str]) -> list[str]:
    problems = [
        f"{label}: {role} is a basic role; grant the predefined roles the stack needs instead"
        for role in roles
        if role in PRIMITIVE_ROLES
    ]
    if PROJECT_IAM_ADMIN in roles:
        # Unconditional Project IAM Admin lets CI grant itself anything, i.e. it is Owner.
        problems.append(
            f"{label}: {PROJECT_IAM_ADMIN} is granted only through grantable_project_roles"
        )
    if len(set(roles)) != len(roles):
        problems.append(f"{label}: a role is listed twice")
    return problems


def principal_set(pool_name: str, github_repository: str) -> str:
    """Every workload identity in the pool whose ``attribute.repository`` is the repository."""
    return f"principalSet://iam.googleapis.com/{pool_name}/attribute.repository/{github_repository}"


def grant_limit_expression(grantable_roles: Sequence[str]) -> str:
    """IAM condition that lets Project IAM Admin grant or revoke only ``grantable_roles``."""
    quoted = ", ".join(f"'{role}'" for role in grantable_roles)
    return f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{quoted}])"


def role_resource_suffix(role: str) -> str:
    """A stable, readable resource-name suffix: roles/cloudsql.admin -> cloudsql-admin."""
    return role.rsplit("/", 1)[-1].replace(".", "-").replace("_", "-").lower()


class CiIdentity(pulumi.ComponentResource):
    """Workload Identity pool, GitHub OIDC provider, deployer service account and its roles."""

    pool: gcp.iam.WorkloadIdentityPool
    oidc_provider: gcp.iam.WorkloadIdentityPoolProvider
    service_account: gcp.serviceaccount.Account
    workload_identity_provider: pulumi.Output[str]
    service_account_email: pulumi.Output[str]
    principal_set: pulumi.Output[str]

    def __init__(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("ci", "CiIdentity"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pool = self._create_pool(name, args, child)
        self.oidc_provider = self._create_oidc_provider(name, args, child)
        self.service_account = self._create_service_account(name, args, child)
        self.principal_set = self.pool.name.apply(
            lambda pool_name: principal_set(pool_name, args.github_repository)
        )
        gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity-user",
            gcp.serviceaccount.IAMMemberArgs(
                service_account_id=self.service_account.name,
                role=WORKLOAD_IDENTITY_USER,
                member=self.principal_set,
            ),
            opts=child,
        )
        self._grant_project_roles(name, args, child)
        # The two values GitHub needs, as repository variables, for google-github-actions/auth.
        self.workload_identity_provider = self.oidc_provider.name
        self.service_account_email = self.service_account.email
        self.register_outputs(
            {
                "workload_identity_provider": self.workload_identity_provider,
                "service_account_email": self.service_account_email,
                "principal_set": self.principal_set,
            }
        )

    def _create_pool(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions
    ) -> gcp.iam.WorkloadIdentityPool:
        return gcp.iam.WorkloadIdentityPool(
            f"{name}-pool",
            gcp.iam.WorkloadIdentityPoolArgs(
                project=args.project,
                workload_identity_pool_id=args.pool_id,
                display_name="GitHub Actions",
                description=f"GitHub Actions OIDC tokens of {args.github_repository}",
            ),
            opts=opts,
        )

    def _create_oidc_provider(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions
    ) -> gcp.iam.WorkloadIdentityPoolProvider:
        return gcp.iam.WorkloadIdentityPoolProvider(
            f"{name}-provider",
            gcp.iam.WorkloadIdentityPoolProviderArgs(
                project=args.project,
                workload_identity_pool_id=self.pool.workload_identity_pool_id,
                workload_identity_pool_provider_id=args.provider_id,
                display_name="GitHub",
                description=f"Accepts tokens of {args.github_repository} only",
                # Claims must be mapped before a condition or a principalSet can refer to them.
                attribute_mapping={
                    "google.subject": "assertion.sub",
                    "attribute.repository": "assertion.repository",
                    "attribute.repository_owner": "assertion.repository_owner",
                    "attribute.ref": "assertion.ref",
                    "attribute.actor": "assertion.actor",
                },
                # Without a condition any GitHub repository's token would be accepted by the pool.
                attribute_condition=args.attribute_condition,
                oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(issuer_uri=GITHUB_OIDC_ISSUER),
            ),
            opts=opts,
        )

    def _create_service_account(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions
    ) -> gcp.serviceaccount.Account:
        return gcp.serviceaccount.Account(
            f"{name}-deployer",
            gcp.serviceaccount.AccountArgs(
                project=args.project,
                account_id=args.service_account_id,
                display_name="cloudsql-backups deployer (GitHub Actions)",
                description=f"Impersonated by {args.github_repository} via Workload Identity",
            ),
            opts=opts,
        )

    def _grant_project_roles(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions
    ) -> None:
        for role in args.deployer_roles:
            gcp.projects.IAMMember(
                f"{name}-{role_resource_suffix(role)}",
                gcp.projects.IAMMemberArgs(
                    project=args.project, role=role, member=self.service_account.member
                ),
                opts=opts,
            )
        if args.grantable_project_roles:
            gcp.projects.IAMMember(
                f"{name}-{role_resource_suffix(PROJECT_IAM_ADMIN)}",
                gcp.projects.IAMMemberArgs(
                    project=args.project,
                    role=PROJECT_IAM_ADMIN,
                    member=self.service_account.member,
                    condition=gcp.projects.IAMMemberConditionArgs(
                        title="grant-only-stack-roles",
                        description="May grant or revoke only the roles this stack manages",
                        expression=grant_limit_expression(args.grantable_project_roles),
                    ),
                ),
                opts=opts,
            )
