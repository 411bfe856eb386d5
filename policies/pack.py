"""The pack's contents: its name, description and every policy, in reference order.

``__main__.py`` serves them with pulumi-policy's ``PolicyPack``; keeping them here lets other code
(the analyzer benchmark) build the same policies without starting a server.
"""

from __future__ import annotations

from typing import Final

import access
import alerting
import backup_vault
import ci_identity
import cloudsql
import export
import iam
import restore_verification
import stack
import storage
from pulumi_policy import Policy

NAME: Final = "cloudsql-backups-policies"
DISPLAY_NAME: Final = "Cloud SQL backups"
DESCRIPTION: Final = (
    "Backups you can trust for Cloud SQL for PostgreSQL: automated backups, point-in-time "
    "recovery, retention, deletion guards, a private versioned export bucket, scheduled exports, "
    "and the alerts that say when any of it fails."
)
TAGS: Final = ["gcp", "cloudsql", "backups"]


def all_policies() -> list[Policy]:
    return [
        *cloudsql.policies(),
        *storage.policies(),
        *iam.policies(),
        *access.policies(),
        *ci_identity.policies(),
        *export.policies(),
        *alerting.policies(),
        *backup_vault.policies(),
        *stack.policies(),
        *restore_verification.policies(),
    ]
