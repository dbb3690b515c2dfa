"""Fixtures for the store tests: a running stand-in hub and tiny GGUF files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hubstub import HubStub


@pytest.fixture
def hub() -> Iterator[HubStub]:
    with HubStub() as stub:
        yield stub
