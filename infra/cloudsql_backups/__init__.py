"""Components of the cloudsql-backups Pulumi program: one module per concern, each a ComponentResource
with one typed args object. ``infra/__main__.py`` wires them together from validated config."""
