"""Cloud SQL instance rules: backups, point-in-time recovery, retention, deletion guards, network and
TLS exposure, high availability.

Properties are the provider's inputs in wire names (camelCase). Where an input is not set, the rule
judges Google's (or the provider's) documented default, and says so in its message.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from policy_kit import Config, Resource, Setting, required_true, resource_policy, string_list
from property_access import Node, describe, numeric
from pulumi_policy import ResourceValidationPolicy, Severity

INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
_INSTANCE_TYPES = frozenset({INSTANCE})

# Google's defaults when an input is not set (Cloud SQL Enterprise edition; Enterprise Plus keeps more,
# so judging the Enterprise figure never passes a value that is actually lower).
DEFAULT_RETAINED_BACKUPS = 7
DEFAULT_TRANSACTION_LOG_DAYS = 7
DEFAULT_SSL_MODE = "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
SAFE_SSL_MODES = ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")

_BACKUP = "settings.backupConfiguration"
_NETWORKS = "settings.ipConfiguration.authorizedNetworks"
# The EU locations the stacks use today: backups in the eu multi-region, instances in europe-west1.
BACKUP_GEOGRAPHY = ["eu", "europe-west1"]
DEFAULT_ACTIVATION_POLICY = "ALWAYS"  # what Cloud SQL creates an instance with when not set


def _primary_only(instance: Resource) -> str | None:
    """Read replicas take no backups of their own: their primary's backups are what is checked."""
    primary = instance.props.at("masterInstanceName").value
    if primary:
        return f"read replica of {primary}: backups are configured on the primary instance"
    return None


_backups_enabled = required_true(f"{_BACKUP}.enabled", "automated daily backups are off")


def _pitr_enabled(instance: Resource, config: Config) -> Iterator[str]:
    if not config["required"]:
        return
    version = instance.props.at("databaseVersion").value or ""
    # MySQL keeps point-in-time recovery in binary logs; PostgreSQL and SQL Server have a flag.
    key = "binaryLogEnabled" if str(version).startswith("MYSQL") else "pointInTimeRecoveryEnabled"
    enabled = instance.props.at(f"{_BACKUP}.{key}")
    if enabled.value is not True:
        yield (
            f"{enabled.path} = {describe(enabled.value)}: without point-in-time recovery a restore "
            "loses everything since the last daily backup; set it to true"
        )


def _retained_backups(instance: Resource, config: Config) -> Iterator[str]:
    settings = instance.props.at(f"{_BACKUP}.backupRetentionSettings")
    unit = settings.at("retentionUnit")
    if unit.value not in (None, "COUNT"):
        yield f"{unit.path} = {describe(unit.value)}: only COUNT is supported; set it to COUNT"
    retained = settings.at("retainedBackups")
    minimum = config["minimumRetainedBackups"]
    yield from _at_least(
        retained,
        DEFAULT_RETAINED_BACKUPS,
        minimum,
        f"keeps fewer than the required {minimum} automated backups (minimumRetainedBackups)",
    )


def _transaction_log_retention(instance: Resource, config: Config) -> Iterator[str]:
    days = instance.props.at(f"{_BACKUP}.transactionLogRetentionDays")
    minimum = config["minimumDays"]
    yield from _at_least(
        days,
        DEFAULT_TRANSACTION_LOG_DAYS,
        minimum,
        f"the point-in-time recovery window is shorter than the required {minimum} days "
        "(minimumDays)",
    )


def _at_least(node: Node, google_default: int, minimum: int, shortfall: str) -> Iterator[str]:
    """A violation when ``node`` (or Google's default, when it is not set) is below ``minimum``."""
    value = numeric(node.value, google_default)
    if value is None:
        yield f"{node.path} = {describe(node.value)}: not a number"
        return
    if value < minimum:
        source = "" if node.value is not None else " (Google's default when not set)"
        yield f"{node.path} = {describe(value)}{source}: {shortfall}; raise it to at least {minimum}"


def _pulumi_deletion_protection(instance: Resource, _: Config) -> Iterator[str]:
    guard = instance.props.at("deletionProtection")
    # The provider protects the instance unless deletionProtection is explicitly false.
    if guard.value is False:
        yield (
            "deletionProtection = false: Pulumi may delete the instance (e.g. on a replacement); "
            "set deletion_protection=True"
        )


