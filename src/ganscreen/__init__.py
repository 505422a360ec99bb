"""ganscreen: screen profile photos for GAN-generated faces, with readable evidence.

The public names are imported on first use (PEP 562), so that ``import ganscreen`` (and
``ganscreen --help``) does not load torch. Every other module of the package is internal.
"""

# No `from __future__ import annotations` and only underscored helpers: any public name
# bound here would be part of the surface that tests/test_exported_members.py pins.
import typing as _typing

from ganscreen._version import __version__

if _typing.TYPE_CHECKING:
    from ganscreen._options import ScanOptions
    from ganscreen.pipeline import Screener, screen
    from ganscreen.report import Report

__all__ = ["Report", "ScanOptions", "Screener", "__version__", "screen"]

_LAZY = {"Report": "ganscreen.report", "ScanOptions": "ganscreen._options", "Screener": "ganscreen.pipeline",
         "screen": "ganscreen.pipeline"}

if not _typing.TYPE_CHECKING:
    # Hidden from mypy: a module-level __getattr__ would make it accept any name at all
    # (``ganscreen.Screner``); it sees the real imports above instead.

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'ganscreen' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups find it without calling here again
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
