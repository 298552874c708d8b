"""Actual demand as labels of logged forecasts (see :meth:`Predictions.label_forecasts
<loopml.project.predictions.Predictions.label_forecasts>`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml.errors import InputError
from loopml.tasks.forecast_base import demand_panel
from loopml.validate import load_snapshot

if TYPE_CHECKING:
    from loopml.project.core import Project
    from loopml.project.predictions import FeedbackResult

__all__ = ["ForecastLabels", "label_forecasts"]


@dataclass(frozen=True)
class ForecastLabels:
    """Actual demand sent as labels: the last complete period of the data version it came from, how
    many logged forecasts were still waiting for a label, how many of them fall in a complete period
    (the labels sent), and what the feedback stored."""

    dataset_version: int
    complete_to: pd.Timestamp
    waiting: int
    sent: int
    feedback: FeedbackResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_version": self.dataset_version,
            "complete_to": str(self.complete_to.date()),
            "waiting": self.waiting,
            "sent": self.sent,
            "feedback": self.feedback.to_dict(),
        }


def label_forecasts(project: Project, ref: str | int = "champion") -> ForecastLabels:
    """Send the demand of every complete period of the latest data version as the label of each
    logged forecast of that period (series and period) that has none yet.

    The series are those of version ``ref`` and of the waiting forecasts; a series without demand in
    a complete period gets the label 0.
    """
    settings = project.settings
    if settings.forecast is None or settings.event_time is None:
        raise InputError(
            f"project '{project.name}' is not a forecast project (no 'forecast:' section); "
            "only forecasts are labelled from the data."
        )
    logged = project.predictions.logged(event_time=False)
    waiting = logged[logged["label"].isna()]
    inputs = [i for i in waiting["inputs"] if isinstance(i, dict) and "period" in i]
    trained = [(str(k[0]), str(k[1])) for k in project.models.get(ref).metrics["keys"]]
    keys = list(dict.fromkeys([*trained, *((str(i["item"]), str(i["group"])) for i in inputs)]))
    dataset, lines = load_snapshot(project.store, project.name)
    panel = demand_panel(lines, settings.forecast, settings.target, str(settings.event_time), keep=keys)
    actual = {
        (item, group, str(period.date())): float(panel.values[i, t])
        for i, (item, group) in enumerate(zip(panel.items, panel.groups, strict=True))
        for t, period in enumerate(panel.periods)
    }
    labels = []
    for pid, record in zip(waiting["prediction_id"], waiting["inputs"], strict=True):
        if not isinstance(record, dict) or "period" not in record:
            continue
        key = (str(record["item"]), str(record["group"]), str(record["period"])[:10])
        if key in actual:
            labels.append({"prediction_id": pid, "label": actual[key]})
    stored = project.predictions.feedback(labels)  # nothing to send stores nothing
    return ForecastLabels(dataset.version, pd.Timestamp(panel.periods[-1]), len(waiting), len(labels), stored)
