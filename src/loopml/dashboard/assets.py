"""The dashboard's static assets: plotly.js from the installed ``plotly`` package, and the page's own
script and style sheet, each at a versioned URL so that a browser may cache it for a year.

plotly.js is 4.8 MB; it is sent gzip-compressed (1.47 MB) and only once per version of plotly: pages
link it, and a reload takes it from the browser's cache.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

__all__ = ["Asset", "Assets", "assets"]


@dataclass(frozen=True)
class Asset:
    """One static file: its URL path, media type and bytes (and their gzip form, made once)."""

    path: str
    media_type: str
    body: bytes

    @cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=9, mtime=0)

    @cached_property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'


def _plotly() -> Asset:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return Asset(f"/static/plotly-{plotly.__version__}.min.js", "text/javascript", path.read_bytes())


def _own(name: str, media_type: str) -> Asset:
    body = resources.files("loopml.dashboard").joinpath("static", name).read_bytes()
    stem, suffix = name.rsplit(".", 1)
    return Asset(f"/static/{stem}-{hashlib.sha256(body).hexdigest()[:12]}.{suffix}", media_type, body)


@dataclass(frozen=True)
class Assets:
    """The assets by URL path, and the paths (and, for a standalone page, the texts) templates use."""

    plotly_asset: Asset
    js_asset: Asset
    css_asset: Asset

    @property
    def by_path(self) -> dict[str, Asset]:
        return {a.path: a for a in (self.plotly_asset, self.js_asset, self.css_asset)}

    @property
    def plotly(self) -> str:
        return self.plotly_asset.path

    @property
    def js(self) -> str:
        return self.js_asset.path

    @property
    def css(self) -> str:
        return self.css_asset.path

    @property
    def plotly_text(self) -> str:
        return self.plotly_asset.body.decode()

    @property
    def js_text(self) -> str:
        return self.js_asset.body.decode()

    @property
    def css_text(self) -> str:
        return self.css_asset.body.decode()


@cache
def assets() -> Assets:
    """The dashboard's assets (read once per process)."""
    return Assets(_plotly(), _own("dashboard.js", "text/javascript"), _own("dashboard.css", "text/css"))
