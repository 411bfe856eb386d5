"""Operational tools for Cloud SQL backups: the logical export job and the quarterly restore drill."""
