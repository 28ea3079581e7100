"""Traffic rules of a road network: its lights and junction right of way, attached to its lane
graph when the map is built, applied to traffic in the world step.

:func:`attach_rules` compiles a map's :class:`sim.lights.LightTable` and
:class:`sim.junctions.JunctionTable` and keys them by the lane graph object (a weak
reference: they live as long as the graph); :func:`rules_of` finds them. Highway roads have no
rules attached, and the step then runs exactly as before.

:func:`rule_accel` is the step's hook: the IDM acceleration of every vehicle, capped by the
acceleration towards each virtual standing leader it must respect: a stop line showing red or
yellow (:mod:`sim.lights`), the give-way point of a junction (:mod:`sim.junctions`), the end of
a lane that tapers out. Light plans run per env with a plan offset (``WorldState.light_offset``:
``RoadSpec.lights.offset_s`` where the spec fixes it, else the decision phase drawn at reset, in
seconds), so batched envs do not switch in lockstep unless a scenario times its actors against
the lights.

Vehicles flagged ``ignore_lights`` (``Behavior.ignore_lights``, a scripted red-light runner) skip
the stop line of a red or yellow light, the junction give-way rule and the slow-down before a
contested junction lane; lane speed limits and lanes that end still apply. Everyone else expects
them to obey: they claim nothing while their light holds them, and count for others only once
they can no longer stop (:mod:`sim.junctions`, committed occupants), as a driver on green
notices a car that runs the red only when it does not brake.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.junctions import JunctionTable, compile_junctions, dead_end_gap, stop_accel, yield_gap
from sim.lights import (
    LightState,
    LightTable,
    LightTiming,
    compile_lights,
    light_states,
    must_stop,
    next_stop_line,
    state_of,
)
from sim.opendrive import OdrMap
from sim.state import WorldState
from sim.traffic import idm_accel

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class RoadRules:
    lights: LightTable
    junctions: JunctionTable
    timing: LightTiming


JUNCTION_ENTRY_MPS = 8.3  # [m/s] 30 km/h: entry speed into a junction lane with conflicts

_RULES: weakref.WeakKeyDictionary[R.LaneGraph, RoadRules] = weakref.WeakKeyDictionary()


def attach_rules(g: R.LaneGraph, model: OdrMap, timing: LightTiming | None = None) -> RoadRules:
    """Compile and attach the rules of ``model`` to its lane graph ``g`` (default timing:
    :class:`sim.lights.LightTiming`)."""
    timing = LightTiming() if timing is None else timing
    rules = RoadRules(compile_lights(model, g, timing), compile_junctions(model, g), timing)
    _RULES[g] = rules
    return rules


def rules_of(g: R.LaneGraph) -> RoadRules | None:
    """The rules attached to ``g`` (None: a road without lights or junctions)."""
    return _RULES.get(g)


def plan_offset(st: WorldState) -> F32:
    """(B,) [s] per-env light plan offset: ``st.light_offset``, else the decision phase."""
    if st.light_offset is not None:
        return st.light_offset
    return st.phase.astype(np.float32)


def states_at(rules: RoadRules, time: F32, offset: F32 | I32) -> NDArray[np.int8]:
    """(B, K) light states at env times ``time`` (B,) with plan offsets ``offset`` (B,) [s]
    (:func:`plan_offset`; an integer decision phase counts as seconds)."""
    return light_states(rules.lights, time, offset.astype(np.float32, copy=False))


def rule_accel(
    rules: RoadRules,
    g: R.LaneGraph,
    acc: F32,
    lane: I32,
    s: F32,
    speed: F32,
    length: F32,
    valid: BoolArr,
    choice: I32,
    lead_dist: F32,
    has_lead: BoolArr,
    behavior: tuple[F32, F32, F32, F32, F32],
    time: F32,
    offset: F32,
    ignore_lights: BoolArr | None = None,
) -> F32:
    """Car-following accelerations ``acc`` (B, N) capped by the rules (module docstring).

    Args:
        lead_dist, has_lead: (B, N) centre distance to the leader found by the neighbour search
            and whether there is one (a leader on the same lane makes a vehicle not first).
        behavior: (v0, headway, min_gap, a_max, b_comf), each (B, N).
        time, offset: (B,) env time [s] and light plan offset [s] (:func:`plan_offset`).
        ignore_lights: (B, N) vehicles that run red lights and never give way; None: nobody.
    """
    v0, headway, min_gap, a_max, b_comf = behavior
    rebel = ignore_lights if ignore_lights is not None and ignore_lights.any() else None
    # Desired speed capped by the limit here and by the speed from which the next lane's limit
    # is reached at b_comf (turns and ring roads are slower than the roads leading to them; a
    # junction lane with conflicts counts as limited to JUNCTION_ENTRY_MPS).
    limit = R.interp(g, g.speed_limit, lane, s)
    nsucc, succ = R.chosen_successor(g, lane, choice)
    succ_c = np.maximum(succ, 0)
    nxt = np.where(nsucc > 0, g.speed_limit.take(g.lane_start.take(succ_c)), limit)
    # A connector with conflicting ones is entered at most at JUNCTION_ENTRY_MPS: from there a
    # car can still stop (< 9 m at 4 m/s^2) when a conflicting one shows up.
    contested = (nsucc > 0) & rules.junctions.contested.take(succ_c)
    if rebel is not None:
        contested &= ~rebel
    nxt = np.where(contested, np.minimum(nxt, JUNCTION_ENTRY_MPS), nxt)
    rest = g.lane_length.take(lane) - s
    v_cap = np.minimum(limit, np.sqrt(np.square(nxt) + 2.0 * b_comf * np.maximum(rest, 0.0)))
    # ... and a contested junction one lane further on (towns chain short lanes and junctions)
    n2, succ2 = R.chosen_successor(g, succ_c, choice)
    succ2 = np.maximum(succ2, 0)
    contested2 = (nsucc > 0) & (n2 > 0) & rules.junctions.contested.take(succ2)
    if rebel is not None:
        contested2 &= ~rebel
    if np.count_nonzero(contested2):
        rest2 = np.maximum(rest + g.lane_length.take(succ_c), 0.0)
        cap2 = np.sqrt(JUNCTION_ENTRY_MPS**2 + 2.0 * b_comf * rest2)
        v_cap = np.where(contested2, np.minimum(v_cap, cap2), v_cap)
    slower = v_cap < v0
    if np.count_nonzero(slower):
        free = idm_accel(
            speed,
            np.minimum(v0, v_cap).astype(np.float32, copy=False),
            np.full(lane.shape, 1e4, np.float32),
            np.zeros(lane.shape, np.float32),
            headway,
            min_gap,
            a_max,
            b_comf,
        )
        acc = np.where(slower, np.minimum(acc, free), acc).astype(np.float32, copy=False)
    gap = np.full(lane.shape, np.inf, np.float32)
    held = np.zeros(lane.shape, np.bool_)
    if rules.lights.num_lights:
        states = states_at(rules, time, offset)
        k, dist = next_stop_line(rules.lights, g, lane, s, choice)
        if np.count_nonzero(k >= 0):
            st = state_of(states, k)
            front = dist - 0.5 * length
            held = must_stop(st, front, speed, b_comf) & (k >= 0) & valid
            gap = np.where(held, front, gap)
    if rules.junctions.num_connectors:
        first = ~(has_lead & (lead_dist < rest))
        # ``held`` still counts rebels a red light would stop: nobody expects them to go
        yg = yield_gap(
            rules.junctions, g, lane, s, speed, length, valid, choice, first, b_comf, held
        )
        gap = np.minimum(gap, yg)
    if rebel is not None:
        gap = np.where(rebel, np.inf, gap).astype(np.float32, copy=False)
    if np.count_nonzero(rules.junctions.dead_end):
        gap = np.minimum(gap, dead_end_gap(rules.junctions, g, lane, s, length, choice))
    gap = np.where(valid, gap, np.inf)
    if not np.count_nonzero(np.isfinite(gap)):
        return acc
    capped = stop_accel(speed, v0, gap, headway, min_gap, a_max, b_comf)
    out: F32 = np.minimum(acc, capped).astype(np.float32, copy=False)
    return out


def red_light_events(
    rules: RoadRules | None,
    g: R.LaneGraph,
    prev_lane: I32,
    prev_s: F32,
    lane: I32,
    s: F32,
    prev_time: F32,
    offset: F32,
) -> BoolArr:
    """(B,) the ego ran a red light in the step from ``prev`` to now (:mod:`sim.lights`);
    ``offset`` (B,) [s] the light plan offset (:func:`plan_offset`)."""
    from sim.lights import ran_red_light

    if rules is None or not rules.lights.num_lights:
        return np.zeros(prev_lane.shape, np.bool_)
    states = states_at(rules, prev_time, offset)
    return ran_red_light(rules.lights, g, states, prev_lane, prev_s, lane, s)


__all__ = [
    "LightState",
    "RoadRules",
    "attach_rules",
    "plan_offset",
    "red_light_events",
    "rule_accel",
    "rules_of",
    "states_at",
]


_MIX = np.uint32(0x45D9F3B)  # splitmix-style 32-bit mixing constant (well-spread low bits)


def next_choice(choice: I32, moved: BoolArr) -> I32:
    """Route choices after a step: a vehicle that entered a new lane draws its next fork's
    choice by hashing the old one (deterministic, different at every fork, so traffic does not
    take the same branch at every junction, e.g. circle a roundabout forever). The ego
    (column 0) keeps its own."""
    if not np.count_nonzero(moved):
        return choice
    x = choice.astype(np.uint32)
    x = (x ^ (x >> np.uint32(16))) * _MIX
    x = (x ^ (x >> np.uint32(16))) * _MIX
    x = x ^ (x >> np.uint32(16))
    mixed = (x >> np.uint32(1)).astype(np.int32)
    out: I32 = np.where(moved, mixed, choice).astype(np.int32, copy=False)
    out[:, 0] = choice[:, 0]
    return out


def spawn_speed_cap(rules: RoadRules, g: R.LaneGraph, lane: I32, s: F32, b_comf: float) -> F32:
    """[m/s] highest start speed of vehicles at ``(lane, s)`` that can still stop at the end
    of a lane leading into a junction at ``b_comf`` (a vehicle spawned committed would ignore
    right of way); inf elsewhere."""
    into = rules.junctions.connector.take(g.successors[lane, 0]) & (g.successors[lane, 0] >= 0)
    room = np.maximum(g.lane_length.take(lane) - s - 3.0, 0.0)
    out: F32 = np.where(into, np.sqrt(2.0 * b_comf * room), np.inf).astype(np.float32)
    return out


def first_on_lane(lane: I32, s: F32, valid: BoolArr) -> BoolArr:
    """(B, N) valid actors with no valid actor ahead of them on their lane (one sort)."""
    B, N = lane.shape
    env = np.repeat(np.arange(B, dtype=np.int64), N)
    key_lane = np.where(valid, lane, -1).reshape(-1).astype(np.int64)
    order = np.lexsort((s.reshape(-1), key_lane, env))
    nxt_same = np.zeros(B * N, np.bool_)
    same = (env[order][1:] == env[order][:-1]) & (key_lane[order][1:] == key_lane[order][:-1])
    nxt_same[order[:-1]] = same
    out: BoolArr = valid & ~nxt_same.reshape(B, N)
    return out


def ego_rule_accel(
    rules: RoadRules,
    g: R.LaneGraph,
    st: WorldState,
    v0: F32,
    headway: float,
    min_gap: float,
    a_max: float,
    b_comf: float,
) -> F32:
    """(B,) the ego's acceleration cap from the rules (lights, right of way, dead ends), for
    a driver that follows them (:mod:`policy.rule_based`); +inf where none binds. The other
    vehicles' claims use their own lanes and the first-on-lane test."""
    B, N = st.x.shape
    first = first_on_lane(st.lane, st.s, st.valid)
    f32 = np.float32
    beh = (
        np.where(np.arange(N) == 0, v0[:, None], st.behavior.v0).astype(f32),
        np.where(np.arange(N) == 0, f32(headway), st.behavior.headway).astype(f32),
        np.where(np.arange(N) == 0, f32(min_gap), st.behavior.min_gap).astype(f32),
        np.where(np.arange(N) == 0, f32(a_max), st.behavior.a_max).astype(f32),
        np.where(np.arange(N) == 0, f32(b_comf), st.behavior.b_comf).astype(f32),
    )
    inf = np.full((B, N), np.inf, np.float32)
    acc = rule_accel(
        rules,
        g,
        inf,
        st.lane,
        st.s,
        st.speed,
        st.length,
        st.valid,
        st.route_choice,
        np.where(first, np.inf, 0.0).astype(f32),
        ~first,
        beh,
        st.time,
        plan_offset(st),
        st.behavior.ignore_lights,
    )
    return acc[:, 0]
