"""Who can read or wipe the backups: stack rules over the grants on backup buckets and on the backup
identities (the service accounts the export job and its scheduler run as), their keys, the export
identity's own roles, and Storage Transfer jobs that write into a backup bucket.

Backup buckets are the buckets labelled purpose=sql-backups; backup identities are found from what
the stack wires together (the export job's and the scheduler's service accounts, by the property
dependencies the engine sends, or by email once known), never from resource names.

A principal is inside the organisation when it is a user, group or domain of ``allowedDomains``;
a service account of the grant's own project or of ``allowedProjects``; a Google service agent of a
service in ``allowedServiceAgentDomains`` (and, when ``allowedProjectNumbers`` is set, of one of
those projects); or, while unknown in a preview, an output of a service account, instance,
workload identity pool or backup vault that the stack itself creates in such a project.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from alerting import ORGANISATION_DOMAINS, in_domains
from cloudsql import INSTANCE
from export import RUN_JOB, SCHEDULER_JOB
from iam import grants, is_iam_grant
from policy_kit import (
    Config,
    Finding,
    Resource,
    Setting,
    cannot_verify,
    per_analysis,
    stack_policy,
    string_list,
)
from property_access import Node, ValueUnknown, describe
from pulumi_policy import StackValidationPolicy
from storage import BUCKET, is_backup_bucket

ACCOUNT: Final = "gcp:serviceaccount/account:Account"
SA_KEY: Final = "gcp:serviceaccount/key:Key"
HMAC_KEY: Final = "gcp:storage/hmacKey:HmacKey"
TRANSFER_JOB: Final = "gcp:storage/transferJob:TransferJob"
WIF_POOL: Final = "gcp:iam/workloadIdentityPool:WorkloadIdentityPool"
# A backup vault's service account (its `serviceAccount` output) is a Google-managed identity that
# Backup and DR creates with the vault (https://cloud.google.com/backup-disaster-recovery/docs/cloud-console/backup-vault/create-manage-backup-vault).
BACKUP_VAULT: Final = "gcp:backupdisasterrecovery/backupVault:BackupVault"
CUSTOM_ROLES: Final = frozenset(
    {"gcp:projects/iAMCustomRole:IAMCustomRole", "gcp:organizations/iAMCustomRole:IAMCustomRole"}
)
_INDEXED: Final = frozenset(
    {
        INSTANCE,
        BUCKET,
        RUN_JOB,
        SCHEDULER_JOB,
        ACCOUNT,
        SA_KEY,
        HMAC_KEY,
        TRANSFER_JOB,
        WIF_POOL,
        BACKUP_VAULT,
    }
    | CUSTOM_ROLES
)
# Service agents of the services this stack relies on: Cloud SQL writes exports
# (https://cloud.google.com/sql/docs/postgres/import-export#serviceaccount), Storage Transfer copies
# into the bucket (https://cloud.google.com/storage-transfer/docs/sink-cloud-storage).
SERVICE_AGENT_DOMAINS: Final = [
    "gcp-sa-cloud-sql.iam.gserviceaccount.com",
    "storage-transfer-service.iam.gserviceaccount.com",
]
TRANSFER_AGENT_DOMAIN: Final = "storage-transfer-service.iam.gserviceaccount.com"
# What the transfer agent needs on a sink that it never overwrites in: list + create.
TRANSFER_AGENT_ROLES: Final = ["roles/storage.objectCreator", "roles/storage.legacyBucketReader"]
# Roles that let a principal act as a service account (mint tokens, attach it, or make keys).
IMPERSONATION_ROLES: Final = [
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityUser",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.serviceAccountOpenIdTokenCreator",
]
ADMIN_ROLES: Final = [
    "roles/owner",
    "roles/editor",
    "roles/cloudsql.admin",
    "roles/cloudsql.editor",
    "roles/storage.admin",
    "roles/storage.objectAdmin",
    "roles/storage.objectUser",
    "roles/storage.legacyBucketOwner",
    "roles/storage.legacyBucketWriter",
]
# Permissions that delete, stop, reconfigure or re-permission the database or the exports.
ADMIN_PERMISSIONS: Final = [
    "cloudsql.instances.delete",
    "cloudsql.instances.update",
    "cloudsql.instances.restoreBackup",
    "cloudsql.backupRuns.delete",
    "cloudsql.backups.delete",
    "cloudsql.instances.setIamPolicy",
    "storage.objects.delete",
    "storage.buckets.delete",
    "storage.buckets.update",
    "storage.buckets.setIamPolicy",
    "storage.objects.setIamPolicy",
]
_USER_SA: Final = re.compile(r"^[^@]+@(?P<project>[a-z][a-z0-9-]+)\.iam\.gserviceaccount\.com$")
_POOL_MEMBER: Final = re.compile(r"/workloadIdentityPools/(?P<pool>[^/]+)/")
_PROJECT_OF_GRANT: Final = re.compile(r"^gcp:(projects|folders|organizations)/")


@dataclass
class Access:
    """What the access rules need to know about the stack: indexed once per analysis and shared by
    every access rule; only ``config`` is each rule's own."""

    config: Config
    by_urn: dict[str, Resource] = field(default_factory=dict)
    backup_buckets: dict[str, str] = field(default_factory=dict)  # urn -> name
    backup_identities: dict[str, str] = field(default_factory=dict)  # account urn -> email
    export_identities: dict[str, str] = field(default_factory=dict)
    backup_emails: set[str] = field(default_factory=set)
    export_emails: set[str] = field(default_factory=set)
    pools: dict[str, str] = field(default_factory=dict)  # urn -> pool id
    grants: list[Resource] = field(default_factory=list)
    by_type: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    custom_roles: dict[str, Resource] = field(default_factory=dict)  # urn -> custom role

    def allowed_projects(self, resource: Resource) -> set[str]:
        return {p for p in (resource.project(), *self.config["allowedProjects"]) if p}


