"""Pedestrians: walkers on sidewalks and scripted road crossings, as batched kernels.

Model
-----
A pedestrian is an actor with ``actor_type == PEDESTRIAN`` in the same (B, N) arrays as the
vehicles, placed in lane coordinates ``(lane, s, d)``:

- *Walkers* live on sidewalk lanes (:attr:`sim.road.LaneType.SIDEWALK`) and move along ``s``
  with the same car-following update as vehicles (IDM with a walking desired speed, typically
  1.2-1.5 m/s; Knoblauch et al. 1996 measured 1.25-1.5 m/s mean crossing speeds), which keeps
  them from walking through each other. They never change lanes (MOBIL skips pedestrians).
- *Crossers* stand at a kerb (``d`` beyond the driving lanes' edge) until their ``cross``
  event fires (a :class:`sim.state.TriggerKind`: simulation time, or the ego's gap, as CARLA
  ScenarioRunner's ``DynamicObjectCrossing`` / ``PedestrianCrossing`` trigger on the ego's
  distance), then walk across at the event's speed: ``d`` changes at ``walk_d_speed`` [m/s]
  (+ left) until the far edge of the drivable area plus ``KERB_CLEARANCE_M``, where they stop.

Interaction: a pedestrian whose body overlaps a driving lane (``|d| <= w / 2 + width / 2 +
LANE_CLEARANCE_M``), or who walks towards it and will overlap it within ``CROSS_PREVIEW_S``, is
listed in the neighbour search as a standing obstacle on that lane, so traffic (and the
rule-based ego) brakes for it with IDM; otherwise it is not listed. A
collision with a pedestrian is its own event type (``collisions_pedestrian``, weighted by the
Leaderboard scores).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.state import ActorType, EventKind, Events, TriggerKind, WorldState

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]

PEDESTRIAN_LENGTH_M = 0.5  # [m] footprint of a walking adult (shoulder depth plus stride)
PEDESTRIAN_WIDTH_M = 0.6  # [m] shoulder width
WALK_SPEED_MPS = 1.4  # [m/s] default walking speed (Knoblauch et al. 1996: 1.25-1.5 m/s)
KERB_CLEARANCE_M = 1.5  # [m] a crosser stops this far beyond the drivable edge (on the kerb)
LANE_CLEARANCE_M = 0.3  # [m] a pedestrian this close to a lane's edge blocks that lane
CROSS_PREVIEW_S = 3.0  # [s] a crosser this close (in time) to stepping into a lane blocks it


def fire_crossings(
    events: Events,
    actor_type: NDArray[np.int8],
    valid: BoolArr,
    time: F32,
    gap_to_ego: F32,
    walk_d_speed: F32,
) -> tuple[F32, BoolArr]:
    """Start the crossings whose trigger holds now.

    Args:
        events: (B, N, E) scripted events; ``CROSS`` events use ``target_speed`` [m/s] and
            ``direction`` (+1 walk to the left of the lane, -1 to the right).
        gap_to_ego: (B, N) bumper distance to the ego [m].
        walk_d_speed: (B, N) current lateral walking velocity.

    Returns:
        (lateral walking velocity (B, N), events fired now (B, N, E)).
    """
    cross = (events.kind == EventKind.CROSS) & ~events.fired
    cross &= (valid & (actor_type == ActorType.PEDESTRIAN))[..., None]
    if not np.count_nonzero(cross):
        return walk_d_speed, np.zeros(events.kind.shape, np.bool_)
    now = np.where(
        events.trigger == TriggerKind.TIME,
        time[:, None, None] >= events.trigger_value,
        gap_to_ego[..., None] <= events.trigger_value,
    )
    fire = cross & now
    v = (events.target_speed * events.direction).astype(np.float32)
    speed = np.where(fire, v, 0.0).sum(-1)
    started = fire.any(-1)
    out: F32 = np.where(started, speed, walk_d_speed).astype(np.float32, copy=False)
    return out, fire


def walk(
    g: R.LaneGraph, lane: I32, s: F32, d: F32, walk_d_speed: F32, dt: float
) -> tuple[F32, F32]:
    """Lateral walking of crossers for one step: (new ``d``, new lateral velocity), stopping at
    the far kerb (module docstring). Rows with zero velocity keep their ``d``."""
    moving = walk_d_speed != 0
    if not np.count_nonzero(moving):
        return d, walk_d_speed
    left = R.interp(g, g.left_edge, lane, s) + KERB_CLEARANCE_M
    right = -(R.interp(g, g.right_edge, lane, s) + KERB_CLEARANCE_M)
    d_new = d + walk_d_speed * np.float32(dt)
    arrived = ((walk_d_speed > 0) & (d_new >= left)) | ((walk_d_speed < 0) & (d_new <= right))
    d_new = np.where(arrived, np.where(walk_d_speed > 0, left, right), d_new)
    v_new = np.where(arrived, 0.0, walk_d_speed)
    return d_new.astype(np.float32, copy=False), v_new.astype(np.float32, copy=False)


def in_lane(
    g: R.LaneGraph,
    lane: I32,
    s: F32,
    d: F32,
    width: F32,
    is_ped: BoolArr,
    walk_d_speed: F32 | None = None,
) -> BoolArr:
    """(B, N) pedestrians whose body overlaps their lane, or who walk towards it and will
    within ``CROSS_PREVIEW_S`` (they block it: drivers brake for a pedestrian stepping out)."""
    if not np.count_nonzero(is_ped):
        return is_ped
    half = 0.5 * R.interp(g, g.width, lane, s)
    room = np.abs(d) - (half + 0.5 * width + LANE_CLEARANCE_M)
    if walk_d_speed is not None:
        toward = walk_d_speed * d < 0
        room = np.where(toward, room - np.abs(walk_d_speed) * CROSS_PREVIEW_S, room)
    out: BoolArr = is_ped & (room <= 0)
    return out


def walk_yaw(heading: F32, walk_d_speed: F32, speed: F32) -> F32:
    """Facing of pedestrians: across the lane while crossing, along it otherwise."""
    lateral = np.arctan2(walk_d_speed, np.maximum(speed, 0.0))
    out: F32 = R.wrap_half_turn((heading + lateral).astype(np.float32, copy=False))
    return out


def sample_walkers(
    g: R.LaneGraph, rng: np.random.Generator, count: int, lanes: I32 | None = None
) -> tuple[I32, F32, F32]:
    """``count`` walkers on sidewalk lanes (all of them, or ``lanes``), uniform along their
    length, with walking speeds uniform in [1.1, 1.6] m/s.

    Returns:
        (lane, s, desired speed), (count,) each; empty when the map has no sidewalks.
    """
    side = (
        np.nonzero(g.lane_type == R.LaneType.SIDEWALK)[0].astype(np.int32)
        if lanes is None
        else lanes
    )
    if count == 0 or side.size == 0:
        z = np.zeros(0, np.float32)
        return np.zeros(0, np.int32), z, z
    weight = g.lane_length[side].astype(np.float64)
    lane = rng.choice(side, size=count, p=weight / weight.sum()).astype(np.int32)
    s = (rng.uniform(0.05, 0.95, count) * g.lane_length[lane]).astype(np.float32)
    v0 = rng.uniform(1.1, 1.6, count).astype(np.float32)
    return lane, s, v0


def start_crossings(st: WorldState) -> WorldState:
    """The state with the crossings that fire now started (their events marked fired, so
    :func:`sim.world._fire_events` leaves them alone). ``st.walk_d_speed`` must be set."""
    assert st.walk_d_speed is not None
    ev = st.events
    if not np.count_nonzero((ev.kind == EventKind.CROSS) & ~ev.fired):
        return st
    gap = np.hypot(st.x - st.x[:, :1], st.y - st.y[:, :1]) - 0.5 * (st.length + st.length[:, :1])
    v, fired = fire_crossings(ev, st.actor_type, st.valid, st.time, gap, st.walk_d_speed)
    if not np.count_nonzero(fired):
        return st
    return replace(st, walk_d_speed=v, events=replace(ev, fired=ev.fired | fired))


def listed(st: WorldState, g: R.LaneGraph) -> BoolArr:
    """(B, N) actors that the neighbour search lists: every valid one, except pedestrians
    beside their lane (kerb, sidewalk edge), who block nobody."""
    ped = st.actor_type == ActorType.PEDESTRIAN
    if not np.count_nonzero(ped):
        return st.valid
    near = in_lane(g, st.lane, st.s, st.d, st.width, ped, st.walk_d_speed)
    out: BoolArr = st.valid & ~(ped & ~near)
    return out
