"""The server's model holder: follows the registry alias and swaps the loaded model atomically."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import BaseModel

from loopml.config import Settings
from loopml.errors import ArtifactIntegrityError, LoopMLError, NotFoundError, OnlineStateError
from loopml.registry import get_alias
from loopml.scoring import LoadedModel, load_model
from loopml.serve.latency import refreeze_after_swap
from loopml.serve.schema import record_model
from loopml.store import OnWrite, PredictionLogWriter, Store, journal_dir, known_predictions
from loopml.validate import RecordChecker, ScoringPolicy

__all__ = ["ModelHolder", "Serving", "await_predictions", "journal_dir", "open_prediction_log"]

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


def await_predictions(
    store: Store, labels: Any, seconds: float = 1.0, writer: PredictionLogWriter | None = None
) -> int:
    """Wait (at most ``seconds``) until the predictions that ``labels`` name are in the store; how many
    are still missing. A label may reach one replica while its prediction, acknowledged by another,
    is still in that one's log writer (flushed every 0.2 s): without the wait it would be refused as
    unknown. If some are still missing, the journal segments of dead replicas sharing ``writer``'s
    journal folder are replayed (a replica killed with its acknowledged predictions journaled but not
    yet stored), then the store is asked once more. Items that are not ``{"prediction_id": ...}``
    objects are left to the feedback checks."""
    wanted = {str(i["prediction_id"]) for i in labels if isinstance(i, dict) and "prediction_id" in i}
    deadline = time.monotonic() + seconds
    while wanted:
        wanted -= known_predictions(store.engine, wanted)
        if not wanted or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if wanted and writer is not None and writer.replay_abandoned():
        wanted -= known_predictions(store.engine, wanted)
    return len(wanted)


class Serving:
    """A loaded model together with its request validators (swapped as one object): ``checker``
    enforces the contract on the records of /v1 and /v2 (with the project's ``policy``); ``record``
    is the lax model the maintenance route reads its readings with."""

    def __init__(self, model: LoadedModel, policy: ScoringPolicy | None = None) -> None:
        self.model = model
        # the event time's range starts from this version's first training event
        checked = (policy or ScoringPolicy()).for_version(model.trained_from)
        self.checker = RecordChecker(model.contract, model.input_columns, checked)
        self.record: type[BaseModel] = record_model(model.contract, model.input_columns)


class ModelHolder:
    """Holds the version an alias points at; re-checks the alias at most every ``refresh`` seconds,
    and then hands the labels that came back as feedback to its window state.

    Once a model is served, the periodic re-check runs in a thread of its own and requests keep
    getting the current model meanwhile: a request never waits for the store (the check and the
    feedback read took 15-25 ms, paid by one request a second and showing in the p99). The first
    load, and the check after :meth:`invalidate` (the API itself moved the alias), are done by the
    caller, so that its next request sees the new version.

    ``online_url`` (``serve.online_store``): the Redis that holds the window state every replica
    shares; None keeps it in this process."""

    def __init__(
        self,
        store: Store,
        name: str,
        alias: str,
        refresh: float = 1.0,
        policy: ScoringPolicy | None = None,
        online_url: str | None = None,
    ) -> None:
        self.store, self.name, self.alias, self.refresh = store, name, alias, refresh
        self.policy = policy  # what the served contract does with unknown categories and extra fields
        self.online_url = online_url
        self._online_problem = ""  # the last online-state failure logged (said once, not every second)
        self._current: Serving | None = None
        self._checked = 0.0
        self._forced = False  # the next check is the caller's (invalidate)
        self._lock = threading.Lock()
        # the version the alias names that this server refuses (its artifact fails its checks), and why
        self.refused: tuple[int, LoopMLError] | None = None

    @property
    def due(self) -> bool:
        """Whether the next :meth:`get` re-reads the alias itself, and may load a version: call it off
        the event loop then (a periodic re-check runs in a thread of its own)."""
        return self._current is None or self._forced

    def peek(self) -> Serving | None:
        """The serving model as it is now, without re-reading the alias or loading anything (a page
        that only reads the model, such as the dashboard's explanations); None before the first load."""
        return self._current

    def get(self) -> Serving:
        """The serving model; loads it on first use and when the alias has moved.

        While one caller loads a new version, the others keep getting the current one: the swap is
        one assignment, so every request sees either the old model or the new one, never a mix.
        """
        if self._current is None or self._forced:
            self._refresh()
        elif time.monotonic() - self._checked >= self.refresh:
            self._refresh_in_background()
        if self._current is None:
            raise NotFoundError(
                f"model '{self.name}' has no version with alias '{self.alias}'; train one first."
            )
        return self._current

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=self._current is None or self._forced):
            return  # another caller is re-checking or loading; keep serving the current model
        try:
            self._load_if_moved()
        finally:
            self._lock.release()

    def _refresh_in_background(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a check is under way
        self._checked = time.monotonic()  # no second thread for the callers that follow

        def check() -> None:
            try:
                self._load_if_moved()
            except LoopMLError:
                pass  # logged where it happened; the current model serves on
            except Exception:  # a thread's error must not go unseen, nor stop the next check
                log.exception("re-checking the alias of model %s failed; serving on", self.name)
            finally:
                self._lock.release()

        threading.Thread(target=check, name="loopml-model-refresh", daemon=True).start()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until a re-check under way has finished; False if ``timeout`` passed first."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def _load_if_moved(self) -> None:
        self._checked = time.monotonic()
        self._forced = False
        version = get_alias(self.store.engine, self.name, self.alias)
        if version is None or (self._current and self._current.model.version.version == version):
            self.refused = None  # the alias is back on what is served (or gone)
            if self._current is not None:  # labels sent as feedback reach the label windows
                self._learn_feedback(self._current)
            return
        try:
            model = load_model(self.store, self.name, version, online_url=self.online_url)
            swapped = self._current is not None
            self._current = Serving(model, self.policy)
            self.refused = None
            if swapped:
                refreeze_after_swap()
            log.info("serving %s version %s (%s)", self.name, version, self.alias)
        except OnlineStateError as exc:  # not the version's fault: loaded again once the state is back
            self._say_online(exc, f"version {version} waits for its online window state")
            if self._current is None:
                raise
        except LoopMLError as exc:
            self._refuse(version, exc)
            if self._current is None:
                raise

    def _learn_feedback(self, current: Serving) -> None:
        try:
            current.model.learn_feedback(self.store)
            self._online_problem = ""
        except OnlineStateError as exc:  # requests answer 503 meanwhile; said once, not every second
            self._say_online(exc, "labels wait for the online window state")
        except Exception:  # never fail a request over it: the next check tries again
            log.exception("learning feedback for %s failed; serving on", self.name)

    def _say_online(self, exc: OnlineStateError, what: str) -> None:
        if str(exc) != self._online_problem:
            log.error("model %s: %s: %s", self.name, what, exc)
            self._online_problem = str(exc)

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
        """Re-check the alias on the next request, in that request (after the API itself moved it)."""
        self._forced = True
        self._checked = 0.0

    @property
    def ready(self) -> bool:
        try:
            self.get()
        except LoopMLError:
            return False
        return True