_api_deletion_protection = required_true(
    "settings.deletionProtectionEnabled",
    "anyone with API, gcloud or console access can delete the instance (Google's default is false)",
)


def _no_open_networks(instance: Resource, _: Config) -> Iterator[str]:
    for network in instance.props.at("settings.ipConfiguration.authorizedNetworks").elements():
        cidr = network.at("value")
        if cidr.unknown:
            # Computed from another resource (an address Google allocates): never a /0 literal.
            # Analyze runs again with the value known before the instance is created or updated.
            continue
        yield from _open_network_problems(cidr.path, cidr.value)


def _open_network_problems(path: str, value: object) -> Iterator[str]:
    try:
        network = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        yield f"{path} = {describe(value)}: not a CIDR block, so what it opens cannot be judged"
        return
    if network.prefixlen == 0:
        yield (
            f"{path} = {describe(value)}: a /0 network lets every address on the internet "
            "reach the database; list specific CIDR blocks"
        )


def _known_networks(
    instance: Resource,
) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """The authorized networks whose value is known and a valid CIDR block, with their paths.

    Unknown values (computed addresses) and invalid ones are judged by
    cloudsql-instance-no-open-authorized-networks."""
    found = []
    for network in instance.props.at(_NETWORKS).elements():
        cidr = network.at("value")
        if cidr.unknown:
            continue
        try:
            found.append((cidr.path, ipaddress.ip_network(str(cidr.value), strict=False)))
        except ValueError:
            continue
    return found


def _narrow_networks(instance: Resource, config: Config) -> Iterator[str]:
    minimums = {4: config["minimumPrefixLengthIpv4"], 6: config["minimumPrefixLengthIpv6"]}
    for path, network in _known_networks(instance):
        minimum = minimums[network.version]
        if network.prefixlen < minimum:
            yield (
                f"{path} = '{network}': a /{network.prefixlen} opens "
                f"{network.num_addresses:,} addresses to the database, wider than /{minimum} "
                f"(minimumPrefixLengthIpv{network.version}); list narrower blocks"
            )


def _address_space(instance: Resource, config: Config) -> Iterator[str]:
    maximum = config["maximumIpv4Addresses"]
    ipv4 = [network for _, network in _known_networks(instance) if network.version == 4]
    # Overlapping blocks count once.
    total = sum(n.num_addresses for n in ipaddress.collapse_addresses(ipv4))
    if total > maximum:
        yield (
            f"{_NETWORKS}: together the authorized networks open {total:,} IPv4 addresses, more "
            f"than {maximum:,} (maximumIpv4Addresses); many small blocks are as open as one big one"
        )


def _psc_consumers(instance: Resource, config: Config) -> Iterator[str]:
    allowed = {instance.project(), *config["allowedConsumerProjects"]}
    psc_configs = instance.props.at("settings.ipConfiguration.pscConfigs").elements()
    for psc in psc_configs:
        for project in psc.at("allowedConsumerProjects").elements():
            if project.unknown or project.value in allowed:
                continue
            yield (
                f"{project.path} = {describe(project.value)}: any network of that project may "
                "connect to the instance over Private Service Connect; it is not the instance's "
                "project nor in allowedConsumerProjects"
            )
        for connection in psc.at("pscAutoConnections").elements():
            yield from _psc_connection_problems(connection, allowed)


def _psc_connection_problems(connection: Node, allowed: set[str | None]) -> Iterator[str]:
    network = connection.at("consumerNetwork")
    network_project = str(network.value or "").split("/")[1:2]
    if network.value and network_project and network_project[0] not in allowed:
        yield (
            f"{network.path} = {describe(network.value)}: a consumer network outside the instance's "
            "project and allowedConsumerProjects"
        )
    service = connection.at("consumerServiceProjectId")
    if service.value and service.value not in allowed:
        yield (
            f"{service.path} = {describe(service.value)}: a consumer project outside the instance's "
            "project and allowedConsumerProjects"
        )


def _always_running(instance: Resource, config: Config) -> Iterator[str]:
    policy = instance.props.at("settings.activationPolicy")
    effective = policy.value if policy.value is not None else DEFAULT_ACTIVATION_POLICY
    if effective not in config["allowedActivationPolicies"]:
        yield (
            f"{policy.path} = {describe(effective)}: a stopped instance takes no automated backups "
            "and no exports (its backup windows are logged as skipped); set it to ALWAYS"
        )


