-- The newest write in the restored data, used to compute the drill's RPO
-- (restore point minus this). Must return one timestamptz (NULL for an empty database).
-- Teams replace the tables with the write-heavy tables of their own schema.
SELECT max(written_at)
FROM (
    SELECT max(created_at) AS written_at FROM audit_events
    UNION ALL SELECT max(created_at) FROM appointments
    UNION ALL SELECT max(created_at) FROM customers
    UNION ALL SELECT max(created_at) FROM security_events
) AS newest_per_table;
