"""Seeded, vectorised credit-card transaction simulator with labelled fraud and a regime change.

The design follows the chapter "Transaction data simulator" of Le Borgne, Siblini, Lebichot and
Bontempi, *Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook*
(Université Libre de Bruxelles, 2022, https://fraud-detection-handbook.github.io/fraud-detection-handbook/):

* customers live at a uniform location on a 100x100 grid, spend ``Normal(mean, mean / 2)`` per
  transaction with ``mean ~ U(5, 100)`` and make ``Poisson(lam)`` transactions a day, ``lam ~ U(0, 4)``;
* terminals live at a uniform location; a customer uses the terminals within ``radius`` (the nearest
  one if there is none), chosen uniformly per transaction;
* a transaction happens at ``Normal(43200, 20000)`` seconds into its day (draws outside the day are
  discarded, as in the handbook); negative amounts are redrawn as ``U(0, 2 * mean)``; cents rounding.

Fraud scenarios (``tx_fraud_scenario``; later scenarios overwrite earlier labels, as in the handbook):

1. every amount above ``amount_threshold`` (220) is fraud;
2. each day ``Poisson(terminal_compromise_rate)`` terminals are compromised: all their transactions
   in the following ``terminal_compromise_days`` (28) days, that day included, are fraud;
3. each day ``Poisson(card_compromise_rate)`` customers are compromised: during the following
   ``card_compromise_days`` (14) days each of their transactions is, with probability 1/3, fraud and
   has its amount multiplied by ``card_amount_factor`` (5).

The handbook samples a fixed number of terminals/cards a day; here the daily count is Poisson with a
fractional mean so that the fraud rate stays in 0.3-1 % for the smaller default population.

Regime change: from day ``regime_change_day`` on (default 120; ``None`` disables it) the fraudsters
adapt, and every day from the switch uses the ``*_after`` parameters:

* scenario 1 only flags amounts above ``amount_threshold_after`` (300, practically never reached, so
  the large-amount rule all but disappears; ``None`` switches it off);
* terminal compromise becomes more frequent and shorter: ``terminal_compromise_rate_after`` = 2.5
  terminals a day (instead of 0.7) for ``terminal_compromise_days_after`` = 7 days (instead of 28);
  compromises started before the switch run to their end (the scenario-3 amount factor and the
  threshold follow the day of the transaction, the compromise length the day it started);
* compromised cards are drained with many small amounts: ``card_compromise_rate_after`` = 0.2 cards a
  day (instead of 0.4) for ``card_compromise_days_after`` = 7 days (instead of 14); the selected third
  of their transactions is multiplied by ``card_amount_factor_after`` = 0.3 instead of 5, and every
  compromised card-day gets ``Poisson(card_burst_tx_after)`` = Poisson(1.5) extra fraudulent
  transactions (amount drawn from the customer's profile x 0.3, at one of the customer's terminals,
  inside one ``card_burst_window_seconds`` = 1 h window of that day).

A model trained before the switch keys on large amounts and long terminal compromises, so it partly
misses the small-amount bursts and the short compromises, which stay learnable from per-customer
(count, amount relative to the customer's history) and per-terminal (recent fraud) window features.
Both periods keep a fraud rate of roughly 0.5-0.8 %.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SimulationConfig", "simulate"]

SECONDS_PER_DAY = 86_400

_COLUMNS: dict[str, str] = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_time_seconds": "int64",
    "tx_time_days": "int64",
    "tx_fraud": "int64",
    "tx_fraud_scenario": "int64",
}


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator; defaults give ~300k transactions over 182 days.

    Attributes
    ----------
    seed : int
        Seed of the single ``numpy.random.Generator`` used for the whole run.
    start_date : str
        Calendar date of day 0 (midnight).
    days : int
        Number of simulated days.
    n_customers, n_terminals : int
        Population sizes.
    grid_size, radius : float
        Side of the square map and the radius within which a customer uses terminals.
    mean_amount_range : tuple of float
        Bounds of the uniform customer mean amount; the std is half the mean.
    max_mean_tx_per_day : float
        Upper bound of the uniform customer mean number of transactions per day.
    time_of_day_std : float
        Std (seconds) of the time of day, centred on noon.
    amount_threshold : float
        Scenario 1 threshold.
    terminal_compromise_rate, terminal_compromise_days
        Scenario 2: mean terminals compromised per day, and for how many days.
    card_compromise_rate, card_compromise_days
        Scenario 3: mean cards compromised per day, and for how many days.
    card_fraud_share, card_amount_factor : float
        Scenario 3: share of a compromised card's transactions that are fraud, amount multiplier.
    regime_change_day : int or None
        First day of the adapted fraud pattern; ``None`` keeps one regime throughout.
    amount_threshold_after : float or None
        Scenario 1 threshold after the change (``None``: no scenario 1).
    terminal_compromise_rate_after, terminal_compromise_days_after, card_compromise_rate_after,
    card_compromise_days_after, card_amount_factor_after
        Scenario 2 and 3 parameters after the change.
    card_burst_tx_after : float
        Mean extra fraudulent transactions per compromised card-day after the change.
    card_burst_window_seconds : int
        Length of the window the burst transactions fall in.
    """

    seed: int = 42
    start_date: str = "2026-01-01"
    days: int = 182
    n_customers: int = 865
    n_terminals: int = 5_000
    grid_size: float = 100.0
    radius: float = 5.0
    mean_amount_range: tuple[float, float] = (5.0, 100.0)
    max_mean_tx_per_day: float = 4.0
    time_of_day_std: float = 20_000.0
    amount_threshold: float = 220.0
    terminal_compromise_rate: float = 0.7
    terminal_compromise_days: int = 28
    card_compromise_rate: float = 0.4
    card_compromise_days: int = 14
    card_fraud_share: float = 1.0 / 3.0
    card_amount_factor: float = 5.0
    regime_change_day: int | None = 120
    amount_threshold_after: float | None = 300.0
    terminal_compromise_rate_after: float = 2.5
    terminal_compromise_days_after: int = 7
    card_compromise_rate_after: float = 0.2
    card_compromise_days_after: int = 7
    card_amount_factor_after: float = 0.3
    card_burst_tx_after: float = 1.5
    card_burst_window_seconds: int = 3_600

    def __post_init__(self) -> None:
        """Reject configurations the simulator cannot run."""
        positive = {"days": self.days, "n_customers": self.n_customers, "n_terminals": self.n_terminals}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.radius < 0 or self.grid_size <= 0:
            raise ValueError("radius must be >= 0 and grid_size > 0")
        if not 0 < self.card_burst_window_seconds <= SECONDS_PER_DAY:
            raise ValueError("card_burst_window_seconds must be in (0, 86400]")
        if self.regime_change_day is not None and self.regime_change_day < 0:
            raise ValueError("regime_change_day must be >= 0 or None")
        if not 0.0 <= self.card_fraud_share <= 1.0:
            raise ValueError("card_fraud_share must be in [0, 1]")
        pd.Timestamp(self.start_date)  # raises on an unparsable date


