"""A realistic, deterministic dataset for the example schema, shared by the tests and the benchmark.

Rows are generated server-side with generate_series, so 100k+ rows take about a second. Every
timestamp is derived from `newest_write`: exactly one row (the last audit event) carries it and
all others are older, which makes the RPO a restore drill measures predictable in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

SCHEMA_PATH = Path(__file__).with_name("schema.sql")

# Identity columns are filled with explicit ids below; move their sequences past them so the
# application's next insert does not collide.
IDENTITY_TABLES = ("customers", "appointments", "audit_events", "security_events")

INSERT_TENANTS = b"""
INSERT INTO tenants (id, name, created_at)
SELECT md5('tenant-' || t)::uuid,
       'Tenant ' || t,
       %(newest)s - (%(tenants)s - t + 400) * interval '1 day'
FROM generate_series(0, %(tenants)s - 1) AS t
"""

INSERT_CUSTOMERS = b"""
INSERT INTO customers (id, tenant_id, full_name, email, phone, created_at)
SELECT g,
       md5('tenant-' || (g %% %(tenants)s))::uuid,
       'Customer ' || g,
       'customer' || g || '@example.test',
       '+1555' || lpad((g %% 10000000)::text, 7, '0'),
       %(newest)s - (%(customers)s - g + 1) * interval '17 minutes'
FROM generate_series(1, %(customers)s) AS g
"""

# Each appointment belongs to a pseudo-randomly chosen customer and that customer's tenant, and
# starts somewhere between 180 days before and 60 days after the newest write.
INSERT_APPOINTMENTS = b"""
INSERT INTO appointments (id, tenant_id, customer_id, starts_at, ends_at, status, notes, created_at)
SELECT g,
       md5('tenant-' || (c %% %(tenants)s))::uuid,
       c,
       starts_at,
       starts_at + (30 + (g %% 4) * 15) * interval '1 minute',
       CASE
           WHEN starts_at < %(newest)s THEN (ARRAY['completed', 'completed', 'no_show', 'cancelled'])[1 + g %% 4]
           ELSE (ARRAY['booked', 'confirmed'])[1 + g %% 2]
       END,
       CASE WHEN g %% 5 = 0 THEN 'Follow-up visit #' || g END,
       %(newest)s - (%(appointments)s - g + 1) * interval '3 minutes'
FROM (
    SELECT g,
           (g * 7919) %% %(customers)s + 1 AS c,
           date_trunc('hour', %(newest)s::timestamptz) - interval '180 days'
               + ((g * 20736000 / %(appointments)s) / 900 * 900) * interval '1 second' AS starts_at
    FROM generate_series(1::bigint, %(appointments)s) AS g
) AS spread
"""

INSERT_AUDIT_EVENTS = b"""
INSERT INTO audit_events (id, tenant_id, actor, action, entity_type, entity_id, created_at)
SELECT g,
       md5('tenant-' || (g %% %(tenants)s))::uuid,
       'user-' || (g %% 500),
       (ARRAY['create', 'update', 'cancel', 'view'])[1 + g %% 4],
       CASE WHEN g %% 2 = 0 THEN 'appointment' ELSE 'customer' END,
       g %% %(customers)s + 1,
       %(newest)s - (%(audit_events)s - g) * interval '13 seconds'
FROM generate_series(1, %(audit_events)s) AS g
"""

INSERT_SECURITY_EVENTS = b"""
INSERT INTO security_events (id, tenant_id, kind, source_ip, detail, created_at)
SELECT g,
       md5('tenant-' || (g %% %(tenants)s))::uuid,
       (ARRAY['login_failed', 'password_reset', 'mfa_enrolled', 'token_revoked'])[1 + g %% 4],
       ('10.' || (g %% 250) || '.' || (g / 250 %% 250) || '.' || (g %% 200 + 1))::inet,
       'event ' || g,
       %(newest)s - (%(security_events)s - g + 1) * interval '41 minutes'
FROM generate_series(1, %(security_events)s) AS g
"""

# Cloud SQL's own superuser-like role: exports of Cloud SQL databases carry grants to it, which
# is what makes their dumps fail on a plain PostgreSQL that lacks the role.
CLOUD_SQL_GRANTS = b"""
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cloudsqlsuperuser') THEN
        CREATE ROLE cloudsqlsuperuser NOLOGIN;
    END IF;
END
$roles$;
GRANT ALL ON SCHEMA public TO cloudsqlsuperuser;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cloudsqlsuperuser;
"""


@dataclass(frozen=True)
class DatasetShape:
    """Row counts per table."""

    tenants: int = 12
    customers: int = 24_000
    appointments: int = 60_000
    audit_events: int = 40_000
    security_events: int = 6_000

    @property
    def total_rows(self) -> int:
        return (
            self.tenants
            + self.customers
            + self.appointments
            + self.audit_events
            + self.security_events
        )

    def scaled_to(self, total_rows: int) -> DatasetShape:
        """The same proportions with about `total_rows` rows (at least two tenants)."""
        factor = total_rows / self.total_rows
        return replace(
            self,
            tenants=max(2, round(self.tenants * factor)),
            customers=max(2, round(self.customers * factor)),
            appointments=max(1, round(self.appointments * factor)),
            audit_events=max(1, round(self.audit_events * factor)),
            security_events=max(1, round(self.security_events * factor)),
        )


def create_schema(conn: psycopg.Connection[TupleRow]) -> None:
    """Apply schema.sql (roles are created only when missing)."""
    conn.execute(SCHEMA_PATH.read_bytes())


def populate(
    conn: psycopg.Connection[TupleRow], shape: DatasetShape, newest_write: datetime
) -> None:
    """Fill the schema; the newest created_at of any row is exactly `newest_write`."""
    params = {
        "newest": newest_write,
        "tenants": shape.tenants,
        "customers": shape.customers,
        "appointments": shape.appointments,
        "audit_events": shape.audit_events,
        "security_events": shape.security_events,
    }
    for statement in (
        INSERT_TENANTS,
        INSERT_CUSTOMERS,
        INSERT_APPOINTMENTS,
        INSERT_AUDIT_EVENTS,
        INSERT_SECURITY_EVENTS,
    ):
        conn.execute(statement, params)
    for table in IDENTITY_TABLES:
        conn.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {}").format(
                sql.Literal(table), sql.Identifier(table)
            )
        )


def grant_cloud_sql_roles(conn: psycopg.Connection[TupleRow]) -> None:
    """Add the grants to `cloudsqlsuperuser` that a database living in Cloud SQL carries."""
    conn.execute(CLOUD_SQL_GRANTS)


def build(conninfo: str, shape: DatasetShape, newest_write: datetime) -> None:
    """Create the schema and data in the (empty) database `conninfo` points at, then ANALYZE."""
    with psycopg.connect(conninfo) as conn:
        create_schema(conn)
        populate(conn, shape, newest_write)
        grant_cloud_sql_roles(conn)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
