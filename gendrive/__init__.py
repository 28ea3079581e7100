"""gendrive: command-line entry points tying the simulator, policies and scenario models."""

import sim as _sim  # registers gendrive/Drive-v0

ENV_ID = _sim.ENV_ID
__all__ = ["ENV_ID"]
