"""ganscreen: screen profile photos for GAN-generated faces, with readable evidence."""

from ganscreen._version import __version__
from ganscreen.pipeline import Screener, screen
from ganscreen.report import Report

__all__ = ["Report", "Screener", "__version__", "screen"]
