"""Traffic lights: fixed-time controllers compiled from a map's signals, batched light states,
stop decisions and the ego's red-light infraction.

Model
-----
A map's dynamic signals (OpenDRIVE ``<signal dynamic="yes">``) become *lights*, each guarding
the stop line of one or more driving lanes. A signal applies to the driving lanes of its road
that leave the road at the end nearer to the signal's ``s`` (where the junction is; on a
junction's connecting road: the lanes entering it at that end), restricted
to its ``validity`` lane range when the file gives a real one (CARLA's exports write
``fromLane=0 toLane=0``, i.e. no range, and an ``orientation`` that does not match the lanes'
direction, so position decides). The stop line is that lane's end.

Timing: OpenDRIVE has controllers (which signals switch together) and, per junction, their
``sequence``, but no durations. Signals of a junction run one fixed-time plan: the distinct
sequence numbers of its controllers are the phases, in order; each phase is ``green_s`` green,
``yellow_s`` yellow, then ``all_red_s`` of all-red clearance before the next phase's green. A
signal's cycle is ``phases * (green_s + yellow_s + all_red_s)`` (at least two phases: a lone
signal is red half of the time), its green starts at ``phase index * phase length``. The state
at time ``t`` [s] of light k in env b, with a per-env offset ``o_b`` (desynchronised starts)::

    u = (t_b + o_b - start_k) mod cycle_k
    state = GREEN if u < green_s, YELLOW if u < green_s + yellow_s, else RED

computed as one (B, K) array expression, no per-light loop.

Stopping (traffic): a vehicle whose next stop line (on its lane or on the successor it will
take) shows red stops there if the deceleration needed, ``v^2 / (2 gap)``, is at most
``RED_STOP_DECEL`` (else it cannot stop and goes through, as drivers do); for yellow only if it
is at most its comfortable deceleration ``b``. Stopping is IDM (sim.traffic) behind a virtual
standing leader at the stop line.

Red-light infraction (CARLA Leaderboard ``RunningRedLightTest``): the ego runs a red light when
it crosses the stop line of its lane while that light is red: its centre was before the line at
the previous step and is past it now (on the same lane, or on a lane it moved to that is not a
neighbour it changed into).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.opendrive import OdrMap, Signal, lane_forward

F32 = NDArray[np.float32]
I32 = NDArray[np.int32]
BoolArr = NDArray[np.bool_]

RED_STOP_DECEL = 6.0  # [m/s^2] hardest braking a driver uses to stop for a red light (~0.6 g)
STOP_MARGIN_M = 1.0  # [m] front bumper to stop line where a stopping vehicle comes to rest
LIGHT_LOOKAHEAD_HOPS = 1  # successor lanes searched for the next stop line


class LightState(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2


@dataclass(frozen=True)
class LightTiming:
    """Fixed-time plan durations [s] (module docstring). Defaults: a common urban plan."""

    green_s: float = 20.0
    yellow_s: float = 3.0  # 3 s: the usual yellow at 50 km/h (ITE: ~1 s + v / (2 * 3 m/s^2))
    all_red_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("green_s", "yellow_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"lights.{name}: expected > 0 s, got {getattr(self, name)}")
        if self.all_red_s < 0:
            raise ValueError(f"lights.all_red_s: expected >= 0 s, got {self.all_red_s}")


@dataclass(frozen=True, eq=False)
class LightTable:
    """Lights of one lane graph. Per light (K,): the guarded lane, stop line ``stop_s`` [m] on
    it, ``start_s`` [s] where its green starts in the cycle, ``cycle_s``, ``green_s``,
    ``yellow_s``. Per lane (L,): ``lane_light`` (-1 none) and ``lane_stop_s``."""

    lane: I32
    start_s: F32
    cycle_s: F32
    green_s: F32
    yellow_s: F32
    lane_light: I32
    lane_stop_s: F32
    signal_id: tuple[str, ...] = field(default=())

    @property
    def num_lights(self) -> int:
        return int(self.lane.shape[0])

    @property
    def stop_s(self) -> F32:
        """(K,) [m] each light's stop line on the lane it guards."""
        out: F32 = self.lane_stop_s.take(self.lane)
        return out


