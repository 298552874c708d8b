"""Recommendations from the UCI Online Retail purchases (shared with the retail example's data file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from loopml.examples import REAL_DATA_DEMO
from loopml.project.examples import Example

__all__ = ["CUT", "EXAMPLE", "later_lines", "write_data"]

CUT = "2011-10-01"  # the shipped project starts with the lines before this; the demo replays the rest


def _shipped() -> object:
    return resources.files("loopml.examples.retail").joinpath("data", "online_retail.parquet")


def later_lines(since: str = CUT) -> object:
    """The raw lines from ``since`` on (the purchases the demo replays as feedback, then ingests)."""
    import pandas as pd

    with resources.as_file(_shipped()) as path:  # type: ignore[arg-type]
        frame = pd.read_parquet(path)
    return frame[frame["InvoiceDate"] >= pd.Timestamp(since)].reset_index(drop=True)


def write_data(data_dir: Path, until: str | None = CUT, months: int | None = None) -> None:
    """Write the raw Online Retail lines before ``until`` (all of them with ``until=None``) into
    ``data_dir/lines/``; ``months`` keeps only the first months (small projects for tests)."""
    import pandas as pd

    with resources.as_file(_shipped()) as path:  # type: ignore[arg-type]
        frame = pd.read_parquet(path)
    keep = pd.Series(True, index=frame.index)
    if until is not None:
        keep &= frame["InvoiceDate"] < pd.Timestamp(until)
    if months is not None:
        first = frame["InvoiceDate"].min().to_period("M")
        keep &= frame["InvoiceDate"].dt.to_period("M") < first + months
    folder = data_dir / "lines"
    folder.mkdir(parents=True, exist_ok=True)
    frame[keep].to_parquet(folder / "lines-0001.parquet", index=False)


EXAMPLE = Example(
    name="recommend",
    summary="top-k products per customer from the Online Retail purchases (ranking)",
    package=__name__,
    write_data=f"{__name__}:write_data",
    demo=f"{__name__}.demo",
    not_taken=REAL_DATA_DEMO,
)
