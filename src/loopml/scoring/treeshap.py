"""Exact TreeSHAP (path-dependent) for tree ensembles without one built in: HistGradientBoosting.

LightGBM computes its own contributions (``predict(pred_contrib=True)``); scikit-learn's
``HistGradientBoosting*`` has none, so this module implements Algorithm 2 of Lundberg, Erion and
Lee, "Consistent Individualized Feature Attribution for Tree Ensembles" (2018): the same
algorithm, with the same "cover" (training rows through each node), as LightGBM's and the
``shap`` package's ``TreeExplainer(feature_perturbation="tree_path_dependent")``. Values are the
exact Shapley values of the tree's conditional expectations, so ``expected_value(tree) + sum of a
row's contributions`` equals the tree's output for that row, to rounding.

The recursion visits every node once per call; only which child a row takes differs between rows,
so each path weight is an array over the rows and one call explains a whole matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Tree", "expected_value", "hist_gradient_boosting_trees", "tree_shap"]


@dataclass(frozen=True)
class Tree:
    """One regression tree as arrays indexed by node (node 0 is the root; ``left`` is -1 at a leaf).

    A row goes left when its value is ``<= threshold``, or when it is missing (NaN) and
    ``missing_left``. ``value`` is read at leaves; ``cover`` counts the training rows of each node.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    cover: np.ndarray

    def goes_left(self, node: int, X: np.ndarray) -> np.ndarray:
        """Whether each row of ``X`` takes the left child of ``node``."""
        x = X[:, self.feature[node]]
        return np.where(np.isnan(x), bool(self.missing_left[node]), x <= self.threshold[node])


def expected_value(tree: Tree, node: int = 0) -> float:
    """The tree's output averaged over its training rows (each leaf weighted by its share of cover)."""
    left, right = int(tree.left[node]), int(tree.right[node])
    if left < 0:
        return float(tree.value[node])
    cover = float(tree.cover[node])
    left_share, right_share = tree.cover[left] / cover, tree.cover[right] / cover
    return float(left_share * expected_value(tree, left) + right_share * expected_value(tree, right))


# The path of unique features from the root: per element its feature, zero fraction (a float, the
# share of cover that follows the path), one fraction (per row: 1 where the row follows it) and
# permutation weight (per row).
_Path = tuple[list[int], list[float], list[np.ndarray], list[np.ndarray]]


def tree_shap(tree: Tree, X: np.ndarray, phi: np.ndarray) -> None:
    """Add each row's TreeSHAP contributions of ``tree`` to ``phi`` (rows x features of ``X``)."""
    n = len(X)
    if n == 0:
        return
    _recurse(tree, X, phi, 0, ([], [], [], []), 1.0, np.ones(n), -1)


def _recurse(
    tree: Tree,
    X: np.ndarray,
    phi: np.ndarray,
    node: int,
    path: _Path,
    zero: float,
    one: np.ndarray,
    feature: int,
) -> None:
    path = _extend(path, zero, one, feature, len(X))
    left, right = int(tree.left[node]), int(tree.right[node])
    if left < 0:
        _leaf(path, float(tree.value[node]), phi)
        return
    split = int(tree.feature[node])
    features, zeros, ones, _ = path
    incoming_zero, incoming_one = 1.0, np.ones(len(X))
    if split in features[1:]:  # split on before: undo that split, to redo it here
        at = features.index(split, 1)
        incoming_zero, incoming_one = zeros[at], ones[at]
        path = _unwind(path, at)
    go_left = tree.goes_left(node, X)
    cover = float(tree.cover[node])
    for child, goes in ((left, go_left), (right, ~go_left)):
        share = float(tree.cover[child]) / cover if cover else 0.0
        _recurse(tree, X, phi, child, path, incoming_zero * share, incoming_one * goes, split)


def _extend(path: _Path, zero: float, one: np.ndarray, feature: int, n: int) -> _Path:
    features, zeros, ones, weights = path
    depth = len(weights)
    weights = [w.copy() for w in weights] + [np.full(n, 1.0 if depth == 0 else 0.0)]
    for i in range(depth - 1, -1, -1):
        weights[i + 1] += one * weights[i] * (i + 1) / (depth + 1)
        weights[i] = zero * weights[i] * (depth - i) / (depth + 1)
    return [*features, feature], [*zeros, zero], [*ones, one], weights


def _unwind(path: _Path, at: int) -> _Path:
    """The path without element ``at`` (its permutation weights recomputed)."""
    features, zeros, ones, weights = path
    depth = len(weights) - 1
    one, zero = ones[at], zeros[at]
    hot = one != 0
    safe_one = np.where(hot, one, 1.0)
    following = weights[depth].copy()
    kept = [w.copy() for w in weights[:depth]]
    for j in range(depth - 1, -1, -1):
        through = following * (depth + 1) / ((j + 1) * safe_one)
        around = kept[j] * (depth + 1) / (zero * (depth - j)) if zero else np.zeros_like(kept[j])
        new = np.where(hot, through, around)
        following = kept[j] - new * zero * (depth - j) / (depth + 1)
        kept[j] = new
    drop = slice(at, at + 1)
    return (
        features[: drop.start] + features[drop.stop :],
        zeros[: drop.start] + zeros[drop.stop :],
        ones[: drop.start] + ones[drop.stop :],
        kept,
    )


def _leaf(path: _Path, value: float, phi: np.ndarray) -> None:
    """At a leaf: every path feature's share of ``value``, all features of the path at once."""
    features, zeros, ones, weights = path
    depth = len(weights) - 1
    if depth == 0:
        return
    weight = np.stack(weights)  # (depth + 1, n)
    one = np.stack(ones[1:])  # (depth, n)
    zero = np.asarray(zeros[1:], dtype=np.float64)[:, None]  # (depth, 1)
    hot = one != 0
    safe_one, safe_zero = np.where(hot, one, 1.0), np.where(zero != 0, zero, 1.0)
    following = np.broadcast_to(weight[depth], one.shape).copy()
    through, around = np.zeros_like(one), np.zeros_like(one)
    for j in range(depth - 1, -1, -1):
        part = following / ((j + 1) * safe_one)
        through += part
        following = weight[j] - part * zero * (depth - j)
        around += weight[j] / (safe_zero * (depth - j))
    around = np.where(zero != 0, around, 0.0)
    shares = np.where(hot, through, around) * (depth + 1) * (one - zero) * value
    for row, feature in enumerate(features[1:]):  # unique along the path
        phi[:, feature] += shares[row]


def hist_gradient_boosting_trees(model: Any) -> list[list[Tree]]:
    """The trees of a fitted ``HistGradientBoosting*``: one list per iteration, one tree per class
    (one for a regressor or a binary classifier). A tree with a categorical split is refused
    (ValueError): its decisions are bitsets, not thresholds."""
    out = []
    for predictors in model._predictors:
        trees = []
        for predictor in predictors:
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            if np.any(nodes["is_categorical"][~leaf]):
                raise ValueError("a HistGradientBoosting tree with categorical splits")
            trees.append(
                Tree(
                    left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    feature=nodes["feature_idx"].astype(np.int64),
                    threshold=nodes["num_threshold"].astype(np.float64),
                    missing_left=nodes["missing_go_to_left"].astype(bool),
                    value=nodes["value"].astype(np.float64),
                    cover=nodes["count"].astype(np.float64),
                )
            )
        out.append(trees)
    return out
