"""gendrive's world: roads, vehicles, traffic, physics, rewards, metrics, backends and envs.

``import sim`` needs neither CARLA nor pygame nor a display. Importing it registers the
Gymnasium environment ``gendrive/Drive-v0`` (single and natively vectorised).
"""

import gymnasium as _gym

from sim.scenario import ScenarioSpec, SpecError, load_spec

ENV_ID = "gendrive/Drive-v0"

if ENV_ID not in _gym.registry:
    _gym.register(
        id=ENV_ID,
        entry_point="sim.env:DriveEnv",
        vector_entry_point="sim.env:DriveVectorEnv",
        max_episode_steps=None,
        disable_env_checker=False,
    )

__all__ = ["ENV_ID", "ScenarioSpec", "SpecError", "load_spec"]
