"""The raw UCI Online Retail transactions: the messy-data example for the ETL stage."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from loopml.project.examples import Example

__all__ = ["EXAMPLE", "write_data"]


def write_data(data_dir: Path, months: int | None = None) -> None:
    """The raw Online Retail lines shipped in the package (the first ``months`` months only, if given)."""
    import pandas as pd

    shipped = resources.files(__name__).joinpath("data", "online_retail.parquet")
    with resources.as_file(shipped) as path:
        if months is None:
            (data_dir / "online_retail.parquet").write_bytes(path.read_bytes())
            return
        frame = pd.read_parquet(path)
    first = frame["InvoiceDate"].min().to_period("M")
    keep = frame["InvoiceDate"].dt.to_period("M") < first + months
    frame[keep].to_parquet(data_dir / "online_retail.parquet", index=False)


EXAMPLE = Example(
    name="retail",
    summary="the raw UCI Online Retail transactions through the ETL stage (messy data, quarantine)",
    package=__name__,
    write_data=f"{__name__}:write_data",
)
