"""Hostile imports and command lines (hypothesis): no traceback, documented exit codes, refusals that name the
field and the reason, and nothing half-written. ``bench/fuzz_drill.py`` runs 10,000 examples per target."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import (
    ImportCase,
    call,
    check_cli_call,
    check_import,
    cli_calls,
    command_paths,
    import_cases,
)

#: Examples per target in the suite (the drill runs many more).
EXAMPLES = 150
#: The same examples on every run, so a red suite always means a change broke something: exploring new inputs is
#: the drill's job (``python -m bench.fuzz_drill --seed N``, 10,000 examples a target), and what it finds
#: becomes a test of its own.
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace for all examples of a target, so later files meet what earlier ones stored."""
    directory = tmp_path_factory.mktemp("fuzz") / "data"
    assert call(["--data-dir", str(directory), "integration", "list"]).code == 0
    return directory


@FUZZ_SETTINGS
@given(case=import_cases())
def test_hostile_import_files_are_refused_cleanly_and_write_only_what_is_valid(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory, case: ImportCase
) -> None:
    check_import(data_dir, tmp_path_factory.getbasetemp(), case)


@FUZZ_SETTINGS
@given(argv=cli_calls(command_paths()))
def test_every_command_survives_hostile_arguments(data_dir: Path, argv: list[str]) -> None:
    check_cli_call(data_dir, argv)


def test_the_cli_fuzzing_reaches_every_command() -> None:
    paths = {" ".join(path) for path, _ in command_paths()}
    assert {"contacts import", "contacts list", "contacts set", "sync", "runs undo", "integration add", "mapping set",
            "config set"} <= paths
    assert "serve" not in paths and not any(path.startswith("sandbox") for path in paths)