def account_email(account: Resource) -> str | None:
    account_id, project = account.props.at("accountId").value, account.project()
    return f"{account_id}@{project}.iam.gserviceaccount.com" if account_id and project else None


def index_access(resources: list[Resource], config: Config) -> Access:
    """The stack's access facts (shared) with the rule's own ``config``."""
    return replace(_stack_access(resources), config=config)


@per_analysis
def _stack_access(resources: list[Resource]) -> Access:
    access = Access(config={})
    for resource in resources:
        access.by_urn[resource.urn] = resource
        access.by_type[resource.type].append(resource)
        if is_iam_grant(resource.type):
            access.grants.append(resource)
    for bucket in access.by_type[BUCKET]:
        if is_backup_bucket(bucket):
            access.backup_buckets[bucket.urn] = str(bucket.props.at("name").value or bucket.name)
    for pool in access.by_type[WIF_POOL]:
        access.pools[pool.urn] = str(pool.props.at("workloadIdentityPoolId").value or "")
    for job in access.by_type[RUN_JOB]:
        _add_identity(access, job, "template", "template.template.serviceAccount", export=True)
    for scheduler in access.by_type[SCHEDULER_JOB]:
        _add_identity(access, scheduler, "httpTarget", "httpTarget.oauthToken.serviceAccountEmail")
    access.custom_roles = {role.urn: role for t in CUSTOM_ROLES for role in access.by_type[t]}
    return access


def _add_identity(
    access: Access, user: Resource, prop: str, email_path: str, *, export: bool = False
) -> None:
    for urn in user.depends_on(prop):
        account = access.by_urn.get(urn)
        if account is not None and account.type == ACCOUNT:
            address = account_email(account) or ""
            access.backup_identities[urn] = address
            if export:
                access.export_identities[urn] = address
    attached = user.props.at(email_path)
    if not attached.unknown and attached.value:
        access.backup_emails.add(str(attached.value))
        if export:
            access.export_emails.add(str(attached.value))
    access.backup_emails.update(e for e in access.backup_identities.values() if e)
    access.export_emails.update(e for e in access.export_identities.values() if e)


