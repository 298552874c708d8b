"""Saving models in a format that cannot run code on load.

Pipelines are written with skops and read back trusting only the types listed here (plus the
scikit-learn and NumPy types skops trusts by default); a file naming any other type is refused.
"""

from __future__ import annotations

from typing import Any

from loopml.errors import ArtifactIntegrityError

__all__ = ["TRUSTED_TYPES", "dumps", "loads"]

TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "loopml.features.datetime.DatetimeParts",
    "loopml.features.relative.WindowRatios",  # (name, numerator, denominator) column names only
    "loopml.tasks.forecast.DemandRegressor",  # (its path in versions saved before loopml 0.2)
    "loopml.tasks.forecast_base.DemandRegressor",  # LightGBM on scaled demand plus a blend weight
    "loopml.tasks.recommenders.ALSRecommender",  # item factors, histories, popularity counts
    "loopml.tasks.recommenders.CooccurrenceRecommender",  # item-item similarity as CSR arrays
    "loopml.tasks.recommenders.PopularityRecommender",
    "loopml.train.calibration.ScoreCalibrator",  # the estimate's calibrator: knots or two floats
    "loopml.features.sequences.CycleWindows",  # parameters and column lists only; no code
    "numpy.dtype",  # SimpleImputer's _fit_dtype (linear models' pipelines); data only, no code
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoosting's trees
)


def dumps(obj: Any) -> bytes:
    """Serialise a fitted pipeline to skops bytes."""
    import skops.io as sio

    data: bytes = sio.dumps(obj)
    return data


def _why(exc: BaseException) -> str:
    """``BadZipFile: File is not a zip file``: the exception in one short line."""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def loads(data: bytes) -> Any:
    """Load skops bytes, refusing any type that is not trusted.

    Whatever cannot be read (not a zip file, truncated, not a skops file, a type not trusted) is an
    :class:`ArtifactIntegrityError` with one line saying why, never a raw parser traceback.

    Examples
    --------
    >>> try:
    ...     loads(b"not a zip file")
    ... except ArtifactIntegrityError as exc:
    ...     print(exc.message)
    model artifact is not a readable skops file (BadZipFile: File is not a zip file); refusing to load it.
    """
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # zipfile, JSON and skops errors alike: the file is not what it must be
        raise ArtifactIntegrityError(
            f"model artifact is not a readable skops file ({_why(exc)}); refusing to load it.",
            hint="Re-register the model or restore the original file.",
        ) from None
    untrusted = [t for t in found if t not in TRUSTED_TYPES]
    if untrusted:
        raise ArtifactIntegrityError(
            f"model artifact names untrusted type(s) {', '.join(untrusted)}; refusing to load it.",
            hint="Only loopml's trusted list (loopml.registry.serialize.TRUSTED_TYPES) can be loaded.",
        )
    try:
        return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as exc:
        raise ArtifactIntegrityError(
            f"model artifact cannot be loaded ({_why(exc)}); refusing it.",
            hint="Re-register the model or restore the original file.",
        ) from None
