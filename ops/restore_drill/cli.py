"""`python -m ops.restore_drill` (make restore-drill ARGS="..."): the one-command quarterly drill.

Exit status: 0 when the restore succeeded and every check passed, 1 when the drill failed (the
log row says why) or could not be logged, 2 for invalid options or missing Google credentials
(nothing was touched). A row is appended to the log whenever a drill ran.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import google.auth.exceptions
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.restore_drill.checks import CHECKS_DIR, CheckDefinitionError
from ops.restore_drill.cloudsql import (
    BackupStore,
    BackupVaultCatalog,
    CloudSqlAdmin,
    NewInstanceSettings,
    PollSettings,
    instance_resource,
)
from ops.restore_drill.connect import DatabaseConnector, GoogleTokenSource, IamConnector
from ops.restore_drill.drill import (
    NEWEST_WRITE_SQL,
    DrillEnvironment,
    ExportPlan,
    LocalFilePlan,
    PitrPlan,
    VaultPlan,
    run_export_drill,
    run_local_file_drill,
    run_pitr_drill,
    run_vault_drill,
    utc_now,
)
from ops.restore_drill.exports import stamp_of
from ops.restore_drill.health import HealthUrlError, HealthWait, validate_health_url
from ops.restore_drill.pgtools import PgTools
from ops.restore_drill.progress import RichReporter
from ops.restore_drill.report import DrillReport
from ops.restore_drill.rest import (
    GcsBackupStore,
    RestBackupVaultCatalog,
    RestCloudSqlAdmin,
    authorized_session,
)
from ops.restore_drill.restore_log import RestoreLogError, append_row
from ops.restore_drill.suite_setup import (
    DESCRIPTION_PATH,
    SuiteSetupError,
    load_suite,
    remember_passed_drill,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOG = REPO_ROOT / "BACKUP_RESTORE_LOG.md"
MAX_EXPORT_INTERVAL_HOURS = 24 * 31
ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.@-]{0,62}$")
MAX_INSTANCE_NAME = 98
USAGE_ERROR = 2

app = typer.Typer(
    add_completion=False,
    help="Quarterly restore drill: restore, run the SQL checks, record RPO/RTO in the log.",
)


class Method(StrEnum):
    export = "export"
    pitr = "pitr"
    local_file = "local-file"
    vault = "vault"


class IpType(StrEnum):
    private = "private"
    public = "public"

    @property
    def api_type(self) -> str:
        """The Cloud SQL IpMapping type: PRIVATE, or PRIMARY for the public address."""
        return "PRIVATE" if self is IpType.private else "PRIMARY"


class Edition(StrEnum):
    enterprise = "enterprise"
    enterprise_plus = "enterprise-plus"

    @property
    def api_value(self) -> str:
        """The Cloud SQL Settings.edition value: ENTERPRISE or ENTERPRISE_PLUS."""
        return self.value.upper().replace("-", "_")


@dataclass(frozen=True)
class DrillOptions:
    """Every command-line option, as given."""

    method: Method
    project: str | None
    instance: str | None
    database: str
    bucket: str | None
    staging_project: str | None
    staging_instance: str | None
    import_user: str | None
    app_roles: str
    export_interval_hours: float
    point_in_time: str | None
    clone_instance: str | None
    db_user: str | None
    ip_type: IpType
    db_host: str | None
    db_sslmode: str
    dump: Path | None
    target_dsn: str | None
    restore_point: str | None
    create_missing_roles: bool
    pg_bin_dir: Path | None
    restore_database: str | None
    keep_restored: bool
    vault: VaultOptions | None = None  # --method vault only


@dataclass(frozen=True)
class VaultOptions:
    """The vault method's options, as given."""

    vault: str | None
    backup: str | None
    restore_instance: str | None
    network: str | None
    tier: str | None
    region: str | None
    edition: Edition | None


@dataclass(frozen=True)
class CloudServices:
    """Admin API clients for the production (source) and staging (target) projects."""

    source_admin: CloudSqlAdmin
    staging_admin: CloudSqlAdmin | None
    store: BackupStore
    vault_catalog: BackupVaultCatalog | None = None  # Backup and DR (vault method)


