-- check: auth_gate_security_events
-- description: The application role cannot read security events (outside its grants).
-- expect-error: 42501
SELECT set_config('app.tenant_id', (SELECT id::text FROM tenants ORDER BY id LIMIT 1), true);
SET LOCAL ROLE app_user;
SELECT count(*) FROM security_events;
