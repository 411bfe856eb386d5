"""`python -m ops.restore_drill`: run the restore drill CLI."""

from ops.restore_drill.cli import app

app(prog_name="restore-drill")
