"""The logical export: cloudsql_export.py (the one-file script the Cloud Run job and operators run)
and manual.py (`make export STACK=...`, which feeds it a Pulumi stack's outputs). See README.md."""
