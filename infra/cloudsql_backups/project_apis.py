"""The Google APIs the backup stack depends on, enabled explicitly so a fresh project works.

``disable_on_destroy=False``: destroying this stack must never switch off an API that the database, or
anything else in the project, still uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .naming import type_token

REQUIRED_APIS = (
    # Project-level IAM bindings (the export job's custom role) go through Resource Manager.
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "cloudscheduler.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "storagetransfer.googleapis.com",
)


@dataclass(frozen=True)
class ProjectApisArgs:
    project: str
    apis: tuple[str, ...] = REQUIRED_APIS


class ProjectApis(pulumi.ComponentResource):
    """Enables each API once; other components depend on this to avoid racing API activation."""

    services: list[gcp.projects.Service]

    def __init__(
        self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_token("project", "ProjectApis"), name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                gcp.projects.ServiceArgs(
                    project=args.project, service=api, disable_on_destroy=False
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in args.apis
        ]
        self.register_outputs({"apis": list(args.apis)})
