"""The loopml error tree.

Every error a user can cause is a :class:`LoopMLError` with a stable ``code``. The CLI maps an error
to its ``exit_code`` and prints one line; the HTTP API maps it to ``http_status`` and a JSON body.
Messages say what went wrong, where, what was received against what was expected, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "ArtifactIntegrityError",
    "BusyError",
    "ConfigError",
    "ContractError",
    "DataError",
    "InputError",
    "LoopMLError",
    "MissingExtraError",
    "NotFoundError",
    "OnlineStateError",
    "PayloadTooLargeError",
    "ProjectNotFoundError",
    "PromotionRefusedError",
    "RequestTimeoutError",
    "StoreError",
    "TooManyConnectionsError",
    "UnauthorizedError",
    "closest",
]


class LoopMLError(Exception):
    """Root of every error loopml raises on purpose."""

    code: ClassVar[str] = "loopml_error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        joiner = " " if self.message.endswith((".", "?", "!", ":", ";")) else ". "
        return f"{self.message}{joiner}{self.hint}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the API and ``--json`` output use."""
        body: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details is not None:
            body["details"] = self.details
        return body


class ConfigError(LoopMLError):
    """The project file or an environment override is invalid."""

    code = "config_invalid"
    exit_code = 2


class ProjectNotFoundError(ConfigError):
    """No ``loopml.yaml`` where one was expected."""

    code = "project_not_found"


class MissingExtraError(LoopMLError, ImportError):
    """An optional dependency is not installed."""

    code = "missing_extra"
    exit_code = 3


class DataError(LoopMLError):
    """Data cannot be read or does not have the expected shape."""

    code = "data_invalid"
    exit_code = 4
    http_status = 422


class ContractError(DataError):
    """Data breaks its data contract."""

    code = "contract_violation"


class InputError(DataError):
    """A request or command argument is invalid."""

    code = "invalid_input"


class PayloadTooLargeError(InputError):
    """A request carries more records or bytes than allowed."""

    code = "payload_too_large"
    http_status = 413


class RequestTimeoutError(InputError):
    """A request's body did not arrive within ``serve.body_timeout`` (the connection is then closed)."""

    code = "request_timeout"
    http_status = 408


class TooManyConnectionsError(InputError):
    """A client holds more open connections than ``serve.max_connections_per_client`` allows."""

    code = "too_many_connections"
    http_status = 429


class NotFoundError(LoopMLError):
    """A named thing (model, version, data set, prediction) does not exist."""

    code = "not_found"
    exit_code = 5
    http_status = 404


class UnauthorizedError(LoopMLError):
    """A protected route was called without a valid token."""

    code = "unauthorized"
    exit_code = 6
    http_status = 401


class StoreError(LoopMLError):
    """The metadata or artifact store cannot be used."""

    code = "store_error"
    exit_code = 7
    http_status = 503


class ArtifactIntegrityError(StoreError):
    """An artifact's content does not match the SHA-256 recorded for it."""

    code = "artifact_integrity"


class PromotionRefusedError(ArtifactIntegrityError):
    """An alias was not moved: the version it would point at has an artifact that fails its SHA-256
    check or does not load with the safe loader (the alias stays where it was)."""

    code = "promotion_refused"
    http_status = 409  # the request conflicts with the artifact's state; exits like its family (7)


class OnlineStateError(StoreError):
    """The shared online window state (``serve.online_store``: Redis) cannot be read or written, or is
    being warmed from the store: a model with window features cannot score correctly meanwhile."""

    code = "online_state_unavailable"


class BusyError(LoopMLError):
    """Another live process holds the job (a lease): try again once it finishes or its lease expires."""

    code = "busy"
    exit_code = 8
    http_status = 409


def closest(word: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to ``word``, or None when nothing is close.

    Examples
    --------
    >>> closest("modle", ["model", "params", "seed"])
    'model'
    """
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix, or a list of valid choices when nothing is close."""
    options = sorted(choices)
    match = closest(word, options)
    if match:
        return f"did you mean '{match}'?"
    return "valid: " + ", ".join(repr(o) for o in options) if options else ""
