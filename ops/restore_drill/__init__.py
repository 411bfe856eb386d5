"""The quarterly restore drill: restore a Cloud SQL backup, verify it with SQL checks, log RPO/RTO."""
