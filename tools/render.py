"""``make check``: render each stack offline and show what it would create, then run the policy gate.

Usage: ``python -m tools.render staging prod``. Exits 1 when a stack's config is invalid or the policy
pack reports a mandatory violation. A refused config is printed exactly as the program raised it.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tools.stack_render import UNKNOWN, ProgramFailed, RegisteredResource, RenderedStack, render

console = Console(width=160)


def _get(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _show(value: Any) -> str:
    if value == UNKNOWN:
        return "(known after apply)"
    return str(value)


def _fields(*paths: str) -> Callable[[RegisteredResource], str]:
    def describe(resource: RegisteredResource) -> str:
        inputs = resource.inputs
        return ", ".join(f"{path.rsplit('.', 1)[-1]}={_show(_get(inputs, path))}" for path in paths)

    return describe


def _lifecycle(resource: RegisteredResource) -> str:
    rules = resource.inputs.get("lifecycleRules", [])
    parts = [
        f"Delete {' '.join(f'{k}={v}' for k, v in sorted(rule.get('condition', {}).items()))}"
        for rule in rules
    ]
    base = _fields(
        "versioning.enabled",
        "enableObjectRetention",
        "publicAccessPrevention",
        "uniformBucketLevelAccess",
        "storageClass",
    )
    return f"{base(resource)}; {'; '.join(parts)}"


def _iam(resource: RegisteredResource) -> str:
    inputs = resource.inputs
    scope = (
        inputs.get("bucket")
        or inputs.get("name")
        or inputs.get("project")
        or inputs.get("serviceAccountId")
    )
    return f"{_show(inputs.get('role'))} -> {_show(inputs.get('member'))} on {_show(scope)}"


_DESCRIBE: dict[str, Callable[[RegisteredResource], str]] = {
    "gcp:sql/databaseInstance:DatabaseInstance": _fields(
        "name",
        "databaseVersion",
        "settings.availabilityType",
        "settings.backupConfiguration.enabled",
        "settings.backupConfiguration.startTime",
        "settings.backupConfiguration.pointInTimeRecoveryEnabled",
        "settings.backupConfiguration.backupRetentionSettings.retainedBackups",
        "settings.backupConfiguration.transactionLogRetentionDays",
        "deletionProtection",
        "settings.deletionProtectionEnabled",
        "settings.ipConfiguration.ipv4Enabled",
        "settings.ipConfiguration.sslMode",
    ),
    "gcp:storage/bucket:Bucket": _lifecycle,
    "gcp:cloudrunv2/job:Job": _fields(
        "name", "template.template.timeout", "template.template.maxRetries"
    ),
    "gcp:cloudscheduler/job:Job": _fields("schedule", "timeZone", "paused", "httpTarget.uri"),
    "gcp:monitoring/alertPolicy:AlertPolicy": _fields("displayName", "enabled"),
    "gcp:logging/metric:Metric": _fields("name"),
    "gcp:projects/service:Service": _fields("service"),
    "gcp:projects/iAMCustomRole:IAMCustomRole": _fields("roleId", "permissions"),
    "gcp:backupdisasterrecovery/backupVault:BackupVault": _fields(
        "backupVaultId", "location", "backupMinimumEnforcedRetentionDuration", "accessRestriction"
    ),
    "gcp:backupdisasterrecovery/backupPlan:BackupPlan": _fields(
        "backupPlanId", "resourceType", "logRetentionDays"
    ),
    "gcp:backupdisasterrecovery/backupPlanAssociation:BackupPlanAssociation": _fields(
        "resource", "resourceType"
    ),
    "gcp:storage/transferJob:TransferJob": _fields(
        "transferSpec.gcsDataSource.bucketName", "transferSpec.gcsDataSink.path"
    ),
}


def resource_table(stack: RenderedStack) -> Table:
    table = Table(
        title=f"Stack {stack.stack}: {len(stack.resources)} resources (first preview)",
        show_lines=False,
    )
    for column in ("type", "name", "protect", "settings that matter"):
        table.add_column(column, overflow="fold")
    for resource in stack.resources:
        if resource.type.startswith("cloudsql-backups:"):
            continue
        describe = _DESCRIBE.get(
            resource.type, _iam if "IAM" in resource.type or "Iam" in resource.type else None
        )
        table.add_row(
            resource.type.split(":")[-1],
            resource.name,
            "yes" if resource.protect else "",
            escape(describe(resource)) if describe else "",
        )
    return table


class Outcome(enum.Enum):
    PASSES = "[green]passes[/] the policy gate"
    FAILS = "[red]FAILS[/] the policy gate"
    REFUSED = "[red]configuration refused[/]"


def check_stack(stack_name: str) -> Outcome:
    """Render one stack and run the gate over it."""
    from tools.policy_gate import analyze, format_table, policy_config_path  # noqa: PLC0415

    try:
        stack = render(stack_name, preview=True)
    except ProgramFailed as failure:
        console.print(f"[bold red]Stack {escape(stack_name)}: the program refused its config[/]")
        # Verbatim: no markup (it would eat '[true]'), no highlighting, no wrapping.
        console.out(str(failure), highlight=False)
        return Outcome.REFUSED
    console.print(resource_table(stack))
    for warning in stack.warnings:
        console.print("[yellow]warning:[/]", escape(warning))
    result = analyze(stack, policy_config_path(stack_name))
    console.print(format_table(result), markup=False, highlight=False)
    return Outcome.FAILS if result.mandatory_violations else Outcome.PASSES


def main(argv: list[str]) -> int:
    stacks = argv or ["staging", "prod"]
    results = {name: check_stack(name) for name in stacks}
    for name, outcome in results.items():
        console.print(f"{escape(name)}: {outcome.value}")
    return 0 if all(outcome is Outcome.PASSES for outcome in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
