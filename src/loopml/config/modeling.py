"""Modelling sections of the project file: features, training, and the task sections (forecast,
ranking, maintenance)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from loopml.config._base import (
    _DEFAULT_AGGS,
    _DEFAULT_PARTS,
    Aggregate,
    DatetimePart,
    Duration,
    _Frozen,
)


class WindowFeatureConfig(_Frozen):
    """Aggregates of a column per entity over time windows, computed point-in-time.

    ``{entity: customer_id, column: tx_amount, aggs: [count, mean], windows: [1d, 7d]}`` gives the
    card's number of transactions and mean amount over the previous day and week. A ``label_delay``
    (for a column such as the fraud label, known only days later) shifts the windows back so that
    only events older than the delay count. ``relative_to: 7d`` also compares each other window
    with that one (``count_1d / count_7d``, ...) and the row's own value with its mean there
    (``tx_amount / mean_7d``): how unusual this is for this entity, which a model learns from far
    fewer examples than it needs to find the same comparison among raw counts and amounts.
    """

    entity: str = Field(
        ..., description="Column naming the entity (card, customer, terminal).", examples=["customer_id"]
    )
    column: str | None = Field(
        None, description="Column to aggregate; omitted: count events.", examples=["tx_amount"]
    )
    aggs: list[Aggregate] = Field(
        default_factory=lambda: list(_DEFAULT_AGGS), description="Aggregates per window."
    )
    windows: list[Duration] = Field(
        default_factory=lambda: ["1d", "7d", "30d"], description="Window lengths."
    )
    label_delay: Duration | None = Field(
        None, description="Only events older than this count (a label known days later).", examples=["7d"]
    )
    relative_to: Duration | None = Field(
        None,
        description="One of the windows, e.g. 30d: adds each other window's aggregates divided by the "
        "same aggregate over it, and the row's own value divided by its mean over it.",
        examples=["30d"],
    )

    @model_validator(mode="after")
    def _relative_window(self) -> WindowFeatureConfig:
        if self.relative_to is not None:
            if self.relative_to not in self.windows:
                raise ValueError(
                    f"relative_to '{self.relative_to}' is not one of the windows {self.windows}; "
                    "add it to windows or pick one of them"
                )
            if len(self.windows) < 2:
                raise ValueError("relative_to needs at least one other window to compare with it")
        return self


SequenceStat = Literal["mean", "std", "slope"]
_SEQUENCE_STATS: tuple[SequenceStat, ...] = ("mean", "std", "slope")


class SequenceFeaturesConfig(_Frozen):
    """Rolling statistics over each entity's last ``window`` rows in ``order``, computed point-in-time.

    ``{entity: engine, order: cycle, window: 30}`` gives each row the mean, standard deviation and
    slope of every sensor over that engine's last 30 cycles (see ``loopml.features.sequences``). The
    model then sees ``order``, the informative columns and their statistics; columns with fewer than
    ``min_distinct`` distinct training values (constant sensors) are dropped.
    """

    entity: str = Field(
        ..., description="Column naming the unit (engine, pump, ...); never a feature.", examples=["engine"]
    )
    order: str = Field(
        ..., description="Column ordering a unit's rows (cycle number); also a feature.", examples=["cycle"]
    )
    columns: list[str] | None = Field(
        None,
        description="Columns to window; default: every numeric one.",
        examples=[["sensor_2", "sensor_3"]],
    )
    window: int = Field(30, ge=2, description="Rows per window.")
    stats: list[SequenceStat] = Field(
        default_factory=lambda: list(_SEQUENCE_STATS), description="Statistics per column and window."
    )
    min_distinct: int = Field(3, ge=1, description="Fewer distinct training values: dropped as constant.")


class FeaturesConfig(_Frozen):
    """Which columns feed the model and how."""

    include: list[str] | None = Field(
        None,
        description="Columns to use; default: all but the reserved.",
        examples=[["amount", "country", "ordered_at"]],
    )
    drop: list[str] = Field(
        default_factory=list, description="Columns never used as features.", examples=[["customer_id"]]
    )
    categorical: list[str] = Field(
        default_factory=list, description="Force these columns categorical.", examples=[["store_id"]]
    )
    datetime_parts: list[DatetimePart] = Field(
        default_factory=lambda: list(_DEFAULT_PARTS),
        description="Parts of each datetime column used as features. The event_time column is a feature "
        "only when this key is written in loopml.yaml (or features.include names it).",
    )
    windows: list[WindowFeatureConfig] = Field(
        default_factory=list,
        description="Entity window features.",
        examples=[
            [
                {
                    "entity": "customer_id",
                    "column": "tx_amount",
                    "aggs": ["count", "mean"],
                    "windows": ["1d", "7d", "30d"],
                }
            ]
        ],
    )
    sequences: SequenceFeaturesConfig | None = Field(
        None,
        description="Per-unit rolling window statistics (predictive maintenance).",
        examples=[{"entity": "engine", "order": "cycle", "window": 30}],
    )
    rare_category_count: int = Field(
        20, ge=1, description="High-cardinality columns: categories seen fewer times share one code."
    )
    max_categories: int = Field(100, ge=2, description="High-cardinality columns: at most this many codes.")


class TuneConfig(_Frozen):
    """Hyper-parameter search with Optuna; the study is kept in the metadata store."""

    trials: int = Field(0, ge=0, description="Trial budget; 0 turns tuning off.")
    timeout_s: float = Field(120.0, gt=0, description="Time budget in seconds.")
    pruning: bool = Field(True, description="Stop unpromising trials early (median pruning).")


class CostConfig(_Frozen):
    """What each kind of mistake costs, for choosing a binary decision threshold."""

    false_negative: float = Field(1.0, ge=0, description="Cost of a missed positive (a fraud let through).")
    false_positive: float = Field(1.0, ge=0, description="Cost of a false alarm (an investigation).")


class TrainConfig(_Frozen):
    """How a model is fitted and judged."""

    model: str = Field(
        "lightgbm",
        description="lightgbm | hist_gradient_boosting | logistic (classification) | ridge (regression), "
        "or any scikit-learn-compatible estimator as 'package.module:Class'.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Estimator parameters (the tuned ones start here).",
        examples=[{"num_leaves": 63}],
    )
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="Newest rows held out for the final scores."
    )
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Of the training part, for tuning.")
    metric: str | None = Field(None, description="Primary metric; default: the task's.", examples=["roc_auc"])
    precision_at_k: int = Field(100, ge=1, description="k of the precision@k metric (binary tasks).")
    cv_folds: int = Field(0, ge=0, description="Time-ordered cross-validation folds on the training part.")
    bootstrap: int = Field(100, ge=0, description="Bootstrap resamples for confidence intervals.")
    segments: list[str] = Field(
        default_factory=list, description="Columns to report metrics per value of.", examples=[["country"]]
    )
    group_column: str | None = Field(
        None,
        description="Without an event time: keep each group's rows on one side of the split.",
        examples=["customer_id"],
    )
    window: Duration | None = Field(
        None,
        description="Fit on the rows within this long of the newest event time only, e.g. 35d (a time "
        "split; the holdout and the window features still see every row). Default: every row.",
        examples=["35d"],
    )
    costs: CostConfig = Field(CostConfig(), description="Costs of mistakes, for the decision threshold.")
    tune: TuneConfig = Field(TuneConfig(), description="Hyper-parameter search.")
    dask: str | None = Field(
        None,
        description="Train on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'. LightGBM "
        "trains with lightgbm.dask over the workers; Optuna trials run on the workers, sharing the study "
        "in the store (use PostgreSQL when the workers are on other machines). See docs/scaling.md.",
        examples=["tcp://scheduler:8786"],
    )
    report: bool = Field(True, description="Write the HTML training report.")
    seed: int = Field(42, description="Seed of the split, the estimator and the tuning.")


class ForecastConfig(_Frozen):
    """Demand forecasting (``task: forecast``): which series, how far ahead, how it is backtested.

    The source holds transaction lines; ``target`` is the quantity summed into demand per ``item``
    (and per group of ``group_column``) and per period of ``event_time``.
    """

    item: str = Field(
        ..., description="Column naming the product (one series per item and group).", examples=["StockCode"]
    )
    group_column: str | None = Field(
        None, description="Column splitting each item's demand, e.g. Country.", examples=["Country"]
    )
    groups: list[str] = Field(
        default_factory=list,
        description="Values of group_column kept apart; every other value is 'rest'.",
        examples=[["United Kingdom", "Germany"]],
    )
    frequency: Literal["W", "D"] = Field("W", description="W: weeks starting Monday; D: days.")
    horizon: int = Field(4, ge=1, le=52, description="Periods ahead forecast from each origin.")
    series_per_group: int = Field(100, ge=1, description="Keep the top series by volume in each group.")
    min_active: int = Field(26, ge=1, description="Least periods with demand for a series to be kept.")
    origins: int = Field(8, ge=1, description="Rolling backtest origins (the newest periods).")
    tuning_origins: int = Field(4, ge=1, description="Earlier origins, before the backtest, for tuning.")
    stock: str | None = Field(
        None,
        description="CSV of stock on hand (columns item, group, on_hand), relative to the project.",
        examples=["data/stock.csv"],
    )


RankingModel = Literal["popularity", "cooccurrence", "als"]
_RANKING_MODELS: tuple[RankingModel, ...] = ("popularity", "cooccurrence", "als")


class RankingConfig(_Frozen):
    """Recommendations (``task: ranking``): purchase lines as implicit feedback of ``user`` x ``item``.

    Evaluated on items new to each user after the time cut: what a user bought before it is neither
    a candidate nor a hit. Unknown users get the most popular items (of their ``segment`` value, e.g.
    Country, when it has enough buyers).
    """

    user: str = Field(
        ...,
        description="Column naming the customer (rows without one are not used).",
        examples=["CustomerID"],
    )
    item: str = Field(..., description="Column naming the product.", examples=["StockCode"])
    segment: str | None = Field(
        None, description="Column for cold-start popularity, e.g. Country.", examples=["Country"]
    )
    k: int = Field(10, ge=1, le=1000, description="List length: recall@k, NDCG@k, hit rate@k.")
    candidates: list[RankingModel] = Field(
        default_factory=lambda: list(_RANKING_MODELS),
        description="Models fitted and compared; train.model 'auto' keeps the best on validation.",
    )


class MaintenanceConfig(_Frozen):
    """Predictive maintenance: remaining useful life (the project's target) and a failure model.

    The project's own model predicts ``target`` (the RUL, capped at ``rul_cap``); a second, binary
    model named ``failure_model`` (default ``<name>-failure``) predicts ``failure_target``, "fails
    within ``failure_within`` cycles". The maintenance endpoint answers both for one unit's readings.
    """

    rul_cap: int = Field(125, ge=1, description="RUL targets are capped here (early life is flat).")
    failure_within: int = Field(30, ge=1, description="Horizon of the failure label, in cycles.")
    failure_target: str = Field("fails_within_30", description="Binary label column of the failure model.")
    failure_model: str | None = Field(
        None, description="Registry name of the failure model.", examples=["engine-failure"]
    )
    alert_probability: float = Field(0.5, gt=0, lt=1, description="Failure probability flagged as alert.")
