"""The public surface is what ``__all__`` says, no more and no less.

``ganscreen`` binds its public names lazily (PEP 562 ``__getattr__``), and its ``__dir__``
adds ``__all__`` to what is bound, so ``dir(ganscreen)`` alone would agree with ``__all__``
by construction. The checks here therefore look at ``vars()``, what is really bound: before
any lazy lookup (only the eager names, and no torch), and after every name of ``__all__``
has been looked up (exactly ``__all__``). Every other module is either private (a leading
underscore) or declares an ``__all__`` that lists exactly the public names it defines.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types
from typing import TypeVar

import pytest

import ganscreen

# Dunder names that are part of the surface; every other underscored name is private.
PUBLIC_DUNDERS = {"__version__"}


def _is_submodule(package: types.ModuleType, name: str, value: object) -> bool:
    # Importing ganscreen.x binds ``x`` on the package; a submodule is not an exported name.
    return isinstance(value, types.ModuleType) and value.__name__ == f"{package.__name__}.{name}"


def public_bound_names(module: types.ModuleType) -> set[str]:
    """The public names bound on ``module`` right now (its ``vars()``, not its ``dir()``)."""
    return {name for name, value in vars(module).items()
            if (not name.startswith("_") or name in PUBLIC_DUNDERS) and not _is_submodule(module, name, value)}


def surface_mismatch(module: types.ModuleType) -> tuple[set[str], set[str]]:
    """``(bound but not exported, exported but not bound)`` once every export is looked up."""
    exported = set(module.__all__)
    for name in exported:
        getattr(module, name, None)  # what a lazy __getattr__ can provide is now bound
    bound = public_bound_names(module)
    return bound - exported, exported - bound


# --------------------------------------------------------------------------- the package


def test_package_binds_exactly_its_all_once_every_name_is_used() -> None:
    assert surface_mismatch(ganscreen) == (set(), set())


def test_every_exported_name_resolves_to_a_ganscreen_object() -> None:
    for name in ganscreen.__all__:
        value = getattr(ganscreen, name)
        if name == "__version__":
            assert isinstance(value, str) and value
        else:
            assert value.__module__.startswith("ganscreen."), name
            assert value.__name__ == name


def test_dir_lists_the_exports_and_nothing_public_besides() -> None:
    listed = {name for name in dir(ganscreen)
              if (not name.startswith("_") or name in PUBLIC_DUNDERS)
              and not _is_submodule(ganscreen, name, getattr(ganscreen, name))}
    assert listed == set(ganscreen.__all__)


def test_unknown_names_are_refused() -> None:
    assert not hasattr(ganscreen, "Screner")
    with pytest.raises(AttributeError, match="Screner"):
        ganscreen.Screner  # noqa: B018
    with pytest.raises(ImportError):
        exec("from ganscreen import Screner", {})


def test_import_is_lazy_and_binds_only_the_eager_names() -> None:
    # A fresh interpreter: in this one the test session has long since imported everything.
    code = (
        "import json, sys, ganscreen\n"
        "before = sorted(n for n in vars(ganscreen) if not n.startswith('_') or n == '__version__')\n"
        "torch_before = 'torch' in sys.modules\n"
        "for name in ganscreen.__all__: getattr(ganscreen, name)\n"
        "print(json.dumps({'before': before, 'torch_before': torch_before}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen == {"before": ["__version__"], "torch_before": False}


def test_the_surface_check_catches_an_extra_and_a_missing_name() -> None:
    # The same check on a module that breaks the rule both ways must say so.
    fake = types.ModuleType("fake")
    fake.__all__ = ["Listed", "Promised"]  # type: ignore[attr-defined]
    fake.Listed = object  # type: ignore[attr-defined]
    fake.helper = len  # type: ignore[attr-defined]
    assert surface_mismatch(fake) == ({"helper"}, {"Promised"})


# --------------------------------------------------------------------------- every module


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(ganscreen.__path__, "ganscreen."):
        if info.name.endswith(".__main__"):
            continue  # importing it runs the command line
        names.append(info.name)
    return sorted(names)


def _is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split(".")[1:])


def _defined_public_names(module: types.ModuleType) -> set[str]:
    """Public names the module's own source binds at top level (imports excluded)."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(e.id for e in elements if isinstance(e, ast.Name))
    # A TypeVar is typing machinery, not an interface: not exported.
    return {n for n in names if not n.startswith("_") and not isinstance(getattr(module, n, None), TypeVar)}


PUBLIC_MODULES = [name for name in _modules() if not _is_private(name)]


def test_the_walk_finds_the_modules() -> None:
    assert {"ganscreen.images", "ganscreen.pipeline", "ganscreen.checks.cnn"} <= set(PUBLIC_MODULES)
    assert "ganscreen._inputs" in _modules() and "ganscreen._inputs" not in PUBLIC_MODULES


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_exports_exactly_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} is public (no leading underscore) but declares no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    unlisted = _defined_public_names(module) - set(exported)
    assert not unlisted, f"{name} defines public names missing from its __all__: {sorted(unlisted)}"
