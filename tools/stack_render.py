"""Run the real Pulumi program offline, under Pulumi's official mocks, and record what it registers.

The recording keeps what the engine itself would see: each resource's serialized inputs (the protobuf
``Struct`` the SDK sends, unknown values and secrets included), its options, parent and dependencies,
plus the stack outputs. ``make check``, the policy gate and the tests all render stacks through here.

The mocks answer like the provider would: during a first preview nothing computed is known (the ID and
every output the program did not set stay unknown); during an update they return the inputs plus the
computed attributes Google really returns for that resource type, in the provider's own wire names.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import hashlib
import json
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks, rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = REPO_ROOT / "infra"
PROJECT = "cloudsql-backups"
UNKNOWN = rpc.UNKNOWN
_SECRET_SIG_KEY = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig
TRANSFER_SERVICE_ACCOUNT_INVOKE = (
    "gcp:storage/getTransferProjectServiceAccount:getTransferProjectServiceAccount"
)


@dataclass
class RegisteredResource:
    """One resource as the engine received it from the program."""

    type: str
    name: str
    urn: str
    custom: bool
    parent: str
    protect: bool
    retain_on_delete: bool
    import_id: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    properties: struct_pb2.Struct
    outputs: dict[str, Any] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs in wire names (camelCase), unknowns as ``UNKNOWN``, secrets unwrapped."""
        inputs: dict[str, Any] = _unwrap_secrets(json_format.MessageToDict(self.properties))
        return inputs


@dataclass
class RenderedStack:
    stack: str
    preview: bool
    resources: list[RegisteredResource]
    outputs: dict[str, Any]
    warnings: list[str]

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RegisteredResource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}")
        return found[0]

    def by_name(self, name: str) -> RegisteredResource:
        return next(r for r in self.resources if r.name == name)


