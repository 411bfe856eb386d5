-- A second application schema for the generated checks: bigint tenant ids, other table and column
-- names, another setting and role, timestamps without time zone, FORCEd row-level security.
-- Small data; the test replaces {newest} with the newest write (UTC) before running it.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'web_app') THEN
        CREATE ROLE web_app NOLOGIN;
    END IF;
END
$roles$;

CREATE SCHEMA booking;

CREATE TABLE booking.accounts (
    account_no bigint PRIMARY KEY,
    title      text NOT NULL,
    opened_at  timestamp NOT NULL
);

CREATE TABLE booking.clients (
    client_no  bigserial PRIMARY KEY,
    account_no bigint NOT NULL REFERENCES booking.accounts,
    display    text NOT NULL,
    inserted   timestamp NOT NULL,
    UNIQUE (account_no, client_no)
);

CREATE TABLE booking.visits (
    visit_no   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_no bigint NOT NULL,
    client_no  bigint NOT NULL,
    begins     timestamp NOT NULL,
    inserted   timestamp NOT NULL,
    changed    timestamp,
    FOREIGN KEY (account_no, client_no) REFERENCES booking.clients (account_no, client_no)
);

CREATE TABLE booking.activity (
    entry_no   bigserial PRIMARY KEY,
    account_no bigint NOT NULL REFERENCES booking.accounts,
    what       text NOT NULL,
    logged     timestamp NOT NULL
);

CREATE TABLE booking.login_audit (
    entry_no   bigserial PRIMARY KEY,
    account_no bigint NOT NULL,
    logged     timestamp NOT NULL
);

INSERT INTO booking.accounts
SELECT a, 'Account ' || a, TIMESTAMP '{newest}' - interval '400 days'
FROM generate_series(101, 104) AS a;

INSERT INTO booking.clients (account_no, display, inserted)
SELECT 101 + g % 4, 'Client ' || g, TIMESTAMP '{newest}' - (200 - g) * interval '2 hours'
FROM generate_series(1, 200) AS g;

INSERT INTO booking.visits (account_no, client_no, begins, inserted, changed)
SELECT 101 + c % 4, c, TIMESTAMP '{newest}' - interval '20 days' + g * interval '1 hour',
       TIMESTAMP '{newest}' - (800 - g) * interval '30 minutes',
       CASE WHEN g % 3 = 0 THEN TIMESTAMP '{newest}' - (800 - g) * interval '10 minutes' END
FROM (SELECT g, 1 + g % 200 AS c FROM generate_series(1, 800) AS g) AS spread;

INSERT INTO booking.activity (account_no, what, logged)
SELECT 101 + g % 4, 'did ' || g, TIMESTAMP '{newest}' - (1000 - g) * interval '5 minutes'
FROM generate_series(1, 1000) AS g;

INSERT INTO booking.login_audit (account_no, logged)
SELECT 101 + g % 4, TIMESTAMP '{newest}' - (100 - g) * interval '3 hours'
FROM generate_series(1, 100) AS g;

ALTER TABLE booking.accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.visits ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.activity ENABLE ROW LEVEL SECURITY;
ALTER TABLE booking.clients FORCE ROW LEVEL SECURITY;
ALTER TABLE booking.visits FORCE ROW LEVEL SECURITY;

CREATE POLICY by_account ON booking.accounts TO web_app
    USING (account_no = NULLIF(current_setting('tenancy.account', true), '')::bigint);
CREATE POLICY by_account ON booking.clients TO web_app
    USING (account_no = NULLIF(current_setting('tenancy.account', true), '')::bigint);
CREATE POLICY by_account ON booking.visits TO web_app
    USING (account_no = NULLIF(current_setting('tenancy.account', true), '')::bigint);
CREATE POLICY by_account ON booking.activity TO web_app
    USING (account_no = NULLIF(current_setting('tenancy.account', true), '')::bigint);

GRANT USAGE ON SCHEMA booking TO web_app;
GRANT SELECT ON booking.accounts TO web_app;
GRANT SELECT, INSERT, UPDATE ON booking.clients, booking.visits TO web_app;
GRANT SELECT, INSERT ON booking.activity TO web_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA booking TO web_app;