def make_cloud_services(project: str, staging_project: str | None) -> CloudServices:
    """The real Google clients (tests replace this function with fakes)."""
    session = authorized_session()
    staging = RestCloudSqlAdmin(session, staging_project) if staging_project else None
    return CloudServices(
        RestCloudSqlAdmin(session, project),
        staging,
        GcsBackupStore(session),
        RestBackupVaultCatalog(session),
    )


def make_connector(
    principal_email: str, ip_type: IpType, host: str | None, sslmode: str
) -> DatabaseConnector:
    """IAM database authentication with Application Default Credentials."""
    return IamConnector(
        GoogleTokenSource(), principal_email, ip_type.api_type, host, sslmode=sslmode
    )


def parse_moment(value: str, option: str) -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def require(values: Mapping[str, object], method: Method) -> None:
    missing = [option for option, value in values.items() if value in (None, "")]
    if missing:
        raise typer.BadParameter(f"--method {method.value} needs {', '.join(missing)}")


def clone_name(instance: str, now: datetime) -> str:
    """A fresh name per drill (Cloud SQL keeps deleted names reserved for up to a week)."""
    return f"{instance}-drill-{now:%Y%m%d%H%M}"[:MAX_INSTANCE_NAME].lower()


def print_summary(console: Console, report: DrillReport, log_file: Path | None) -> None:
    table = Table(show_header=False, box=None)
    for label, value in report.log_cells(operator="").items():
        if label != "Operator":
            table.add_row(label, escape(value))
    console.print(table)
    for failure in report.failures:
        console.print(f"[red]failure:[/red] {escape(failure)}", highlight=False)
    verdict = "[green]PASSED" if report.passed else "[red]FAILED"
    console.print(f"{verdict}[/]" + (f" - recorded in {log_file}" if log_file else ""))


def local_file_plan(options: DrillOptions, now: datetime) -> LocalFilePlan:
    require({"--dump": options.dump, "--target-dsn": options.target_dsn}, options.method)
    assert options.dump is not None and options.target_dsn is not None
    stamp: datetime | None
    if options.restore_point:
        stamp = parse_moment(options.restore_point, "--restore-point")
    else:
        stamp = stamp_of(options.dump.name)
    if stamp is None:
        raise typer.BadParameter(
            "the file name carries no YYYYMMDDTHHMMSSZ timestamp; pass --restore-point",
            param_hint="--restore-point",
        )
    return LocalFilePlan(
        dump=options.dump,
        server_conninfo=options.target_dsn,
        database=options.restore_database or f"drill_{now:%Y%m%dt%H%M%S}",
        restore_point=stamp,
        create_missing_roles=options.create_missing_roles,
        keep_restored=options.keep_restored,
    )


def require_cloud(options: DrillOptions) -> tuple[str, str, str]:
    """project, instance and database user, which both Google-side methods need."""
    given = {
        "--project": options.project,
        "--instance": options.instance,
        "--db-user": options.db_user,
    }
    require(given, options.method)
    assert options.project and options.instance and options.db_user
    return options.project, options.instance, options.db_user


def parse_roles(value: str) -> tuple[str, ...]:
    roles = tuple(role.strip() for role in value.split(",") if role.strip())
    if any(not ROLE_NAME.fullmatch(role) for role in roles):
        raise typer.BadParameter(
            f"{value!r}: allowed: comma-separated PostgreSQL role names, owner role first "
            "(e.g. app_owner,app_user), or '' to skip preparing the import target",
            param_hint="--app-roles",
        )
    return roles


def export_plan(options: DrillOptions, now: datetime) -> ExportPlan:
    _project, instance, _user = require_cloud(options)
    require(
        {
            "--bucket": options.bucket,
            "--staging-project": options.staging_project,
            "--staging-instance": options.staging_instance,
        },
        options.method,
    )
    assert options.bucket is not None and options.staging_instance is not None
    if not 0 < options.export_interval_hours <= MAX_EXPORT_INTERVAL_HOURS:
        raise typer.BadParameter(
            f"{options.export_interval_hours}: allowed: more than 0 and at most "
            f"{MAX_EXPORT_INTERVAL_HOURS} hours",
            param_hint="--export-interval-hours",
        )
    return ExportPlan(
        bucket=options.bucket,
        source_instance=instance,
        database=options.database,
        staging_instance=options.staging_instance,
        restore_database=options.restore_database or f"{options.database}_drill_{now:%Y%m%d%H%M}",
        import_user=options.import_user,
        app_roles=parse_roles(options.app_roles),
        export_interval=timedelta(hours=options.export_interval_hours),
        keep_restored=options.keep_restored,
    )


