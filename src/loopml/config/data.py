"""Data sections of the project file: the source, cleaning and the contract, the store and retention."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from loopml.config._base import (
    Duration,
    DurationOrAuto,
    _Frozen,
    _missing,
)


class SourceConfig(_Frozen):
    """Where the training data comes from.

    Files: ``{kind: csv, path: data/*.csv}``. SQL: ``{kind: sql, url: postgresql://..., table: orders}``
    or a ``query``. With ``watermark: <column>`` each ingest reads only rows whose value in that column
    is greater than the largest one already ingested (the column must grow for new rows).
    """

    kind: str = Field("parquet", description="Source plugin: csv, parquet, sql (or a third-party name).")
    path: str | None = Field(
        None,
        description="File, folder or glob, relative to the project directory.",
        examples=["data/orders.csv"],
    )
    url: str | None = Field(
        None, description="SQLAlchemy URL of an SQL source.", examples=["postgresql://loopml@db/shop"]
    )
    table: str | None = Field(None, description="Table of an SQL source.", examples=["orders"])
    query: str | None = Field(
        None,
        description="SELECT of an SQL source (instead of a table).",
        examples=["SELECT * FROM orders WHERE status = 'done'"],
    )
    watermark: str | None = Field(
        None, description="Column for incremental ingest: only newer rows.", examples=["updated_at"]
    )
    chunk_rows: int = Field(100_000, ge=1, description="Rows read per chunk (bounds memory).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the reader.", examples=[{"sep": ";"}]
    )

    @model_validator(mode="after")
    def _where(self) -> SourceConfig:
        if self.kind == "sql":
            if not self.url:
                raise _missing("url")
            if (self.table is None) == (self.query is None):
                raise ValueError("an sql source takes exactly one of 'table' or 'query'")
        elif self.path is None and self.url is None:
            raise _missing("path")
        return self


FilterOp = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in",
    "startswith", "endswith", "matches", "not_matches", "is_null", "not_null",
]  # fmt: skip


class FilterConfig(_Frozen):
    """A row filter: rows for which ``column op value`` holds go to quarantine under ``rule``.

    ``{rule: cancellation, column: InvoiceNo, op: startswith, value: C}``. Filters never drop a row
    silently: accepted + quarantined = rows read, always.
    """

    rule: str = Field(
        ...,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name recorded with each quarantined row.",
        examples=["cancellation"],
    )
    column: str = Field(..., description="Column the filter tests.", examples=["InvoiceNo"])
    op: FilterOp = Field(..., description="Comparison; is_null and not_null take no value.")
    value: Any = Field(
        None, description="Operand: a value, a list for in/not_in, a regex for matches.", examples=["C"]
    )


class FillPolicy(_Frozen):
    """Replace a missing value with ``fill``."""

    fill: Any = Field(..., description="The value written in place of a missing one.", examples=[0])


MissingPolicy = Literal["keep", "quarantine"] | FillPolicy


class CleaningConfig(_Frozen):
    """How raw rows are cleaned before the contract is enforced (every key has a default)."""

    trim: bool = Field(True, description="Strip surrounding whitespace from text values.")
    dedupe: Literal["none", "id", "row"] = Field("none", description="Quarantine repeated ids or rows.")
    missing: dict[str, MissingPolicy] = Field(
        default_factory=dict,
        description="Per column: keep, quarantine, or {fill: value}.",
        examples=[{"Description": "quarantine", "discount": {"fill": 0}}],
    )
    out_of_range: Literal["quarantine", "clip"] = Field(
        "quarantine", description="A value outside the contract's min/max: quarantine the row, or clip it."
    )
    unknown_category: Literal["quarantine", "keep"] = Field(
        "quarantine", description="A category the contract does not list: quarantine the row, or keep it."
    )
    filters: list[FilterConfig] = Field(
        default_factory=list,
        description="Rows to quarantine by rule.",
        examples=[[{"rule": "cancellation", "column": "InvoiceNo", "op": "startswith", "value": "C"}]],
    )


class ColumnRuleConfig(_Frozen):
    """Extra contract rules for one column; each set key overrides what was inferred."""

    dtype: Literal["int", "float", "bool", "string", "datetime"] | None = Field(None, description="The type.")
    nullable: bool | None = Field(None, description="Whether a missing value is allowed.")
    min: float | None = Field(None, description="Smallest allowed value.", examples=[0])
    max: float | None = Field(None, description="Largest allowed value.", examples=[10000])
    categories: list[str] | None = Field(None, description="The allowed values.", examples=[["card", "cash"]])
    pattern: str | None = Field(
        None, description="A regular expression every value must match.", examples=["^[A-Z]{2}[0-9]{6}$"]
    )
    unique: bool | None = Field(None, description="Whether every value must differ (an id).")
    on_unknown_category: Literal["reject", "missing"] | None = Field(
        None,
        description="This column's contract.on_unknown_category (written into the contract at its "
        "first ingest; later, edit the contract file).",
        examples=["missing"],
    )


class ContractConfig(_Frozen):
    """Rules added to the inferred data contract."""

    category_cap: int = Field(50, ge=0, description="Infer allowed categories up to this many values.")
    on_unknown_category: Literal["reject", "missing"] = Field(
        "reject",
        description="When a model scores (API, v2, batch), a value outside a column's categories: reject "
        "(the API answers 422 naming the field; batch quarantines the row) or missing (scored as a "
        "missing value, and the response says so). A column's own on_unknown_category wins.",
        examples=["missing"],
    )
    event_time_ahead: Duration | None = Field(
        "1d",
        description="When a model scores (API, v2, batch), an event time more than this ahead of the "
        "server clock is refused (the API answers 422 naming the field; batch quarantines the row); "
        "null: no limit.",
        examples=["2h"],
    )
    event_time_before: DurationOrAuto | None = Field(
        "auto",
        description="An event time earlier than the model's first training event by more than this is "
        "refused the same way; auto: the longest window (features.windows with their delay, "
        "monitor.window); null: no limit.",
        examples=["365d"],
    )
    columns: dict[str, ColumnRuleConfig] = Field(
        default_factory=dict,
        description="Per column name: rules that override the inferred ones.",
        examples=[{"amount": {"min": 0, "max": 10000}}],
    )


class RetentionConfig(_Frozen):
    """How long the prediction log keeps records (``loopml predictions prune``, and every worker tick).

    ``None`` keeps them forever. A prediction's feedback goes with it (every reader reaches a label
    through its prediction). Labelled predictions may be kept longer (``labelled``), as training
    and performance data outlive the rest of the log.
    """

    predictions: Duration | None = Field(
        None, description="Delete predictions older than this, e.g. 90d.", examples=["90d"]
    )
    labelled: Duration | None = Field(
        None,
        description="Keep predictions that have feedback this long instead (default: as predictions).",
        examples=["365d"],
    )
    outbox: Duration | None = Field(
        None,
        description="Delete finished actions (delivered, dead, suppressed) older than this, e.g. 30d; "
        "pending ones are never deleted, nor any inside a rule's dedupe or rate-limit window.",
        examples=["30d"],
    )


class StoreConfig(_Frozen):
    """Where metadata and artifacts live; defaults sit under ``<project>/.loopml/``."""

    retention: RetentionConfig = Field(
        RetentionConfig(), description="How long the prediction log keeps records."
    )

    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default: SQLite under .loopml/.",
        examples=["postgresql://loopml@db/loopml"],
    )
    artifacts_url: str | None = Field(
        None,
        description="Any fsspec URL (s3://bucket/prefix, gs://...).",
        examples=["s3://ml-artifacts/loopml"],
    )
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the fsspec filesystem, e.g. {client_kwargs: {endpoint_url: ...}} for S3.",
        examples=[{"client_kwargs": {"endpoint_url": "http://minio:9000"}}],
    )
