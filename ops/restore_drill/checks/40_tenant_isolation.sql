-- check: tenant_isolation
-- description: Scoped to one tenant, the application role sees its own rows and none of any other tenant's.
-- expect: [[0, true, 1]]
SELECT set_config('app.tenant_id', (SELECT id::text FROM tenants ORDER BY id LIMIT 1), true);
SET LOCAL ROLE app_user;
SELECT ((SELECT count(*) FROM customers WHERE tenant_id <> current_setting('app.tenant_id')::uuid)
      + (SELECT count(*) FROM appointments WHERE tenant_id <> current_setting('app.tenant_id')::uuid)
      + (SELECT count(*) FROM audit_events WHERE tenant_id <> current_setting('app.tenant_id')::uuid))::int
           AS other_tenant_rows,
       (SELECT count(*) FROM customers) > 0 AS sees_own_customers,
       (SELECT count(*) FROM tenants)::int AS visible_tenants;
