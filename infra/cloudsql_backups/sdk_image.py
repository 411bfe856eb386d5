"""What Google's Cloud SDK container images ship, per variant, on x86_64 (the only architecture Cloud
Run runs), so that the export job's command can be checked against the image it names.

Source: GoogleCloudPlatform/cloud-sdk-docker at commit 47328f7 (2026-07-22); each variant is built
from one Dockerfile and tagged ``<version>-<variant>`` (``<version>`` alone for the root Dockerfile)
by ``cloudbuild.yaml``. Only the interpreters below are known; any other variant is refused rather
than guessed.
"""

from __future__ import annotations

import re

SDK_DOCKER = "https://github.com/GoogleCloudPlatform/cloud-sdk-docker/blob/47328f7082ac3679afe389a743458e34f612574a"
# Repositories Google publishes the image under (gcr.io paths, Artifact Registry mirrors, Docker Hub).
SDK_IMAGE_REPOSITORIES = ("google-cloud-cli", "cloud-sdk")

# variant (the tag after the version) -> interpreters on PATH in that image on x86_64.
SDK_VARIANT_INTERPRETERS: dict[str, frozenset[str]] = {
    # Dockerfile L9-L16 installs python3-dev and python3-pip; L42 checks `python3 --version`.
    "": frozenset({"python3"}),
    # debian_slim/Dockerfile L8-L13 installs python3-dev, python3-crcmod, python3-pip; L28 checks
    # `python3 --version`.
    "slim": frozenset({"python3"}),
    # stable/Dockerfile L22-L32: the runtime stage is debian:trixie-slim plus /usr/lib/google-cloud-sdk,
    # and python3 is installed only `if [ uname -m != x86_64 ]`; gcloud uses its bundled interpreter.
    "stable": frozenset(),
    # alpine/Dockerfile L2: FROM python:3.14.6-alpine3.23; L34 checks `python3 --version`.
    "alpine": frozenset({"python3"}),
    # emulators/Dockerfile L22 installs python3; L33 checks `python3 --version`.
    "emulators": frozenset({"python3"}),
    # debian_component_based/Dockerfile L10-L12 installs python3-dev, python3-pip; L28 checks it.
    "debian_component_based": frozenset({"python3"}),
}

# 576.0.0, 576.0.0-slim, 576.0.0-slim-20260722 (cloudbuild.yaml also pushes date-suffixed tags).
_VERSION_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+)(?:-(?P<variant>[a-z_]+?))?(?:-\d{8})?")


class ImageError(ValueError):
    """The image cannot run the command: the message says why and what is allowed."""


def sdk_image_variant(image: str) -> str:
    """The Cloud SDK variant an image reference names (``""`` for the full ``:VERSION`` image)."""
    reference = image.split("@", 1)[0]
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        raise ImageError(
            f"export_image = {image!r} has no tag: the variant must be readable from it; allowed: "
            "a Cloud SDK image tagged '<version>-<variant>' (optionally with an @sha256 digest), "
            "e.g. 'gcr.io/google.com/cloudsdktool/google-cloud-cli:576.0.0-slim'"
        )
    if repository.rsplit("/", 1)[-1] not in SDK_IMAGE_REPOSITORIES:
        raise ImageError(
            f"export_image = {image!r} is not Google's Cloud SDK image; allowed: "
            f"an image of {' or '.join(SDK_IMAGE_REPOSITORIES)} (the export needs gcloud and python3)"
        )
    match = _VERSION_TAG.fullmatch(tag)
    if match is None:
        raise ImageError(
            f"export_image = {image!r}: tag {tag!r} is not '<version>[-<variant>]'; allowed: "
            "e.g. '576.0.0-slim'"
        )
    return match.group("variant") or ""


def require_interpreter(image: str, interpreter: str) -> None:
    """Raise :class:`ImageError` unless the image's variant ships ``interpreter`` on x86_64."""
    variant = sdk_image_variant(image)
    shipped = SDK_VARIANT_INTERPRETERS.get(variant)
    if shipped is None:
        known = ", ".join(repr(v or "<version>") for v in SDK_VARIANT_INTERPRETERS)
        raise ImageError(
            f"export_image = {image!r}: variant {variant!r} is not one whose contents are known; "
            f"allowed variants: {known}"
        )
    if interpreter not in shipped:
        with_it = ", ".join(
            repr(v or "<version>")
            for v, tools in SDK_VARIANT_INTERPRETERS.items()
            if interpreter in tools
        )
        raise ImageError(
            f"export_image = {image!r}: the {variant!r} variant has no {interpreter} on x86_64 "
            f"(Cloud Run's architecture), so the export job could not start; allowed variants: {with_it}"
        )
