"""The offline policy gate: runs the policy pack through its real analyzer, the way the Pulumi CLI
does, over stacks rendered by ``tools.stack_render``.

Like the CLI, it starts ``policies/venv/bin/python -u -m pulumi.policy <engine> .`` in the pack's
folder with ``PULUMI_PROJECT``, ``PULUMI_STACK``, ``PULUMI_DRY_RUN``, ``PULUMI_CONFIG`` and
``PULUMI_ORGANIZATION``, reads the port it prints, then speaks the Analyzer gRPC protocol:
``GetAnalyzerInfo``; ``ConfigureStack``; ``Configure`` with the stack's policy config (resolved and
validated first, see ``tools.policy_config``); ``Analyze`` for every resource (its serialized inputs,
urn, type, name, options, provider); ``AnalyzeStack`` with all of them (plus parent, dependencies and
property dependencies).

    python -m tools.policy_gate staging prod      # a PR's first preview; exit 1 on a mandatory violation

Python API: :func:`analyze` for one run; :class:`PolicyAnalyzer` keeps one analyzer process alive
across many analyses of the same stack; :func:`format_table` for people.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tools.policy_config import PolicyConfigError, PolicySchema, ResolvedConfig, load_policy_config
from tools.stack_render import (
    PROJECT,
    REPO_ROOT,
    RegisteredResource,
    RenderedStack,
    render,
    stack_config,
)

PACK_DIR: Final = REPO_ROOT / "policies"
PACK_PYTHON: Final = PACK_DIR / "venv" / "bin" / "python"
CONFIG_DIR: Final = PACK_DIR / "config"
ORGANIZATION: Final = "organization"  # what the SDK assumes when PULUMI_ORGANIZATION is unset
# pulumi.policy takes the engine address as its first argument, but the Python policy SDK never
# connects to it (policies log to stderr, which the gate keeps for error reports).
UNUSED_ENGINE_ADDRESS: Final = "127.0.0.1:0"
STARTUP_TIMEOUT_SECONDS: Final = 60.0
# A hung analyzer must fail the gate rather than hang CI; generous for 10,000-resource stacks.
CALL_TIMEOUT_SECONDS: Final = 600.0
_MAX_MESSAGE_BYTES: Final = 400 * 1024 * 1024  # as the SDK's server, for 10,000-resource stacks
_GRPC_OPTIONS: Final = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
]
_LEVEL_NAMES: Final = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.REMEDIATE: "remediate",
    analyzer_pb2.DISABLED: "disabled",
}
_LEVEL_VALUES: Final = {name: value for value, name in _LEVEL_NAMES.items()}
_GCP_PROVIDER_VERSION: Final = "10.2.0"


class PolicyGateError(RuntimeError):
    """The analyzer could not be started or answered with an error."""


@dataclass(frozen=True)
class Violation:
    """One diagnostic of the analyzer."""

    policy: str
    urn: str
    level: str
    message: str
    description: str

    @property
    def resource(self) -> str:
        """``Type name`` of the resource the violation is about, or ``(stack)``."""
        if not self.urn:
            return "(stack)"
        qualified_type, _, name = self.urn.rpartition("::")
        return f"{qualified_type.rsplit('$', 1)[-1].rsplit(':', 1)[-1]} {name}"

    @property
    def detail(self) -> str:
        """The policy's own message, without the description the SDK puts in front of it."""
        return self.message.removeprefix(self.description + "\n")


@dataclass(frozen=True)
class NotApplicable:
    policy: str
    urn: str
    reason: str


@dataclass
class Verdicts:
    """Diagnostics and not-applicable entries collected from analyzer responses."""

    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[NotApplicable] = field(default_factory=list)

    def add(self, response: analyzer_pb2.AnalyzeResponse, urn: str) -> None:
        """Add one response; ``urn`` is the analyzed resource's (empty for AnalyzeStack)."""
        self.violations.extend(
            Violation(
                policy=diagnostic.policyName,
                # Resource diagnostics leave the urn empty: the engine fills in the analyzed one.
                urn=diagnostic.urn or urn,
                level=_LEVEL_NAMES[diagnostic.enforcementLevel],
                message=diagnostic.message,
                description=diagnostic.description,
            )
            for diagnostic in response.diagnostics
        )
        self.not_applicable.extend(
            NotApplicable(entry.policy_name, urn, entry.reason) for entry in response.not_applicable
        )


