"""Per-step outcome and reward terms, computed from world states only.

``evaluate(prev, actions, next, road)`` reads collisions (oriented boxes, :mod:`sim.collision`),
off-road (ego centre outside the drivable area of its lane section, or beyond a lane end with no
successor), route completion and time-limit truncation off the two states, and returns named
terms, one (B,) float32 array each. The reward is ``sum_i weight_i * term_i`` with the weights
from config (:class:`RewardWeights`). The CARLA backend reads its world back into a
``WorldState`` and calls the same function, so a score means the same on both backends.

Basic terms (the rewards issue adds fuel, comfort and Leaderboard infractions):

====================  =====  ==================================================================
term                  unit   meaning
====================  =====  ==================================================================
progress              m      route progress made this step (negative when reversing along it)
collision             0/1    the ego's box overlaps another actor's box
off_road              0/1    the ego's centre left the drivable area
route_completed       0/1    progress reached the route length this step
speed                 m/s    ego speed after the step (reported, weight 0 by default)
====================  =====  ==================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.collision import ego_collisions
from sim.state import WorldState

F32 = NDArray[np.float32]
BoolArr = NDArray[np.bool_]

OFF_MAP_SLACK_M = 0.5  # [m] matched-lane distance beyond |d|: the ego is past a lane end
ROUTE_DONE_SLACK_M = 0.5  # [m] progress within this of the route length counts as completed

TERM_NAMES = ("progress", "collision", "off_road", "route_completed", "speed")


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each named term in the reward (see the module table)."""

    progress: float = 0.1  # per metre: a 500 m route is worth 50
    collision: float = -10.0
    off_road: float = -10.0
    route_completed: float = 10.0
    speed: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """What happened in one step, per environment (B,) unless noted."""

    terms: dict[str, F32]
    collided_with: BoolArr  # (B, N): actors overlapping the ego (column 0: any)
    collision: BoolArr
    off_road: BoolArr
    route_completed: BoolArr
    terminated: BoolArr
    truncated: BoolArr


def off_road(state: WorldState, road: R.LaneGraph) -> BoolArr:
    """Ego centre outside the drivable area: beyond the left/right edge or past a lane end."""
    lane, s, d = state.lane[:, 0], state.s[:, 0], state.d[:, 0]
    left = R.interp(road, road.left_edge, lane, s)
    right = R.interp(road, road.right_edge, lane, s)
    beyond = state.lane_dist[:, 0] > np.abs(d) + OFF_MAP_SLACK_M
    return (d > left) | (-d > right) | beyond


def evaluate(
    prev: WorldState,
    actions: NDArray[np.floating],
    nxt: WorldState,
    road: R.LaneGraph,
) -> Outcome:
    """Terms, events and episode ends of the step ``prev -> nxt``.

    Args:
        prev, nxt: states before and after the step (B, N).
        actions: the executed ego actions (B, 2) (kept for terms that depend on them).
        road: the lane graph.
    """
    del actions  # the basic terms depend on the states only
    hit = ego_collisions(nxt.x, nxt.y, nxt.yaw, nxt.length, nxt.width, nxt.valid)
    collision = hit[:, 0]
    offr = off_road(nxt, road)
    done = nxt.progress >= nxt.route.length - ROUTE_DONE_SLACK_M
    completed = done & ~(prev.progress >= prev.route.length - ROUTE_DONE_SLACK_M)
    terms = {
        "progress": (nxt.progress - prev.progress).astype(np.float32, copy=False),
        "collision": collision.astype(np.float32, copy=False),
        "off_road": offr.astype(np.float32, copy=False),
        "route_completed": completed.astype(np.float32, copy=False),
        "speed": nxt.speed[:, 0].astype(np.float32, copy=False),
    }
    terminated = collision | offr | done
    truncated = ~terminated & (nxt.time >= nxt.time_limit - 1e-4)
    return Outcome(terms, hit, collision, offr, completed, terminated, truncated)


def reward(terms: dict[str, F32], weights: RewardWeights) -> F32:
    """Weighted sum of the named terms (B,)."""
    total = np.zeros_like(next(iter(terms.values())), dtype=np.float32)
    for name, value in terms.items():
        w = getattr(weights, name, 0.0)
        if w:
            total += np.float32(w) * value
    return total
