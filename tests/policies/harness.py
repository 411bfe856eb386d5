"""What the policy tests share: the real stacks rendered once per session, and a pool that starts
the real analyzer once per session per (stack, preview), configured with the stack's policy config.

Tests never re-implement a check: they feed stacks to the analyzer and assert its verdicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from tools.policy_gate import GateResult, PolicyAnalyzer, policy_config_path
from tools.stack_render import RenderedStack, render

STACKS = ("staging", "prod")
# What pulumi-policy says when a policy read an unknown value: must never appear.
SDK_SKIP_NOTE = "can't run policy"


@cache
def _rendered(
    stack: str, preview: bool, overrides: tuple[tuple[str, Any], ...] = ()
) -> RenderedStack:
    return render(stack, preview=preview, overrides=dict(overrides))


def rendered(
    stack: str, *, preview: bool, overrides: Mapping[str, Any] | None = None
) -> RenderedStack:
    """The real program's registrations for ``stack`` (cached: treat as read-only)."""
    frozen = tuple(sorted((key, _freeze(value)) for key, value in (overrides or {}).items()))
    return _rendered(stack, preview, frozen)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Analyzers:
    """One running analyzer per (stack, preview), each with its stack's policy config."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, bool], PolicyAnalyzer] = {}

    def get(self, stack: str, preview: bool) -> PolicyAnalyzer:
        key = (stack, preview)
        if key not in self._running:
            analyzer = PolicyAnalyzer(
                stack, preview=preview, policy_config=policy_config_path(stack)
            )
            analyzer.start()
            self._running[key] = analyzer
        return self._running[key]

    def verdicts(self, stack: RenderedStack) -> GateResult:
        result = self.get(stack.stack, stack.preview).analyze(stack)
        silent_skips = [v for v in result.violations if SDK_SKIP_NOTE in v.message]
        assert silent_skips == [], "a policy let the SDK skip it on an unknown value"
        return result

    @contextmanager
    def configured(
        self, stack: str, preview: bool, policy_config: Path
    ) -> Iterator[PolicyAnalyzer]:
        """The analyzer for ``stack`` with another policy config, restored afterwards."""
        analyzer = self.get(stack, preview)
        analyzer.configure(policy_config)
        try:
            yield analyzer
        finally:
            analyzer.configure(policy_config_path(stack))

    def close(self) -> None:
        for analyzer in self._running.values():
            analyzer.close()
        self._running.clear()


def mandatory_policies(result: GateResult) -> set[str]:
    return {violation.policy for violation in result.mandatory_violations}
