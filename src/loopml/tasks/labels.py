"""What a label (ground truth sent as feedback) may be, per task: checked before it is stored.

Monitoring, concept drift, the retraining gate and window features over the target all read the
labels that came back, so one label of the wrong kind poisons them. Each task says what it takes
(``Task.check_label``): binary ``0``/``1`` or ``true``/``false``; multiclass one of the classes the
version was trained on; regression a finite number of the target's type, within the target's
``min``/``max`` when its data contract sets them; forecast and ranking a finite number. A check
returns the label to store (``true`` is stored as ``1``; ``2.0`` of an integer target as ``2``) or
raises :class:`ValueError` saying what was received and what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopml.validate import ColumnSpec, DataContract
from loopml.validate.policy import shown

__all__ = [
    "LabelSpec",
    "binary_label",
    "class_label",
    "finite_label",
    "target_label",
]

_CLASSES_SHOWN = 12


@dataclass(frozen=True)
class LabelSpec:
    """What a version knows about its labels: its classes (classifiers) and the target's contract."""

    classes: tuple[Any, ...] | None = None
    target: ColumnSpec | None = None

    @classmethod
    def of(cls, signature: Mapping[str, Any]) -> LabelSpec:
        """From a version's signature (``classes``, ``contract``, ``target``)."""
        classes = signature.get("classes")
        target: ColumnSpec | None = None
        contract, name = signature.get("contract"), signature.get("target")
        if contract and name:
            columns = DataContract.model_validate(contract)
            target = columns.column(name) if name in columns.names else None
        return cls(tuple(classes) if classes is not None else None, target)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (labels read from a file arrive as numpy's)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" else value


def _not(value: Any, expected: str) -> ValueError:
    """``'yes' is text, not 0, 1, true or false``; ``5 is not ...`` for a number or null."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return ValueError(f"{shown(value)} is not {expected}")
    return ValueError(f"{shown(value)} is {_kind(value)}, not {expected}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list | tuple) else "an object"


def _number(value: Any) -> float | int:
    """A finite JSON number (never a boolean, never text), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _not(value, "a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{shown(value)} is not a finite number")
    return value


def binary_label(value: Any, spec: LabelSpec) -> int:
    """0 or 1 (also ``true``/``false``, ``0.0``/``1.0``), stored as 0 or 1.

    >>> binary_label(True, LabelSpec()), binary_label(0.0, LabelSpec())
    (1, 0)
    >>> binary_label("yes", LabelSpec())
    Traceback (most recent call last):
    ValueError: 'yes' is text, not 0, 1, true or false
    """
    value = _plain(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    raise _not(value, "0, 1, true or false")


def class_label(value: Any, spec: LabelSpec) -> Any:
    """One of the version's classes, of the same type (``2.0`` for the class ``2`` is ``2``; text
    ``"2"`` is not).

    >>> class_label("b", LabelSpec(classes=("a", "b")))
    'b'
    >>> class_label(5, LabelSpec(classes=("a", "b")))
    Traceback (most recent call last):
    ValueError: 5 is not one of the classes a, b
    """
    value = _plain(value)
    if value is None or isinstance(value, list | tuple | dict):
        raise _not(value, "a class")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{shown(value)} is not a class")
    if spec.classes is None:
        return value
    for known in spec.classes:
        same_kind = isinstance(known, bool) == isinstance(value, bool) and isinstance(
            known, str
        ) == isinstance(value, str)
        if same_kind and known == value:
            return known
    listed = ", ".join(str(c) for c in spec.classes[:_CLASSES_SHOWN])
    more = f", ... ({len(spec.classes)} in all)" if len(spec.classes) > _CLASSES_SHOWN else ""
    raise ValueError(f"{shown(value)} is not one of the classes {listed}{more}")


def finite_label(value: Any, spec: LabelSpec) -> float | int:
    """A finite number (a forecast's demand, a ranking's hits)."""
    return _number(_plain(value))


def target_label(value: Any, spec: LabelSpec) -> float | int:
    """A finite number of the target's type (whole for an integer target), within the target's
    ``min``/``max`` when its data contract sets them (ingest refuses such a row too).

    >>> target_label(2.0, LabelSpec(target=ColumnSpec(name="y", dtype="int", max=10)))
    2
    >>> target_label(1e308, LabelSpec(target=ColumnSpec(name="y", dtype="float", max=10)))
    Traceback (most recent call last):
    ValueError: 1e+308 is above the target's maximum 10 (its data contract)
    """
    number = _number(_plain(value))
    target = spec.target
    if target is None:
        return number
    if target.dtype == "int":
        if not float(number).is_integer():
            raise ValueError(f"{shown(number)} is not a whole number, as target '{target.name}' is")
        number = int(number)
    if target.min is not None and number < target.min:
        raise ValueError(f"{shown(number)} is below the target's minimum {target.min:g} (its data contract)")
    if target.max is not None and number > target.max:
        raise ValueError(f"{shown(number)} is above the target's maximum {target.max:g} (its data contract)")
    return number