_retain_backups_on_delete = required_true(
    "settings.retainBackupsOnDelete",
    "deleting the instance would delete its automated backups with it",
)


def _final_backup_retention(instance: Resource, config: Config) -> Iterator[str]:
    final = instance.props.at("settings.finalBackupConfig")
    if final.at("enabled").value is not True:
        return  # cloudsql-instance-final-backup reports it.
    days = final.at("retentionDays")
    minimum = config["minimumDays"]
    value = numeric(days.value)
    if value is None:
        yield (
            f"{days.path} = {describe(days.value)}: the final backup's retention must be set "
            f"explicitly, at least {minimum} days (minimumDays)"
        )
    elif value < minimum:
        yield (
            f"{days.path} = {describe(value)}: the final backup is kept fewer than {minimum} days "
            f"(minimumDays); raise it to at least {minimum}"
        )


def _backup_location(instance: Resource, config: Config) -> Iterator[str]:
    location = instance.props.at(f"{_BACKUP}.location")
    allowed = [str(entry).lower() for entry in config["allowedLocations"]]
    if location.value is None:
        yield (
            f"{location.path} is not set: Cloud SQL then stores backups in the multi-region "
            f"nearest the instance, which the gate cannot place; set one of {', '.join(allowed)} "
            "(allowedLocations)"
        )
    elif str(location.value).lower() not in allowed:
        yield (
            f"{location.path} = {describe(location.value)}: backups would be stored outside the "
            f"allowed geography ({', '.join(allowed)}, allowedLocations)"
        )


def _public_ip_restricted(instance: Resource, _: Config) -> Iterator[str]:
    ip = instance.props.at("settings.ipConfiguration")
    ipv4 = ip.at("ipv4Enabled")
    # Google assigns a public IPv4 address unless ipv4Enabled is explicitly false.
    if ipv4.value is False:
        return
    networks = ip.at("authorizedNetworks").elements()
    if not networks:
        source = "" if ipv4.value is not None else " (Google's default when not set)"
        yield (
            f"{ipv4.path} = true{source} with no authorized networks: a public IPv4 address must "
            "be limited to specific CIDR blocks; set ipv4Enabled to false or list authorizedNetworks"
        )


def _ssl_required(instance: Resource, config: Config) -> Iterator[str]:
    mode = instance.props.at("settings.ipConfiguration.sslMode")
    allowed = config["allowedSslModes"]
    effective = mode.value if mode.value is not None else DEFAULT_SSL_MODE
    if effective not in allowed:
        source = "" if mode.value is not None else " (Google's default when not set)"
        yield (
            f"{mode.path} = {describe(effective)}{source}: allows unencrypted connections; "
            f"allowed: {', '.join(allowed)}"
        )


_final_backup = required_true(
    "settings.finalBackupConfig.enabled",
    "deleting the instance would also delete every automated backup",
    "set it to true so Cloud SQL takes and keeps a final backup",
)


def _high_availability(instance: Resource, _: Config) -> Iterator[str]:
    availability = instance.props.at("settings.availabilityType")
    effective = availability.value if availability.value is not None else "ZONAL"
    if effective != "REGIONAL":
        source = "" if availability.value is not None else " (Google's default when not set)"
        yield (
            f"{availability.path} = {describe(effective)}{source}: a zone outage takes the "
            "database down; set it to REGIONAL"
        )


def _protected(instance: Resource, _: Config) -> Iterator[str]:
    if not instance.protect:
        yield (
            "resource option protect is off: a change that replaces or deletes the instance would "
            "go ahead; set protect=True in its ResourceOptions"
        )


