"""Fixtures of the Docker tests (helpers live in ``docker_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .docker_helpers import fake_environment


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the stand-in ``tests/docker/fake_docker`` executable."""
    return fake_environment(tmp_path)
