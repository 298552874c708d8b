"""Bearer tokens: which routes need which token, strength checks, constant-time comparison."""

from __future__ import annotations

import hmac
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from loopml.config import ServeConfig
from loopml.errors import ConfigError, UnauthorizedError

__all__ = [
    "ADMIN_ROUTES",
    "DOCS_ASSET_PREFIXES",
    "GENERATE_HINT",
    "OPTIONAL_ROUTES",
    "PREDICT_ROUTES",
    "PROTECTED_ROUTES",
    "PUBLIC_ROUTES",
    "ROUTE_GROUPS",
    "DocsGuard",
    "Tokens",
    "authorize",
    "token_weakness",
]

# Every route is classified; a test fails on a route that is in no group below, and `authorize`
# refuses one at run time. Health and readiness are always public (probes carry no token).
PUBLIC_ROUTES = frozenset(
    {
        "/health/live",
        "/health/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
    }
)
# The groups serve.public_routes opens (default: every one when no token is set, else health only);
# a group it leaves closed needs the predict or the admin token (/metrics: the metrics token too).
ROUTE_GROUPS: dict[str, frozenset[str]] = {
    "health": PUBLIC_ROUTES,
    "metrics": frozenset({"/metrics"}),
    "docs": frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/docs/assets/{name}", "/redoc"}),
    "v2_metadata": frozenset({"/v2", "/v2/models/{name}", "/v2/models/{name}/versions/{version}"}),
    "dashboard": frozenset({"/", "/models", "/explain", "/static/{name}"}),
}
# Where the docs pages' own files (scripts, styles) are served: guarded as the docs group is, also
# when they are no API route (:class:`DocsGuard`).
DOCS_ASSET_PREFIXES = ("/docs/", "/redoc/")
OPTIONAL_ROUTES = frozenset().union(*(routes for group, routes in ROUTE_GROUPS.items() if group != "health"))
_GROUP_OF = {path: group for group, paths in ROUTE_GROUPS.items() for path in paths}
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
    """The tokens the server checks and the route groups open without one, read once from the
    settings (tokens checked for strength)."""

    admin: bytes | None
    predict: bytes | None
    metrics: bytes | None = None
    public: frozenset[str] = frozenset(ROUTE_GROUPS)

    @classmethod
    def from_config(cls, serve: ServeConfig) -> Tokens:
        """Refuse an empty or weak token; refuse admin routes without a token, and a closed route
        group that no token could open."""
        admin = _checked(serve.admin_token, "serve.admin_token", "LOOPML_SERVE__ADMIN_TOKEN")
        predict = _checked(serve.predict_token, "serve.predict_token", "LOOPML_SERVE__PREDICT_TOKEN")
        metrics = _checked(serve.metrics_token, "serve.metrics_token", "LOOPML_SERVE__METRICS_TOKEN")
        if serve.admin_routes and admin is None:
            raise ConfigError(
                "serve.admin_routes is on but serve.admin_token is empty; set LOOPML_SERVE__ADMIN_TOKEN "
                f"(at least {MIN_TOKEN_CHARS} random characters): {GENERATE_HINT}"
            )
        tokens = cls(admin, predict, metrics, _public_groups(serve, admin or predict, metrics))
        for group in ROUTE_GROUPS:
            if group not in tokens.public and not tokens.opening(group):
                raise ConfigError(
                    f"serve.public_routes leaves '{group}' needing a token, but no token that opens it is "
                    f"set; add '{group}' to serve.public_routes or set serve.predict_token "
                    "(LOOPML_SERVE__PREDICT_TOKEN)."
                )
        return tokens

    def admin_enabled(self, serve: ServeConfig) -> bool:
        return self.admin is not None and serve.admin_routes is not False

    def opening(self, group: str) -> tuple[bytes, ...]:
        """The tokens that open a closed route group: the predict and admin tokens (and, for
        ``metrics``, the metrics token)."""
        found = (self.predict, self.admin, self.metrics if group == "metrics" else None)
        return tuple(token for token in found if token is not None)


def _public_groups(serve: ServeConfig, any_token: bytes | None, metrics: bytes | None) -> frozenset[str]:
    """``serve.public_routes`` (health always); unset: every group when no predict or admin token is
    set (but /metrics when a metrics token is), else health only."""
    if serve.public_routes is not None:
        return frozenset({"health", *serve.public_routes})
    if any_token is not None:
        return frozenset({"health"})
    return frozenset(ROUTE_GROUPS) - ({"metrics"} if metrics is not None else set())


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


def _require(request: Request, *tokens: bytes) -> None:
    sent = _bearer(request)
    if not any([hmac.compare_digest(sent, token) for token in tokens]):  # each compared, in constant time
        raise UnauthorizedError(f"the bearer token for {request.url.path} is not valid.")


def authorize(request: Request, tokens: Tokens) -> None:
    """The route's class (predict, admin, or a group of ``serve.public_routes``) decides which of
    ``tokens`` the request needs.

    Every route the app defines is classified above; an unclassified one is refused. The app runs it
    on every request through the dependency :func:`loopml.serve.deps.authorized` (the docs pages,
    which are no API routes, through :class:`DocsGuard`).
    """
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path in PREDICT_ROUTES:
        if tokens.predict is not None:
            _require(request, tokens.predict)
        return
    group = _GROUP_OF.get(path) if path is not None else None
    if group is not None:
        if group not in tokens.public:
            _require(request, *tokens.opening(group))
        return
    if path in ADMIN_ROUTES and tokens.admin is not None:
        _require(request, tokens.admin)
        return
    raise UnauthorizedError(f"route {path} is not classified public or protected; it is refused.")


class DocsGuard:
    """ASGI middleware: the docs pages, the OpenAPI description and the docs' own files (no API routes,
    so the app's dependency does not run for them) need a token unless ``docs`` is a public group."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app, self.tokens = app, tokens
        self.open = "docs" in tokens.public
        self.paths = ROUTE_GROUPS["docs"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.open or scope["type"] != "http" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        scheme, _, credentials = header.decode("latin-1").partition(" ")
        sent = credentials.strip().encode()
        tokens = self.tokens.opening("docs")
        if scheme.lower() == "bearer" and sent and any([hmac.compare_digest(sent, t) for t in tokens]):
            await self.app(scope, receive, send)
            return
        error = UnauthorizedError(
            f"{scope['path']} needs a bearer token (serve.public_routes does not list 'docs').",
            hint="Send the header 'Authorization: Bearer <token>'.",
        )
        body = json.dumps({"error": error.to_dict()}).encode()
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _guarded(self, path: str) -> bool:
        return path in self.paths or path.startswith(DOCS_ASSET_PREFIXES)