def pitr_plan(options: DrillOptions, now: datetime) -> PitrPlan:
    _project, instance, _user = require_cloud(options)
    point_in_time = None
    if options.point_in_time:
        point_in_time = parse_moment(options.point_in_time, "--point-in-time")
    return PitrPlan(
        source_instance=instance,
        clone_instance=options.clone_instance or clone_name(instance, now),
        point_in_time=point_in_time,
        database=options.database,
        keep_restored=options.keep_restored,
    )


VAULT_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/backupVaults/[^/]+$")
BACKUP_NAME_TAIL = re.compile(r"^/dataSources/[^/]+/backups/[^/]+$")
NETWORK_NAME = re.compile(r"^projects/[^/]+/global/networks/[^/]+$")
INSTANCE_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
TIER_NAME = re.compile(r"^db-[a-z0-9-]+$")
REGION_NAME = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def checked(value: str | None, pattern: re.Pattern[str], option: str, allowed: str) -> None:
    if value is not None and not pattern.fullmatch(value):
        raise typer.BadParameter(f"{value!r}: allowed: {allowed}", param_hint=option)


def vault_plan(options: DrillOptions, now: datetime) -> VaultPlan:
    project, instance, _user = require_cloud(options)
    given = options.vault or VaultOptions(None, None, None, None, None, None, None)
    require(
        {
            "--vault": given.vault,
            "--staging-project": options.staging_project,
            "--network": given.network,
        },
        options.method,
    )
    assert given.vault is not None and given.network is not None
    checked(given.vault, VAULT_NAME, "--vault", "projects/PROJECT/locations/REGION/backupVaults/ID")
    if given.backup is not None and not BACKUP_NAME_TAIL.fullmatch(
        given.backup.removeprefix(given.vault)
    ):
        raise typer.BadParameter(
            f"{given.backup!r}: allowed: a backup of --vault, "
            f"{given.vault}/dataSources/DATA_SOURCE/backups/BACKUP",
            param_hint="--vault-backup",
        )
    checked(given.network, NETWORK_NAME, "--network", "projects/PROJECT/global/networks/NETWORK")
    checked(given.tier, TIER_NAME, "--tier", "a Cloud SQL tier such as db-custom-2-7680")
    checked(given.region, REGION_NAME, "--region", "a region such as europe-west1")
    restore_instance = given.restore_instance or clone_name(instance, now)
    rule = f"lowercase letters, digits and hyphens, starting with a letter, at most {MAX_INSTANCE_NAME}"
    checked(restore_instance, INSTANCE_NAME, "--restore-instance", rule)
    if len(restore_instance) > MAX_INSTANCE_NAME or restore_instance == instance:
        raise typer.BadParameter(
            f"{restore_instance!r}: allowed: {rule} characters, not the production instance's name",
            param_hint="--restore-instance",
        )
    settings = NewInstanceSettings(
        private_network=given.network,
        tier=given.tier,
        region=given.region,
        edition=given.edition.api_value if given.edition else None,
    )
    return VaultPlan(
        vault=given.vault,
        source_instance=instance_resource(project, instance),
        restore_instance=restore_instance,
        settings=settings,
        database=options.database,
        backup=given.backup,
        keep_restored=options.keep_restored,
    )


Plan = LocalFilePlan | ExportPlan | PitrPlan | VaultPlan


def make_plan(options: DrillOptions, now: datetime) -> Plan:
    """Validate the options for the chosen method (before anything is touched)."""
    if options.method is Method.local_file:
        return local_file_plan(options, now)
    if options.method is Method.export:
        return export_plan(options, now)
    if options.method is Method.vault:
        return vault_plan(options, now)
    return pitr_plan(options, now)


@dataclass(frozen=True)
class GoogleSide:
    services: CloudServices
    connector: DatabaseConnector


def connect_google(options: DrillOptions) -> GoogleSide | None:
    """The Google clients a cloud drill needs; None for local-file. Exits 2 without credentials."""
    if options.method is Method.local_file:
        return None
    project, _instance, db_user = require_cloud(options)
    try:
        connector = make_connector(db_user, options.ip_type, options.db_host, options.db_sslmode)
        return GoogleSide(make_cloud_services(project, options.staging_project), connector)
    except google.auth.exceptions.DefaultCredentialsError as error:
        typer.echo(
            f"No Google credentials ({error}). Run `gcloud auth application-default login` "
            "(with --impersonate-service-account for the drill identity) and try again.",
            err=True,
        )
        raise typer.Exit(USAGE_ERROR) from error


