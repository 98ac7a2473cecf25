"""The installed version of prefactor-core."""

__version__ = "0.6.0"