def _signal_lanes(model: OdrMap, g: R.LaneGraph, sg: Signal) -> list[int]:
    """Driving lanes a signal guards (module docstring)."""
    try:
        rd = model.road(sg.road)
    except KeyError:
        return []
    at_end = sg.s > 0.5 * rd.length
    ranges = [(min(a, b), max(a, b)) for a, b in sg.lanes if (a, b) != (0, 0)]
    out = []
    on_road = np.nonzero((g.odr_road == rd.num_id) & (g.lane_type == R.LaneType.DRIVING))[0]
    if on_road.size == 0:
        return []
    secs = g.section[on_road]
    s0 = g.section_s0[secs]
    edge_sec = secs[np.argmax(s0)] if at_end else secs[np.argmin(s0)]
    in_junction = rd.junction != "-1"
    for li in on_road:
        if g.section[li] != edge_sec:
            continue
        lid = int(g.odr_lane[li])
        if ranges and not any(a <= lid <= b for a, b in ranges):
            continue
        if not in_junction:
            if lane_forward(rd, lid) == at_end:  # this lane leaves the road at that end
                out.append(int(li))
        elif lane_forward(rd, lid) != at_end:
            # a signal on a junction's connecting road guards the lanes entering it there
            out += [int(p) for p in g.predecessors[li] if p >= 0]
    return sorted(set(out))


def compile_lights(
    model: OdrMap, g: R.LaneGraph, timing: LightTiming = LightTiming()
) -> LightTable:
    """The :class:`LightTable` of a map's dynamic signals on its lane graph."""
    ctrl_seq = {c.id: c.sequence for c in model.controllers}
    group_of: dict[str, str] = {}
    for j in model.junctions:
        for cid in j.controllers:
            group_of.setdefault(cid, f"j{j.id}")
    phase_len = timing.green_s + timing.yellow_s + timing.all_red_s
    # phases per group: the sorted distinct sequence numbers (None: the controller's own phase)
    group_phases: dict[str, list[object]] = {}
    for cid, seq in ctrl_seq.items():
        grp = group_of.get(cid, f"c{cid}")
        key: object = seq if seq is not None else f"c{cid}"
        group_phases.setdefault(grp, [])
        if key not in group_phases[grp]:
            group_phases[grp].append(key)
    for grp, keys in group_phases.items():
        group_phases[grp] = sorted(keys, key=lambda k: (isinstance(k, str), str(k).zfill(8)))
    rows: list[tuple[int, float, float, float, str]] = []
    for sg in model.signals:
        if not sg.dynamic:
            continue
        lanes = _signal_lanes(model, g, sg)
        if not lanes:
            continue
        ctrl = sg.controllers[0] if sg.controllers else None
        if ctrl is None or ctrl not in ctrl_seq:
            start, cycle = 0.0, 2 * phase_len
        else:
            grp = group_of.get(ctrl, f"c{ctrl}")
            seq = ctrl_seq[ctrl]
            keys = group_phases[grp]
            idx = keys.index(seq if seq is not None else f"c{ctrl}")
            start, cycle = idx * phase_len, max(2, len(keys)) * phase_len
        for li in lanes:
            rows.append((li, float(g.lane_length[li]), start, cycle, sg.id))
    # one light per lane: the first signal listed for it (CARLA puts one head per approach)
    seen: set[int] = set()
    uniq = []
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            uniq.append(r)
    K = len(uniq)
    lane = np.array([r[0] for r in uniq], np.int32)
    lane_light = np.full(g.num_lanes, -1, np.int32)
    lane_light[lane] = np.arange(K, dtype=np.int32)
    lane_stop = np.full(g.num_lanes, np.inf, np.float32)
    lane_stop[lane] = [r[1] for r in uniq]
    return LightTable(
        lane=lane,
        start_s=np.array([r[2] for r in uniq], np.float32),
        cycle_s=np.array([r[3] for r in uniq], np.float32),
        green_s=np.full(K, timing.green_s, np.float32),
        yellow_s=np.full(K, timing.yellow_s, np.float32),
        lane_light=lane_light,
        lane_stop_s=lane_stop,
        signal_id=tuple(r[4] for r in uniq),
    )