def _unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return _unwrap_secrets(value.get("value"))
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The config map the CLI would hand the program: project defaults, then the stack file, then
    ``overrides`` (short keys in the project namespace, or namespaced keys; ``None`` deletes a key)."""
    project = _load_yaml(REPO_ROOT / "Pulumi.yaml")
    values: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"]
        for key, spec in project.get("config", {}).items()
        if "default" in spec
    }
    stack_file = _load_yaml(REPO_ROOT / f"Pulumi.{stack}.yaml")
    values.update(stack_file.get("config") or {})
    for key, value in (overrides or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            values.pop(full_key, None)
        else:
            values[full_key] = value
    return {key: _config_string(value) for key, value in values.items()}


def _load_yaml(path: Path) -> dict[str, Any]:
    return copy.deepcopy(_parsed_yaml(path, path.stat().st_mtime_ns))


@functools.cache
def _parsed_yaml(path: Path, _mtime_ns: int) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(path.read_text())
    return parsed


def _config_string(value: Any) -> str:
    # The engine passes every config value as a string; objects and arrays as JSON.
    if isinstance(value, str):
        return value
    return json.dumps(value)


class ProgramFailed(Exception):  # noqa: N818 - reads as what happened
    """The program raised; ``registered`` says what it had registered before it did."""

    def __init__(self, message: str, registered: list[RegisteredResource]) -> None:
        super().__init__(message)
        self.registered = registered


class RecordingMonitor(mocks.MockMonitor):
    """The official mock monitor, keeping a copy of every registration request."""

    def __init__(self, mocks_impl: mocks.Mocks) -> None:
        super().__init__(mocks_impl)
        self.registrations: list[RegisteredResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(_registration(request, response.urn))
        return response


def _registration(request: Any, urn: str) -> RegisteredResource:
    properties = struct_pb2.Struct()
    properties.CopyFrom(request.object)
    return RegisteredResource(
        type=request.type,
        name=request.name,
        urn=urn,
        custom=request.custom,
        parent=request.parent,
        protect=request.protect,
        retain_on_delete=request.retainOnDelete,
        import_id=request.importId,
        dependencies=list(request.dependencies),
        property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
        properties=properties,
        ignore_changes=list(request.ignoreChanges),
    )


class ProviderMocks(mocks.Mocks):
    """Answers like the Google provider: computed attributes only once a resource exists."""

    def __init__(self, project: str, region: str, preview: bool) -> None:
        self.project = project
        self.region = region
        self.preview = preview
        self.outputs_by_name: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if self.preview:
            # A create preview knows only the inputs; the ID and computed outputs stay unknown.
            return None, dict(args.inputs)
        computed = _COMPUTED.get(args.typ, _no_computed)(self, args.name, args.inputs)
        state = {**args.inputs, **computed}
        self.outputs_by_name[args.name] = state
        return _resource_id(self, args.typ, args.name, state), state

    def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        project = args.args.get("project", self.project)
        if args.token == TRANSFER_SERVICE_ACCOUNT_INVOKE:
            email = f"project-{project_number(project)}@storage-transfer-service.iam.gserviceaccount.com"
            return {
                "email": email,
                "member": f"serviceAccount:{email}",
                "project": project,
                "id": project,
                "subjectId": str(int(project_number(project)) * 7),
            }
        raise NotImplementedError(
            f"the program called {args.token}, which these mocks do not answer"
        )


def project_number(project: str) -> str:
    """A stable 12-digit project number, as Google assigns one per project."""
    return str(
        100_000_000_000 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % 899_999_999_999
    )


def _no_computed(_: ProviderMocks, __: str, ___: dict[str, Any]) -> dict[str, Any]:
    return {}


def _sql_instance(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    name = inputs["name"]
    project = inputs.get("project", m.project)
    number = project_number(project)
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return {
        "connectionName": f"{project}:{inputs.get('region', m.region)}:{name}",
        "serviceAccountEmailAddress": f"p{number}-{digest}@gcp-sa-cloud-sql.iam.gserviceaccount.com",
        "selfLink": f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{project}/instances/{name}",
        "privateIpAddress": "10.20.0.3",
        "firstIpAddress": "10.20.0.3",
        "dnsName": f"{digest}.{m.region}.sql.goog.",
    }


def _bucket(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    name = inputs["name"]
    return {"url": f"gs://{name}", "selfLink": f"https://www.googleapis.com/storage/v1/b/{name}"}


def _service_account(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    project = inputs.get("project", m.project)
    email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
    return {
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{project}/serviceAccounts/{email}",
        "uniqueId": str(int(hashlib.sha256(email.encode()).hexdigest(), 16) % 10**21),
    }


def _custom_role(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"projects/{inputs.get('project', m.project)}/roles/{inputs['roleId']}"}


def _numbered(collection: str) -> Callable[[ProviderMocks, str, dict[str, Any]], dict[str, Any]]:
    def computed(m: ProviderMocks, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        number = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10**19
        return {"name": f"projects/{inputs.get('project', m.project)}/{collection}/{number}"}

    return computed


def _run_job(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"uid": hashlib.sha256(inputs["name"].encode()).hexdigest()[:32], "generation": "1"}


def _workload_identity_pool(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    number = project_number(inputs.get("project", m.project))
    return {
        "name": f"projects/{number}/locations/global/workloadIdentityPools/{inputs['workloadIdentityPoolId']}"
    }


def _workload_identity_provider(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
    number = project_number(inputs.get("project", m.project))
    pool, provider = inputs["workloadIdentityPoolId"], inputs["workloadIdentityPoolProviderId"]
    return {
        "name": f"projects/{number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}",
        "state": "ACTIVE",
    }


def _located(
    collection: str, id_key: str
) -> Callable[[ProviderMocks, str, dict[str, Any]], dict[str, Any]]:
    """Backup and DR resources: projects/P/locations/L/<collection>/<id>."""

    def computed(m: ProviderMocks, _: str, inputs: dict[str, Any]) -> dict[str, Any]:
        project = inputs.get("project", m.project)
        return {
            "name": f"projects/{project}/locations/{inputs['location']}/{collection}/{inputs[id_key]}"
        }

    return computed


def _backup_vault(m: ProviderMocks, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    number = project_number(inputs.get("project", m.project))
    return {
        **_located("backupVaults", "backupVaultId")(m, name, inputs),
        # The vault's own service agent (output only); the exact address format is Google's.
        "serviceAccount": f"vault-{number}@gcp-sa-backupdr-pr.iam.gserviceaccount.com",
    }


_COMPUTED: dict[str, Callable[[ProviderMocks, str, dict[str, Any]], dict[str, Any]]] = {
    "gcp:sql/databaseInstance:DatabaseInstance": _sql_instance,
    "gcp:storage/bucket:Bucket": _bucket,
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:projects/iAMCustomRole:IAMCustomRole": _custom_role,
    "gcp:monitoring/notificationChannel:NotificationChannel": _numbered("notificationChannels"),
    "gcp:monitoring/alertPolicy:AlertPolicy": _numbered("alertPolicies"),
    "gcp:cloudrunv2/job:Job": _run_job,
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": _workload_identity_pool,
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": _workload_identity_provider,
    "gcp:backupdisasterrecovery/backupVault:BackupVault": _backup_vault,
    "gcp:backupdisasterrecovery/backupPlan:BackupPlan": _located("backupPlans", "backupPlanId"),
    "gcp:backupdisasterrecovery/backupPlanAssociation:BackupPlanAssociation": _located(
        "backupPlanAssociations", "backupPlanAssociationId"
    ),
}


def _resource_id(m: ProviderMocks, type_token: str, name: str, state: dict[str, Any]) -> str:
    for key in ("name", "email", "accountId"):
        if isinstance(state.get(key), str) and state[key]:
            return str(state[key])
    return f"{name}-id"


def render(
    stack: str, *, preview: bool = True, overrides: Mapping[str, Any] | None = None
) -> RenderedStack:
    """Run ``infra/__main__.py`` for ``stack`` under mocks and return what it registered.

    Raises :class:`ProgramFailed` with the program's message (for invalid config, the list of
    problems) and the resources registered before the failure.
    """
    return contextvars.copy_context().run(_render, stack, preview, overrides)


def _render(stack: str, preview: bool, overrides: Mapping[str, Any] | None) -> RenderedStack:
    config = stack_config(stack, overrides)
    provider_mocks = ProviderMocks(
        config.get("gcp:project", ""), config.get("gcp:region", ""), preview
    )
    monitor = RecordingMonitor(provider_mocks)
    warnings: list[str] = []
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config(config, [])
    pulumi.runtime.set_mocks(
        provider_mocks,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=monitor,
        logger=_WarningCollector(warnings),  # type: ignore[arg-type]  # duck-typed, as the mock engine uses it
    )
    if str(PROGRAM_DIR) not in sys.path:
        sys.path.insert(0, str(PROGRAM_DIR))
    try:
        _sync_await(run_pulumi_func(_run_program))
    except Exception as error:
        raise ProgramFailed(str(error), monitor.registrations) from error
    for resource in monitor.registrations:
        resource.outputs = provider_mocks.outputs_by_name.get(resource.name, {})
    return RenderedStack(stack, preview, monitor.registrations, _stack_outputs(), warnings)


def _stack_outputs() -> dict[str, Any]:
    """The values passed to ``pulumi.export``, resolved; unknown ones (during preview) are ``None``."""
    root = pulumi.runtime.settings.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {})
    return {
        name: _sync_await(pulumi.Output.from_input(value).future())
        for name, value in exported.items()
    }


def _run_program() -> None:
    runpy.run_path(str(PROGRAM_DIR), run_name="__main__")


class _WarningCollector:
    """A logger for the mock engine that keeps warnings (``pulumi.log.warn``) for assertions."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def debug(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        self.sink.append(message)

    def error(self, message: str) -> None:
        self.sink.append(message)