@dataclass(frozen=True)
class _Customers:
    """Customer profiles, indexed by customer id."""

    x: np.ndarray
    y: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_tx_per_day: np.ndarray


@dataclass(frozen=True)
class _Usable:
    """Terminals each customer uses, in CSR form: ``ids[offsets[c]:offsets[c + 1]]``."""

    offsets: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class _Daily:
    """Fraud-scenario parameters per day (arrays of length ``days``)."""

    threshold: np.ndarray
    terminal_rate: np.ndarray
    terminal_days: np.ndarray
    card_rate: np.ndarray
    card_days: np.ndarray
    card_factor: np.ndarray
    burst_tx: np.ndarray


@dataclass
class _Transactions:
    """Column arrays of a batch of transactions (unsorted); labels are updated in place."""

    customer: np.ndarray
    terminal: np.ndarray
    day: np.ndarray
    second_of_day: np.ndarray
    amount: np.ndarray
    fraud: np.ndarray
    scenario: np.ndarray


def _batch(
    customer: np.ndarray,
    terminal: np.ndarray,
    day: np.ndarray,
    second_of_day: np.ndarray,
    amount: np.ndarray,
    scenario: int = 0,
) -> _Transactions:
    """Build a batch whose transactions all carry fraud ``scenario`` (0: legitimate)."""
    labels = np.full(customer.size, scenario, dtype=np.int64)
    fraud = (labels > 0).astype(np.int64)
    return _Transactions(
        customer.astype(np.int64),
        terminal,
        day.astype(np.int64),
        second_of_day.astype(np.int64),
        amount,
        fraud,
        labels,
    )


