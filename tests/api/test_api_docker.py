"""The container files lint clean offline: hadolint on the Dockerfile, and the compose file
against the compose-spec schema shipped with check-jsonschema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reference import REPO

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if not found.exists():
        found = Path(shutil.which(name) or "")
    if not found.is_file():
        pytest.fail(f"{name} is a pinned test dependency but is not installed")
    return str(found)


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(REPO / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_is_valid_against_the_compose_spec():
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(REPO / "docker" / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_non_root_and_publishes_only_on_loopback():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile and "python:3.11" in dockerfile
    compose = (REPO / "docker" / "compose.yaml").read_text()
    assert '"127.0.0.1:8000:8000"' in compose and "service_healthy" in compose


def test_the_development_keys_ship_as_package_data_so_the_image_has_them():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["medloop"]
    assert "dev_keys/*.pem" in data
    assert (REPO / "medloop" / "dev_keys" / "dev-public.pem").is_file()
