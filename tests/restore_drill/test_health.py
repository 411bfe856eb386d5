"""--health-url: RTO ends when the application on the restored data answers 2xx."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ops.restore_drill.cli import DEFAULT_LOG
from ops.restore_drill.health import HealthWait, wait_until_healthy
from ops.restore_drill.restore_log import read_rows
from tests.restore_drill.conftest import Servers
from tests.restore_drill.test_drill_local_file import drill


class App:
    """A loopback application whose health endpoint answers the given statuses, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.requests += 1
                status = app.statuses.pop(0) if app.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/healthz"


@pytest.fixture
def app_answering() -> Iterator[type[App]]:
    started: list[App] = []

    def start(statuses: list[int]) -> App:
        app = App(statuses)
        threading.Thread(target=app.server.serve_forever, daemon=True).start()
        started.append(app)
        return app

    yield start  # type: ignore[misc]
    for app in started:
        app.server.shutdown()
        app.server.server_close()


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_polls_until_the_app_answers_2xx(app_answering: type[App]) -> None:
    app, time = app_answering([503, 502]), FakeTime()

    outcome = wait_until_healthy(HealthWait(app.url, 60, 5, time.sleep, time.monotonic))

    assert (outcome.healthy, outcome.attempts, outcome.last_answer) == (True, 3, "HTTP 200")
    assert time.sleeps == [5, 5]


def test_gives_up_at_the_deadline_saying_what_the_app_answered(app_answering: type[App]) -> None:
    app, time = app_answering([503] * 100), FakeTime()

    outcome = wait_until_healthy(HealthWait(app.url, 12, 5, time.sleep, time.monotonic))

    assert (outcome.healthy, outcome.attempts, outcome.last_answer) == (False, 4, "HTTP 503")


def test_an_unreachable_app_is_not_healthy() -> None:
    time = FakeTime()

    outcome = wait_until_healthy(
        HealthWait("http://127.0.0.1:9/", 0, 5, time.sleep, time.monotonic)
    )

    assert not outcome.healthy
    assert outcome.last_answer.startswith("ConnectionError")


@pytest.fixture
def log_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(DEFAULT_LOG, tmp_path / "BACKUP_RESTORE_LOG.md"))


def test_the_drill_ends_rto_when_the_app_is_healthy_and_says_so(
    export_dump: Path, servers: Servers, log_copy: Path, app_answering: type[App]
) -> None:
    app = app_answering([])

    exit_code, output = drill(
        export_dump, servers, log_copy, "--create-missing-roles", "--health-url", app.url
    )

    assert exit_code == 0, output
    assert read_rows(log_copy)[-1]["RTO (min)"].endswith(" (app healthy)")
    assert app.requests == 1


def test_an_app_that_never_gets_healthy_fails_the_drill(
    export_dump: Path, servers: Servers, log_copy: Path, app_answering: type[App]
) -> None:
    app = app_answering([503] * 100)

    exit_code, output = drill(
        export_dump, servers, log_copy, "--create-missing-roles",
        "--health-url", app.url, "--health-timeout-minutes", "0",
    )  # fmt: skip

    assert exit_code == 1, output
    row = read_rows(log_copy)[-1]
    assert (row["Result"], row["RTO (min)"]) == ("failed", "n/a")
    assert "application not healthy" in row["Checks passed"]


def test_a_health_url_that_is_not_http_is_an_invalid_option(
    export_dump: Path, servers: Servers, log_copy: Path
) -> None:
    exit_code, output = drill(export_dump, servers, log_copy, "--health-url", "localhost:8080")

    assert exit_code == 2
    assert "--health-url" in output
    assert not list(log_copy.parent.glob("*BASELINE*"))  # nothing ran
