"""Export verification throughput: how fast `ops/export/cloudsql_export.py` proves a dump
complete (gzip to the end, pg_dump header and completion line), on a large synthetic plain dump.

The dump imitates pg_dump's plain output of a customers/appointments schema: COPY rows of varied,
pseudo-random text, so that gzip compresses it about as much as real table data (about 4x).
Verification runs through the script's own path, `Gcloud.stream_object` feeding `DumpChecker`
from a subprocess pipe, with a stand-in for `gcloud storage cat` that copies the file to stdout:
the figure is the script's side (pipe, gunzip, checks), not Cloud Storage's download speed, which
on Cloud Run is a network figure of its own. The in-process line (no pipe) shows what the
decompression alone costs. Medians of EXPORT_VERIFY_BENCH_REPEATS runs (default 5) over
EXPORT_VERIFY_BENCH_MB megabytes of SQL (default 512). Figures only, nothing asserts.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import stat
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ops.export.cloudsql_export import READ_CHUNK_BYTES, DumpChecker, Gcloud, verify_export
from tests.export.dumps import plain_dump

DEFAULT_MB = 512
DEFAULT_REPEATS = 5
BYTES_PER_MB = 1_000_000
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
STATUSES = ("booked", "confirmed", "cancelled", "no_show", "completed")


@dataclass(frozen=True)
class Measured:
    path: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def copy_rows(rng: random.Random, first_id: int, count: int) -> str:
    lines = []
    for n in range(first_id, first_id + count):
        name = f"{rng.choice(FIRST_NAMES)} {rng.getrandbits(40):x}"
        starts = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(7, 19):02d}:00:00+00"
        note = "" if rng.random() < 0.7 else f"call back {rng.getrandbits(24):x}"
        lines.append(f"{n}\t{n % 977}\t{name}\t{starts}\t{rng.choice(STATUSES)}\t{note}\n")
    return "".join(lines)


def write_synthetic_dump(path: Path, megabytes: int) -> int:
    """A gzip plain dump of about `megabytes` MB of SQL; returns the SQL's exact size."""
    frame = plain_dump("bench", rows=1)
    split = frame.index(b"--\n-- PostgreSQL database dump complete")
    target = megabytes * BYTES_PER_MB
    rng = random.Random(20260301)  # noqa: S311 (reproducible synthetic rows, not secrets)
    written = 0
    with gzip.open(path, "wb", compresslevel=6) as out:

        def write(data: bytes) -> None:
            nonlocal written
            out.write(data)
            written += len(data)

        write(frame[:split])
        write(
            b"COPY public.appointments (id, tenant_id, customer, starts_at, status, note) FROM stdin;\n"
        )
        next_id = 1
        while written < target:
            write(copy_rows(rng, next_id, 20_000).encode())
            next_id += 20_000
        write(b"\\.\n\n\n")
        write(frame[split:])
    return written


def stand_in_gcloud(directory: Path, dump: Path) -> Path:
    """An executable answering `gcloud storage cat URI ...` with the dump's bytes."""
    executable = directory / "gcloud"
    executable.write_text(f"#!/bin/sh\nexec cat '{dump}'\n")
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    return executable


def through_the_script(gcloud: Gcloud) -> float:
    verified = verify_export(
        gcloud, "gs://bench/cloudsql/bench/bench/x.sql.gz", time.monotonic() + 3600, time.monotonic
    )
    return verified.seconds


def in_process(dump: Path) -> float:
    started = time.perf_counter()
    checker = DumpChecker()
    with dump.open("rb") as source:
        while chunk := source.read(READ_CHUNK_BYTES):
            checker.feed(chunk)
    checker.finish(0.0)
    return time.perf_counter() - started


def measure(name: str, run: Callable[[], float], repeats: int) -> Measured:
    return Measured(name, [run() for _ in range(repeats)])


def report(console: Console, results: list[Measured], compressed: int, uncompressed: int) -> None:
    table = Table(
        title=f"Verification of a {uncompressed / BYTES_PER_MB:,.0f} MB dump "
        f"({compressed / BYTES_PER_MB:,.0f} MB gzip), median of {len(results[0].seconds)}"
    )
    for column in ("path", "median s", "SQL MB/s", "gzip MB/s", "min 10 GB of SQL"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for result in results:
        sql_rate = uncompressed / BYTES_PER_MB / result.median
        table.add_row(
            result.path,
            f"{result.median:.2f}",
            f"{sql_rate:,.0f}",
            f"{compressed / BYTES_PER_MB / result.median:,.0f}",
            f"{10_000 / sql_rate / 60:.1f}",
        )
    console.print(table)


def main() -> None:
    megabytes = int(os.environ.get("EXPORT_VERIFY_BENCH_MB", DEFAULT_MB))
    repeats = int(os.environ.get("EXPORT_VERIFY_BENCH_REPEATS", DEFAULT_REPEATS))
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="export-verify-bench-"))
    try:
        dump = workdir / "bench.sql.gz"
        with console.status(f"writing a {megabytes} MB synthetic dump"):
            uncompressed = write_synthetic_dump(dump, megabytes)
        gcloud = Gcloud(str(stand_in_gcloud(workdir, dump)), "bench-project")
        with console.status(f"verifying it {repeats} times through the script's pipe"):
            piped = measure(
                "gcloud storage cat | script (pipe)", lambda: through_the_script(gcloud), repeats
            )
        with console.status(f"checking it {repeats} times in process"):
            direct = measure("in process, no pipe", lambda: in_process(dump), repeats)
        checker = DumpChecker()
        with dump.open("rb") as source:
            while chunk := source.read(READ_CHUNK_BYTES):
                checker.feed(chunk)
        if checker.finish(0.0).uncompressed_bytes != uncompressed:
            sys.exit("the synthetic dump's size does not match what was written")
        report(console, [piped, direct], dump.stat().st_size, uncompressed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
