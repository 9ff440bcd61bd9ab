"""Shared test configuration.

In CI (``CI=true``) a test whose server is missing must fail, never skip: use ``require_server``.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_server(available: bool, what: str) -> None:
    """Skip outside CI, fail inside CI, when a server a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is not available (CI=true: a missing server is a failure)")
    pytest.skip(f"{what} is not available")