def _member_prop(grant: Resource) -> str:
    return {"Member": "member", "Binding": "members"}.get(
        re.sub(r".*(?:IAM|Iam)", "", grant.type), "policyData"
    )


def outside_reason(principal: str, grant: Resource, access: Access) -> str | None:
    """Why ``principal`` is outside the organisation, or None when it is inside."""
    kind, _, identity = principal.partition(":")
    judge = _JUDGES.get(kind)
    if judge is None:
        return "not a principal of the organisation (public, deleted or of an unknown kind)"
    return judge(kind, identity, principal, grant, access)


def _person_reason(kind: str, identity: str, _: str, __: Resource, access: Access) -> str | None:
    domains = list(access.config["allowedDomains"])
    domain = identity if kind == "domain" else identity.rpartition("@")[2]
    return None if in_domains(domain, domains) else f"a {kind} outside {', '.join(domains)}"


def _federated_reason(_: str, __: str, principal: str, ___: Resource, access: Access) -> str | None:
    pool = _POOL_MEMBER.search(principal)
    if pool and pool.group("pool") in access.pools.values():
        return None
    return "a federated identity that is not from a workload identity pool of the stack"


def _project_members_reason(
    _: str, identity: str, __: str, grant: Resource, access: Access
) -> str | None:
    if identity in access.allowed_projects(grant):
        return None
    return "the members of a project outside allowedProjects"


def _account_reason(_: str, identity: str, __: str, grant: Resource, access: Access) -> str | None:
    return _service_account_reason(identity, grant, access)


_JUDGES: Final[dict[str, Callable[[str, str, str, Resource, Access], str | None]]] = {
    "user": _person_reason,
    "group": _person_reason,
    "domain": _person_reason,
    "serviceAccount": _account_reason,
    "principal": _federated_reason,
    "principalSet": _federated_reason,
    "projectOwner": _project_members_reason,
    "projectEditor": _project_members_reason,
    "projectViewer": _project_members_reason,
}


def _service_account_reason(email: str, grant: Resource, access: Access) -> str | None:
    config = access.config
    local, _, domain = email.partition("@")
    user_managed = _USER_SA.match(email)
    if domain not in config["allowedServiceAgentDomains"]:
        if user_managed is None or domain.startswith("gcp-sa-"):
            return f"a service agent of {domain}, not in allowedServiceAgentDomains"
        if user_managed.group("project") in access.allowed_projects(grant):
            return None
        return "a service account of a project outside the grant's own and allowedProjects"
    numbers = config["allowedProjectNumbers"]
    # Service agents carry their project's number: service-N@, pN-xxxx@, project-N@.
    number = re.search(r"\d+", local)
    if numbers and (number is None or number.group(0) not in numbers):
        shown = number.group(0) if number else local
        return f"a service agent of project {shown}, not in allowedProjectNumbers"
    return None


def _unknown_member_reason(grant: Resource, member: Node, access: Access) -> Iterator[str | None]:
    """For a member the engine does not know yet: the verdict on what it was computed from."""
    sources = [
        access.by_urn[urn] for urn in grant.depends_on(_member_prop(grant)) if urn in access.by_urn
    ]
    creators = [s for s in sources if s.type in (ACCOUNT, INSTANCE, WIF_POOL, BACKUP_VAULT)]
    if not creators:
        raise ValueUnknown(f"{grant.name} {member.path}")
    for source in creators:
        project = source.project()
        if project in access.allowed_projects(grant):
            yield None
        else:
            yield f"computed from {source.name}, which lives in project {project}"