@dataclass(frozen=True)
class GateResult:
    stack: str
    preview: bool
    resources: int
    violations: tuple[Violation, ...]
    not_applicable: tuple[NotApplicable, ...] = ()

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def passed(self) -> bool:
        return not self.mandatory_violations

    def of_policy(self, policy: str) -> list[Violation]:
        return [v for v in self.violations if v.policy == policy]


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    stderr: IO[bytes]
    port: int

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


def policy_config_path(stack: str) -> Path | None:
    """``policies/config/<stack>.json`` when it exists (what ``--policy-pack-config`` is given)."""
    path = CONFIG_DIR / f"{stack}.json"
    return path if path.exists() else None


class PolicyAnalyzer:
    """One running analyzer for one stack, reusable for many analyses (a context manager).

    The process environment (stack, dry run, stack config) is fixed when it starts, as with the
    CLI; :meth:`configure` may switch the policy config between analyses.
    """

    def __init__(
        self,
        stack: str,
        *,
        preview: bool = True,
        policy_config: Path | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.preview = preview
        self.stack_config = dict(config if config is not None else stack_config(stack))
        self._initial_policy_config = policy_config
        self._process: _Process | None = None
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self.info = analyzer_pb2.AnalyzerInfo()
        self.resolved: dict[str, ResolvedConfig] = {}

    def __enter__(self) -> PolicyAnalyzer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self._process = _spawn(self._environment())
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self._process.port}", _GRPC_OPTIONS)
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=STARTUP_TIMEOUT_SECONDS)
            self.info = self._call(self._stub.GetAnalyzerInfo, empty_pb2.Empty())
            self._call(self._stub.ConfigureStack, self._stack_configure_request())
            self.configure(self._initial_policy_config)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            _stop(self._process.popen)
            self._process.stderr.close()
            self._process = None

    @property
    def policies(self) -> list[PolicySchema]:
        return [_policy_schema(info) for info in self.info.policies]

    def configure(self, policy_config: Path | None) -> None:
        """Validate ``policy_config`` (None: the production bar) and send it to the analyzer."""
        self.resolved = load_policy_config(policy_config, self.policies)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, config in self.resolved.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = _LEVEL_VALUES[config.level]
            entry.properties.update(dict(config.properties))
        self._call(self._require_stub().Configure, request)

    def analyze(self, rendered: RenderedStack) -> GateResult:
        """Every verdict of the pack on ``rendered``: Analyze per resource, then AnalyzeStack."""
        resources = self.analyze_resources(rendered)
        stack = self.analyze_stack(rendered)
        return GateResult(
            rendered.stack,
            rendered.preview,
            len(rendered.resources),
            tuple(resources.violations + stack.violations),
            tuple(resources.not_applicable + stack.not_applicable),
        )

    def analyze_resources(self, rendered: RenderedStack) -> Verdicts:
        """``Analyze`` for each resource, as the engine calls it before each step."""
        verdicts = Verdicts()
        for resource, request in zip(
            rendered.resources, self.analyze_requests(rendered), strict=True
        ):
            verdicts.add(self.send_analyze(request), resource.urn)
        return verdicts

    def analyze_stack(self, rendered: RenderedStack) -> Verdicts:
        """``AnalyzeStack`` over all resources, as the engine calls it at the end of a run."""
        verdicts = Verdicts()
        verdicts.add(self.send_analyze_stack(self.analyze_stack_request(rendered)), "")
        return verdicts

    def analyze_requests(self, rendered: RenderedStack) -> list[analyzer_pb2.AnalyzeRequest]:
        """One ``AnalyzeRequest`` per resource, as the engine builds them."""
        self._check_stack(rendered)
        provider = self._default_provider()
        return [_analyze_request(r, provider if _is_gcp(r) else None) for r in rendered.resources]

    def analyze_stack_request(self, rendered: RenderedStack) -> analyzer_pb2.AnalyzeStackRequest:
        self._check_stack(rendered)
        provider = self._default_provider()
        return analyzer_pb2.AnalyzeStackRequest(
            resources=[
                _stack_resource(r, provider if _is_gcp(r) else None) for r in rendered.resources
            ]
        )

    def send_analyze(self, request: analyzer_pb2.AnalyzeRequest) -> analyzer_pb2.AnalyzeResponse:
        response: analyzer_pb2.AnalyzeResponse = self._call(self._require_stub().Analyze, request)
        return response

    def send_analyze_stack(
        self, request: analyzer_pb2.AnalyzeStackRequest
    ) -> analyzer_pb2.AnalyzeResponse:
        response: analyzer_pb2.AnalyzeResponse = self._call(
            self._require_stub().AnalyzeStack, request
        )
        return response

    def ping(self) -> None:
        """The cheapest round trip (GetPluginInfo): the transport's own cost."""
        self._call(self._require_stub().GetPluginInfo, empty_pb2.Empty())

    def _check_stack(self, rendered: RenderedStack) -> None:
        if (rendered.stack, rendered.preview) != (self.stack, self.preview):
            raise ValueError(
                f"this analyzer runs stack {self.stack!r} (preview={self.preview}); got stack "
                f"{rendered.stack!r} (preview={rendered.preview})"
            )

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PULUMI_PROJECT": PROJECT,
            "PULUMI_STACK": self.stack,
            "PULUMI_DRY_RUN": "true" if self.preview else "false",
            "PULUMI_CONFIG": json.dumps(self.stack_config),
            "PULUMI_ORGANIZATION": ORGANIZATION,
        }

    def _stack_configure_request(self) -> analyzer_pb2.AnalyzerStackConfigureRequest:
        return analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.stack,
            project=PROJECT,
            organization=ORGANIZATION,
            dry_run=self.preview,
            config=self.stack_config,
        )

    def _default_provider(self) -> analyzer_pb2.AnalyzerProviderResource:
        """The default gcp provider the CLI would pass along, configured from the stack config."""
        properties = struct_pb2.Struct()
        for key in ("project", "region"):
            if f"gcp:{key}" in self.stack_config:
                properties[key] = self.stack_config[f"gcp:{key}"]
        properties["version"] = _GCP_PROVIDER_VERSION
        name = f"default_{_GCP_PROVIDER_VERSION.replace('.', '_')}"
        return analyzer_pb2.AnalyzerProviderResource(
            type="pulumi:providers:gcp",
            name=name,
            urn=f"urn:pulumi:{self.stack}::{PROJECT}::pulumi:providers:gcp::{name}",
            properties=properties,
        )

    def _require_stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self._stub is None:
            raise PolicyGateError("the analyzer is not running; use it as a context manager")
        return self._stub

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            details = self._process.stderr_text() if self._process is not None else ""
            raise PolicyGateError(f"analyzer call failed: {error}\n{details}".rstrip()) from None


