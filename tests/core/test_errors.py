"""One error base for every package; the classes that replaced built-ins still are those built-ins."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import errors
from core.errors import (
    DetectorError,
    DeviceUnavailableError,
    GuardError,
    InputError,
    ModelUnavailableError,
    UnavailableError,
    VerificationError,
)

CORE = Path(errors.__file__).resolve().parent


def test_every_error_is_a_guard_error_with_an_exit_code():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert all(issubclass(c, GuardError) for c in classes)
    assert {c.exit_code for c in classes} == {1, 2} and VerificationError.exit_code == 1


@pytest.mark.parametrize("cls, builtin", [(InputError, ValueError), (ModelUnavailableError, FileNotFoundError),
                                          (DeviceUnavailableError, RuntimeError)])
def test_callers_of_the_old_builtins_still_catch_them(cls, builtin):
    with pytest.raises(builtin, match="weights.bin: gone"):
        raise cls("weights.bin: gone")
    assert str(cls("weights.bin: gone")) == "weights.bin: gone"


def test_unavailable_is_about_the_machine_not_the_request():
    assert issubclass(ModelUnavailableError, UnavailableError) and issubclass(DeviceUnavailableError, UnavailableError)
    assert not issubclass(InputError, UnavailableError) and not issubclass(DetectorError, UnavailableError)


def test_core_imports_nothing_of_the_other_packages():
    ours = {"guard", "detectors", "generators", "policies", "benchmarks", "tests"}
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not {n.split(".")[0] for n in names} & ours, f"{path.name} imports {names}"
