"""Reading resource properties that may be unknown during a preview, without hiding that they are.

pulumi-policy wraps a resource's properties in proxies that raise ``UnknownValueError`` when a policy
reads a value the engine does not know yet, and its analyzer turns that exception into an *advisory*
"can't run policy during preview" note: a mandatory rule would then pass silently (pulumi-policy
issues #181, #258). So the pack never lets that exception escape. :func:`plain` copies the properties
into ordinary dicts and lists, with :data:`UNKNOWN` wherever the engine sent an unknown, and
:class:`Node` reads them: asking for the value of an unknown node raises :class:`ValueUnknown`,
which ``policy_kit`` reports at the policy's own enforcement level, naming the property path.

What *is* known during a preview stays usable: the length of a list whose elements are unknown, the
keys of a map, sibling properties.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    _DictProxy,
    _ListProxy,
)

# The engine's sentinels for "computed, not known yet", one per value kind.
_SENTINELS: Final = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Unknown:
    """The single marker for a value the engine does not know yet."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Final = _Unknown()


class ValueUnknown(Exception):  # noqa: N818 - reads as the condition it reports
    """A property that a rule needs is not known yet (only happens during a preview)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def plain(value: Any) -> Any:
    """A copy of ``value`` (possibly wrapped in pulumi-policy's proxies) in plain dicts and lists,
    with :data:`UNKNOWN` for every unknown value."""
    if isinstance(value, _DictProxy | _ListProxy):
        # The proxies hand out their raw container under "__target" (the SDK's own serializer
        # reads it the same way); reading it raises nothing, so unknowns are caught below.
        value = value["__target"]
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain_item(value, key) for key in value}
    if isinstance(value, Sequence):
        return [_plain_item(value, index) for index in range(len(value))]
    return value


def _plain_item(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:
        # The proxy refused to hand out an unknown element: record it instead of failing.
        return UNKNOWN


def _unwrapped(raw: Any) -> Any:
    """One level of ``raw``: a proxy's raw container, UNKNOWN for a sentinel, else ``raw``."""
    if isinstance(raw, _DictProxy | _ListProxy):
        return raw["__target"]
    if isinstance(raw, str) and raw in _SENTINELS:
        return UNKNOWN
    return raw


class Node:
    """A value inside a resource's properties, with the path that leads to it.

    Nodes read the properties lazily, one level at a time: a rule pays only for the properties it
    looks at, which matters on 10,000-resource stacks.
    """

    __slots__ = ("_raw", "path")

    def __init__(self, raw: Any, path: str = "") -> None:
        self._raw = _unwrapped(raw)
        self.path = path

    @property
    def raw(self) -> Any:
        return self._raw

    def at(self, dotted: str) -> Node:
        """The node at ``dotted`` (e.g. ``settings.backupConfiguration``) below this one.

        An absent key gives a node whose value is ``None``. Below an unknown node everything is
        unknown too, so the unknown node itself is returned: its path is what a user must fix.
        """
        node = self
        for key in dotted.split("."):
            if node._raw is UNKNOWN:
                return node
            child = node._raw.get(key) if isinstance(node._raw, Mapping) else None
            node = Node(child, f"{node.path}.{key}" if node.path else key)
        return node

    @property
    def unknown(self) -> bool:
        return self._raw is UNKNOWN

    @property
    def value(self) -> Any:
        """The plain value (``None`` when absent); raises :class:`ValueUnknown` when unknown.

        Containers come back as plain dicts and lists, with UNKNOWN for unknowns inside them."""
        if self._raw is UNKNOWN:
            raise ValueUnknown(self.path)
        return plain(self._raw)

    def elements(self) -> list[Node]:
        """The items of a list (none when absent); raises :class:`ValueUnknown` if the list itself
        is unknown. Unknown *items* are returned as unknown nodes: the count stays known."""
        if self._raw is UNKNOWN:
            raise ValueUnknown(self.path)
        if not isinstance(self._raw, Sequence) or isinstance(self._raw, str):
            return []
        return [Node(item, f"{self.path}[{index}]") for index, item in enumerate(self._raw)]

    def entries(self) -> dict[str, Node]:
        """The entries of a map (none when absent); raises :class:`ValueUnknown` if it is unknown."""
        if self._raw is UNKNOWN:
            raise ValueUnknown(self.path)
        if not isinstance(self._raw, Mapping):
            return {}
        return {key: Node(item, f"{self.path}.{key}") for key, item in self._raw.items()}

    def __repr__(self) -> str:
        return f"Node({self.path or '<root>'}={self._raw!r})"


def describe(value: Any) -> str:
    """A value as a user wrote it: numbers arrive as floats on the wire, 30.0 reads better as 30."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "not set"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def numeric(value: Any, default: float | None = None) -> float | None:
    """A number from the wire (floats; the provider also accepts numeric strings), ``default`` when
    absent, ``None`` when it is not a number at all."""
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
