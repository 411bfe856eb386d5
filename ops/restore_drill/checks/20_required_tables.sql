-- check: required_tables
-- description: Every table the application needs was restored (lists the missing ones).
-- expect: [[""]]
SELECT coalesce(string_agg(name, ', ' ORDER BY name), '')
FROM (VALUES ('tenants'), ('customers'), ('appointments'), ('audit_events'), ('security_events'))
    AS required (name)
WHERE to_regclass('public.' || name) IS NULL;
