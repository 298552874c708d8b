"""What an error may tell a client: never where the server keeps its files.

Errors raised deep in loopml name what they are about for the operator who reads the log, the CLI
user at the server's own terminal: an artifact's path, a source file, a store URL. The API answers a
client with the same message, the server's locations replaced: an absolute path becomes
``<server path>``, a URL (``s3://...``, ``sqlite:///...``, ``file://...``) ``<server location>``.
Route paths (``/v1/...``, ``/v2/...``, ``/health/...``) and what the client itself sent in a name
stay as they are. The message still names the model and version; the log keeps the whole of it.
"""

from __future__ import annotations

import re

__all__ = ["redact_locations"]

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:)]")
# An absolute path of two or more parts, not inside a relative path (``../../etc``) or a word.
_POSIX = re.compile(r"(?<![\w.~/-])/(?:[^/\s'\"<>]+/)+(?:[^/\s'\"<>]*[^/\s'\"<>.,;:)])?")
_WINDOWS = re.compile(r"\b[A-Za-z]:\\[^\s'\"<>]+")
_ROUTES = ("/v1/", "/v2/", "/health/", "/docs/", "/redoc/")


def redact_locations(text: str) -> str:
    """``text`` with the server's file locations replaced (see the module's docstring).

    Examples
    --------
    >>> redact_locations("artifact /srv/loopml/artifacts/models/fraud/3/model.skops is missing")
    'artifact <server path> is missing'
    >>> redact_locations("cannot read s3://bucket/models/x; see /v1/models/fraud/predict")
    'cannot read <server location>; see /v1/models/fraud/predict'
    >>> redact_locations("model '../../etc/passwd' is not served here")
    "model '../../etc/passwd' is not served here"
    """
    text = _URL.sub("<server location>", text)
    text = _POSIX.sub(lambda m: m.group(0) if m.group(0).startswith(_ROUTES) else "<server path>", text)
    return _WINDOWS.sub("<server path>", text)
