-- check: scheduling_reads
-- description: A tenant's appointments for a date range come back, each joined to that tenant's customer.
-- expect: [[true, true]]
SELECT set_config('app.tenant_id', (SELECT id::text FROM tenants ORDER BY id LIMIT 1), true);
SET LOCAL ROLE app_user;
WITH window_end AS (SELECT max(starts_at) AS at FROM appointments)
SELECT count(*) > 0 AS has_appointments,
       coalesce(bool_and(a.tenant_id = current_setting('app.tenant_id')::uuid
                         AND c.tenant_id = a.tenant_id), false) AS all_in_tenant
FROM appointments AS a
JOIN customers AS c ON c.id = a.customer_id
WHERE a.starts_at >= (SELECT at FROM window_end) - interval '30 days'
  AND a.starts_at < (SELECT at FROM window_end) + interval '1 day';
