"""Watching an agent instance for termination by the platform."""

from prefactor_core.monitoring.termination_monitor import TerminationMonitor

__all__ = ["TerminationMonitor"]
