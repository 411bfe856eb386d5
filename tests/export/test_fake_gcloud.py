"""The fake gcloud is only worth its tests if it refuses what the real one refuses."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.export.conftest import FakeGcloud

URI = "gs://acme-prod-db-backups/cloudsql/main-pg/app/20261125T033012Z.sql.gz"


def call(gcloud: FakeGcloud, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gcloud.executable), *argv],
        env=gcloud.base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# An export of database app as the script starts it, for the flags added to it below.
EXPORT_APP = ["sql", "export", "sql", "main-pg", URI, "--project=acme-prod", "--database=app"]


@pytest.mark.parametrize(
    ("argv", "exit_code", "stderr"),
    [
        (
            ["sql", "export", "sql", "main-pg", URI, "--databse=app", "--project=acme-prod"],
            2,
            "ERROR: (gcloud.sql.export.sql) unrecognized arguments: --databse=app",
        ),
        (
            ["sql", "export", "sql", "main-pg", "--database=app", "--project=acme-prod"],
            2,
            "required positional argument",
        ),
        (
            ["sql", "export", "sql", "main-pg", URI, "--database=app", "--async=yes"],
            2,
            "ignored explicit argument",
        ),
        (
            ["sql", "export", "sql", "main-pg", URI, "--database=app", "--async"],
            1,
            "The required property [project] is not currently set.",
        ),
        (
            ["sql", "export", "sql", "main-pg", URI, "--database=app", "--clean"],
            3,
            "does not simulate --clean",
        ),
        (
            [*EXPORT_APP, "--threads=2"],
            3,
            "simulates --threads only with --parallel",
        ),
        (
            [*EXPORT_APP, "--parallel", "--threads=many"],
            2,
            "argument --threads: Value must be an integer; received: many",
        ),
        (
            ["storage", "objects", "list", "gs://acme-prod-db-backups/a*b", "--format=json"],
            3,
            "only lists NAME or PREFIX**",
        ),
        (["sql", "operations", "wait", "op-1", "--project=acme-prod", "--timeout=-1"], 2, "-1"),
        (["storage", "objects", "describe", URI, "--format=json"], 1, f"{URI} not found: 404."),
        (
            ["storage", "cat", URI],
            1,
            f"ERROR: (gcloud.storage.cat) The following URLs matched no objects or files:\n{URI}",
        ),
        (["storage", "cat", URI, "--range=0-9"], 3, "does not simulate --range"),
        (["storage", "cat", "--quiet"], 2, "required positional argument"),
    ],
)
def test_the_fake_refuses_what_gcloud_refuses(
    gcloud: FakeGcloud, argv: list[str], exit_code: int, stderr: str
) -> None:
    completed = call(gcloud, *argv)

    assert completed.returncode == exit_code
    assert stderr in completed.stderr
    assert completed.stdout == ""
    assert gcloud.state["calls"] == [argv]


def test_the_fake_exports_like_cloud_sql(gcloud: FakeGcloud) -> None:
    started = call(
        gcloud,
        *("sql", "export", "sql", "main-pg", URI, "-d", "app", "--project", "acme-prod"),
        *("--async", "--format=json", "--quiet"),
    )
    assert started.returncode == 0, started.stderr
    operation = json.loads(started.stdout)
    assert operation["status"] == "PENDING"
    assert operation["exportContext"]["uri"] == URI

    waited = call(
        gcloud,
        "sql",
        "operations",
        "wait",
        operation["name"],
        "--project=acme-prod",
        "--format=json",
    )
    assert waited.returncode == 0, waited.stderr
    (done,) = json.loads(waited.stdout)
    assert done["status"] == "DONE"
    assert "error" not in done

    described = call(gcloud, "storage", "objects", "describe", URI, "--format=json")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["size"] == len(gcloud.default_dump)

    read = subprocess.run(
        [str(gcloud.executable), "storage", "cat", URI, "--project=acme-prod", "--quiet"],
        env=gcloud.base_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == gcloud.default_dump, "cat streams the bytes Cloud SQL wrote"