def member_verdicts(grant: Resource, access: Access) -> Iterator[tuple[str, str, str]]:
    """(member as written, role, why it is outside) for every outside member of the grant."""
    for found in grants(grant):
        role = "<unknown role>" if found.role.unknown else str(found.role.value)
        for member in found.members:
            if member.unknown:
                reasons: Iterable[str | None] = _unknown_member_reason(grant, member, access)
                shown = f"<output of {member.path}>"
            else:
                reasons = [outside_reason(str(member.value), grant, access)]
                shown = str(member.value)
            for reason in reasons:
                if reason is not None:
                    yield shown, role, reason


def _targets(grant: Resource, prop: str, urns: dict[str, str], names: set[str]) -> bool:
    """Whether the grant's ``prop`` (a bucket or service account) is one of the watched resources."""
    if any(urn in urns for urn in grant.depends_on(prop)):
        return True
    value = grant.props.at(prop)
    if value.unknown:
        if grant.depends_on(prop):
            return False  # computed from another resource of the stack, not a watched one
        raise ValueUnknown(f"{grant.name} {prop}")
    text = str(value.value or "")
    return any(text == name or text.endswith(f"/{name}") for name in names if name)


def on_backup_bucket(grant: Resource, access: Access) -> bool:
    return grant.type.startswith("gcp:storage/bucketIAM") and _targets(
        grant, "bucket", access.backup_buckets, set(access.backup_buckets.values())
    )


def on_backup_identity(grant: Resource, access: Access) -> bool:
    return grant.type.startswith("gcp:serviceaccount/") and _targets(
        grant, "serviceAccountId", access.backup_identities, access.backup_emails
    )


def _guarded(resource: Resource, check: Iterator[Finding]) -> Iterator[Finding]:
    """``check``'s findings; an unknown value ends only this resource's check, reported on it."""
    try:
        yield from check
    except ValueUnknown as missing:
        yield Finding(cannot_verify(missing.path), resource.urn)


GrantCheck = Callable[[Resource, Access], Iterator[Finding]]


def _per_grant(resources: list[Resource], config: Config, check: GrantCheck) -> Iterator[Finding]:
    """``check``'s findings for every IAM grant of the stack."""
    access = index_access(resources, config)
    for grant in access.grants:
        yield from _guarded(grant, check(grant, access))


def backup_bucket_principals(resources: list[Resource], config: Config) -> Iterator[Finding]:
    yield from _per_grant(resources, config, _bucket_grant_findings)


def _bucket_grant_findings(grant: Resource, access: Access) -> Iterator[Finding]:
    if not on_backup_bucket(grant, access):
        return
    for member, role, reason in member_verdicts(grant, access):
        yield Finding(
            f"{member} gets {role} on a backup bucket but is {reason}: outside principals must "
            "never read or delete the exports",
            grant.urn,
        )


def backup_identity_principals(resources: list[Resource], config: Config) -> Iterator[Finding]:
    yield from _per_grant(resources, config, _identity_grant_findings)


def _identity_grant_findings(grant: Resource, access: Access) -> Iterator[Finding]:
    on_identity = on_backup_identity(grant, access)
    project_wide = _PROJECT_OF_GRANT.match(grant.type) is not None
    for member, role, reason in member_verdicts(grant, access):
        if on_identity:
            yield Finding(
                f"{member} gets {role} on a backup identity (the export job's or scheduler's "
                f"service account) but is {reason}",
                grant.urn,
            )
        elif project_wide and role in access.config["impersonationRoles"]:
            yield Finding(
                f"{member} gets {role} on the whole project, which lets it act as every service "
                f"account there, the backup identities included, but is {reason}",
                grant.urn,
            )


def backup_identity_keys(resources: list[Resource], config: Config) -> Iterator[Finding]:
    access = index_access(resources, config)
    for key in access.by_type[SA_KEY]:
        yield from _guarded(
            key, _key_findings(key, access, "serviceAccountId", "a service-account")
        )
    for key in access.by_type[HMAC_KEY]:
        yield from _guarded(key, _key_findings(key, access, "serviceAccountEmail", "an HMAC"))


