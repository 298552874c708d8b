"""Bearer tokens: which routes need which token, strength checks, constant-time comparison."""

from __future__ import annotations

import hmac
import itertools
import math
from collections import Counter
from dataclasses import dataclass

from fastapi import Request

from loopml.config import ServeConfig
from loopml.errors import ConfigError, UnauthorizedError

__all__ = [
    "ADMIN_ROUTES",
    "GENERATE_HINT",
    "PREDICT_ROUTES",
    "PROTECTED_ROUTES",
    "PUBLIC_ROUTES",
    "Tokens",
    "authorize",
    "token_weakness",
]

# Every route is classified; a test fails on a route that is in neither PUBLIC_ROUTES nor
# PROTECTED_ROUTES, and `authorize` refuses one at run time.
PUBLIC_ROUTES = frozenset(
    {
        "/health/live",
        "/health/ready",
        "/metrics",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
# Need serve.predict_token when one is set.
PREDICT_ROUTES = frozenset(
    {
        "/v1/models/{name}/predict",
        "/v1/models/{name}/forecast",
        "/v1/models/{name}/rul",
        "/v1/models/{name}/recommend",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/feedback",
        "/",
    }
)
# Always need serve.admin_token (and are mounted only when admin routes are enabled).
ADMIN_ROUTES = frozenset({"/v1/models/{name}/aliases/{alias}", "/v1/models/{name}/versions"})
PROTECTED_ROUTES = PREDICT_ROUTES | ADMIN_ROUTES

MIN_TOKEN_CHARS = 24
MIN_TOKEN_BITS = 96.0  # length x Shannon entropy per character of the token's own characters
GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


def token_weakness(token: str) -> str | None:
    """Why ``token`` is too weak to guard the API, or None when it is strong enough.

    Weak: under 24 characters, or low in entropy (its characters' Shannon entropy times its length
    under 96 bits, e.g. ``aaaa...``, ``passwordpassword...``), or mostly a run like ``abcdef...``.

    Examples
    --------
    >>> token_weakness("changeme")
    'it has 8 characters; at least 24 are needed'
    >>> token_weakness("a" * 40)
    'it has too little entropy (0 bits)'
    >>> import secrets; token_weakness(secrets.token_urlsafe(32)) is None
    True
    """
    if len(token) < MIN_TOKEN_CHARS:
        return f"it has {len(token)} characters; at least {MIN_TOKEN_CHARS} are needed"
    counts = Counter(token)
    bits = -len(token) * sum(c / len(token) * math.log2(c / len(token)) for c in counts.values())
    if bits < MIN_TOKEN_BITS or len(counts) < 10:
        return f"it has too little entropy ({bits + 0.0:.0f} bits)"
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in itertools.pairwise(token))
    if steps > len(token) // 2:
        return "it is mostly a run of neighbouring characters"
    return None


@dataclass(frozen=True)
class Tokens:
    """The tokens the server checks, read once from the settings (and checked for strength)."""

    admin: bytes | None
    predict: bytes | None

    @classmethod
    def from_config(cls, serve: ServeConfig) -> Tokens:
        """Refuse an empty or weak token; refuse admin routes without a token."""
        admin = _checked(serve.admin_token, "serve.admin_token", "LOOPML_SERVE__ADMIN_TOKEN")
        predict = _checked(serve.predict_token, "serve.predict_token", "LOOPML_SERVE__PREDICT_TOKEN")
        if serve.admin_routes and admin is None:
            raise ConfigError(
                "serve.admin_routes is on but serve.admin_token is empty; set LOOPML_SERVE__ADMIN_TOKEN "
                f"(at least {MIN_TOKEN_CHARS} random characters): {GENERATE_HINT}"
            )
        return cls(admin, predict)

    def admin_enabled(self, serve: ServeConfig) -> bool:
        return self.admin is not None and serve.admin_routes is not False


def _checked(secret: object, key: str, variable: str) -> bytes | None:
    if secret is None:
        return None
    token = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
    if not token.strip():
        raise ConfigError(f"{key} is empty; unset {variable} or set a strong token: {GENERATE_HINT}")
    weakness = token_weakness(token)
    if weakness:
        raise ConfigError(f"{key} is too weak: {weakness}; {GENERATE_HINT}")
    return token.encode()


def _bearer(request: Request) -> bytes:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthorizedError(
            f"{request.url.path} needs a bearer token.",
            hint="Send the header 'Authorization: Bearer <token>'.",
        )
    return credentials.strip().encode()


def _require(request: Request, token: bytes) -> None:
    if not hmac.compare_digest(_bearer(request), token):
        raise UnauthorizedError(f"the bearer token for {request.url.path} is not valid.")


def authorize(request: Request, tokens: Tokens) -> None:
    """The route's class (public, predict, admin) decides which of ``tokens`` the request needs.

    Every route the app defines is classified above; an unclassified one is refused. The app runs it
    on every request through the dependency :func:`loopml.serve.deps.authorized`.
    """
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path in PUBLIC_ROUTES:
        return
    if path in PREDICT_ROUTES:
        if tokens.predict is not None:
            _require(request, tokens.predict)
        return
    if path in ADMIN_ROUTES and tokens.admin is not None:
        _require(request, tokens.admin)
        return
    raise UnauthorizedError(f"route {path} is not classified public or protected; it is refused.")
