"""Rows of a batch run that break the model's data contract: never scored, never lost.

Each chunk is checked column by column (:func:`~loopml.validate.check_rows`) before it is scored. A
row that breaks a rule goes, as it was read, with the rule, the column and the value (ingest's
quarantine layout), to a quarantine output beside the scored one:

- a file ``scored.parquet`` or ``scored.csv`` (or a Dask output folder ``scored``):
  ``scored.quarantine.parquet`` in the same folder;
- a database table ``scores``: the table ``scores_quarantine`` in the same database (appended to with
  ``--if-exists append``, written anew otherwise).

It is written (anew) only when a row is quarantined: :attr:`Quarantine.target` and the run's result
say whether this run wrote one. Scored rows plus quarantined rows are the input rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loopml.batch.outputs import Output, ParquetOutput, SqlOutput
from loopml.scoring import LoadedModel
from loopml.validate import ScoringPolicy, check_rows

__all__ = ["Quarantine", "quarantine_path"]


def quarantine_path(output: str | Path) -> Path:
    """The quarantine file beside a file or folder output: ``<parent>/<stem>.quarantine.parquet``."""
    path = Path(output)
    stem = path.name if path.is_dir() or not path.suffix else path.stem
    return path.with_name(f"{stem}.quarantine.parquet")


class Quarantine:
    """Checks each chunk of a batch run and keeps the rows that break the contract.

    ``split(chunk)`` gives the rows to score (index 0..n-1) and their coerced values; ``rows``,
    ``counts`` (by rule) and ``as_missing`` (values scored as missing, by column) add up the run;
    ``target`` is where the quarantined rows went (None while there are none).
    """

    def __init__(self, model: LoadedModel, policy: ScoringPolicy | None, output: Output | Path) -> None:
        self.model, self.policy = model, (policy or ScoringPolicy()).for_version(model.trained_from)
        self.rows, self.read = 0, 0
        self.counts: dict[str, int] = {}
        self.as_missing: dict[str, int] = {}
        self._output: Output | None = None
        self._sql = output if isinstance(output, SqlOutput) else None
        self._path = None if self._sql is not None else quarantine_path(_where(output))

    @property
    def target(self) -> str | None:
        """The quarantine file's path, or ``<table> at <database URL>``; None when nothing was quarantined."""
        if self._output is None:
            return None
        return self._output.target if self._sql is None else f"{self._output.table} at {self._output.target}"

    def split(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of ``chunk`` that keep the contract, and their coerced values; the others are written
        to the quarantine output."""
        chunk = chunk.reset_index(drop=True)
        checked = check_rows(chunk, self.model.coerce(chunk), self.model.contract, self.policy, self.read)
        self.read += len(chunk)
        for column, count in checked.as_missing.items():
            self.as_missing[column] = self.as_missing.get(column, 0) + count
        if checked.kept is None:
            return chunk, checked.coerced
        self.rows += len(checked.quarantined)
        for rule, count in checked.counts.items():
            self.counts[rule] = self.counts.get(rule, 0) + count
        self._writer().write(checked.quarantined)
        return chunk.loc[checked.kept].reset_index(drop=True), checked.coerced

    def _writer(self) -> Output:
        if self._output is None:
            if self._sql is not None:
                sql = self._sql
                mode = "append" if sql.if_exists == "append" else "replace"
                self._output = SqlOutput(sql.url, f"{sql.table}_quarantine", mode)
            else:
                assert self._path is not None
                self._output = ParquetOutput(self._path)
        return self._output

    def close(self) -> None:
        if self._output is not None:
            self._output.close()

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(output: Output | Path) -> Path:
    return output if isinstance(output, Path) else Path(output.target)