def _policy_schema(info: analyzer_pb2.PolicyInfo) -> PolicySchema:
    properties = json_format.MessageToDict(info.configSchema.properties)
    return PolicySchema(
        name=info.name,
        level=_LEVEL_NAMES[info.enforcementLevel],
        properties=properties,
        required=list(info.configSchema.required),
    )


def _spawn(environment: Mapping[str, str]) -> _Process:
    if not PACK_PYTHON.exists():
        raise PolicyGateError(f"{PACK_PYTHON} is missing: run `make setup` to create policies/venv")
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by PolicyAnalyzer.close
    popen = subprocess.Popen(
        [str(PACK_PYTHON), "-u", "-m", "pulumi.policy", UNUSED_ENGINE_ADDRESS, "."],
        cwd=PACK_DIR,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    port = _read_port(popen)
    if port is None:
        _stop(popen)
        stderr.seek(0)
        details = stderr.read().decode(errors="replace")
        stderr.close()
        raise PolicyGateError(f"the policy pack did not start:\n{details}".rstrip())
    return _Process(popen, stderr, port)


def _read_port(popen: subprocess.Popen[bytes]) -> int | None:
    """The port the pack prints on its first stdout line; then stdout keeps being drained."""
    assert popen.stdout is not None  # set by Popen(stdout=PIPE)
    stdout = popen.stdout
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        for line in stdout:
            if not found and line.strip().isdigit():
                found.append(int(line))
                ready.set()
        ready.set()  # EOF: the process ended without printing a port

    threading.Thread(target=read, name="policy-pack-stdout", daemon=True).start()
    ready.wait(STARTUP_TIMEOUT_SECONDS)
    return found[0] if found else None


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def _is_gcp(resource: RegisteredResource) -> bool:
    return resource.custom and resource.type.startswith("gcp:")


def _options(resource: RegisteredResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect,
        parent=resource.parent,
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(),
    )


def _analyze_request(
    resource: RegisteredResource, provider: analyzer_pb2.AnalyzerProviderResource | None
) -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        name=resource.name,
        urn=resource.urn,
        properties=resource.properties,
        options=_options(resource),
        provider=provider,
    )