def _key_findings(key: Resource, access: Access, prop: str, kind: str) -> Iterator[Finding]:
    if _targets(key, prop, access.backup_identities, access.backup_emails):
        yield Finding(
            f"{kind} key for a backup identity: a long-lived secret that reads or wipes the "
            "backups from anywhere; the jobs use their attached service account, no key",
            key.urn,
        )


def export_identity_admin(resources: list[Resource], config: Config) -> Iterator[Finding]:
    yield from _per_grant(resources, config, _admin_findings)


def _to_export_identity(grant: Resource, member: Node, access: Access) -> bool:
    if any(urn in access.export_identities for urn in grant.depends_on(_member_prop(grant))):
        return True
    return not member.unknown and str(member.value).partition(":")[2] in access.export_emails


def _admin_findings(grant: Resource, access: Access) -> Iterator[Finding]:
    config = access.config
    for found in grants(grant):
        if not any(_to_export_identity(grant, m, access) for m in found.members):
            continue
        role = found.role
        if not role.unknown and role.value in config["forbiddenRoles"]:
            yield Finding(
                f"the export identity gets {role.value}: it only starts exports and reads them; "
                "an admin role lets a compromised job delete the database or the backups",
                grant.urn,
            )
        for urn in grant.depends_on("role"):
            if urn in access.custom_roles:
                yield from _custom_role_findings(grant, access.custom_roles[urn], config)


def _custom_role_findings(grant: Resource, role: Resource, config: Config) -> Iterator[Finding]:
    permissions = role.props.at("permissions").value or []
    forbidden = sorted(set(permissions) & set(config["forbiddenPermissions"]))
    if forbidden:
        yield Finding(
            f"the export identity's custom role {role.name} carries {', '.join(forbidden)}: "
            "the export needs to start exports and read the instance, never to delete or "
            "reconfigure (forbiddenPermissions)",
            grant.urn,
        )


def transfer_sink_safety(resources: list[Resource], config: Config) -> Iterator[Finding]:
    access = index_access(resources, config)
    for job in access.by_type[TRANSFER_JOB]:
        yield from _guarded(job, _transfer_findings(job, access, config))


def _transfer_findings(job: Resource, access: Access, config: Config) -> Iterator[Finding]:
    spec = job.props.at("transferSpec")
    options = spec.at("transferOptions")
    names = set(access.backup_buckets.values())
    sink = spec.at("gcsDataSink")
    if sink.value is not None and _names_backup_bucket(job, sink, access, names):
        if options.at("deleteObjectsUniqueInSink").value is True:
            yield Finding(
                "transferOptions.deleteObjectsUniqueInSink = true on a backup bucket: every export "
                "not in the source would be deleted by the next run",
                job.urn,
            )
        path = str(sink.at("path").value or "")
        protected = [p for p in config["protectedPrefixes"] if _overlaps(path, p)]
        if protected:
            yield Finding(
                f"gcsDataSink.path = {describe(path)}: writes over {', '.join(protected)} "
                "(protectedPrefixes) of a backup bucket; give the transfer its own folder",
                job.urn,
            )
    source = spec.at("gcsDataSource")
    moves = options.at("deleteObjectsFromSourceAfterTransfer").value is True
    if moves and source.value is not None and _names_backup_bucket(job, source, access, names):
        yield Finding(
            "transferOptions.deleteObjectsFromSourceAfterTransfer = true with a backup bucket "
            "as the source: every run would move the exports out of it",
            job.urn,
        )


def _names_backup_bucket(job: Resource, end: Node, access: Access, names: set[str]) -> bool:
    bucket = end.at("bucketName")
    if bucket.unknown:
        if any(urn in access.backup_buckets for urn in job.depends_on("transferSpec")):
            return True  # computed from a backup bucket of the stack: judge it as one
        raise ValueUnknown(f"{job.name} {bucket.path}")
    return str(bucket.value) in names


