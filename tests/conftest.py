"""Shared test configuration: real peers are required under CI, skipped with a reason elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """Path of the executable ``name``; skip the test if it is missing, but fail under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package needed for interop tests)"
        if IN_CI:
            pytest.fail(message + "; under CI it must be present")
        pytest.skip(message)
    return path
