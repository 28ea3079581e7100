"""The world as data: frozen structure-of-arrays dataclasses.

Every array leads with ``(B, N)``: B environments, N actor slots; actor 0 is the ego. Slots that
hold no actor have ``valid == False`` and are ignored by every kernel. Floats are float32, lane
indices int32. Updates go through :func:`dataclasses.replace`; nothing here mutates in place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]


class ActorType(IntEnum):
    """Kinds of actor. Pedestrians arrive with urban roads."""

    VEHICLE = 0
    PEDESTRIAN = 1


class EventKind(IntEnum):
    """Scripted actions an actor performs once its trigger fires."""

    NONE = 0
    SET_SPEED = 1  # change desired speed, braking at a given deceleration if slower
    LANE_CHANGE = 2  # change lane left/right over a given duration, ignoring MOBIL's incentive
    STOP = 3  # brake to a standstill at a given deceleration and stay there
    CROSS = 4  # pedestrian: walk across the road (direction, speed), see sim.pedestrians


class TriggerKind(IntEnum):
    """When a scripted event fires."""

    TIME = 0  # simulation time >= value [s]
    EGO_GAP = 1  # longitudinal gap to the ego (either side, same road) <= value [m]


@dataclass(frozen=True)
class Behavior:
    """Per-actor driver-model parameters, each (B, N) float32.

    IDM (Treiber, Hennecke, Helbing 2000): ``v0`` desired speed [m/s], ``headway`` desired time
    gap T [s], ``min_gap`` jam distance s0 [m], ``a_max`` maximum acceleration a [m/s^2],
    ``b_comf`` comfortable deceleration b [m/s^2]. MOBIL (Kesting, Treiber, Helbing 2007):
    ``politeness`` p [-], ``b_safe`` safe braking limit imposed on the new follower [m/s^2],
    ``lc_threshold`` incentive threshold Delta a_th [m/s^2]; ``lc_duration`` [s] of a lane change.
    ``ignore_lights`` (B, N) bool: drives through red lights and never gives way at junctions
    (a scripted red-light runner, :mod:`sim.traffic_rules`); None: nobody.
    """

    v0: F32
    headway: F32
    min_gap: F32
    a_max: F32
    b_comf: F32
    politeness: F32
    b_safe: F32
    lc_threshold: F32
    lc_duration: F32
    ignore_lights: BoolArr | None = None


@dataclass(frozen=True)
class Events:
    """Scripted events, (B, N, E): E event slots per actor."""

    kind: NDArray[np.int8]
    trigger: NDArray[np.int8]
    trigger_value: F32  # [s] for TIME, [m] for EGO_GAP
    target_speed: F32  # [m/s] for SET_SPEED
    decel: F32  # [m/s^2] for SET_SPEED / STOP
    direction: NDArray[np.int8]  # +1 left, -1 right, for LANE_CHANGE
    duration: F32  # [s] for LANE_CHANGE
    fired: BoolArr


@dataclass(frozen=True)
class Route:
    """The ego's route as a chain of lane sections, (B, R) with a (B, R + 1) cumulative length.

    ``index`` (B,) is the ego's current position in the chain, ``length`` (B,) the distance to
    drive [m] from the start, ``start_offset`` (B,) the reference ``s`` of the start on section 0,
    ``s_ref`` (B,) the ego's reference ``s`` on its section at the last step.
    """

    sections: I32
    cum_length: F32
    index: I32
    length: F32
    start_offset: F32
    s_ref: F32
    # (B, R) the lane the route leaves each chain entry on (sim.routes.section_chain); the
    # ego's route choice at forks follows it. None: first successors.
    lanes: I32 | None = None


@dataclass(frozen=True)
class WorldState:
    """Everything that changes during an episode. Shapes (B, N) unless noted.

    Pose ``x, y`` [m], ``yaw`` [rad]; ``speed`` [m/s] >= 0 along the heading; ``accel``
    [m/s^2] last applied longitudinal acceleration; ``steer`` [rad] front-wheel angle (ego;
    traffic 0); ``length, width`` [m]. Lane coordinates ``lane`` (index into the lane graph),
    ``s`` [m] along it, ``d`` [m] lateral (+ left). Traffic lane changes: ``lc_target`` lane index
    (-1 none), ``lc_elapsed`` [s], ``lc_offset`` [m] the full lateral shift. ``brake_decel``
    [m/s^2] a scripted hard brake in progress (0 none). ``route_choice`` picks successors at
    forks.
    """

    x: F32
    y: F32
    yaw: F32
    speed: F32
    accel: F32
    steer: F32
    length: F32
    width: F32
    lane: I32
    s: F32
    d: F32
    actor_type: NDArray[np.int8]
    valid: BoolArr
    behavior: Behavior
    events: Events
    lc_target: I32
    lc_elapsed: F32
    lc_offset: F32
    brake_decel: F32
    route_choice: I32
    route: Route
    time: F32  # (B,) [s]
    step_count: I32  # (B,)
    progress: F32  # (B,) [m] along the route
    prev_progress: F32  # (B,) [m] at the previous step
    time_limit: F32  # (B,) [s] episode truncation time
    phase: I32  # (B,) per-env offset of periodic decisions (MOBIL rounds), drawn at reset
    stopped_s: F32  # (B,) [s] how long the ego has been below 0.1 m/s without interruption
    off_route_m: F32  # (B,) [m] distance driven since the ego last was on its route
    lane_dist: F32  # (B, N) [m] distance to the matched lane centre line (off-map detection)
    # (B, N) [m/s] lateral walking velocity of crossing pedestrians (+ left, 0 standing or
    # walking along a sidewalk; sim.pedestrians). None: nobody crosses (all zeros).
    walk_d_speed: F32 | None = None
    # (B,) [s] where the traffic-light plans are at t = 0 (RoadSpec.lights.offset_s, else the
    # decision phase). None: ``phase`` (sim.traffic_rules.plan_offset).
    light_offset: F32 | None = None

    @property
    def num_envs(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_actors(self) -> int:
        return int(self.x.shape[1])


def _take(obj: Any, idx: Any) -> Any:
    """Index every array field of a (nested) state dataclass along the env axis."""
    kw = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            kw[f.name] = v[idx]
        elif hasattr(v, "__dataclass_fields__"):
            kw[f.name] = _take(v, idx)
        else:
            kw[f.name] = v
    return replace(obj, **kw)


def take_envs(state: WorldState, idx: Any) -> WorldState:
    """The sub-batch of environments ``idx`` (slice, index array or mask)."""
    return _take(state, idx)  # type: ignore[no-any-return]


def _put(dst: Any, mask: BoolArr, src: Any) -> Any:
    kw = {}
    for f in fields(dst):
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if isinstance(a, np.ndarray):
            if a.shape[1:] != b.shape[1:]:
                raise ValueError(f"{f.name}: shape {b.shape} does not fit {a.shape}")
            out = a.copy()
            out[mask] = b
            kw[f.name] = out
        elif hasattr(a, "__dataclass_fields__"):
            kw[f.name] = _put(a, mask, b)
        else:
            kw[f.name] = a
    return replace(dst, **kw)


def put_envs(state: WorldState, mask: BoolArr, new: WorldState) -> WorldState:
    """A copy of ``state`` with the environments where ``mask`` (B,) is True taken from ``new``.

    ``new`` holds exactly ``mask.sum()`` environments with the same N, E and R.
    """
    return _put(state, mask, new)  # type: ignore[no-any-return]


def concat_envs(states: list[WorldState]) -> WorldState:
    """Stack states along the env axis (all with the same N, E, R)."""

    def cat(objs: list[Any]) -> Any:
        first = objs[0]
        kw = {}
        for f in fields(first):
            v = getattr(first, f.name)
            if isinstance(v, np.ndarray):
                kw[f.name] = np.concatenate([getattr(o, f.name) for o in objs], axis=0)
            elif hasattr(v, "__dataclass_fields__"):
                kw[f.name] = cat([getattr(o, f.name) for o in objs])
            else:
                kw[f.name] = v
        return replace(first, **kw)

    return cat(states)  # type: ignore[no-any-return]
