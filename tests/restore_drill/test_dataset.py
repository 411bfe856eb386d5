"""The generated dataset is big enough, consistent, and has a known newest write."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from ops.restore_drill.dataset import DatasetShape
from ops.restore_drill.drill import NEWEST_WRITE_SQL, newest_write
from tests.restore_drill.conftest import Servers
from tests.restore_drill.support import NEWEST_WRITE, TABLES


def scalar(conninfo: str, query: str | sql.Composed, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(conninfo) as conn:
        statement = query.encode() if isinstance(query, str) else query
        row = conn.execute(statement, params or None).fetchone()
    assert row is not None
    return row[0]


def count_rows(conninfo: str, table: str) -> object:
    return scalar(conninfo, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))


def test_the_dataset_has_every_row_the_shape_asks_for(servers: Servers) -> None:
    shape = DatasetShape()
    expected = {
        "tenants": shape.tenants,
        "customers": shape.customers,
        "appointments": shape.appointments,
        "audit_events": shape.audit_events,
        "security_events": shape.security_events,
    }

    counts = {table: count_rows(servers.source_app, table) for table in TABLES}

    assert counts == expected
    assert shape.total_rows >= 100_000


def test_the_newest_write_is_exactly_the_one_asked_for(servers: Servers) -> None:
    with psycopg.connect(servers.source_app) as conn:
        assert newest_write(conn, NEWEST_WRITE_SQL.read_text()) == NEWEST_WRITE
    at_newest = scalar(
        servers.source_app,
        "SELECT count(*) FROM audit_events WHERE created_at = %s",
        (NEWEST_WRITE,),
    )
    assert at_newest == 1


@pytest.mark.parametrize(
    "inconsistency",
    [
        "SELECT count(*) FROM appointments a JOIN customers c ON c.id = a.customer_id"
        " WHERE c.tenant_id <> a.tenant_id",
        "SELECT count(*) FROM appointments a LEFT JOIN customers c ON c.id = a.customer_id"
        " WHERE c.id IS NULL",
        "SELECT count(*) FROM tenants t WHERE NOT EXISTS"
        " (SELECT FROM customers c WHERE c.tenant_id = t.id)",
        "SELECT count(*) FROM appointments WHERE ends_at <= starts_at",
    ],
)
def test_rows_are_consistent_across_tables_and_tenants(
    servers: Servers, inconsistency: str
) -> None:
    assert scalar(servers.source_app, inconsistency) == 0


def test_appointments_span_past_and_future_like_a_live_schedule(servers: Servers) -> None:
    statuses = scalar(
        servers.source_app,
        "SELECT array_agg(DISTINCT status ORDER BY status) FROM appointments",
    )

    assert statuses == ["booked", "cancelled", "completed", "confirmed", "no_show"]


def test_a_shape_scales_keeping_its_proportions() -> None:
    shape = DatasetShape()
    scaled = shape.scaled_to(1_000_000)

    assert scaled.total_rows == pytest.approx(1_000_000, rel=1e-4)
    assert scaled.appointments / scaled.customers == pytest.approx(
        shape.appointments / shape.customers, rel=1e-3
    )
