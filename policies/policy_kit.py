"""Builds the pack's pulumi-policy policies from small, plain check functions.

A check receives a :class:`Resource` (its properties, read lazily through a :class:`Node`) and
the policy's effective config, and yields one message per violation. The kit adds what every
policy needs:

- the config schema: each threshold (:class:`Setting`) with its default, which is the production
  bar, plus ``reason`` (why a stack's config departs from that bar; the policy reference prints it);
- defaults applied in the pack itself, so a run without any ``--policy-pack-config`` enforces the
  production bar rather than crashing or skipping;
- unknown values (previews): a check that needs one raises ``ValueUnknown`` and the kit reports
  "cannot be verified until the value is known: <path>" *at the policy's own level*, instead of
  pulumi-policy's silent advisory note. Each check of a policy runs on its own, so an unknown in
  one property never hides a violation found by another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import sdk_cache
from property_access import Node, ValueUnknown, describe
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

REASON_KEY: Final = "reason"
REASON_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 10,
    "description": (
        "Why this stack's configuration departs from the production bar. Required by the offline "
        "gate for every entry of a stack's policy config; printed in the policy reference."
    ),
}
# Keys of a policy's config that are not thresholds.
_NOT_THRESHOLDS: Final = frozenset({REASON_KEY, "enforcementLevel"})
T = TypeVar("T")


def cannot_verify(path: str) -> str:
    """The message for a property a rule needs but the engine does not know yet."""
    return f"cannot be verified until the value is known: {path}"


@dataclass(frozen=True)
class Setting:
    """One configurable threshold of a policy. ``default`` is the production bar."""

    name: str
    type: str
    default: Any
    description: str
    constraints: Mapping[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "default": self.default,
            "description": self.description,
            **self.constraints,
        }


def string_list(
    name: str, default: Sequence[str], description: str, *, at_least_one: bool = False
) -> Setting:
    """A setting that is a list of distinct strings: roles, principals, domains, projects."""
    constraints: dict[str, Any] = {"items": {"type": "string"}}
    if at_least_one:
        constraints["minItems"] = 1
    constraints["uniqueItems"] = True
    return Setting(name, "array", list(default), description, constraints)


Config = Mapping[str, Any]


@dataclass(frozen=True)
class Resource:
    """What a check sees of one resource: plain properties and the options rules care about."""

    type: str
    name: str
    urn: str
    props: Node
    protect: bool
    provider: Node
    # URNs each top-level property was computed from (stack policies only; the engine sends them).
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def depends_on(self, prop: str) -> tuple[str, ...]:
        """URNs of the resources whose outputs fed ``prop`` (empty when none or not known)."""
        return self.dependencies.get(prop, ())

    def project(self) -> str | None:
        """The resource's project: its own ``project`` input, else its provider's default project."""
        own = self.props.at("project").value
        if isinstance(own, str) and own:
            return own
        fallback = self.provider.at("project").value
        return fallback if isinstance(fallback, str) and fallback else None


Check = Callable[[Resource, Config], Iterator[str]]


def required_true(path: str, risk: str, remedy: str = "set it to true") -> Check:
    """A check that the property at ``path`` is exactly true (absent counts as not true); its
    message names the value, what that risks, and the remedy."""

    def check(resource: Resource, _: Config) -> Iterator[str]:
        node = resource.props.at(path)
        if node.value is not True:
            yield f"{node.path} = {describe(node.value)}: {risk}; {remedy}"

    return check


# Why a policy does not apply to a resource of its type (e.g. a bucket that holds no backups), or None.
Scope = Callable[[Resource], str | None]
TypeFilter = Collection[str] | Callable[[str], bool]


@dataclass(frozen=True)
class Finding:
    """A stack-level violation, attached to a resource when there is one to blame."""

    message: str
    urn: str | None = None


StackCheck = Callable[[list[Resource], Config], Iterator[Finding]]


def config_schema(settings: Sequence[Setting]) -> PolicyConfigSchema:
    properties = {setting.name: setting.schema() for setting in settings}
    properties[REASON_KEY] = dict(REASON_SCHEMA)
    return PolicyConfigSchema(properties=properties)


def effective_config(settings: Sequence[Setting], configured: Config) -> dict[str, Any]:
    """Defaults (the production bar) overlaid with the stack's configured thresholds."""
    config = {setting.name: setting.default for setting in settings}
    config.update({k: _whole(v) for k, v in configured.items() if k not in _NOT_THRESHOLDS})
    return config


def _whole(value: Any) -> Any:
    # Config arrives as a protobuf Struct, where every number is a float: 21 becomes 21.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _type_matcher(types: TypeFilter) -> Callable[[str], bool]:
    if callable(types):
        return types
    accepted = frozenset(types)
    return accepted.__contains__


