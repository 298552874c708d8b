"""Explanations over HTTP: the v2 request's ``explain`` parameters and the tensors that answer them.

On ``/v1`` (``?explain=true&explain_k=5``) each prediction carries its ``explanation`` object (see
:class:`loopml.scoring.explain.Explanation`). A v2 (Open Inference Protocol) client reads tensors,
so there the request's ``parameters`` ask (``{"explain": true, "explain_k": 5}``) and the response
adds, after the requested outputs, one tensor per part of the explanations (``n`` rows, ``m``
entries each: the top k features, then ``(rest)`` when the model has more features than k):

- ``explain_raw_score`` FP64 ``[n]`` and ``explain_base_value`` FP64 ``[n]``;
- ``explain_feature`` BYTES ``[n, m]`` and ``explain_contribution`` FP64 ``[n, m]``, row-major:
  ``explain_base_value[i] + sum(explain_contribution[i, :]) == explain_raw_score[i]``;
- ``explain_class`` BYTES ``[n]`` for a classifier: the class whose raw score is explained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopml.errors import InputError
from loopml.scoring import DEFAULT_TOP_K, MAX_TOP_K

__all__ = ["EXPLAIN_DESCRIPTION", "explain_parameters", "explanation_tensors"]

EXPLAIN_DESCRIPTION = (
    "Also return each prediction's feature contributions: TreeSHAP for tree models, coefficient "
    "times (standardised) value for linear ones, in the names of the input columns (window features "
    "by their own names), the top `explain_k` by magnitude then `(rest)` summing the others, so that "
    "`base_value + sum(contributions) == raw_score` (log-odds of the positive class for a binary "
    "model, the predicted class's raw score for a multiclass one, the value for a regression)."
)


def explain_parameters(parameters: Mapping[str, Any] | None) -> int | None:
    """The top k a v2 request's ``parameters`` ask explanations for, or None when it asks none."""
    parameters = parameters or {}
    explain = parameters.get("explain", False)
    if not isinstance(explain, bool):
        raise InputError(f"field 'parameters.explain': expected true or false; got {explain!r}.")
    k = parameters.get("explain_k", DEFAULT_TOP_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise InputError(
            f"field 'parameters.explain_k': expected an integer from 1 to {MAX_TOP_K}; got {k!r}."
        )
    return k if explain else None


def explanation_tensors(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v2 output tensors of the ``explanation`` of each scored row (see the module's docstring)."""
    explained = [r["explanation"] for r in results]
    n = len(explained)
    width = len(explained[0]["contributions"]) if explained else 0
    tensors = [
        _tensor("explain_raw_score", "FP64", [n], [e["raw_score"] for e in explained]),
        _tensor("explain_base_value", "FP64", [n], [e["base_value"] for e in explained]),
        _tensor(
            "explain_feature",
            "BYTES",
            [n, width],
            [c["feature"] for e in explained for c in e["contributions"]],
        ),
        _tensor(
            "explain_contribution",
            "FP64",
            [n, width],
            [c["contribution"] for e in explained for c in e["contributions"]],
        ),
    ]
    if explained and "class" in explained[0]:
        tensors.append(_tensor("explain_class", "BYTES", [n], [str(e["class"]) for e in explained]))
    return tensors


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}
