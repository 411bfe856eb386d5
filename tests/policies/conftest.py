"""Fixtures for the policy pack tests: one analyzer pool for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.policies.harness import Analyzers


@pytest.fixture(scope="session")
def analyzers() -> Iterator[Analyzers]:
    """Real analyzers, started on first use (once per stack and mode) and stopped at the end."""
    pool = Analyzers()
    try:
        yield pool
    finally:
        pool.close()
