-- check: auth_gate_no_tenant
-- description: The application role sees no rows at all until a tenant is set (RLS fails closed).
-- expect: [[0]]
SET LOCAL ROLE app_user;
SELECT ((SELECT count(*) FROM customers)
      + (SELECT count(*) FROM appointments)
      + (SELECT count(*) FROM audit_events))::int;
