"""ganscreen: screen profile photos for GAN-generated faces, with readable evidence.

The public names are imported on first use (PEP 562), so that ``import ganscreen`` (and
``ganscreen --help``) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ganscreen._version import __version__

if TYPE_CHECKING:
    from ganscreen.pipeline import Screener, screen
    from ganscreen.report import Report

__all__ = ["Report", "Screener", "__version__", "screen"]

_LAZY = {"Screener": "ganscreen.pipeline", "screen": "ganscreen.pipeline", "Report": "ganscreen.report"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ganscreen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
