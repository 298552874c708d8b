"""What every section of the project file shares: frozen models, durations, a missing-key error."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, WithJsonSchema
from pydantic_core import InitErrorDetails

PROJECT_FILE = "loopml.yaml"
ENV_PREFIX = "LOOPML_"
_DURATION = re.compile(r"\d+[smhdw]")
_ENV_ALIASES = {
    "DB_URL": ("store", "db_url"),
    "ARTIFACTS_URL": ("store", "artifacts_url"),
    "ONLINE_URL": ("serve", "online_store"),
}


DatetimePart = Literal["hour", "dayofweek", "day", "month", "is_weekend", "is_night"]
_DEFAULT_PARTS: tuple[DatetimePart, ...] = ("hour", "dayofweek", "is_weekend", "is_night")
Aggregate = Literal["count", "sum", "mean", "max"]
_DEFAULT_AGGS: tuple[Aggregate, ...] = ("count", "mean")


def _check_duration(value: str) -> str:
    if not _DURATION.fullmatch(value):
        raise ValueError("durations look like 30m, 1h, 7d or 2w")
    return value


Duration = Annotated[  # 30s, 10m, 1h, 7d, 2w
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+[smhdw]$", "examples": ["30m", "1h", "7d", "2w"]}),
]


def _check_duration_or_auto(value: str) -> str:
    if value != "auto" and not _DURATION.fullmatch(value):
        raise ValueError("durations look like 30m, 1h, 7d or 2w (or auto)")
    return value


DurationOrAuto = Annotated[  # a duration, or "auto": loopml works it out
    str,
    AfterValidator(_check_duration_or_auto),
    WithJsonSchema({"type": "string", "pattern": "^(auto|[0-9]+[smhdw])$", "examples": ["auto", "30d"]}),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


def _missing(key: str) -> ValidationError:
    """A pydantic "missing key" error located at ``key`` (reported like any other missing key)."""
    return ValidationError.from_exception_data(
        "source", [InitErrorDetails(type="missing", loc=(key,), input={})]
    )
