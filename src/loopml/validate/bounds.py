"""The bounds a data contract infers for numbers: the ``max`` (:func:`upper_bound`), and which columns
get none because they grow with time (:class:`Trend`). The rule is documented in
:mod:`loopml.validate.contract`."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

__all__ = [
    "MAX_MARGIN",
    "RISING_CORRELATION",
    "TREND_SAMPLE_ROWS",
    "Trend",
    "is_number",
    "looks_like_id",
    "upper_bound",
]

MAX_MARGIN = 1.0  # max = observed max + MAX_MARGIN * max(observed range, |observed max|)
RISING_CORRELATION = 0.9  # rank correlation with the event time from which a column "grows with time"
TREND_SAMPLE_ROWS = 20_000  # rows kept (spread over the data) to judge which columns rise with time


_ID_NAME = re.compile(r"(?i:^(?:.*[_\s.-])?id)$|[a-z0-9]I[dD]$")


def looks_like_id(name: str) -> bool:
    """Whether a column's name says it identifies something (``id``, ``customer_id``, ``CustomerID``).

    Examples
    --------
    >>> [looks_like_id(n) for n in ("id", "customer_id", "Card ID", "CustomerID", "cardId", "paid", "UDI")]
    [True, True, True, True, True, False, False]
    """
    return bool(_ID_NAME.search(name))


def upper_bound(low: float, high: float) -> float:
    """The inferred ``max`` of a column whose values were seen between ``low`` and ``high``.

    Examples
    --------
    >>> upper_bound(295.3, 304.5), upper_bound(0, 1), upper_bound(-20, 35), upper_bound(-3, -1)
    (609.0, 2.0, 90.0, 0.0)
    """
    if high <= 0:
        return 0.0
    bound = high + MAX_MARGIN * max(high - low, abs(high))
    step = 10.0 ** (math.floor(math.log10(bound)) - 2)  # three significant digits, rounded up
    return float(f"{math.ceil(bound / step - 1e-9) * step:.12g}")


def _seconds(values: pd.Series) -> pd.Series:
    """Event times as float seconds (NaN where missing or unreadable), for ranking only."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    times = pd.to_datetime(values, errors="coerce", utc=True)
    return (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(1, "s")


class Trend:
    """A spread sample of the rows (every ``stride``-th, the stride doubling as rows arrive), holding
    the event time and the numeric columns, to find the columns that rise with the event time."""

    def __init__(self, event_time: str, cap: int = TREND_SAMPLE_ROWS) -> None:
        self.event_time, self.cap = event_time, cap
        self.stride, self.seen = 1, 0
        self.parts: list[tuple[pd.Series, pd.DataFrame]] = []  # (seconds, numbers) per chunk

    def update(self, frame: pd.DataFrame) -> None:
        start, self.seen = self.seen, self.seen + len(frame)
        if self.event_time not in frame.columns:
            return
        rows = np.arange(start, self.seen)
        take = rows % self.stride == 0
        numbers = [c for c in frame.columns if is_number(frame[c]) and c != self.event_time]
        values = frame.loc[take, numbers].astype(float).set_axis(rows[take])
        times = _seconds(frame.loc[take, self.event_time]).set_axis(rows[take])
        self.parts.append((times, values))
        while sum(len(t) for t, _ in self.parts) > self.cap:
            self.stride *= 2
            keep = self.stride
            self.parts = [(t[t.index % keep == 0], v[v.index % keep == 0]) for t, v in self.parts]

    def rising(self) -> set[str]:
        """The columns that never decrease as the event time grows (a day number, a counter), or
        whose rank correlation with it is at least RISING_CORRELATION (a noisy running total)."""
        if not self.parts:
            return set()
        times = pd.concat([t for t, _ in self.parts])
        values = pd.concat([v for _, v in self.parts])
        found = set()
        for name in values.columns:
            pair = pd.DataFrame({"t": times, "v": values[name]}).dropna()
            if len(pair) < 2 or pair.nunique().min() < 2:
                continue
            steps = pair.sort_values(["t", "v"])["v"].diff().iloc[1:]
            rho = float(np.corrcoef(pair.rank().to_numpy().T)[0, 1])
            if bool((steps >= 0).all()) or rho >= RISING_CORRELATION:
                found.add(str(name))
        return found


def is_number(series: pd.Series) -> bool:
    """A number column (not a boolean)."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
