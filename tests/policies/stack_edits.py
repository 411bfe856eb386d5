"""One-edit variants of rendered stacks: change one resource's serialized inputs or options, add or
remove a resource, exactly as someone editing the program (past its own validation) would.

Every function returns a new RenderedStack and leaves its argument untouched (unchanged resources
are shared, never mutated), so the session's cached renders stay pristine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from google.protobuf import json_format, struct_pb2

from tools.stack_render import UNKNOWN, RegisteredResource, RenderedStack

__all__ = [
    "UNKNOWN",
    "add_copy",
    "add_resource",
    "delete",
    "edit",
    "get",
    "put",
    "remove",
    "set_option",
]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def get(props: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (``a.b[0].c``) in plain properties."""
    node: Any = props
    for step in _steps(path):
        node = node[step]
    return node


def put(props: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` to ``value``, creating missing maps on the way."""
    *parents, last = _steps(path)
    node: Any = props
    for step in parents:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    node[last] = value


def delete(props: dict[str, Any], path: str) -> None:
    """Remove ``path``, as if the program never set it."""
    *parents, last = _steps(path)
    node: Any = props
    for step in parents:
        node = node[step]
    del node[last]


def _index(stack: RenderedStack, type_token: str, name: str | None) -> int:
    found = [
        i for i, r in enumerate(stack.resources) if r.type == type_token and name in (None, r.name)
    ]
    if len(found) != 1:
        raise AssertionError(f"expected one {type_token} {name or ''}, found {len(found)}")
    return found[0]


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(props, struct)
    return struct


def _with(stack: RenderedStack, index: int, resource: RegisteredResource | None) -> RenderedStack:
    """``stack`` with the resource at ``index`` replaced (or dropped when None); others shared."""
    resources = list(stack.resources)
    if resource is None:
        del resources[index]
    else:
        resources[index] = resource
    return replace(stack, resources=resources)


def edit(
    stack: RenderedStack,
    type_token: str,
    change: Callable[[dict[str, Any]], None],
    name: str | None = None,
) -> RenderedStack:
    """A copy of ``stack`` where ``change`` edited the wire properties of one resource."""
    index = _index(stack, type_token, name)
    target = stack.resources[index]
    props = json_format.MessageToDict(target.properties)
    change(props)
    return _with(stack, index, replace(target, properties=_struct(props)))


def set_option(
    stack: RenderedStack, type_token: str, name: str | None = None, *, protect: bool
) -> RenderedStack:
    index = _index(stack, type_token, name)
    return _with(stack, index, replace(stack.resources[index], protect=protect))


def remove(stack: RenderedStack, type_token: str, name: str | None = None) -> RenderedStack:
    """A copy of ``stack`` without one resource."""
    return _with(stack, _index(stack, type_token, name), None)


def add_copy(
    stack: RenderedStack,
    type_token: str,
    new_name: str,
    change: Callable[[dict[str, Any]], None],
    name: str | None = None,
) -> RenderedStack:
    """A copy of ``stack`` with one more resource: a copy of an existing one, renamed and edited."""
    source = stack.resources[_index(stack, type_token, name)]
    props = json_format.MessageToDict(source.properties)
    change(props)
    urn = source.urn.rsplit("::", 1)[0] + f"::{new_name}"
    added = replace(source, name=new_name, urn=urn, properties=_struct(props))
    return replace(stack, resources=[*stack.resources, added])


def urn_of(stack: RenderedStack, name: str) -> str:
    """The URN of the one resource called ``name``."""
    found = [resource.urn for resource in stack.resources if resource.name == name]
    if len(found) != 1:
        raise AssertionError(f"expected one resource {name}, found {len(found)}")
    return found[0]


def add_resource(
    stack: RenderedStack,
    type_token: str,
    name: str,
    props: dict[str, Any],
    depends_on: dict[str, list[str]] | None = None,
) -> RenderedStack:
    """A copy of ``stack`` with one new top-level resource; ``depends_on`` maps each property to the
    names of the resources its value was computed from (the engine's property dependencies)."""
    property_dependencies = {
        prop: [urn_of(stack, source) for source in sources]
        for prop, sources in (depends_on or {}).items()
    }
    project = stack.resources[0].urn.split("::")[1]
    added = RegisteredResource(
        type=type_token,
        name=name,
        urn=f"urn:pulumi:{stack.stack}::{project}::{type_token}::{name}",
        custom=True,
        parent="",
        protect=False,
        retain_on_delete=False,
        import_id="",
        dependencies=sorted({urn for urns in property_dependencies.values() for urn in urns}),
        property_dependencies=property_dependencies,
        properties=_struct(props),
    )
    return replace(stack, resources=[*stack.resources, added])
