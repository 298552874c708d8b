"""Option checking shared by the broker, SQL and log action plugins.

Every problem is a one-line :class:`~loopml.errors.ConfigError` that names the endpoint and the key
(``actions.endpoints.<name>.<key>``), says what was received against what was expected, and how to
fix it. ``project_dir`` is not a user option: loopml sets it to the project's directory so relative
paths (a log file, a SQLite database) resolve inside the project; it defaults to the current directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from loopml.errors import ConfigError, did_you_mean

__all__ = ["Options", "one_line"]

_MISSING: Any = object()
_RESERVED = ("kind", "project_dir")


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's own message on one short line (drivers wrap theirs in more text)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Options:
    """Typed reads of one endpoint's options; unknown keys are refused up front.

    Examples
    --------
    >>> opts = Options("redis", "events", {"url": "redis://localhost"}, ["url", "stream"])
    >>> opts.text("url")
    'redis://localhost'
    >>> opts.text("stream", "loopml")
    'loopml'
    """

    def __init__(self, kind: str, endpoint: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
        self.kind, self.endpoint, self.raw = kind, endpoint, dict(options)
        known = list(known)
        for key in self.raw:
            if key not in known and key not in _RESERVED:
                hint = did_you_mean(str(key), known)
                raise ConfigError(f"{self.where(key)}: unknown {kind} option '{key}'; {hint}")
        if self.raw.get("kind", kind) != kind:
            raise self.error("kind", f"is '{self.raw['kind']}' but this is the {kind} plugin")

    def where(self, key: str) -> str:
        return f"actions.endpoints.{self.endpoint}.{key}"

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError for ``key``: ``actions.endpoints.<endpoint>.<key> <problem>``."""
        return ConfigError(f"{self.where(key)} {problem}.", hint="Fix it in loopml.yaml.")

    def _get(self, key: str, default: Any, example: str) -> Any:
        value = self.raw.get(key, default)
        if value is _MISSING or (value is None and default is _MISSING):
            raise ConfigError(
                f"{self.where(key)} is missing: the {self.kind} plugin needs it.",
                hint=f"Add it in loopml.yaml, e.g. {key}: {example}.",
            )
        return value

    def text(self, key: str, default: Any = _MISSING, *, example: str = "...") -> Any:
        """A non-empty string (or ``default``, which may be None)."""
        value = self._get(key, default, example)
        if value is None or value is default:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0, integer: bool = False) -> Any:
        """An int or float no smaller than ``minimum`` (bools are refused)."""
        value = self._get(key, default, str(default))
        numeric = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
        if not numeric or value < minimum:
            expected = "an integer" if integer else "a number"
            raise self.error(key, f"must be {expected} >= {minimum:g}, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default, "true")
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        choices = list(choices)
        value = self._get(key, default, default)
        if value not in choices:
            shown = ", ".join(repr(c) for c in choices)
            raise self.error(key, f"must be one of {shown}, got {value!r}")
        return str(value)

    def names(self, key: str, default: list[str] | None) -> list[str]:
        """A list of non-empty strings; a single string counts as a list of one."""
        value = self._get(key, default, "[column]")
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of names, got {value!r}")
        return list(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key, {}, "{name: value}")
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def env_secret(self, key: str) -> str | None:
        """The value of the environment variable that option ``key`` names (None when unset)."""
        variable = self.text(key, None, example="MY_SECRET")
        if variable is None:
            return None
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(
                f"{self.where(key)}: environment variable {variable} is not set.",
                hint=f"Set it, e.g. export {variable}=...",
            )
        return value

    def project_dir(self) -> Path:
        """The directory relative paths start at (set by loopml; the current directory otherwise)."""
        return Path(self.raw.get("project_dir") or ".").resolve()

    def path(self, key: str, default: Any = _MISSING) -> Path | None:
        """A file path; a relative one starts at the project's directory."""
        value = self.text(key, default, example="logs/actions.jsonl")
        if value is None:
            return None
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.project_dir() / path