def simulate(config: SimulationConfig | None = None, **overrides: Any) -> pd.DataFrame:
    """Generate the labelled transaction table.

    Parameters
    ----------
    config : SimulationConfig, optional
        Base configuration; the defaults when omitted.
    **overrides
        Field values replacing those of ``config`` (e.g. ``days=30, seed=1``).

    Returns
    -------
    pandas.DataFrame
        One row per transaction, sorted by time, with the columns ``transaction_id``, ``tx_datetime``,
        ``customer_id``, ``terminal_id``, ``tx_amount``, ``tx_time_seconds``, ``tx_time_days``,
        ``tx_fraud`` and ``tx_fraud_scenario``.

    Raises
    ------
    TypeError
        If an override does not name a ``SimulationConfig`` field.
    """
    cfg = _resolve_config(config, overrides)
    rng = np.random.default_rng(cfg.seed)
    customers = _customer_profiles(cfg, rng)
    terminals_xy = rng.uniform(0.0, cfg.grid_size, size=(cfg.n_terminals, 2))
    usable = _usable_terminals(customers, terminals_xy, cfg.radius)
    daily = _daily_parameters(cfg)
    tx = _legitimate_transactions(cfg, customers, usable, rng)
    _label_large_amounts(tx, daily)
    _label_compromised_terminals(tx, daily, cfg.n_terminals, rng)
    card_mask = _label_compromised_cards(tx, daily, cfg, rng)
    bursts = _card_bursts(card_mask, daily, cfg, customers, usable, rng)
    return _to_frame(_concat(tx, bursts), cfg.start_date)


