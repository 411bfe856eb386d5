"""The end of RTO as the seed defines it: the application answers healthy on the restored data.

With `--health-url`, once every check passed the drill polls the URL (GET, no redirects) until it
answers 2xx, and RTO ends then; without it RTO ends when the checks pass. The log row says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests

REQUEST_TIMEOUT_SECONDS = 10.0
HTTP_OK_RANGE = range(200, 300)


class HealthUrlError(ValueError):
    """The health URL is not an http(s) URL."""


def validate_health_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HealthUrlError(f"{url!r} is not an http:// or https:// URL")
    return url


@dataclass(frozen=True)
class HealthWait:
    """How to wait for the application (sleep and monotonic are replaceable in tests)."""

    url: str
    timeout_seconds: float = 15 * 60
    interval_seconds: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class HealthOutcome:
    healthy: bool
    attempts: int
    last_answer: str  # "HTTP 503", or the connection error


def probe(session: requests.Session, url: str) -> tuple[bool, str]:
    try:
        response = session.get(url, timeout=REQUEST_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as error:
        return False, f"{type(error).__name__}: {error}"
    return response.status_code in HTTP_OK_RANGE, f"HTTP {response.status_code}"


def wait_until_healthy(wait: HealthWait, session: requests.Session | None = None) -> HealthOutcome:
    """Poll until a 2xx answer or the deadline (at least one attempt)."""
    deadline = wait.monotonic() + wait.timeout_seconds
    attempts = 0
    with session or requests.Session() as http:
        while True:
            attempts += 1
            healthy, answer = probe(http, wait.url)
            if healthy or wait.monotonic() >= deadline:
                return HealthOutcome(healthy, attempts, answer)
            wait.sleep(wait.interval_seconds)


def rto_end_label(health_url: str | None) -> str:
    return "app healthy" if health_url else "checks passed"


def healthy_at(wait: HealthWait, clock: Callable[[], datetime]) -> tuple[datetime | None, str]:
    """When the application answered healthy (None if it never did), and what it last said."""
    outcome = wait_until_healthy(wait)
    if outcome.healthy:
        return clock(), f"{wait.url} answered {outcome.last_answer}"
    return None, (
        f"{wait.url} did not answer 2xx within {wait.timeout_seconds / 60:g} min "
        f"({outcome.attempts} attempts, last: {outcome.last_answer})"
    )