def policies() -> list[ResourceValidationPolicy]:
    """The Cloud SQL instance rules, in the order the policy reference lists them."""
    return [
        resource_policy(
            name="cloudsql-instance-backups-enabled",
            description="Cloud SQL instances take automated daily backups.",
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_backups_enabled],
            severity=Severity.CRITICAL,
            remediation="Set settings.backup_configuration.enabled=True on the instance.",
        ),
        resource_policy(
            name="cloudsql-instance-pitr-enabled",
            description=(
                "Cloud SQL instances keep transaction logs for point-in-time recovery, so a restore "
                "can reach any moment of the retention window (RPO of minutes, not a day)."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_pitr_enabled],
            settings=[
                Setting(
                    "required",
                    "boolean",
                    True,
                    "Whether point-in-time recovery must be on.",
                ),
            ],
            severity=Severity.CRITICAL,
            remediation=(
                "Set settings.backup_configuration.point_in_time_recovery_enabled=True "
                "(binary_log_enabled=True for MySQL)."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-retained-backups",
            description=(
                "Cloud SQL instances keep at least the required number of automated backups "
                "(Google's recommender flags production instances below 21)."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_retained_backups],
            settings=[
                Setting(
                    "minimumRetainedBackups",
                    "integer",
                    21,
                    "Fewest automated backups an instance may keep.",
                    {"minimum": 1, "maximum": 365},
                ),
            ],
            remediation=(
                "Set settings.backup_configuration.backup_retention_settings.retained_backups "
                "(retention_unit COUNT) to at least the minimum."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-transaction-log-retention",
            description=(
                "Cloud SQL instances keep transaction logs for at least the required number of days, "
                "which is how far back point-in-time recovery can go."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_transaction_log_retention],
            settings=[
                Setting(
                    "minimumDays",
                    "integer",
                    7,
                    "Fewest days of transaction logs an instance may keep.",
                    {"minimum": 1, "maximum": 35},
                ),
            ],
            remediation=(
                "Set settings.backup_configuration.transaction_log_retention_days to at least the "
                "minimum (1-7 on ENTERPRISE, 1-35 on ENTERPRISE_PLUS)."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-deletion-protection",
            description=(
                "Cloud SQL instances are guarded against deletion on both sides: Pulumi's "
                "deletionProtection input and Google's settings.deletionProtectionEnabled."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_pulumi_deletion_protection, _api_deletion_protection],
            severity=Severity.CRITICAL,
            remediation=(
                "Set deletion_protection=True and settings.deletion_protection_enabled=True on the "
                "instance."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-no-open-authorized-networks",
            description=(
                "No Cloud SQL authorized network is a /0 range (0.0.0.0/0, ::/0, or any address "
                "with a /0 prefix): that would let the whole internet reach the database."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_no_open_networks],
            severity=Severity.CRITICAL,
            remediation="List specific CIDR blocks in settings.ip_configuration.authorized_networks.",
        ),
        resource_policy(
            name="cloudsql-instance-public-ip-restricted",
            description=(
                "A Cloud SQL instance has a public IPv4 address only together with authorized "
                "networks that limit who may connect to it."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_public_ip_restricted],
            remediation=(
                "Set settings.ip_configuration.ipv4_enabled=False (private IP), or list specific "
                "CIDR blocks in authorized_networks."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-ssl-required",
            description=(
                "Cloud SQL instances refuse unencrypted connections (settings.ipConfiguration."
                "sslMode; when it is not set, Google allows unencrypted ones)."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_ssl_required],
            settings=[
                Setting(
                    "allowedSslModes",
                    "array",
                    list(SAFE_SSL_MODES),
                    "SSL modes an instance may use.",
                    {
                        "items": {"type": "string", "enum": list(SAFE_SSL_MODES)},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ),
            ],
            remediation=(
                "Set settings.ip_configuration.ssl_mode to ENCRYPTED_ONLY or "
                "TRUSTED_CLIENT_CERTIFICATE_REQUIRED."
            ),
        ),
        resource_policy(
            name="cloudsql-instance-final-backup",
            description=(
                "Cloud SQL instances take a final backup when they are deleted, so deleting an "
                "instance never deletes the last copy of its data."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_final_backup],
            severity=Severity.CRITICAL,
            remediation="Set settings.final_backup_config.enabled=True (with retention_days).",
        ),
        resource_policy(
            name="cloudsql-instance-final-backup-retention",
            description=(
                "The final backup Cloud SQL takes when an instance is deleted is kept at least "
                "minimumDays (settings.finalBackupConfig.retentionDays), not merely enabled."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_final_backup_retention],
            settings=[
                Setting(
                    "minimumDays",
                    "integer",
                    30,
                    "Fewest days the final backup must be kept (Google allows 1-365).",
                    {"minimum": 1, "maximum": 365},
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Set settings.final_backup_config.retention_days to at least the minimum.",
        ),
        resource_policy(
            name="cloudsql-instance-retain-backups-on-delete",
            description=(
                "Cloud SQL instances keep their automated backups after the instance is deleted "
                "(settings.retainBackupsOnDelete)."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_retain_backups_on_delete],
            severity=Severity.CRITICAL,
            remediation="Set settings.retain_backups_on_delete=True.",
        ),
        resource_policy(
            name="cloudsql-instance-always-running",
            description=(
                "Cloud SQL instances stay running (settings.activationPolicy ALWAYS; Cloud SQL's "
                "default when not set): a stopped instance takes no backups while every backup "
                "setting still reads compliant."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_always_running],
            settings=[
                Setting(
                    "allowedActivationPolicies",
                    "array",
                    [DEFAULT_ACTIVATION_POLICY],
                    "Activation policies an instance may have.",
                    {
                        "items": {"type": "string", "enum": ["ALWAYS", "NEVER", "ON_DEMAND"]},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Set settings.activation_policy='ALWAYS' (or leave it unset).",
        ),
        resource_policy(
            name="cloudsql-instance-backup-location",
            description=(
                "Automated backups of Cloud SQL instances are stored in an allowed location "
                "(settings.backupConfiguration.location, set explicitly), so backups stay inside "
                "the configured geography."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_backup_location],
            settings=[
                string_list(
                    "allowedLocations",
                    list(BACKUP_GEOGRAPHY),
                    "Locations (multi-regions or regions, any case) backups may be stored in.",
                    at_least_one=True,
                ),
            ],
            remediation="Set settings.backup_configuration.location to an allowed location.",
        ),
        resource_policy(
            name="cloudsql-instance-authorized-network-prefix",
            description=(
                "Every Cloud SQL authorized network is at least as narrow as the minimum prefix "
                "length (a /8 or two /1 halves are as open as 0.0.0.0/0 in practice)."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_narrow_networks],
            settings=[
                Setting(
                    "minimumPrefixLengthIpv4",
                    "integer",
                    24,
                    "Shortest IPv4 prefix an authorized network may have (24: at most 256 addresses).",
                    {"minimum": 1, "maximum": 32},
                ),
                Setting(
                    "minimumPrefixLengthIpv6",
                    "integer",
                    64,
                    "Shortest IPv6 prefix an authorized network may have.",
                    {"minimum": 1, "maximum": 128},
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="List narrower CIDR blocks in settings.ip_configuration.authorized_networks.",
        ),
        resource_policy(
            name="cloudsql-instance-authorized-address-space",
            description=(
                "All Cloud SQL authorized networks of an instance together open at most "
                "maximumIpv4Addresses IPv4 addresses (overlaps counted once)."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_address_space],
            settings=[
                Setting(
                    "maximumIpv4Addresses",
                    "integer",
                    4096,
                    "Most IPv4 addresses the authorized networks may open together.",
                    {"minimum": 1, "maximum": 16777216},
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Remove or narrow authorized networks until the total is under the cap.",
        ),
        resource_policy(
            name="cloudsql-instance-psc-allowed-consumers",
            description=(
                "Private Service Connect lets only the instance's own project and "
                "allowedConsumerProjects connect (pscConfigs allowedConsumerProjects and "
                "pscAutoConnections)."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_psc_consumers],
            settings=[
                string_list(
                    "allowedConsumerProjects",
                    [],
                    "Projects (IDs or numbers) besides the instance's own that may connect over PSC.",
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Remove the outside project, or add it to allowedConsumerProjects with a reason.",
        ),
        resource_policy(
            name="cloudsql-instance-high-availability",
            description=(
                "Cloud SQL instances are highly available (availabilityType REGIONAL): a standby in "
                "another zone takes over when the primary's zone fails."
            ),
            resource_types=_INSTANCE_TYPES,
            scope=_primary_only,
            checks=[_high_availability],
            remediation="Set settings.availability_type='REGIONAL'.",
        ),
        resource_policy(
            name="cloudsql-instance-protected",
            description=(
                "Cloud SQL instances carry Pulumi's protect resource option, so a change that would "
                "delete or replace one fails at preview instead of destroying the database."
            ),
            resource_types=_INSTANCE_TYPES,
            checks=[_protected],
            severity=Severity.CRITICAL,
            remediation="Pass opts=pulumi.ResourceOptions(protect=True) to the instance.",
        ),
    ]
