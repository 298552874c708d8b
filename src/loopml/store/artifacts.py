"""The artifact store: immutable blobs (snapshots, models, reports) on any fsspec URL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

from loopml.errors import ArtifactIntegrityError, NotFoundError

__all__ = ["ArtifactStore", "sha256_bytes"]


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Keys are ``/``-separated relative paths under one root URL (a local folder by default).

    Examples
    --------
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes("models/a/1/model.txt", b"hello")
    >>> store.get_bytes("models/a/1/model.txt", sha256=digest)
    b'hello'
    """

    def __init__(self, root_url: str | os.PathLike[str], **options: Any) -> None:
        self.root_url = str(root_url).rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.root_url, **options)

    def uri(self, key: str) -> str:
        """The full URL of ``key``."""
        return f"{self.root_url}/{key}"

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"artifact key '{key}' must be a relative path without '..'")
        return f"{self._root}/{key}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` atomically where the filesystem allows; return its SHA-256."""
        path = self._path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        self.fs.mv(tmp, path)
        return sha256_bytes(data)

    def put_file(self, key: str, local_path: str | os.PathLike[str]) -> str:
        """Stream a local file to ``key`` (atomically where the filesystem allows); return its SHA-256."""
        path = self._path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        digest = hashlib.sha256()
        with open(local_path, "rb") as src, self.fs.open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
        self.fs.mv(tmp, path)
        return digest.hexdigest()

    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists (used to undo the writes of a step that failed)."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        """Read ``key``; when ``sha256`` is given, refuse content that does not match it."""
        path = self._path(key)
        try:
            with self.fs.open(path, "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError:
            raise NotFoundError(f"artifact '{self.uri(key)}' does not exist.") from None
        if sha256 is not None and sha256_bytes(data) != sha256:
            raise ArtifactIntegrityError(
                f"artifact '{self.uri(key)}' fails its SHA-256 check (expected {sha256[:12]}…, "
                f"got {sha256_bytes(data)[:12]}…); it was changed after it was written.",
                hint="Re-register the model or restore the original file.",
            )
        return data

    @contextmanager
    def open(self, key: str, mode: str = "rb") -> Iterator[IO[Any]]:
        """Open ``key`` as a file object (for streaming Parquet reads and writes)."""
        path = self._path(key)
        if "w" in mode:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, mode) as fh:
            yield fh

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return bool(self.fs.exists(self._path(key)))