def run_checks(resource: Resource, config: Config, checks: Iterable[Check]) -> list[str]:
    """Every violation message the checks find; an unknown value ends only the check that needs it."""
    messages: list[str] = []
    for check in checks:
        try:
            messages.extend(check(resource, config))
        except ValueUnknown as unknown:
            messages.append(cannot_verify(unknown.path))
        except UnknownValueError as unknown:
            # A check read the SDK's proxy directly; report it like any other unknown.
            messages.append(cannot_verify(".".join(unknown.props)))
    return messages


def _resource(
    type_: str,
    name: str,
    urn: str,
    props: Any,
    protect: bool,
    provider_props: Any,
    dependencies: Mapping[str, tuple[str, ...]] | None = None,
) -> Resource:
    return Resource(
        type=type_,
        name=name,
        urn=urn,
        props=Node(props),
        protect=bool(protect),
        provider=Node(provider_props if provider_props is not None else {}),
        dependencies=dependencies or {},
    )


def resource_policy(
    *,
    name: str,
    description: str,
    resource_types: TypeFilter,
    checks: Sequence[Check],
    remediation: str,
    settings: Sequence[Setting] = (),
    severity: Severity = Severity.HIGH,
    scope: Scope | None = None,
) -> ResourceValidationPolicy:
    """A mandatory resource policy running ``checks`` on every resource of ``resource_types``
    that is in ``scope`` (others are reported as not applicable, with the reason)."""
    matches = _type_matcher(resource_types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if not matches(args.resource_type):
            return
        resource = _resource(
            args.resource_type,
            args.name,
            args.urn,
            args.props,
            args.opts.protect,
            args.provider.props if args.provider is not None else None,
        )
        try:
            out_of_scope = scope(resource) if scope is not None else None
        except ValueUnknown as unknown:
            # Whether the rule applies is itself unknown: that must not pass silently either.
            report(cannot_verify(unknown.path), None)
            return
        if out_of_scope is not None:
            args.not_applicable(out_of_scope)
        config = effective_config(settings, args.get_config())
        for message in run_checks(resource, config, checks):
            report(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=config_schema(settings),
        severity=severity,
        remediation_steps=remediation,
    )


def _stack_resource(resource: PolicyResource) -> Resource:
    return _resource(
        resource.resource_type,
        resource.name,
        resource.urn,
        resource.props,
        resource.opts.protect,
        resource.provider.props if resource.provider is not None else None,
        {
            prop: tuple(dependency.urn for dependency in dependencies)
            for prop, dependencies in (resource.property_dependencies or {}).items()
        },
    )


def _stack_resources(
    resources: list[PolicyResource], types: TypeFilter, wanted: Callable[[str], bool]
) -> list[Resource]:
    """The stack's resources of ``types``, as checks see them.

    pulumi-policy rebuilds the whole stack for each stack policy. Within one AnalyzeStack call,
    every stack policy declared with the same ``types`` object gets this same list (so what
    :func:`per_analysis` builds from it is built once), and a resource wanted by several filters
    is converted once: sdk_cache hands every policy the same properties object for a resource of
    the request, which identifies it (URNs are not relied on to be unique)."""

    def converted(resource: PolicyResource) -> Resource:
        found: Resource = sdk_cache.remembered(
            "stack resource", resource.props, lambda _: _stack_resource(resource)
        )
        return found

    def select(_: TypeFilter) -> list[Resource]:
        return [converted(r) for r in resources if wanted(r.resource_type)]

    result: list[Resource] = sdk_cache.remembered("stack resources of types", types, select)
    return result


def per_analysis(build: Callable[[list[Resource]], T]) -> Callable[[list[Resource]], T]:
    """``build`` (an index over a stack policy's resources), run once per AnalyzeStack call for
    every stack policy that sees the same resources, instead of once per policy.

    What it remembers lives only as long as the call (sdk_cache's scope, dropped when the call
    returns), so one analysis never sees another's stack; outside a call, or with the SDK cache
    off, ``build`` runs every time. Callers must treat the result as read-only: it is shared."""
    kind = f"{build.__module__}.{build.__qualname__}"

    @functools.wraps(build)
    def shared(resources: list[Resource]) -> T:
        result: T = sdk_cache.remembered(kind, resources, build)
        return result

    return shared


def stack_policy(
    *,
    name: str,
    description: str,
    resource_types: TypeFilter,
    check: StackCheck,
    remediation: str,
    settings: Sequence[Setting] = (),
    severity: Severity = Severity.CRITICAL,
) -> StackValidationPolicy:
    """A mandatory stack policy; ``check`` sees only resources of ``resource_types`` (for speed)."""
    wanted = _type_matcher(resource_types)

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = _stack_resources(args.resources, resource_types, wanted)
        config = effective_config(settings, args.get_config())
        try:
            for finding in check(resources, config):
                report(finding.message, finding.urn)
        except ValueUnknown as unknown:
            report(cannot_verify(unknown.path), None)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=config_schema(settings),
        severity=severity,
        remediation_steps=remediation,
    )