def execute(
    plan: Plan,
    cloud: GoogleSide | None,
    options: DrillOptions,
    env: DrillEnvironment,
    poll: PollSettings,
) -> DrillReport:
    if isinstance(plan, LocalFilePlan):
        return run_local_file_drill(plan, env, PgTools.from_environment(options.pg_bin_dir))
    assert cloud is not None
    services, connector = cloud.services, cloud.connector
    if isinstance(plan, ExportPlan):
        assert services.staging_admin is not None
        store = services.store
        return run_export_drill(plan, env, services.staging_admin, store, connector, poll)
    if isinstance(plan, VaultPlan):
        assert services.staging_admin is not None and services.vault_catalog is not None
        admin, catalog = services.staging_admin, services.vault_catalog
        return run_vault_drill(plan, env, admin, catalog, connector, poll)
    return run_pitr_drill(plan, env, services.source_admin, connector, poll)


def health_wait(url: str | None, timeout_minutes: float) -> HealthWait | None:
    if url is None:
        return None
    try:
        return HealthWait(validate_health_url(url), timeout_seconds=timeout_minutes * 60)
    except HealthUrlError as error:
        raise typer.BadParameter(str(error), param_hint="--health-url") from error


@app.command()
def main(
    method: Annotated[Method, typer.Option(help="How to restore.")],
    project: Annotated[
        str | None,
        typer.Option(
            envvar="RESTORE_DRILL_PROJECT",
            help="Production project: the source instance (and, for export, the backup bucket).",
        ),
    ] = None,
    instance: Annotated[
        str | None, typer.Option(help="Production Cloud SQL instance (source).")
    ] = None,
    database: Annotated[str, typer.Option(help="Database to restore and check.")] = "app",
    bucket: Annotated[str | None, typer.Option(help="export: Backup bucket name.")] = None,
    staging_project: Annotated[
        str | None,
        typer.Option(help="export/vault: Project of the staging instance (the target)."),
    ] = None,
    staging_instance: Annotated[
        str | None, typer.Option(help="export: Staging instance to import into.")
    ] = None,
    import_user: Annotated[
        str | None,
        typer.Option(help="export: PostgreSQL user running the import (default: postgres)."),
    ] = None,
    app_roles: Annotated[
        str,
        typer.Option(
            help="export: Roles the dump uses, owner first; the drill prepares and checks the "
            "import target for them ('' to skip)."
        ),
    ] = "app_owner,app_user",
    export_interval_hours: Annotated[
        float, typer.Option(help="export: Hours between scheduled exports (worst-case RPO).")
    ] = 24.0,
    point_in_time: Annotated[
        str | None,
        typer.Option(help="pitr: ISO 8601 time to clone to (default: latest recovery time)."),
    ] = None,
    clone_instance: Annotated[
        str | None,
        typer.Option(help="pitr: Temporary instance name (default: INSTANCE-drill-TIME)."),
    ] = None,
    vault: Annotated[
        str | None,
        typer.Option(help="vault: Backup vault, projects/P/locations/REGION/backupVaults/ID."),
    ] = None,
    vault_backup: Annotated[
        str | None,
        typer.Option(help="vault: Full name of the backup to restore (default: the newest)."),
    ] = None,
    restore_instance: Annotated[
        str | None,
        typer.Option(help="vault: New temporary instance name (default: INSTANCE-drill-TIME)."),
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(help="vault: Its private network, projects/P/global/networks/N."),
    ] = None,
    tier: Annotated[
        str | None, typer.Option(help="vault: Its tier (default: the backed-up instance's).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="vault: Its region (default: the backup's).")
    ] = None,
    edition: Annotated[
        Edition | None, typer.Option(help="vault: Its edition (default: the backup's).")
    ] = None,
    db_user: Annotated[
        str | None,
        typer.Option(
            envvar="RESTORE_DRILL_DB_USER",
            help="export/pitr/vault: IAM principal email used for IAM database authentication.",
        ),
    ] = None,
    ip_type: Annotated[IpType, typer.Option(help="export/pitr: Instance address to use.")] = (
        IpType.private
    ),
    db_host: Annotated[
        str | None, typer.Option(help="export/pitr: Connect here instead (e.g. Auth Proxy).")
    ] = None,
    db_sslmode: Annotated[str, typer.Option(help="export/pitr: libpq sslmode.")] = "require",
    dump: Annotated[Path | None, typer.Option(help="local-file: The .sql.gz export.")] = None,
    target_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="RESTORE_DRILL_TARGET_DSN",
            help="local-file: Connection string of the target server (prefer the env var).",
        ),
    ] = None,
    restore_point: Annotated[
        str | None, typer.Option(help="local-file: Export time if the file name lacks it.")
    ] = None,
    create_missing_roles: Annotated[
        bool, typer.Option(help="local-file: Create application roles the dump needs.")
    ] = False,
    pg_bin_dir: Annotated[
        Path | None, typer.Option(help="local-file: Directory holding psql (default: PATH).")
    ] = None,
    restore_database: Annotated[
        str | None, typer.Option(help="export/local-file: Name of the new database.")
    ] = None,
    keep_restored: Annotated[
        bool, typer.Option(help="Keep the restored database/instance instead of deleting it.")
    ] = False,
    data_description: Annotated[
        Path, typer.Option(help="TOML description of the data the checks are generated from.")
    ] = DESCRIPTION_PATH,
    checks_dir: Annotated[
        Path, typer.Option(help="Directory of extra hand-written *.sql checks.")
    ] = CHECKS_DIR,
    newest_write_sql: Annotated[
        Path, typer.Option(help="Query returning the newest write (for RPO).")
    ] = NEWEST_WRITE_SQL,
    check_timeout: Annotated[float, typer.Option(help="Seconds allowed per check.")] = 60.0,
    health_url: Annotated[
        str | None,
        typer.Option(help="App health URL on the restored data: RTO ends when it answers 2xx."),
    ] = None,
    health_timeout_minutes: Annotated[
        float, typer.Option(help="How long to wait for --health-url.")
    ] = 15.0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between operation polls.")] = 10.0,
    timeout_minutes: Annotated[float, typer.Option(help="Limit per Cloud SQL operation.")] = 240.0,
    log_file: Annotated[Path, typer.Option(help="Restore log to append to.")] = DEFAULT_LOG,
    operator: Annotated[
        str | None, typer.Option(help="Who ran the drill (default: current user).")
    ] = None,
) -> None:
    """Restore a backup, verify it with the SQL checks, and log RPO/RTO."""
    options = DrillOptions(
        method,
        project,
        instance,
        database,
        bucket,
        staging_project,
        staging_instance,
        import_user,
        app_roles,
        export_interval_hours,
        point_in_time,
        clone_instance,
        db_user,
        ip_type,
        db_host,
        db_sslmode,
        dump,
        target_dsn,
        restore_point,
        create_missing_roles,
        pg_bin_dir,
        restore_database,
        keep_restored,
        VaultOptions(vault, vault_backup, restore_instance, network, tier, region, edition),
    )
    now = utc_now()
    plan = make_plan(options, now)
    try:
        checks = load_suite(data_description, checks_dir, log_file)
    except CheckDefinitionError as error:
        raise typer.BadParameter(str(error), param_hint="--checks-dir") from error
    except SuiteSetupError as error:
        raise typer.BadParameter(str(error), param_hint="--data-description") from error
    health = health_wait(health_url, health_timeout_minutes)
    poll = PollSettings(interval_seconds=poll_interval, timeout_seconds=timeout_minutes * 60)
    cloud = connect_google(options)
    console = Console()
    with RichReporter(console) as reporter:
        env = DrillEnvironment(
            reporter=reporter,
            checks=checks,
            newest_write_sql=newest_write_sql.read_text(encoding="utf-8"),
            check_timeout_seconds=check_timeout,
            health=health,
        )
        report = execute(plan, cloud, options, env, poll)
    who = operator or os.environ.get("USER") or getpass.getuser()
    try:
        append_row(log_file, report.log_cells(who))
        remember_passed_drill(checks, report, log_file)
    except (RestoreLogError, OSError) as error:
        print_summary(console, report, log_file=None)
        console.print(f"[red]could not record the drill in {log_file}:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error
    print_summary(console, report, log_file)
    raise typer.Exit(0 if report.passed else 1)
