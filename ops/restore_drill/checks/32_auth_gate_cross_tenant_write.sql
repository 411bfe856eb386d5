-- check: auth_gate_cross_tenant_write
-- description: Acting for one tenant, the application role cannot write a row for another tenant.
-- expect-error: 42501
SELECT set_config('app.tenant_id', (SELECT id::text FROM tenants ORDER BY id LIMIT 1), true);
SELECT set_config('drill.other_tenant', (SELECT id::text FROM tenants ORDER BY id OFFSET 1 LIMIT 1), true);
SET LOCAL ROLE app_user;
-- Always rolled back by the drill, even if the policy were missing and the insert succeeded.
INSERT INTO customers (tenant_id, full_name, email, created_at)
VALUES (current_setting('drill.other_tenant')::uuid, 'Restore drill probe', 'probe@example.invalid', now());
