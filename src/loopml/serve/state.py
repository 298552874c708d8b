"""The server's model holder: follows the registry alias and swaps the loaded model atomically."""

from __future__ import annotations

import logging
import threading
import time

from pydantic import BaseModel

from loopml.config import Settings
from loopml.errors import ArtifactIntegrityError, LoopMLError, NotFoundError
from loopml.registry import get_alias
from loopml.scoring import LoadedModel, load_model
from loopml.serve.schema import record_model
from loopml.store import OnWrite, PredictionLogWriter, Store, journal_dir
from loopml.validate import RecordChecker, ScoringPolicy

__all__ = ["ModelHolder", "Serving", "journal_dir", "open_prediction_log"]

log = logging.getLogger(__name__)


def open_prediction_log(
    settings: Settings, store: Store, on_write: OnWrite | None = None
) -> PredictionLogWriter | None:
    """The API's prediction log (None when ``serve.log_predictions`` is off), journalled on local disk.

    Starting it first replays what a killed server left in the journal, so the store (and the
    window history the model loads from it) holds every prediction that was ever acknowledged.
    """
    if not settings.serve.log_predictions:
        return None
    return PredictionLogWriter(
        store.engine,
        on_write=on_write,
        journal_dir=journal_dir(settings),
        fsync=settings.serve.journal_fsync,
    )


class Serving:
    """A loaded model together with its request validators (swapped as one object): ``checker``
    enforces the contract on the records of /v1 and /v2 (with the project's ``policy``); ``record``
    is the lax model the maintenance route reads its readings with."""

    def __init__(self, model: LoadedModel, policy: ScoringPolicy | None = None) -> None:
        self.model = model
        self.checker = RecordChecker(model.contract, model.input_columns, policy)
        self.record: type[BaseModel] = record_model(model.contract, model.input_columns)


class ModelHolder:
    """Holds the version an alias points at; re-checks the alias at most every ``refresh`` seconds,
    and then hands the labels that came back as feedback to its window history."""

    def __init__(
        self, store: Store, name: str, alias: str, refresh: float = 1.0, policy: ScoringPolicy | None = None
    ) -> None:
        self.store, self.name, self.alias, self.refresh = store, name, alias, refresh
        self.policy = policy  # what the served contract does with unknown categories and extra fields
        self._current: Serving | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        # the version the alias names that this server refuses (its artifact fails its checks), and why
        self.refused: tuple[int, LoopMLError] | None = None

    @property
    def due(self) -> bool:
        """Whether the next :meth:`get` re-reads the alias (and may load a version: call it off the loop)."""
        return self._current is None or time.monotonic() - self._checked >= self.refresh

    def get(self) -> Serving:
        """The serving model; loads it on first use and when the alias has moved.

        While one caller loads a new version, the others keep getting the current one: the swap is
        one assignment, so every request sees either the old model or the new one, never a mix.
        """
        if self.due:
            self._refresh()
        if self._current is None:
            raise NotFoundError(
                f"model '{self.name}' has no version with alias '{self.alias}'; train one first."
            )
        return self._current

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=self._current is None):
            return  # another caller is re-checking or loading; keep serving the current model
        try:
            self._load_if_moved()
        finally:
            self._lock.release()

    def _load_if_moved(self) -> None:
        self._checked = time.monotonic()
        version = get_alias(self.store.engine, self.name, self.alias)
        if version is None or (self._current and self._current.model.version.version == version):
            self.refused = None  # the alias is back on what is served (or gone)
            if self._current is not None:  # labels sent as feedback reach the label windows
                try:
                    self._current.model.learn_feedback(self.store)
                except Exception:  # never fail a request over it: the next check tries again
                    log.exception("learning feedback for %s failed; serving on", self.name)
            return
        try:
            self._current = Serving(load_model(self.store, self.name, version), self.policy)
            self.refused = None
            log.info("serving %s version %s (%s)", self.name, version, self.alias)
        except LoopMLError as exc:
            self._refuse(version, exc)
            if self._current is None:
                raise

    def _refuse(self, version: int, exc: LoopMLError) -> None:
        """Remember the refused version; say so at ERROR once per version and error (not every check)."""
        first = self.refused is None or self.refused[0] != version or str(self.refused[1]) != str(exc)
        self.refused = (version, exc)
        if first:
            kept = self._current.model.version.version if self._current is not None else None
            log.error(
                "model %s: alias '%s' points at version %s, which this server refuses: %s; %s",
                self.name,
                self.alias,
                version,
                exc,
                f"serving version {kept} meanwhile" if kept is not None else "it serves nothing",
            )

    def check_start(self) -> None:
        """Load the alias's version at start-up; one that cannot be served is logged (at ERROR when its
        artifact fails its checks), and readiness says so, instead of waiting for the first request."""
        try:
            self.get()
        except ArtifactIntegrityError:
            pass  # logged by _refuse, with the version and why
        except LoopMLError as exc:
            log.warning("model %s: nothing to serve at start-up: %s", self.name, exc)

    @property
    def current(self) -> Serving | None:
        """The model being served now, without loading or re-checking anything."""
        return self._current

    def invalidate(self) -> None:
        """Re-check the alias on the next request (after the API itself moved it)."""
        self._checked = 0.0

    @property
    def ready(self) -> bool:
        try:
            self.get()
        except LoopMLError:
            return False
        return True
