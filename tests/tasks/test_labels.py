"""Labels checked per task before they are stored (``Task.check_label``, ``loopml.tasks.label_check``):
every kind of bad label the issue found stored is refused with a message saying what was received and
what is expected; good ones are normalized (``true`` -> 1, ``2.0`` of an integer target -> 2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from loopml.tasks import TASKS, LabelSpec, label_check
from loopml.validate import ColumnSpec, DataContract

BAD_EVERYWHERE: list[Any] = [{"a": 1}, None, [1], "NaN", math.nan, math.inf]


def signature(task: str, **extra: Any) -> dict[str, Any]:
    return {"task": task, **extra}


def refused(check: Any, value: Any, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        check(value)


@pytest.mark.parametrize("value", [*BAD_EVERYWHERE, "yes", 5, -1, 1e308, 0.5, "1", "true", 2])
def test_binary_takes_only_0_1_true_false(value: Any) -> None:
    refused(label_check(signature("binary")), value, "not 0, 1, true or false")


@pytest.mark.parametrize(
    ("value", "stored"),
    [(0, 0), (1, 1), (True, 1), (False, 0), (1.0, 1), (np.int64(1), 1), (np.bool_(False), 0)],
)
def test_binary_good_labels_are_stored_as_0_or_1(value: Any, stored: int) -> None:
    result = label_check(signature("binary"))(value)
    assert result == stored and type(result) is int


@pytest.mark.parametrize("value", [*BAD_EVERYWHERE, "yes", 5, True, "0", 1e308])
def test_multiclass_takes_a_known_class_of_its_type(value: Any) -> None:
    refused(label_check(signature("multiclass", classes=[0, 1, 2])), value, r"class")


def test_multiclass_class_names() -> None:
    check = label_check(signature("multiclass", classes=["cat", "dog"]))
    assert check("dog") == "dog" and label_check(signature("multiclass", classes=[0, 1, 2]))(2.0) == 2
    refused(check, "Dog", "not one of the classes cat, dog")
    refused(check, 1, "not one of the classes cat, dog")


CONTRACT = DataContract(
    name="t", columns=[ColumnSpec(name="y", dtype="int", min=0, max=125)], target="y"
).model_dump()


@pytest.mark.parametrize(
    ("value", "said"),
    [
        *[(v, "not") for v in BAD_EVERYWHERE],
        ("yes", "text, not a number"),
        (True, "a boolean, not a number"),
        (1e308, "above the target's maximum 125"),
        (-1, "below the target's minimum 0"),
        (1.5, "not a whole number"),
    ],
)
def test_regression_takes_a_finite_number_of_the_target_s_type_and_range(value: Any, said: str) -> None:
    refused(label_check(signature("regression", target="y", contract=CONTRACT)), value, said)


def test_regression_good_labels() -> None:
    check = label_check(signature("regression", target="y", contract=CONTRACT))
    assert check(3.0) == 3 and check(np.int64(125)) == 125
    unbounded = label_check(signature("regression"))  # a version without a contract: finite numbers
    assert unbounded(1e308) == 1e308
    refused(unbounded, math.inf, "not a finite number")


@pytest.mark.parametrize("kind", list(TASKS))
def test_every_task_refuses_a_null_a_list_and_an_object(kind: str) -> None:
    task = TASKS[kind]  # type: ignore[index]
    for value in (None, [1], {"a": 1}):
        with pytest.raises(ValueError):
            task.check_label(value, LabelSpec())
