"""The export job's command and the Cloud SDK image it names fit together: the interpreter the command
starts is one the image's variant ships on x86_64 (``infra/cloudsql_backups/sdk_image.py`` holds the
per-variant table, each row citing the line of GoogleCloudPlatform/cloud-sdk-docker it rests on)."""

from __future__ import annotations

import pytest
from cloudsql_backups.sdk_image import (
    SDK_VARIANT_INTERPRETERS,
    ImageError,
    require_interpreter,
    sdk_image_variant,
)

from tests.infra.stack_files import setting
from tools.stack_render import ProgramFailed, RenderedStack, render

RUN_JOB = "gcp:cloudrunv2/job:Job"
EXPORT_JOB_COMPONENT = "cloudsql-backups:export:ExportJob"
CLI = "gcr.io/google.com/cloudsdktool/google-cloud-cli"


def job_container(stack: RenderedStack) -> dict[str, object]:
    [container] = stack.by_name("export-job").inputs["template"]["template"]["containers"]
    assert isinstance(container, dict)
    return container


def test_the_jobs_interpreter_is_shipped_by_the_pinned_variant(stack: RenderedStack) -> None:
    container = job_container(stack)
    image, commands = container["image"], container["commands"]
    assert isinstance(image, str) and isinstance(commands, list)
    assert image == setting(stack.stack, "export_image")
    variant = sdk_image_variant(image)
    assert commands[0] in SDK_VARIANT_INTERPRETERS[variant], (
        f"{commands[0]} is not in the {variant!r} Cloud SDK image"
    )


def test_stack_files_pin_the_slim_variant(stack: RenderedStack) -> None:
    assert sdk_image_variant(setting(stack.stack, "export_image")) == "slim"


@pytest.mark.parametrize(
    ("tag", "variant"),
    [
        ("576.0.0-slim", "slim"),
        ("576.0.0-stable", "stable"),
        ("576.0.0", ""),
        ("576.0.0-slim-20260722", "slim"),
        ("576.0.0-debian_component_based", "debian_component_based"),
    ],
)
def test_variant_is_read_from_the_tag(tag: str, variant: str) -> None:
    assert sdk_image_variant(f"{CLI}:{tag}") == variant
    assert sdk_image_variant(f"{CLI}:{tag}@sha256:{'a' * 64}") == variant


def test_the_stable_variant_has_no_python3_on_x86_64() -> None:
    assert "python3" not in SDK_VARIANT_INTERPRETERS["stable"]
    with pytest.raises(ImageError) as error:
        require_interpreter(f"{CLI}:576.0.0-stable", "python3")
    assert str(error.value) == (
        f"export_image = '{CLI}:576.0.0-stable': the 'stable' variant has no python3 on x86_64 "
        "(Cloud Run's architecture), so the export job could not start; allowed variants: "
        "'<version>', 'slim', 'alpine', 'emulators', 'debian_component_based'"
    )


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (f"{CLI}@sha256:{'a' * 64}", "has no tag"),
        ("docker.io/library/python:3.12.1", "is not Google's Cloud SDK image"),
        (
            f"{CLI}:576.0.0-all_components",
            "variant 'all_components' is not one whose contents are known",
        ),
        (f"{CLI}:slim", "tag 'slim' is not '<version>[-<variant>]'"),
    ],
)
def test_images_whose_contents_are_unknown_are_refused(image: str, fragment: str) -> None:
    with pytest.raises(ImageError) as error:
        require_interpreter(image, "python3")
    assert fragment in str(error.value)
    assert str(error.value).startswith(f"export_image = {image!r}")


def test_a_stack_pinning_the_stable_variant_is_refused_before_the_job_exists() -> None:
    with pytest.raises(ProgramFailed) as failure:
        render("staging", preview=True, overrides={"export_image": f"{CLI}:576.0.0-stable"})
    assert "the 'stable' variant has no python3 on x86_64" in str(failure.value)
    registered_types = {resource.type for resource in failure.value.registered}
    assert RUN_JOB not in registered_types
    assert EXPORT_JOB_COMPONENT not in registered_types
