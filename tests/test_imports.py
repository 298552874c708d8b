"""``import loopml`` stays light; optional dependencies fail with an error naming the extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loopml._optional import require
from loopml.errors import MissingExtraError

# Heavy or optional libraries that must load only inside the function that needs them.
MUST_NOT_LOAD = ("fastapi", "lightgbm", "dask", "plotly", "uvicorn", "distributed", "optuna", "redis", "pika")
# Core dependencies that are still too slow to load for nothing: `import loopml` and `loopml --help`
# stay well under a second (benchmarks/startup.py). pydantic and yaml come with loopml.config.
SLOW_TO_LOAD = ("pandas", "numpy", "pyarrow", "sqlalchemy", "pydantic", "yaml", "sklearn", "scipy")
# `loopml --help` runs the Typer app as the console script does (`main()`, so `configure_process`
# too), catching the exit of --help to list what it loaded.
HELP = "import contextlib\nfrom loopml.cli import main\nwith contextlib.suppress(SystemExit):\n    main()"


def _modules_after(statement: str, *argv: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _offenders(loaded: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted({m.split(".")[0] for m in loaded} & set(packages))


def test_import_loopml_does_not_load_heavy_libraries() -> None:
    loaded = _modules_after("import loopml")
    assert "loopml" in loaded
    offenders = _offenders(loaded, MUST_NOT_LOAD + SLOW_TO_LOAD)
    assert offenders == [], f"`import loopml` loads {offenders}"


def test_loopml_help_does_not_load_heavy_libraries() -> None:
    loaded = _modules_after(HELP, "--help")
    assert {"loopml.cli", "typer"} <= loaded
    offenders = _offenders(loaded, MUST_NOT_LOAD + SLOW_TO_LOAD)
    assert offenders == [], f"`loopml --help` loads {offenders}"


def test_the_lazy_settings_still_import_from_loopml() -> None:
    import loopml
    from loopml import Settings, load_settings
    from loopml.config import Settings as ConfigSettings
    from loopml.config import load_settings as config_load_settings

    assert Settings is ConfigSettings
    assert load_settings is config_load_settings
    assert {"Settings", "load_settings"} <= set(loopml.__all__)


def test_the_lazy_project_attribute_still_works() -> None:
    import loopml
    from loopml.project import Project

    assert loopml.Project is Project
    assert "Project" in loopml.__all__


def test_unknown_attribute_of_loopml() -> None:
    import loopml

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = loopml.nope


def test_require_returns_an_installed_module() -> None:
    assert require("json").__name__ == "json"


@pytest.mark.parametrize(
    ("module", "purpose", "message", "extra"),
    [
        (
            "lightgbm",
            "the default learner",
            "lightgbm is needed for the default learner but is not installed.",
            "lgbm",
        ),
        ("nats", "", "nats-py is needed but is not installed.", "actions"),
        (
            "prometheus_client.core",
            "metrics",
            "prometheus-client is needed for metrics but is not installed.",
            "serve",
        ),
    ],
)
def test_require_a_missing_module_names_the_extra_and_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, module: str, purpose: str, message: str, extra: str
) -> None:
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    top = module.split(".")[0]
    if top != module:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, top, None)
    with pytest.raises(MissingExtraError) as info:
        require(module, purpose)
    err = info.value
    assert err.message == message
    assert err.hint == f"Install it with: pip install 'loopml[{extra}]'"
    assert isinstance(err, ImportError)
    assert isinstance(err.__cause__, ImportError)


def test_require_an_unknown_missing_module_points_at_the_all_extra() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("loopml_no_such_module.sub")
    assert str(info.value) == (
        "loopml_no_such_module is needed but is not installed. Install it with: pip install 'loopml[all]'"
    )