def _resolve_config(config: SimulationConfig | None, overrides: dict[str, Any]) -> SimulationConfig:
    """Apply keyword overrides to the base configuration, rejecting unknown names."""
    base = SimulationConfig() if config is None else config
    known = {f.name for f in dataclasses.fields(SimulationConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"simulate() got unknown parameter(s): {', '.join(unknown)}")
    return dataclasses.replace(base, **overrides) if overrides else base


def _customer_profiles(cfg: SimulationConfig, rng: np.random.Generator) -> _Customers:
    """Draw location, spending and activity of every customer."""
    n = cfg.n_customers
    xy = rng.uniform(0.0, cfg.grid_size, size=(n, 2))
    low, high = cfg.mean_amount_range
    mean_amount = rng.uniform(low, high, size=n)
    mean_tx = rng.uniform(0.0, cfg.max_mean_tx_per_day, size=n)
    return _Customers(xy[:, 0], xy[:, 1], mean_amount, mean_amount / 2.0, mean_tx)


def _usable_terminals(customers: _Customers, terminals_xy: np.ndarray, radius: float) -> _Usable:
    """List, per customer, the terminals within ``radius`` (or the nearest one), chunked for memory."""
    chunk = max(1, 4_000_000 // len(terminals_xy))
    counts: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for start in range(0, customers.x.size, chunk):
        dx = customers.x[start : start + chunk, None] - terminals_xy[None, :, 0]
        dy = customers.y[start : start + chunk, None] - terminals_xy[None, :, 1]
        dist2 = dx * dx + dy * dy
        within = dist2 <= radius * radius
        within[np.arange(len(dist2)), dist2.argmin(axis=1)] |= ~within.any(axis=1)
        rows, cols = np.nonzero(within)
        counts.append(np.bincount(rows, minlength=len(dist2)))
        ids.append(cols.astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return _Usable(offsets, np.concatenate(ids))


def _daily_parameters(cfg: SimulationConfig) -> _Daily:
    """Expand the before/after scenario parameters to one value per day."""
    days = np.arange(cfg.days)
    after = days >= cfg.regime_change_day if cfg.regime_change_day is not None else np.zeros(cfg.days, bool)
    threshold_after = np.inf if cfg.amount_threshold_after is None else cfg.amount_threshold_after

    def pick(before: float, later: float) -> np.ndarray:
        return np.where(after, later, before).astype(np.float64)

    return _Daily(
        threshold=pick(cfg.amount_threshold, threshold_after),
        terminal_rate=pick(cfg.terminal_compromise_rate, cfg.terminal_compromise_rate_after),
        terminal_days=pick(cfg.terminal_compromise_days, cfg.terminal_compromise_days_after).astype(np.int64),
        card_rate=pick(cfg.card_compromise_rate, cfg.card_compromise_rate_after),
        card_days=pick(cfg.card_compromise_days, cfg.card_compromise_days_after).astype(np.int64),
        card_factor=pick(cfg.card_amount_factor, cfg.card_amount_factor_after),
        burst_tx=pick(0.0, cfg.card_burst_tx_after),
    )


def _draw_amounts(customer: np.ndarray, customers: _Customers, rng: np.random.Generator) -> np.ndarray:
    """Draw ``Normal(mean, std)`` amounts, redrawing negatives as ``U(0, 2 mean)``, in cents."""
    mean = customers.mean_amount[customer]
    amount = rng.normal(mean, customers.std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
    return np.round(amount, 2)


def _draw_terminals(customer: np.ndarray, usable: _Usable, rng: np.random.Generator) -> np.ndarray:
    """Pick, for each transaction, one of its customer's terminals uniformly."""
    start = usable.offsets[customer]
    count = usable.offsets[customer + 1] - start
    pick = np.floor(rng.random(customer.size) * count).astype(np.int64)
    return usable.ids[start + pick]


def _legitimate_transactions(
    cfg: SimulationConfig, customers: _Customers, usable: _Usable, rng: np.random.Generator
) -> _Transactions:
    """Draw every customer's daily transactions (counts, times, amounts, terminals)."""
    counts = rng.poisson(customers.mean_tx_per_day[None, :], size=(cfg.days, cfg.n_customers))
    day = np.repeat(np.repeat(np.arange(cfg.days), cfg.n_customers), counts.ravel())
    customer = np.repeat(np.tile(np.arange(cfg.n_customers), cfg.days), counts.ravel())
    seconds = rng.normal(SECONDS_PER_DAY / 2, cfg.time_of_day_std, size=day.size)
    keep = (seconds >= 0) & (seconds < SECONDS_PER_DAY)
    day, customer, seconds = day[keep], customer[keep], seconds[keep]
    amount = _draw_amounts(customer, customers, rng)
    terminal = _draw_terminals(customer, usable, rng)
    return _batch(customer, terminal, day, seconds, amount)


def _label_large_amounts(tx: _Transactions, daily: _Daily) -> None:
    """Scenario 1: amounts above the day's threshold are fraud."""
    hit = tx.amount > daily.threshold[tx.day]
    tx.fraud[hit] = 1
    tx.scenario[hit] = 1


def _compromise_mask(
    rate: np.ndarray, duration: np.ndarray, n_ids: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``Poisson(rate[d])`` ids on each day ``d``; mark them for ``duration[d]`` days.

    Returns
    -------
    numpy.ndarray
        Boolean ``(n_ids, days)`` matrix, true where the id is compromised on that day.
    """
    days = rate.size
    start = np.repeat(np.arange(days), rng.poisson(rate))
    ids = rng.integers(0, n_ids, size=start.size)
    diff = np.zeros((n_ids, days + 1), dtype=np.int64)
    np.add.at(diff, (ids, start), 1)
    np.add.at(diff, (ids, np.minimum(start + duration[start], days)), -1)
    return np.cumsum(diff, axis=1)[:, :days] > 0


def _label_compromised_terminals(
    tx: _Transactions, daily: _Daily, n_terminals: int, rng: np.random.Generator
) -> None:
    """Scenario 2: every transaction at a compromised terminal is fraud."""
    mask = _compromise_mask(daily.terminal_rate, daily.terminal_days, n_terminals, rng)
    hit = mask[tx.terminal, tx.day]
    tx.fraud[hit] = 1
    tx.scenario[hit] = 2


def _label_compromised_cards(
    tx: _Transactions, daily: _Daily, cfg: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Scenario 3: a share of a compromised card's transactions are fraud with a scaled amount.

    Returns
    -------
    numpy.ndarray
        The ``(n_customers, days)`` compromise mask, reused for the post-change bursts.
    """
    mask = _compromise_mask(daily.card_rate, daily.card_days, cfg.n_customers, rng)
    chosen = rng.random(tx.customer.size) < cfg.card_fraud_share
    hit = mask[tx.customer, tx.day] & chosen
    tx.amount[hit] = np.round(tx.amount[hit] * daily.card_factor[tx.day[hit]], 2)
    tx.fraud[hit] = 1
    tx.scenario[hit] = 3
    return mask


def _card_bursts(
    mask: np.ndarray,
    daily: _Daily,
    cfg: SimulationConfig,
    customers: _Customers,
    usable: _Usable,
    rng: np.random.Generator,
) -> _Transactions:
    """Post-change scenario 3: bursts of extra small fraudulent transactions on compromised cards."""
    cust, day = np.nonzero(mask & (daily.burst_tx > 0)[None, :])
    n_extra = rng.poisson(daily.burst_tx[day])
    window = cfg.card_burst_window_seconds
    burst_start = rng.integers(0, SECONDS_PER_DAY - window + 1, size=cust.size)
    customer = np.repeat(cust, n_extra)
    tx_day = np.repeat(day, n_extra)
    seconds = np.repeat(burst_start, n_extra) + rng.integers(0, window, size=customer.size)
    factor = daily.card_factor[tx_day]
    amount = np.round(_draw_amounts(customer, customers, rng) * factor, 2)
    terminal = _draw_terminals(customer, usable, rng)
    return _batch(customer, terminal, tx_day, seconds, amount, scenario=3)


def _concat(first: _Transactions, second: _Transactions) -> _Transactions:
    """Stack two transaction batches."""
    names = [f.name for f in dataclasses.fields(_Transactions)]
    joined = {n: np.concatenate([getattr(first, n), getattr(second, n)]) for n in names}
    return _Transactions(**joined)


def _to_frame(tx: _Transactions, start_date: str) -> pd.DataFrame:
    """Sort by time (ties by customer, then terminal) and build the typed output frame."""
    seconds = tx.day * SECONDS_PER_DAY + tx.second_of_day
    order = np.lexsort((tx.terminal, tx.customer, seconds))
    seconds = seconds[order]
    start = pd.Timestamp(start_date).normalize().as_unit("ns").to_datetime64()
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(order.size),
            "tx_datetime": start + seconds.astype("timedelta64[s]"),
            "customer_id": tx.customer[order],
            "terminal_id": tx.terminal[order],
            "tx_amount": tx.amount[order],
            "tx_time_seconds": seconds,
            "tx_time_days": tx.day[order],
            "tx_fraud": tx.fraud[order],
            "tx_fraud_scenario": tx.scenario[order],
        }
    )
    return frame.astype(_COLUMNS)
