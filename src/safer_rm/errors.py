"""User-facing errors. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class SaferError(Exception):
    """An error caused by the user's input (file, config, model path, reply), not by a bug."""

    exit_code = 2


class ConfigError(SaferError):
    """A config key is unknown, mistyped or out of range."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key, self.detail, self.source = key, message, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}config key '{key}': {message}")

    def within(self, prefix: str, source: str | None) -> ConfigError:
        """The same error with the section prefix and the config source added."""
        key = f"{prefix}.{self.key}" if prefix and not self.key.startswith(prefix + ".") else self.key
        return ConfigError(key, self.detail, self.source or source)


class DataError(SaferError):
    """A dataset file or row is unreadable; names file, line (or row) and field."""

    def __init__(
        self,
        file: str,
        message: str,
        line: int | None = None,
        field: str | None = None,
        row: int | None = None,
    ):
        self.file, self.line, self.field, self.row = file, line, field, row
        where = str(file)
        if line is not None:
            where += f":{line}"
        elif row is not None:
            where += f" row {row}"
        if field is not None:
            where += f" field '{field}'"
        super().__init__(f"{where}: {message}")


class ModelError(SaferError):
    """A model, tokenizer or SAE path is missing, not a model, or unsafe to load."""


class StageError(SaferError):
    """A stage cannot run because an artifact it needs is missing or inconsistent."""
