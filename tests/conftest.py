"""Pytest fixtures and the session's set-up only; shared helper functions and constants live in helpers.py.

Under pytest-xdist (`make test` runs `pytest -n auto --dist worksteal`) every worker computes with one thread
(torch and the processes tests start, through OMP_NUM_THREADS), so the workers share the cores instead of
fighting over them, and the tests marked `slow` are dealt out over the workers first, longest first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

from tiny_models import build_bert, build_llama  # noqa: E402  (after the thread count is set)


def _seconds(item) -> float | None:
    """The seconds a `slow(...)` marker gives (measured on 2 cores), None for a test not marked slow."""
    mark = item.get_closest_marker("slow")
    return None if mark is None else float(mark.args[0]) if mark.args else 60.0


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first, longest first. Under pytest-xdist's `worksteal` schedule worker i starts
    with the i-th contiguous share of this list (each `remaining tests // remaining workers` long) and steals from
    the others' tails when it runs dry; so the slow tests are dealt out over the shares, each to the share with
    the fewest seconds so far, and the rest fill the shares in their own order. Deterministic, so every worker
    collects the same order, as xdist requires."""
    slow = sorted((t for t in items if _seconds(t) is not None), key=lambda t: -_seconds(t))
    rest = [t for t in items if _seconds(t) is None]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers <= 1:
        items[:] = slow + rest
        return
    sizes, left = [], len(items)
    for remaining in range(workers, 0, -1):
        sizes.append(left // remaining)
        left -= sizes[-1]
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for test in slow:
        open_ = [j for j in range(workers) if len(shares[j]) < sizes[j]]
        j = min(open_, key=lambda j: load[j])
        shares[j].append(test)
        load[j] += _seconds(test)
    fill = iter(rest)
    for j in range(workers):
        shares[j] += [next(fill) for _ in range(sizes[j] - len(shares[j]))]
    items[:] = [t for share in shares for t in share]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_bert(tmp_path_factory.mktemp("models") / "tiny-bert")
