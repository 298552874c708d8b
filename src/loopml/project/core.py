"""The :class:`Project`: one ML system (its ``loopml.yaml`` and its stores), and the only door to it.

Every user-facing operation is a method of :class:`Project` or of a facade it hands out:
``project.data``, ``project.models``, ``project.predictions``, ``project.monitor``,
``project.actions``, ``project.retrain`` and ``project.worker``. The CLI, the server's start-up,
the worker and every example's demo are thin adapters over it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.config import PROJECT_FILE, Settings, failure_settings, load_settings
from loopml.store import Store, open_store

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from loopml.project.actions import Actions
    from loopml.project.check import ConfigCheck
    from loopml.project.data import Data
    from loopml.project.models import Models
    from loopml.project.monitor import Monitor
    from loopml.project.predictions import Predictions
    from loopml.project.retrain import Retrain
    from loopml.project.scaffold import Initialized
    from loopml.project.worker import Worker
    from loopml.serve import ServerProcess
    from loopml.train import TrainOutcome
    from loopml.validate import IngestResult

__all__ = ["Project"]


class Project:
    """One ML system: its settings (``loopml.yaml``) and its stores.

    Examples
    --------
    >>> import tempfile
    >>> from loopml import Project
    >>> project = Project.init(tempfile.mkdtemp(), example="fraud", days=20, n_customers=50,
    ...                        n_terminals=100)
    >>> project.name
    'fraud'
    >>> project.ingest().dataset.version
    1
    """

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self._store = store

    @property
    def store(self) -> Store:
        """The metadata and artifact stores, opened (and migrated) on first use."""
        if self._store is None:
            settings = self.settings
            self._store = open_store(
                settings.db_url, settings.artifacts_url, settings.store.artifacts_options
            )
        return self._store

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", environ: Mapping[str, str] | None = None) -> Project:
        """Read ``<path>/loopml.yaml`` (with ``LOOPML_*`` overrides from ``environ``); the stores it
        names open when first used."""
        return cls(load_settings(path, environ=environ))

    @classmethod
    def init(
        cls, directory: str | os.PathLike[str], *, example: str = "fraud", **data_options: Any
    ) -> Project:
        """Write example ``example``'s ``loopml.yaml`` and data into ``directory`` (created if
        missing; it must not hold a project yet), then open it. ``data_options`` go to the
        example's data writer (the fraud simulator's ``days``, ``seed``, ...)."""
        from loopml.project.examples import get_example

        folder = Path(directory)
        get_example(example).write(folder, **data_options)
        return cls.open(folder)

    @classmethod
    def init_from_file(
        cls,
        directory: str | os.PathLike[str],
        source: str | os.PathLike[str],
        *,
        target: str,
        id_column: str | None = None,
        event_time: str | None = None,
        task: str | None = None,
    ) -> Initialized:
        """Write a project for the user's own CSV or Parquet file ``source`` into ``directory``
        (created if missing; it must not hold a project yet), open it and check it.

        The task is inferred from the ``target`` column unless ``task`` (binary, multiclass or
        regression) is given; ``id_column`` and ``event_time`` name the id and the time of each
        row; the monitoring window suits the data's size and time span. The result says what was
        inferred and why (see :mod:`loopml.project.scaffold`). A column that is not in the file is
        a one-line :class:`~loopml.errors.ConfigError` with the closest one; nothing is written then.

        Examples
        --------
        >>> import tempfile, pandas as pd
        >>> folder = tempfile.mkdtemp()
        >>> pd.DataFrame({"x": range(40), "y": [0, 1] * 20}).to_csv(f"{folder}/rows.csv", index=False)
        >>> started = Project.init_from_file(f"{folder}/p", f"{folder}/rows.csv", target="y")
        >>> started.draft.task.value, started.draft.path == f"{folder}/rows.csv"
        ('binary', True)
        """
        from loopml.project.scaffold import Initialized, draft_project, refuse_existing, write_draft

        folder, file = Path(directory), Path(source)
        refuse_existing(folder)
        draft = draft_project(
            folder, file, target=target, id_column=id_column, event_time=event_time, task=task
        )
        write_draft(folder, draft, str(source))
        project = cls.open(folder)
        return Initialized(project, draft, project.check())

    @staticmethod
    def write_template(directory: str | os.PathLike[str]) -> Path:
        """Write the commented blank ``loopml.yaml`` into ``directory`` (created if missing; it must
        not hold a project yet) and return its path. It explains every section and fails
        ``loopml check`` with "missing required key 'source'" until source and target are filled in.
        """
        from loopml.project.scaffold import write_blank

        return write_blank(Path(directory))

    def check(
        self,
        input_path: str | os.PathLike[str] | None = None,
        *,
        against: Literal["source", "data"] = "source",
    ) -> ConfigCheck:
        """Check every column the project file names (target, id, event time, groups, entity keys,
        feature lists, task sections, cleaning and contract rules) against the columns of the source
        (read cheaply: a CSV header, a Parquet schema, an SQL result's columns), of one
        ``input_path`` file, or with ``against="data"`` of the data set's latest contract.

        Returns what was checked; the first miss is a one-line :class:`~loopml.errors.ConfigError`
        naming the key, the value and the closest real column. :meth:`ingest` and :meth:`train` run
        it first, so nothing is written for a misspelled column. Nothing is written by it either.
        """
        from loopml.project.check import check_data, check_source

        return check_data(self.settings) if against == "data" else check_source(self.settings, input_path)

    def with_settings(self, settings: Settings) -> Project:
        """The same stores under other settings (a changed endpoint, a companion model)."""
        return Project(settings, self.store)

    @property
    def name(self) -> str:
        """The model's (and its data set's) name."""
        return self.settings.name

    @property
    def directory(self) -> Path:
        """The project's folder (where ``loopml.yaml`` is)."""
        return self.settings.project_dir

    @property
    def project_file(self) -> Path:
        return self.settings.project_dir / PROJECT_FILE

    @cached_property
    def companions(self) -> list[Project]:
        """The models trained beside this one from the same data, each as a project over the same
        stores: with a ``maintenance:`` section, the failure model (``fails within N cycles``)."""
        if self.settings.maintenance is None:
            return []
        return [self.with_settings(failure_settings(self.settings))]

    def companion(self, name: str) -> Project:
        """The companion model called ``name`` (see :attr:`companions`)."""
        from loopml.errors import NotFoundError, did_you_mean

        for other in self.companions:
            if other.name == name:
                return other
        names = [c.name for c in self.companions]
        raise NotFoundError(
            f"project '{self.name}' has no companion model '{name}'; "
            + (did_you_mean(name, names) if names else "it trains no model beside its own.")
        )

    # The facades -----------------------------------------------------------------------------

    @cached_property
    def data(self) -> Data:
        """Ingest, data set versions, quarantine, schema changes."""
        from loopml.project.data import Data

        return Data(self)

    @cached_property
    def models(self) -> Models:
        """Train, list, show, compare, promote and roll back model versions."""
        from loopml.project.models import Models

        return Models(self)

    @cached_property
    def predictions(self) -> Predictions:
        """Single and batch predictions, labels (feedback), and the prediction log."""
        from loopml.project.predictions import Predictions

        return Predictions(self)

    @cached_property
    def monitor(self) -> Monitor:
        """Drift, realized and estimated performance, alerts, the dashboard's data."""
        from loopml.project.monitor import Monitor

        return Monitor(self)

    @cached_property
    def actions(self) -> Actions:
        """The action outbox: what it holds, replays, delivering now."""
        from loopml.project.actions import Actions

        return Actions(self)

    @cached_property
    def retrain(self) -> Retrain:
        """The retraining cycle: policy, challenger, gate, promotion; its recorded events."""
        from loopml.project.retrain import Retrain

        return Retrain(self)

    @cached_property
    def worker(self) -> Worker:
        """The long-running loop: policy checks and cycles, the watch, action delivery, log upkeep."""
        from loopml.project.worker import Worker

        return Worker(self)

    # The main verbs, for short scripts and notebooks -------------------------------------------

    def ingest(
        self,
        input_path: str | Path | None = None,
        *,
        progress: Callable[[str, int], None] | None = None,
        dask: Any = None,
    ) -> IngestResult:
        """:meth:`Data.ingest <loopml.project.data.Data.ingest>`."""
        return self.data.ingest(input_path, progress=progress, dask=dask)

    def train(self, dataset_version: int | None = None, *, promote_if_first: bool = True) -> TrainOutcome:
        """:meth:`Models.train <loopml.project.models.Models.train>`."""
        return self.models.train(dataset_version, promote_if_first=promote_if_first)

    # Serving -----------------------------------------------------------------------------------

    def app(self, routers: Iterable[APIRouter] = ()) -> FastAPI:
        """The prediction API for this project (``uvicorn.run(project.app())``), with ``routers``
        (the dashboard's, say) added."""
        from loopml.serve import create_app

        app = create_app(self.settings, self.store)
        for router in routers:
            app.include_router(router)
        return app

    def serve(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        routers: Iterable[APIRouter] = (),
        on_listening: Callable[[str], None] | None = None,
        grpc_port: int | None = None,
        on_grpc_listening: Callable[[str], None] | None = None,
    ) -> None:
        """Run the API in this process until SIGTERM or Ctrl+C (then shut down gracefully).

        The port is bound first: a port in use is a one-line :class:`~loopml.errors.BusyError`
        before anything else happens; then ``on_listening(url)`` (a start-up banner, say) is called.
        With ``grpc_port`` (0: a free one) the Open Inference Protocol is served over gRPC too, on
        the same host, sharing the model, tokens, prediction log and metrics; its port is checked
        first in the same way, then ``on_grpc_listening("host:port")`` is called.
        """
        from loopml._process import configure_process
        from loopml.serve import listen, run_server

        bind_host, bind_port = host or self.settings.serve.host, port or self.settings.serve.port
        with listen(bind_host, bind_port) as sock:
            bound = int(sock.getsockname()[1])
            grpc_bound = None
            if grpc_port is not None:
                with listen(bind_host, grpc_port, "--grpc-port") as probe:  # gRPC binds it itself
                    grpc_bound = int(probe.getsockname()[1])
                if on_grpc_listening is not None:
                    on_grpc_listening(f"{bind_host}:{grpc_bound}")
            if on_listening is not None:
                on_listening(f"http://{bind_host}:{bound}")
            configure_process()
            run_server(
                self.app(routers),
                bind_host,
                bound,
                shutdown_delay=self.settings.serve.shutdown_delay,
                sock=sock,
                grpc_port=grpc_bound,
            )

    def start_server(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        grpc_port: int | None = None,
    ) -> ServerProcess:
        """``loopml serve`` for this project in a child process (its own GIL, as in production): a
        context manager that starts it, waits until it is ready, and stops it with SIGTERM. With
        ``grpc_port`` (0: a free one) it serves gRPC too, at the process's ``grpc_address``."""
        from loopml.serve import ServerProcess

        return ServerProcess(str(self.directory), host=host, port=port, env=env, grpc_port=grpc_port)

    def artifact_uri(self, key: str) -> str:
        """Where an artifact (a report, a snapshot) lives, as a URI or a local path."""
        return self.store.artifacts.uri(key)

    def __repr__(self) -> str:
        return f"Project({self.name!r}, {str(self.directory)!r})"
