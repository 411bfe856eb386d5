"""Access rules for every IAM grant and storage ACL the stack makes, on any bucket or service.

IAM grants are recognised by type token, whatever the service: ``*IAMMember`` / ``*IamMember``
(``member``), ``*IAMBinding`` / ``*IamBinding`` (``members``) and ``*IAMPolicy`` / ``*IamPolicy``
(``policyData``, JSON), e.g. ``gcp:storage/bucketIAMMember:BucketIAMMember``,
``gcp:projects/iAMMember:IAMMember``, ``gcp:cloudrunv2/jobIamMember:JobIamMember``,
``gcp:serviceaccount/iAMBinding:IAMBinding``. ``IamMemberRemove`` revokes, so it is not a grant.

During a preview, a member or role computed from another resource's output (a service account the
stack creates, a custom role's name) is unknown. Public principals and basic roles are literals:
they cannot come out of another resource's output, so an unknown member or role is not reported;
a whole ``members`` list or ``policyData`` that is unknown is, since it could hold anything. The
engine analyzes each resource again, with every value known, before it creates or updates it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from policy_kit import Config, Resource, resource_policy, string_list
from property_access import Node, describe
from pulumi_policy import ResourceValidationPolicy, Severity

_GRANT_TYPE = re.compile(r"^gcp:\w+/\w+:\w*(?:IAM|Iam)(?P<kind>Member|Binding|Policy)$")
PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers", "principalSet://goog/public:all")
BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")

# Storage ACLs: lists of "ROLE:entity", single entities, and canned ACLs.
_ACL_LISTS = frozenset(
    {
        "gcp:storage/bucketACL:BucketACL",
        "gcp:storage/defaultObjectACL:DefaultObjectACL",
        "gcp:storage/objectACL:ObjectACL",
    }
)
_ACL_ENTRIES = frozenset(
    {
        "gcp:storage/bucketAccessControl:BucketAccessControl",
        "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
        "gcp:storage/objectAccessControl:ObjectAccessControl",
    }
)
_CANNED_ACL_TYPES = frozenset({*_ACL_LISTS, "gcp:storage/bucketObject:BucketObject"})
_PUBLIC_ENTITIES = frozenset({"allUsers", "allAuthenticatedUsers"})
# Canned ACLs that grant everyone (or every Google account) access, normalised.
_PUBLIC_CANNED_ACLS = frozenset({"publicread", "publicreadwrite", "authenticatedread"})


def is_iam_grant(type_token: str) -> bool:
    return _GRANT_TYPE.match(type_token) is not None


@dataclass(frozen=True)
class Grant:
    role: Node
    members: list[Node]
    # The grant's IAM condition expression (CEL); its value is None when the grant has no condition.
    condition: Node


def grants(resource: Resource) -> list[Grant]:
    """What the resource grants; raises ValueUnknown when the set of members itself is unknown."""
    match = _GRANT_TYPE.match(resource.type)
    kind = match.group("kind") if match else ""
    props = resource.props
    if kind == "Member":
        return [Grant(props.at("role"), [props.at("member")], _expression(props))]
    if kind == "Binding":
        return [Grant(props.at("role"), props.at("members").elements(), _expression(props))]
    if kind == "Policy":
        return _policy_grants(props.at("policyData"))
    return []


def _expression(grant: Node) -> Node:
    return grant.at("condition").at("expression")


def _policy_grants(policy_data: Node) -> list[Grant]:
    text = policy_data.value
    try:
        document = json.loads(text) if isinstance(text, str) else {}
    except json.JSONDecodeError:
        # Not a policy Google would accept either; nothing in it can be granted.
        return []
    bindings = Node(document, policy_data.path).at("bindings")
    return [
        Grant(binding.at("role"), binding.at("members").elements(), _expression(binding))
        for binding in bindings.elements()
    ]


def _no_public_principals(resource: Resource, config: Config) -> Iterator[str]:
    forbidden = set(config["forbiddenPrincipals"])
    for grant in grants(resource):
        for member in grant.members:
            if not member.unknown and member.value in forbidden:
                yield (
                    f"{member.path} = {describe(member.value)}: grants "
                    f"{describe(None if grant.role.unknown else grant.role.value)} to everyone; "
                    "grant it to specific identities"
                )


def _no_basic_roles(resource: Resource, config: Config) -> Iterator[str]:
    forbidden = set(config["forbiddenRoles"])
    for grant in grants(resource):
        if not grant.role.unknown and grant.role.value in forbidden:
            yield (
                f"{grant.role.path} = {describe(grant.role.value)}: a basic role spans every "
                "service in the project; grant the predefined or custom role the identity needs"
            )


def _is_acl(type_token: str) -> bool:
    return type_token in _ACL_LISTS or type_token in _ACL_ENTRIES or type_token in _CANNED_ACL_TYPES


def _no_public_acl(resource: Resource, _: Config) -> Iterator[str]:
    props = resource.props
    if resource.type in _ACL_LISTS:
        for entry in props.at("roleEntities").elements():
            if not entry.unknown and str(entry.value).partition(":")[2] in _PUBLIC_ENTITIES:
                yield f"{entry.path} = {describe(entry.value)}: an ACL entry for everyone"
    if resource.type in _ACL_ENTRIES:
        entity = props.at("entity")
        if not entity.unknown and entity.value in _PUBLIC_ENTITIES:
            yield f"entity = {describe(entity.value)}: an ACL entry for everyone"
    if resource.type in _CANNED_ACL_TYPES:
        for key in ("predefinedAcl", "defaultAcl"):
            canned = props.at(key)
            normalised = str(canned.value or "").replace("-", "").replace("_", "").lower()
            if normalised in _PUBLIC_CANNED_ACLS:
                yield f"{key} = {describe(canned.value)}: a canned ACL that makes data public"


def policies() -> list[ResourceValidationPolicy]:
    """The access rules, in the order the policy reference lists them."""
    return [
        resource_policy(
            name="iam-member-no-public-principals",
            description=(
                "No IAM grant of the stack (member, binding or policy, on any resource) names "
                "allUsers, allAuthenticatedUsers or the public principal set."
            ),
            resource_types=is_iam_grant,
            checks=[_no_public_principals],
            settings=[
                string_list(
                    "forbiddenPrincipals",
                    list(PUBLIC_PRINCIPALS),
                    "Principals no grant may name.",
                    at_least_one=True,
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Grant the role to specific users, groups or service accounts.",
        ),
        resource_policy(
            name="iam-member-no-basic-roles",
            description=(
                "No IAM grant of the stack uses a basic (primitive) role: roles/owner, "
                "roles/editor or roles/viewer."
            ),
            resource_types=is_iam_grant,
            checks=[_no_basic_roles],
            settings=[
                string_list(
                    "forbiddenRoles",
                    list(BASIC_ROLES),
                    "Roles no grant may use.",
                    at_least_one=True,
                ),
            ],
            remediation="Grant the predefined or custom role that carries only the needed permissions.",
        ),
        resource_policy(
            name="storage-acl-no-public-entities",
            description=(
                "No storage ACL of the stack (bucket, default object or object ACL, or a canned "
                "ACL) grants allUsers or allAuthenticatedUsers."
            ),
            resource_types=_is_acl,
            checks=[_no_public_acl],
            severity=Severity.CRITICAL,
            remediation="Remove the ACL entry; use uniform bucket-level access and IAM instead.",
        ),
    ]
