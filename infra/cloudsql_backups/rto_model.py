"""How long exporting and restoring a database takes, against its size and the vCPUs doing the work:
the model in README.md "Performance", as arithmetic the stack settings' RTO warning and the README's
table both use (tests/infra/test_rto_model.py keeps the table in step with this module).

Model, per database of S GB (pg_database_size: tables and indexes) on an instance with V vCPUs:

    restore(sql.gz)   = F + S * r                        one psql stream replays COPY, then indexes
    restore(parallel) = F + S * p * (s + (1 - s) / J)    pg_restore --jobs J, J = V (Amdahl's law)
    export(sql.gz)    = S * e                            one pg_dump stream, gzip
    export(parallel)  = S * e * (s + (1 - s) / T)        pg_dump --jobs T, T = export_threads or V

r, p and e are minutes per GB of one stream (psql, pg_restore, pg_dump), s the share no job count
shortens (schema, the largest table's COPY and index, catalog work), F Cloud SQL's fixed cost of
one import (operation queueing, start). Every constant below names where its figure comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ExportFormat = Literal["sql.gz", "parallel"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("sql.gz", "parallel")

# Restore, measured here by hand (PostgreSQL 18 embedded server, a 269 MB database of 1.6 million
# rows in 4 equal tables with one secondary index each, median of 2, 2 cores at load average 6):
# psql replaying the plain .sql.gz 7.1 s = 0.44 min/GB (`make bench`'s benchmarks/restore.py found
# 0.4 min/GB), pg_restore --jobs 1 of the directory dump 6.1 s = 0.38 min/GB, --jobs 2 3.4 s.
REPLAY_MINUTES_PER_GB = 0.44
PG_RESTORE_MINUTES_PER_GB = 0.38
# --jobs 2 at 3.4 s against 6.1 s gives s = 0.1 for 4 equal tables. One job copies and indexes a
# table alone, so s is at least the largest table's share of the data: assumed a quarter.
RESTORE_SERIAL_SHARE = 0.25
# Export, one stream: pg_dump plain piped through gzip -6 dumped 219 MB (1.6 million rows, 4 tables)
# in 11.2 s, 0.85 min/GB (PostgreSQL 18, median of 3, README "Performance"). pg_dump --jobs 2 took
# the same 10.6 s as --jobs 1 there, but on 2 cores under a load average of 6 to 8 no job count can
# gain: the directory format's serial share is assumed equal to the restore's, not measured.
DUMP_MINUTES_PER_GB = 0.85
DUMP_SERIAL_SHARE = RESTORE_SERIAL_SHARE
# Cloud SQL's fixed cost of one import operation (queueing, starting the import, the final
# ANALYZE-free commit), not measured here: an assumption, about the time the seed's drill spent
# outside the replay itself.
FIXED_RESTORE_MINUTES = 10.0
# A shared-core tier has less than one vCPU: one job.
SHARED_CORE_VCPUS = 1

_CUSTOM_TIER = re.compile(r"db-custom-(\d+)-\d+")
_PERF_OPTIMIZED_TIER = re.compile(r"db-perf-optimized-N-(\d+)")


def tier_vcpus(tier: str) -> int:
    """vCPUs of a Cloud SQL machine type (db-custom-<vCPUs>-<MB>, db-perf-optimized-N-<vCPUs>)."""
    for pattern in (_CUSTOM_TIER, _PERF_OPTIMIZED_TIER):
        match = pattern.fullmatch(tier)
        if match:
            return int(match[1])
    return SHARED_CORE_VCPUS


def _amdahl(serial_share: float, jobs: int) -> float:
    """The share of one stream's time `jobs` parallel jobs take."""
    return serial_share + (1 - serial_share) / max(1, jobs)


def restore_minutes(export_format: ExportFormat, database_gb: float, vcpus: int) -> float:
    """Expected minutes to restore an export of a `database_gb` database into `vcpus` vCPUs."""
    if export_format == "parallel":
        stream = database_gb * PG_RESTORE_MINUTES_PER_GB * _amdahl(RESTORE_SERIAL_SHARE, vcpus)
    else:
        stream = database_gb * REPLAY_MINUTES_PER_GB
    return FIXED_RESTORE_MINUTES + stream


def export_minutes(
    export_format: ExportFormat, database_gb: float, vcpus: int, threads: int = 0
) -> float:
    """Expected minutes Cloud SQL spends writing the export (threads 0: as many as vCPUs)."""
    stream = database_gb * DUMP_MINUTES_PER_GB
    if export_format == "parallel":
        stream *= _amdahl(DUMP_SERIAL_SHARE, threads or vcpus)
    return stream


@dataclass(frozen=True)
class RtoEstimate:
    """The model's answer for one stack: restore minutes per format."""

    database_gb: float
    vcpus: int
    minutes: dict[ExportFormat, float]

    @property
    def fastest(self) -> ExportFormat:
        return min(EXPORT_FORMATS, key=lambda fmt: self.minutes[fmt])


def estimate(database_gb: float, vcpus: int) -> RtoEstimate:
    return RtoEstimate(
        database_gb,
        vcpus,
        {fmt: restore_minutes(fmt, database_gb, vcpus) for fmt in EXPORT_FORMATS},
    )


# The table in README.md "Performance" (tests/infra/test_rto_model.py checks the README holds it).
TABLE_SIZES_GB = (10, 100, 1000)
TABLE_VCPUS = (2, 8, 32)


def _minutes(value: float) -> str:
    return f"{value:,.0f} min" if value < 120 else f"{value / 60:.1f} h"


def markdown_table() -> str:
    """Expected export and restore times per database size and vCPUs, both formats."""
    lines = [
        "| Database | vCPUs | Export sql.gz | Export parallel | RTO sql.gz | RTO parallel |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in TABLE_SIZES_GB:
        for vcpus in TABLE_VCPUS:
            cells = [
                f"{size:,} GB",
                str(vcpus),
                *(_minutes(export_minutes(fmt, size, vcpus)) for fmt in EXPORT_FORMATS),
                *(_minutes(restore_minutes(fmt, size, vcpus)) for fmt in EXPORT_FORMATS),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
