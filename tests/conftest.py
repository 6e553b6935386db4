"""Pytest fixtures only; shared helper functions and constants live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import build_bert, build_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_bert(tmp_path_factory.mktemp("models") / "tiny-bert")
