"""Fixtures that render the real program for both stacks, once per test session."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from tools.stack_render import RenderedStack, render

STACKS = ("staging", "prod")


@cache
def _rendered(stack: str, preview: bool) -> RenderedStack:
    return render(stack, preview=preview)


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> RenderedStack:
    """Each real stack as `pulumi up` registers it (computed values known)."""
    return _rendered(request.param, False)


@pytest.fixture(params=STACKS)
def preview_stack(request: pytest.FixtureRequest) -> RenderedStack:
    """Each real stack as a first `pulumi preview` registers it (computed values unknown)."""
    return _rendered(request.param, True)


@pytest.fixture
def rendered() -> Callable[[str, bool], RenderedStack]:
    return _rendered