def light_states(table: LightTable, time: F32, offset: F32 | None = None) -> NDArray[np.int8]:
    """(B, K) :class:`LightState` of every light at env times ``time`` (B,) [s] plus per-env
    plan offsets ``offset`` (B,) [s]."""
    t = time if offset is None else time + offset
    u = np.mod(t[:, None] - table.start_s[None, :], table.cycle_s[None, :])
    state = (u >= table.green_s).astype(np.int8) + (u >= table.green_s + table.yellow_s)
    out: NDArray[np.int8] = state.astype(np.int8, copy=False)
    return out


def next_stop_line(
    table: LightTable, g: R.LaneGraph, lane: I32, s: F32, choice: I32
) -> tuple[I32, F32]:
    """The next light ahead of lane positions (any shape): on the lane itself if its stop line
    is not passed, else on the successor ``choice`` picks.

    Returns:
        (light index, -1 none; distance from ``s`` to its stop line [m], inf none).
    """
    k1 = table.lane_light.take(lane)
    d1 = table.lane_stop_s.take(lane) - s
    own = (k1 >= 0) & (d1 >= 0)
    nsucc, succ = R.chosen_successor(g, lane, choice)
    succ = np.where(nsucc > 0, succ, lane)
    k2 = np.where(nsucc > 0, table.lane_light.take(succ), -1)
    d2 = g.lane_length.take(lane) - s + table.lane_stop_s.take(succ)
    k = np.where(own, k1, k2).astype(np.int32, copy=False)
    dist = np.where(own, d1, np.where(k2 >= 0, d2, np.inf)).astype(np.float32, copy=False)
    return k, dist


def state_of(states: NDArray[np.int8], light: I32) -> NDArray[np.int8]:
    """States (B, ...) of lights ``light`` (B, ...) (-1: GREEN, i.e. no constraint)."""
    B = states.shape[0]
    K = states.shape[1]
    if K == 0:
        return np.zeros(light.shape, np.int8)
    rows = (np.arange(B) * K).reshape((B,) + (1,) * (light.ndim - 1))
    out = states.reshape(-1).take(rows + np.maximum(light, 0))
    return np.where(light >= 0, out, np.int8(LightState.GREEN)).astype(np.int8, copy=False)


def must_stop(state: NDArray[np.int8], gap: F32, speed: F32, b_comf: F32) -> BoolArr:
    """Whether a vehicle at bumper-to-line ``gap`` [m] and ``speed`` stops for ``state``
    (module docstring: red if it can at ``RED_STOP_DECEL``, yellow if at ``b_comf``)."""
    need = np.square(speed) / (2.0 * np.maximum(gap, 1e-3))
    red = (state == LightState.RED) & (need <= RED_STOP_DECEL)
    yellow = (state == LightState.YELLOW) & (need <= b_comf)
    out: BoolArr = (red | yellow) & (gap > -STOP_MARGIN_M)
    return out


def ran_red_light(
    table: LightTable,
    g: R.LaneGraph,
    states: NDArray[np.int8],
    prev_lane: I32,
    prev_s: F32,
    lane: I32,
    s: F32,
) -> BoolArr:
    """(B,) the ego crossed a red stop line between two steps (module docstring).

    ``states`` are the lights at the previous step's time (the light the ego saw).
    """
    k = table.lane_light.take(prev_lane)
    stop = table.lane_stop_s.take(prev_lane)
    before = (k >= 0) & (prev_s < stop)
    side = (lane == g.left.take(prev_lane)) | (lane == g.right.take(prev_lane))
    crossed = before & np.where(lane == prev_lane, s >= stop, ~side)
    red = state_of(states, k[:, None])[:, 0] == LightState.RED
    out: BoolArr = crossed & red
    return out
