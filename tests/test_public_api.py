"""The public API of ``import dsen2cr``: lazy at run time, typed for users' type checkers."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys

import pytest

import dsen2cr
from tests.helpers import REPO

INIT = REPO / "src" / "dsen2cr" / "__init__.py"


def _type_checking_imports() -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:`` in ``dsen2cr/__init__.py``."""
    tree = ast.parse(INIT.read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                out.update({a.name: imp.module for a in imp.names})
    return out


def test_lazy_names_are_declared_for_type_checkers() -> None:
    # the same names from the same modules: a type checker sees what the user gets
    assert _type_checking_imports() == dsen2cr._LAZY
    assert sorted(dsen2cr.__all__) == sorted(["__version__", *dsen2cr._LAZY])


@pytest.mark.parametrize("name", sorted(dsen2cr._LAZY))
def test_lazy_name_resolves_to_its_module_object(name: str) -> None:
    module = importlib.import_module(dsen2cr._LAZY[name])
    assert getattr(dsen2cr, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dsen2cr.nope  # noqa: B018


def test_import_does_not_load_torch() -> None:
    code = "import sys, dsen2cr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_type_checker_sees_the_signatures(tmp_path) -> None:
    # what `reveal_type` shows a user: functions and classes, not `Any` or a module of the same
    # name (dsen2cr.scene.predict is also a module). Uses the cache `make lint` leaves behind.
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import dsen2cr\n"
        + "".join(f"reveal_type(dsen2cr.{name})\n" for name in sorted(dsen2cr._LAZY))
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(probe)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    revealed = [line.split("Revealed type is ", 1)[1] for line in out.stdout.splitlines()
                if "Revealed type is" in line]  # fmt: skip
    assert len(revealed) == len(dsen2cr._LAZY), out.stdout + out.stderr
    for name, shown in zip(sorted(dsen2cr._LAZY), revealed, strict=True):
        # no parameter or return typed Any (numpy's own generics, ndarray[..., dtype[Any]], aside)
        assert not re.search(r"(: |-> )Any\b", shown) and "ModuleType" not in shown, (name, shown)
        assert shown.startswith(('"def', '"Overload', '"type[')), (name, shown)
