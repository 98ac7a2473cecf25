"""The distribution's name and version, as sent in the ``X-Prefactor-SDK`` header."""

from __future__ import annotations

PACKAGE_NAME = "prefactor-http"
__version__ = "0.5.0"
PACKAGE_VERSION = __version__
