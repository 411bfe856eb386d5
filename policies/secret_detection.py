"""Heuristics for secrets written in plain text into a Cloud Run job's environment.

Two independent signals, tuned to avoid blocking ordinary configuration:

- the *name* says it holds a secret (``DB_PASSWORD``, ``PGPASSWORD``, ``API_TOKEN``, ``CLIENT_SECRET``,
  ``SIGNING_KEY``, ``PRIVATE_KEY_ID``...): such a variable must come from Secret Manager
  (``valueSource.secretKeyRef``) unless its literal value is only a *reference* (a file path of a
  mounted secret, or a Secret Manager resource name). Names that merely mention a secret
  (``SECRET_NAME``, ``TOKEN_SCOPE``, ``KEY_PREFIX``) are not flagged;
- the *value* looks like key material whatever the name: a PEM private key, a service account key
  file, credentials inside a URL, a well-known token format, or a long high-entropy token.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Final

# Secret nouns anywhere in the name (also glued, as in PGPASSWORD).
_ANYWHERE: Final = ("PASSWORD", "PASSWD", "PASSPHRASE")
# Secret nouns that name the variable when they are its last word (API_TOKEN, but not TOKEN_SCOPE).
_LAST_WORD: Final = frozenset(
    {"SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "PWD", "PASS", "DSN"}
)

_REFERENCE = re.compile(r"^(/[^\s]*|projects/[^/\s]+/secrets/[^\s]+)$")
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_SERVICE_ACCOUNT_KEY = re.compile(r'"private_key"\s*:|"type"\s*:\s*"service_account"')
_URL_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")
_KNOWN_TOKENS = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|ya29\.[\w-]{20,}|glpat-[\w-]{20,}|sk_live_\w{16,})"
)
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_-]+$")
MIN_TOKEN_LENGTH: Final = 32
MIN_TOKEN_ENTROPY: Final = 4.2  # bits per character; random base64 scores 4.5-5, names about 4
# Share of neighbouring characters of different kinds (lower/upper/digit/other): random tokens
# switch about every other character, CamelCase names about every third.
MIN_CLASS_SWITCHES: Final = 0.4


def secret_like_name(name: str) -> bool:
    upper = name.upper()
    if any(noun in upper for noun in _ANYWHERE):
        return True
    words = [word for word in re.split(r"[^A-Z0-9]+", upper) if word]
    if len(words) < 2 and upper in ("PWD", "KEY", "PASS", "DSN"):
        # PWD is the shell's working directory; bare KEY/PASS/DSN say too little.
        return False
    if not words:
        return False
    return words[-1] in _LAST_WORD or ("PRIVATE" in words and "KEY" in words)


def is_reference(value: str) -> bool:
    """A path to a mounted secret or a Secret Manager resource name: not the secret itself."""
    return _REFERENCE.match(value) is not None


def secret_like_value(value: str) -> str | None:
    """Why ``value`` looks like a secret, or None."""
    if _PEM_PRIVATE_KEY.search(value):
        return "a PEM private key"
    if _SERVICE_ACCOUNT_KEY.search(value):
        return "a service account key file"
    if _URL_CREDENTIALS.match(value):
        return "a URL with a password in it"
    if _KNOWN_TOKENS.search(value):
        return "a well-known access token or API key format"
    if _high_entropy_token(value):
        return "a long high-entropy token"
    return None


def _high_entropy_token(value: str) -> bool:
    if len(value) < MIN_TOKEN_LENGTH or not _TOKEN_CHARS.match(value):
        return False
    kinds = [_kind(c) for c in value]
    # Hex digests and lowercase identifiers use at most two kinds of character; tokens use three.
    if not {"lower", "upper", "digit"} <= set(kinds):
        return False
    switches = sum(a != b for a, b in itertools.pairwise(kinds)) / (len(kinds) - 1)
    return switches >= MIN_CLASS_SWITCHES and shannon_entropy(value) >= MIN_TOKEN_ENTROPY


def _kind(character: str) -> str:
    if character.islower():
        return "lower"
    if character.isupper():
        return "upper"
    return "digit" if character.isdigit() else "other"


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())
