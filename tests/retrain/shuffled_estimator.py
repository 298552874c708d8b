"""An estimator with a bug: it trains on shuffled labels (a user's `module:Class` estimator)."""

from __future__ import annotations

from typing import Any

import numpy as np
from lightgbm import LGBMClassifier


class ShuffledLabelsClassifier(LGBMClassifier):
    def fit(self, X: Any, y: Any, **kwargs: Any) -> ShuffledLabelsClassifier:
        rng = np.random.default_rng(self.random_state)
        super().fit(X, rng.permutation(np.asarray(y)), **kwargs)
        return self
