"""Makes pulumi-policy convert each part of a request once instead of once per policy. Speed only:
verdicts are the same with or without it (``POLICY_PACK_SDK_CACHE=off`` turns it off to compare).

pulumi-policy 1.21 (``_PolicyAnalyzerServicer``) rebuilds a resource's properties for every
policy (``json_format.MessageToDict``, then ``deserialize_properties``, then
``unknown_checking_proxy``), and its options and provider too. With 30 policies that is about 90
conversions per resource, most of the analyzer's time. They are pure functions of their input,
and the pack's policies only read what they are given, so within one ``Analyze`` call each
conversion is remembered by the identity of its input.

Those memories live only as long as the call (a scope per gRPC worker thread, dropped when the call
returns): no protobuf object is ever held beyond the request that owns it. Providers, identical
for every resource of a stack but sent as a separate message each time, are also remembered by
content, as plain Python objects.

It patches only the pulumi-policy version it was written against and leaves any other alone.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from google.protobuf import json_format
from pulumi_policy.version import VERSION

SUPPORTED_VERSION: Final = "1.21.0"
SWITCH: Final = "POLICY_PACK_SDK_CACHE"
_PROVIDERS: Final = 64

# The servicer's module, patched by name: these are its internals, not a public API.
servicer_module: Any = importlib.import_module("pulumi_policy.policy")
_scope = threading.local()


def remembered(kind: str, key: Any, compute: Callable[[Any], Any]) -> Any:
    """``compute(key)``, once per call of the servicer; outside a call, always computed.

    Also what lets the pack's stack policies share what they derive from the stack
    (``policy_kit.per_analysis``): every stack policy of one AnalyzeStack call sees the same
    request, and the call's memories are dropped when it returns."""
    entries: dict[tuple[str, int], tuple[Any, Any]] | None = getattr(_scope, "entries", None)
    if entries is None:
        return compute(key)
    slot = (kind, id(key))
    found = entries.get(slot)
    if found is not None and found[0] is key:
        return found[1]
    result = compute(key)
    entries[slot] = (key, result)  # holding ``key`` keeps its id unique while remembered
    return result


def _call_scope(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def within_scope(self: Any, request: Any, context: Any) -> Any:
        _scope.entries = {}
        try:
            return method(self, request, context)
        finally:
            _scope.entries = None

    return within_scope


class _CollectorPause:
    """Pauses Python's cyclic garbage collector while any AnalyzeStack call runs.

    AnalyzeStack builds the whole stack once per stack policy: about a million objects that
    stay alive until the call returns, which the collector would re-scan over and over (half the
    call's time on a 10,000-resource stack). Reference counting still frees what is dropped; any
    cycle is collected as usual once the last paused call has returned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._resume = False

    def around(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def paused(*args: Any) -> Any:
            with self._lock:
                if self._running == 0:
                    self._resume = gc.isenabled()
                    gc.disable()
                self._running += 1
            try:
                return method(*args)
            finally:
                with self._lock:
                    self._running -= 1
                    if self._running == 0 and self._resume:
                        gc.enable()

        return paused


class _ByContent:
    """Results keyed by a message's serialized bytes: plain Python values only (bounded)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, message: Any, compute: Callable[[], Any]) -> Any:
        key = message.SerializeToString(deterministic=True)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        result = compute()
        with self._lock:
            self._entries[key] = result
            while len(self._entries) > _PROVIDERS:
                self._entries.popitem(last=False)
        return result


class _RememberingJsonFormat:
    """``json_format`` as the servicer sees it: MessageToDict remembered, the rest delegated."""

    def MessageToDict(self, message: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - SDK name
        if args or kwargs:
            return json_format.MessageToDict(message, *args, **kwargs)
        return remembered("dict", message, json_format.MessageToDict)

    def __getattr__(self, name: str) -> Any:
        return getattr(json_format, name)


def install() -> bool:
    """Install into the servicer's module; False when left off (switch, or another SDK version)."""
    if os.environ.get(SWITCH, "on") == "off" or VERSION != SUPPORTED_VERSION:
        return False
    deserialize = servicer_module.deserialize_properties
    proxy = servicer_module.unknown_checking_proxy
    servicer: Any = servicer_module._PolicyAnalyzerServicer
    provider_of = servicer._get_provider_resource
    options_of = servicer._get_resource_options
    providers = _ByContent()

    def remembered_deserialize(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
        if proxy_secrets:  # remediations want secret-preserving copies: leave them alone
            return deserialize(props, proxy_secrets)
        return remembered("deserialized", props, deserialize)

    def remembered_proxy(props: dict[str, Any]) -> Any:
        return remembered("proxy", props, proxy)

    def remembered_provider(self: Any, request: Any) -> Any:
        if not request.HasField("provider"):
            return None
        return remembered(
            "provider",
            request.provider,
            lambda message: providers.get(message, lambda: provider_of(self, request)),
        )

    def remembered_options(self: Any, request: Any) -> Any:
        return remembered("options", request.options, lambda _: options_of(self, request))

    servicer_module.json_format = _RememberingJsonFormat()
    servicer_module.deserialize_properties = remembered_deserialize
    servicer_module.unknown_checking_proxy = remembered_proxy
    servicer._get_provider_resource = remembered_provider
    servicer._get_resource_options = remembered_options
    # AnalyzeStack rebuilds every resource once per stack policy: a scope there too.
    servicer.Analyze = _call_scope(servicer.Analyze)
    servicer.AnalyzeStack = _CollectorPause().around(_call_scope(servicer.AnalyzeStack))
    return True
