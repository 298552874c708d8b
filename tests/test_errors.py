"""The error tree: stable codes, exit codes and HTTP statuses, suggestions, JSON shape."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import loopml
from loopml import errors
from loopml.errors import (
    ArtifactIntegrityError,
    BusyError,
    ConfigError,
    ContractError,
    DataError,
    InputError,
    LoopMLError,
    MissingExtraError,
    NotFoundError,
    OnlineStateError,
    PayloadTooLargeError,
    ProjectNotFoundError,
    PromotionRefusedError,
    RequestTimeoutError,
    StoreError,
    TooManyConnectionsError,
    UnauthorizedError,
    closest,
    did_you_mean,
)

# The public contract: clients match on these codes, scripts on these exit codes. A rename must fail here.
EXPECTED: dict[type[LoopMLError], tuple[str, int, int]] = {
    LoopMLError: ("loopml_error", 1, 500),
    ConfigError: ("config_invalid", 2, 500),
    ProjectNotFoundError: ("project_not_found", 2, 500),
    MissingExtraError: ("missing_extra", 3, 500),
    DataError: ("data_invalid", 4, 422),
    ContractError: ("contract_violation", 4, 422),
    InputError: ("invalid_input", 4, 422),
    PayloadTooLargeError: ("payload_too_large", 4, 413),
    RequestTimeoutError: ("request_timeout", 4, 408),
    TooManyConnectionsError: ("too_many_connections", 4, 429),
    NotFoundError: ("not_found", 5, 404),
    UnauthorizedError: ("unauthorized", 6, 401),
    StoreError: ("store_error", 7, 503),
    ArtifactIntegrityError: ("artifact_integrity", 7, 503),
    PromotionRefusedError: ("promotion_refused", 7, 409),
    OnlineStateError: ("online_state_unavailable", 7, 503),
    BusyError: ("busy", 8, 409),
}


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(loopml.__path__, "loopml."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue  # migrations run Alembic on import; __main__ runs the CLI
        importlib.import_module(info.name)


def test_every_error_class_has_its_expected_code_exit_code_and_status() -> None:
    _import_every_module()
    classes = {LoopMLError, *_all_subclasses(LoopMLError)}
    loopml_classes = {c for c in classes if c.__module__.startswith("loopml")}
    assert loopml_classes == set(EXPECTED), "a LoopMLError subclass was added or removed: update EXPECTED"
    actual = {cls: (cls.code, cls.exit_code, cls.http_status) for cls in loopml_classes}
    assert actual == EXPECTED


def test_codes_are_unique_and_snake_case() -> None:
    codes = [cls.code for cls in EXPECTED]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert code.isascii() and code.replace("_", "").isalpha() and code.islower(), code


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_exit_codes_and_statuses_are_sane(cls: type[LoopMLError]) -> None:
    assert 1 <= cls.exit_code <= 125  # never 0, never a shell-reserved code
    assert 400 <= cls.http_status <= 599
    # Families share an exit code: a subclass of a concrete error exits like its parent.
    if cls is not LoopMLError:
        parent = next(b for b in cls.__mro__[1:] if issubclass(b, LoopMLError))
        if parent is not LoopMLError:
            assert cls.exit_code == parent.exit_code


def test_every_error_class_is_exported() -> None:
    for cls in EXPECTED:
        assert cls.__name__ in errors.__all__
        assert getattr(errors, cls.__name__) is cls


def test_missing_extra_error_is_an_import_error() -> None:
    assert issubclass(MissingExtraError, ImportError)
    with pytest.raises(ImportError):
        raise MissingExtraError("x is needed")


def test_message_hint_and_details() -> None:
    plain = NotFoundError("model 'a' does not exist.")
    assert str(plain) == "model 'a' does not exist."
    assert plain.hint is None and plain.details is None

    hinted = ConfigError("bad key 'x'.", hint="Fix loopml.yaml.", details={"key": "x"})
    assert hinted.message == "bad key 'x'."
    assert hinted.hint == "Fix loopml.yaml."
    assert str(hinted) == "bad key 'x'. Fix loopml.yaml."


def test_to_dict_shape() -> None:
    assert NotFoundError("gone.").to_dict() == {"code": "not_found", "message": "gone."}
    err = PayloadTooLargeError("too many records.", hint="Send at most 1000.", details={"max": 1000})
    assert err.to_dict() == {
        "code": "payload_too_large",
        "message": "too many records. Send at most 1000.",
        "details": {"max": 1000},
    }


def test_closest() -> None:
    assert closest("modle", ["model", "params", "seed"]) == "model"
    assert closest("serv", ["serve", "store", "source"]) == "serve"
    assert closest("zzzzzz", ["model", "params", "seed"]) is None
    assert closest("model", []) is None
    assert closest("x", iter(["x", "y"])) == "x"  # any iterable


def test_did_you_mean() -> None:
    assert did_you_mean("modle", ["params", "model", "seed"]) == "did you mean 'model'?"
    # Nothing close: the full list of valid choices, sorted.
    assert did_you_mean("zzzzzz", {"seed", "model", "params"}) == "valid: 'model', 'params', 'seed'"
    assert did_you_mean("anything", []) == ""
