"""The cloudsql-backups policy pack: refuses any stack that would weaken the database's backups.

Run by the Pulumi CLI (``pulumi preview --policy-pack policies --policy-pack-config
policies/config/<stack>.json``) or offline by ``python -m tools.policy_gate``. Every policy is
mandatory by default; thresholds default to the production bar (see README.md, generated).
"""

from __future__ import annotations

import pack
import sdk_cache
from pulumi_policy import EnforcementLevel, PolicyPack

sdk_cache.install()
PolicyPack(
    name=pack.NAME,
    policies=pack.all_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description=pack.DESCRIPTION,
    display_name=pack.DISPLAY_NAME,
    provider="gcp",
    tags=pack.TAGS,
)