def _overlaps(path: str, prefix: str) -> bool:
    """Whether objects written under ``path`` can land on names under ``prefix`` or vice versa."""
    path = path.lstrip("/")
    return path.startswith(prefix) or prefix.startswith(path)


def transfer_agent_roles(resources: list[Resource], config: Config) -> Iterator[Finding]:
    yield from _per_grant(resources, config, _agent_findings)


def _agent_findings(grant: Resource, access: Access) -> Iterator[Finding]:
    config = access.config
    if not on_backup_bucket(grant, access):
        return
    for found in grants(grant):
        agents = [
            m
            for m in found.members
            if not m.unknown and str(m.value).endswith(TRANSFER_AGENT_DOMAIN)
        ]
        if not agents or (not found.role.unknown and found.role.value in config["allowedRoles"]):
            continue
        prefix = confined_prefix(found.condition)
        if prefix is None:
            yield Finding(
                f"the Storage Transfer agent gets {describe(found.role.raw)} on a backup bucket "
                f"with no IAM condition confining it to its own folder: more than it needs "
                f"({', '.join(config['allowedRoles'])}, allowedRoles); with delete rights a "
                "transfer can replace or remove exports",
                grant.urn,
            )
            continue
        protected = [p for p in config["protectedPrefixes"] if _overlaps(prefix, p)]
        if protected:
            yield Finding(
                f"the Storage Transfer agent gets {describe(found.role.raw)} on objects under "
                f"{describe(prefix)} of a backup bucket, which reaches {', '.join(protected)} "
                "(protectedPrefixes): it could replace or remove exports",
                grant.urn,
            )


# ``resource.name.startsWith("projects/_/buckets/BUCKET/objects/PREFIX")``: Cloud Storage's resource
# name of an object in IAM conditions (https://cloud.google.com/storage/docs/access-control/iam#conditions).
# Bucket-level permissions never match it, so such a grant only reaches objects under PREFIX.
_OBJECT_PREFIX_CONDITION: Final = re.compile(
    r'^\s*resource\.name\.startsWith\(\s*"projects/_/buckets/[^/"]+/objects/(?P<prefix>[^"]+)"\s*\)\s*$'
)


def confined_prefix(expression: Node) -> str | None:
    """The object prefix an IAM condition confines a grant to, or None when it confines nothing."""
    text = expression.value
    match = _OBJECT_PREFIX_CONDITION.match(text) if isinstance(text, str) else None
    return match.group("prefix") if match else None


def _protected_prefixes() -> Setting:
    return Setting(
        "protectedPrefixes",
        "array",
        ["cloudsql/"],
        "Object prefixes of a backup bucket that no transfer may write over.",
        {"items": {"type": "string", "minLength": 1}, "uniqueItems": True},
    )


def _principal_settings() -> list[Setting]:
    return [
        string_list(
            "allowedDomains",
            list(ORGANISATION_DOMAINS),
            "The organisation's domains (users, groups and domain: principals).",
            at_least_one=True,
        ),
        string_list(
            "allowedProjects",
            [],
            "Projects besides the grant's own whose service accounts count as inside.",
        ),
        string_list(
            "allowedServiceAgentDomains",
            list(SERVICE_AGENT_DOMAINS),
            "Google service agents (by email domain) that may hold roles on backups.",
        ),
        Setting(
            "allowedProjectNumbers",
            "array",
            [],
            "When set, service agents must belong to one of these project numbers (the pack "
            "cannot map a project ID to its number offline).",
            {"items": {"type": "string", "pattern": "^[0-9]+$"}, "uniqueItems": True},
        ),
    ]


def _types(type_token: str) -> bool:
    return type_token in _INDEXED or is_iam_grant(type_token)


