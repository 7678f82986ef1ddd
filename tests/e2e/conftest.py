"""End-to-end fixtures: every test here runs functions under AWS's Lambda Runtime Interface
Emulator, which exists for Linux only."""

from __future__ import annotations

import pytest

from tools.local.rie import rie_binary


@pytest.fixture(autouse=True, scope="session")
def _lambda_rie() -> None:
    try:
        rie_binary()
    except RuntimeError as exc:
        pytest.skip(f"the Lambda RIE is not available here: {exc}")
