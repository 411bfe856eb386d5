"""Project custom roles: one per stack environment, with exactly the permissions a job needs.

A custom role's ID is ``<prefix><Env>`` (``cloudsqlExporterProd``), so both stacks can live in one
project, and the role's full name ``projects/P/roles/ID`` is known before it exists: IAM conditions
and the policy pack can name it at preview. Custom role IDs may hold letters, digits, ``_`` and
``.``, up to 64 characters (https://cloud.google.com/iam/docs/creating-custom-roles#naming_the_role).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp


@dataclass(frozen=True)
class CustomRole:
    """A project custom role, declared once per environment."""

    id_prefix: str
    title: str
    description: str
    permissions: tuple[str, ...]

    def role_id(self, environment: str) -> str:
        return f"{self.id_prefix}{environment.capitalize()}"

    def role_name(self, project: str, environment: str) -> str:
        return f"projects/{project}/roles/{self.role_id(environment)}"


def declare_custom_role(
    resource_name: str,
    role: CustomRole,
    project: str,
    environment: str,
    opts: pulumi.ResourceOptions,
) -> gcp.projects.IAMCustomRole:
    return gcp.projects.IAMCustomRole(
        resource_name,
        gcp.projects.IAMCustomRoleArgs(
            project=project,
            role_id=role.role_id(environment),
            title=f"{role.title} ({environment})",
            description=role.description,
            permissions=list(role.permissions),
            stage="GA",
        ),
        opts=opts,
    )
