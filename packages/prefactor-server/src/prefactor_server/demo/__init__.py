"""``prefactor demo``: a simulated research agent traced through prefactor-core.

The agent (:mod:`prefactor_server.demo.agent`) uses only the SDK's public API; the runner
(:mod:`prefactor_server.demo.runner`) starts an embedded server when none is given, and
reads the run back through the server's read API. The CLI layer only adds the progress
bar and the printing.
"""

from prefactor_server.demo.agent import QUESTION, STEPS, SimulatedToolError, run_agent
from prefactor_server.demo.runner import (
    AGENT_ID,
    DemoError,
    DemoRun,
    embedded_server,
    new_demo_token,
    run_demo,
)
from prefactor_server.demo.schemas import SPAN_TYPES, build_registry

__all__ = [
    "AGENT_ID",
    "QUESTION",
    "SPAN_TYPES",
    "STEPS",
    "DemoError",
    "DemoRun",
    "SimulatedToolError",
    "build_registry",
    "embedded_server",
    "new_demo_token",
    "run_agent",
    "run_demo",
]
