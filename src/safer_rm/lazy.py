"""Lazy exports of a package (PEP 562): a name resolves to its submodule on first use, so importing a package
for its config dataclasses (as `safer_rm.config` and the command-line parser do) imports no torch or
transformers. `from safer_rm.reward import train_reward_model` works as before."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """(`__getattr__`, `__dir__`) for a package whose `exports` map public names to submodule names."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
