"""A stand-in for CMS's CTM API (CTM-API.md sections 3, 4, 6 and 7): keys, tokens, complaint
downloads in the current or legacy layout, casework uploads, and fault injection.

    async with running_simulator(SimState(seed=7)) as sim:
        key = sim.state.add_key(hpms_user="RP01", contracts={"H1234"})
        ...  # point a CtmClient at sim.url
"""

from hub.ctm.simulator.app import create_simulator_app
from hub.ctm.simulator.config import load_seed_file, state_from_config
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import (
    RunningSimulator,
    bind,
    build_server,
    running_simulator,
    serve_standalone,
)
from hub.ctm.simulator.state import Faults, SimKey, SimState, SimulatorError

__all__ = [
    "ContractPlan",
    "Faults",
    "RunningSimulator",
    "SimKey",
    "SimState",
    "SimulatorError",
    "bind",
    "build_server",
    "create_simulator_app",
    "load_seed_file",
    "running_simulator",
    "serve_standalone",
    "state_from_config",
]