def _stack_resource(
    resource: RegisteredResource, provider: analyzer_pb2.AnalyzerProviderResource | None
) -> analyzer_pb2.AnalyzerResource:
    return analyzer_pb2.AnalyzerResource(
        type=resource.type,
        name=resource.name,
        urn=resource.urn,
        properties=resource.properties,
        options=_options(resource),
        provider=provider,
        parent=resource.parent,
        dependencies=resource.dependencies,
        # The engine leaves out properties without dependencies.
        propertyDependencies={
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=urns)
            for key, urns in resource.property_dependencies.items()
            if urns
        },
    )


def analyze(rendered: RenderedStack, policy_config: Path | None) -> GateResult:
    """Run the pack once over ``rendered`` with ``policy_config`` (None: the production bar)."""
    with PolicyAnalyzer(
        rendered.stack, preview=rendered.preview, policy_config=policy_config
    ) as analyzer:
        return analyzer.analyze(rendered)


def format_table(result: GateResult) -> str:
    """The verdicts as a table: policy, resource, level, message."""
    mode = "preview" if result.preview else "update"
    title = (
        f"{result.stack} ({mode}): {result.resources} resources, "
        f"{len(result.mandatory_violations)} mandatory, {len(result.violations) - len(result.mandatory_violations)} other"
    )
    table = Table(title=title, show_lines=True, expand=True)
    for column, ratio in (("Policy", 3), ("Resource", 3), ("Level", 1), ("Message", 7)):
        table.add_column(column, ratio=ratio, overflow="fold")
    for violation in sorted(result.violations, key=_row_order):
        table.add_row(
            *(
                escape(cell)
                for cell in (
                    violation.policy,
                    violation.resource,
                    violation.level,
                    violation.detail,
                )
            )
        )
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None, soft_wrap=False).print(table)
    return buffer.getvalue()


def _row_order(violation: Violation) -> tuple[int, str, str]:
    return (violation.level != "mandatory", violation.policy, violation.urn)


def gate(stacks: Iterable[str], *, preview: bool = True) -> list[GateResult]:
    """Render each stack (as a PR's first preview sees it, by default) and run the pack over it."""
    return [analyze(render(stack, preview=preview), policy_config_path(stack)) for stack in stacks]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.policy_gate",
        description="Run the policy pack over rendered stacks; exit 1 on any mandatory violation.",
    )
    parser.add_argument("stacks", nargs="+", help="stack names, e.g. staging prod")
    parser.add_argument(
        "--update",
        action="store_true",
        help="render as an update (every value known) instead of a first preview",
    )
    args = parser.parse_args(argv)
    try:
        results = gate(args.stacks, preview=not args.update)
    except (PolicyConfigError, PolicyGateError) as error:
        print(error, file=sys.stderr)
        return 2
    for result in results:
        print(format_table(result))
    failed = [result.stack for result in results if not result.passed]
    if failed:
        print(f"policy gate: mandatory violations in {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"policy gate: {', '.join(args.stacks)} pass every mandatory policy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