def policies() -> list[StackValidationPolicy]:
    """The access rules, in the order the policy reference lists them."""
    return [
        stack_policy(
            name="iam-backup-bucket-principals-in-org",
            description=(
                "Every principal granted any role on a backup bucket belongs to the organisation "
                "(allowedDomains, the grant's project or allowedProjects, allowed Google service "
                "agents): outside users, groups, domains and service accounts are refused "
                "whatever the role."
            ),
            resource_types=_types,
            check=backup_bucket_principals,
            settings=_principal_settings(),
            remediation="Remove the grant, or grant the role to a principal of the organisation.",
        ),
        stack_policy(
            name="iam-backup-identity-principals-in-org",
            description=(
                "Every principal granted a role on a backup identity (the service account of the "
                "export job or of its scheduler), and every principal that gets an impersonation "
                "role (serviceAccountTokenCreator, serviceAccountUser, ...) on the whole project, "
                "belongs to the organisation."
            ),
            resource_types=_types,
            check=backup_identity_principals,
            settings=[
                *_principal_settings(),
                string_list(
                    "impersonationRoles",
                    list(IMPERSONATION_ROLES),
                    "Project-wide roles that let a principal act as any service account.",
                ),
            ],
            remediation="Remove the grant, or grant it to a principal of the organisation.",
        ),
        stack_policy(
            name="iam-backup-identity-no-keys",
            description=(
                "No service-account key and no HMAC key is created for a backup identity: the "
                "export job and its scheduler authenticate as their attached service accounts."
            ),
            resource_types=_types,
            check=backup_identity_keys,
            remediation="Delete the key resource; use the attached service account instead.",
        ),
        stack_policy(
            name="iam-export-identity-no-admin",
            description=(
                "The export job's identity never holds an admin role on Cloud SQL or Storage "
                "(forbiddenRoles), nor a custom role with a permission that deletes, stops or "
                "re-permissions the database or the exports (forbiddenPermissions)."
            ),
            resource_types=_types,
            check=export_identity_admin,
            settings=[
                string_list(
                    "forbiddenRoles",
                    list(ADMIN_ROLES),
                    "Roles the export identity may never hold.",
                    at_least_one=True,
                ),
                string_list(
                    "forbiddenPermissions",
                    list(ADMIN_PERMISSIONS),
                    "Permissions no custom role of the export identity may carry.",
                    at_least_one=True,
                ),
            ],
            remediation="Grant the custom exporter role (cloudsql.instances.export and .get) only.",
        ),
        stack_policy(
            name="storage-transfer-job-backup-sink-safe",
            description=(
                "A Storage Transfer job never deletes exports: with a backup bucket as its sink it "
                "does not delete objects unique in the sink and writes outside protectedPrefixes "
                "(not at the bucket root); with a backup bucket as its source it does not delete "
                "what it copied."
            ),
            resource_types=_types,
            check=transfer_sink_safety,
            settings=[
                _protected_prefixes(),
            ],
            remediation=(
                "Set delete_objects_unique_in_sink=False and a sink path of its own, e.g. "
                "'dashboard-assets/'."
            ),
        ),
        stack_policy(
            name="storage-bucket-transfer-agent-least-privilege",
            description=(
                "On a backup bucket the Storage Transfer service agent holds only allowedRoles "
                "(create and list: it can add its files but never delete or replace an export), "
                "or a role confined by an IAM condition to an object prefix of its own, outside "
                "protectedPrefixes (the exports)."
            ),
            resource_types=_types,
            check=transfer_agent_roles,
            settings=[
                string_list(
                    "allowedRoles",
                    list(TRANSFER_AGENT_ROLES),
                    "Roles the Storage Transfer agent may hold on a backup bucket.",
                    at_least_one=True,
                ),
                _protected_prefixes(),
            ],
            remediation=(
                "Grant roles/storage.objectCreator and roles/storage.legacyBucketReader only, or "
                "put any other role under a condition "
                'resource.name.startsWith("projects/_/buckets/BUCKET/objects/dashboard-assets/").'
            ),
        ),
    ]
