"""The post-deploy smoke test: runs the export job of a deployed stack and checks its backups and alerts."""
