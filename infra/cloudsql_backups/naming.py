"""Labels and type tokens shared by every component, so resources explain where they come from."""

from __future__ import annotations

PACKAGE = "cloudsql-backups"


def type_token(module: str, component: str) -> str:
    """The Pulumi type token of a component, e.g. ``cloudsql-backups:database:DatabaseInstance``."""
    return f"{PACKAGE}:{module}:{component}"


def standard_labels(environment: str, component: str, **extra: str) -> dict[str, str]:
    """GCP labels every resource carries: environment, owner tool and component."""
    return {"env": environment, "managed-by": "pulumi", "component": component, **extra}
