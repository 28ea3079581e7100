"""The simulator backend interface, and the embedded implementation.

A backend owns the world of B environments and exposes it as a :class:`WorldState`. The
embedded backend is the pure functions of :mod:`sim.world`; a CARLA backend (one server per
environment, synchronous mode) implements the same protocol by placing the specs' actors with
``Map.get_waypoint_xodr`` and reading poses back into a ``WorldState`` each tick. Observations,
metrics and rewards are computed from that state by shared code, so a score means the same on
both.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sim import world
from sim.road import LaneGraph
from sim.scenario import ScenarioSpec
from sim.state import WorldState, put_envs


class SimBackend(Protocol):
    """What the Gymnasium envs and runners need from a simulator."""

    road: LaneGraph
    state: WorldState | None

    def reset(
        self, mask: NDArray[np.bool_], specs: list[ScenarioSpec], rngs: list[np.random.Generator]
    ) -> WorldState:
        """Start new episodes in the environments where ``mask`` (B,) is True.

        ``specs`` and ``rngs`` hold one entry per True in ``mask``, in order.
        """
        ...

    def step(self, actions: NDArray[np.float32]) -> WorldState:
        """Apply sanitized ego actions (B, 2) for one tick and return the new world."""
        ...

    def restore(self, state: WorldState) -> None:
        """Continue from a saved world (checkpoints); the same N, E and R as this backend's."""
        ...

    def close(self) -> None: ...


class EmbeddedBackend:
    """The built-in vectorised simulator (:mod:`sim.world`)."""

    def __init__(self, road: LaneGraph, params: world.SimParams, num_actors: int) -> None:
        self.road = road
        self.params = params
        self.num_actors = num_actors
        self.state: WorldState | None = None

    def reset(
        self, mask: NDArray[np.bool_], specs: list[ScenarioSpec], rngs: list[np.random.Generator]
    ) -> WorldState:
        fresh = world.reset(specs, self.road, rngs, self.num_actors, check=False)
        if self.state is None or mask.all():
            if not mask.all():
                raise ValueError("the first reset must start every environment")
            self.state = fresh
        else:
            self.state = put_envs(self.state, mask, fresh)
        return self.state

    def step(self, actions: NDArray[np.float32]) -> WorldState:
        if self.state is None:
            raise RuntimeError("reset() before step()")
        self.state = world.step(self.state, actions, self.params, self.road)
        return self.state

    def restore(self, state: WorldState) -> None:
        self.state = state

    def close(self) -> None:
        self.state = None
