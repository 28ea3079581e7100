"""OpenSCENARIO 1.2 export and import of :class:`sim.scenario.ScenarioSpec`, roads as OpenDRIVE.

Export (:func:`export_xosc`) writes ``<name>.xosc`` and its road ``<name>.xodr`` with the
``scenariogeneration`` package:

- **Road** (:func:`write_road_xodr`): one OpenDRIVE road (id 0) whose planView is the RoadSpec's
  reference line (``line``, ``arc``, ``spiral`` geometries, exactly the segments
  :func:`sim.scenario.build_road` integrates; ``ring`` is one closed arc linked to itself), with
  one lane section: the centre lane 0 on the reference line (the left edge, as in
  :func:`sim.road.build_highway`) and driving lanes ``-1 .. -num_lanes`` of ``lane_width`` to its
  right, broken markings between them, solid ones at the edges, and the speed limit as the
  road type's ``<speed max>``. Urban layouts (intersection, roundabout, ramps, ...) and
  ``file`` maps are written from their OpenDRIVE model by :func:`sim.opendrive.write_opendrive`,
  with the model's ``<signal>``s (traffic lights: ``dynamic="yes"``) and ``<controller>``s
  (``sequence``, ``<control signalId>``) and the junctions' controller references.
- **Traffic lights** (:func:`light_plans`): where the road has dynamic signals, the
  ``RoadNetwork`` gets a ``TrafficSignals`` section with one ``TrafficSignalController`` per
  junction plan (``junction_<id>``; a controller outside every junction: ``controller_<id>``;
  signals no controller lists: ``uncontrolled``), grouped as :func:`sim.lights.compile_lights`
  groups them. Its ``Phase``s (name, duration) cover one cycle of the simulator's fixed-time
  plan (``RoadSpec.lights``): per phase slot ``i`` ``phase<i>_green`` (``green_s``, that
  slot's signals ``green``, all others ``red``), ``phase<i>_yellow`` (``yellow_s``) and
  ``phase<i>_all_red`` (``all_red_s``, left out when 0); a one-phase plan gets an all-red
  ``phase1_idle`` slot, as the simulator's cycle is at least two slots. Each phase sets every
  signal of its plan by ``TrafficSignalState trafficSignalId=<OpenDRIVE signal id>
  state="green" | "yellow" | "red"`` (OpenSCENARIO leaves the state names to the road
  network and the player; these are gendrive's). OpenSCENARIO has no plan start offset
  (``delay`` is relative to another controller), so the list is rotated to start ``offset_s``
  into the plan: the phase the offset falls in is split into ``<name>_tail`` (first) and
  ``<name>_head`` (last), and the rotated list played cyclically from t = 0 gives every signal
  the simulator's state at every time. ``offset_s`` None (the simulator draws a per-env offset at
  reset) is exported as offset 0: a plan starting with phase 0's green at t = 0.
- **Entities**: ``Ego``, ``actor<i>`` per scripted actor and ``traffic<i>`` per background
  vehicle, each a ``Vehicle`` whose bounding box is centred on the reference point (spec
  positions are box centres). The IDM/MOBIL parameters ride along as ``gendrive.*`` vehicle
  properties so a re-import restores them.
- **Init**: ``TeleportAction`` to ``LanePosition(road, lane, s, offset=d)`` and an
  ``AbsoluteSpeedAction`` (step) to the start speed. Spec roads and lanes are the OpenDRIVE ids
  of the written .xodr and ``s`` its reference-line coordinate, so they are written unchanged.
- **Ego route** (:func:`ego_route_action`): an ego with ``waypoints`` gets an
  ``AssignRouteAction`` in its Init, a ``Route`` ``EgoRoute`` (``closed="false"``) whose
  ``Waypoint``s are its start and then each waypoint ``(road, lane, s)``, all as
  ``LanePosition(roadId, laneId, s, offset 0)`` with ``routeStrategy="shortest"``: the
  simulator's :func:`sim.routes.plan` takes the shortest way (in metres, a lane change costing
  ``LANE_CHANGE_COST_M``) from each point to the next and ends at the last. A route along
  successive lanes (no waypoints) stays the ``EgoRouteLength`` parameter alone.
- **Story**: one ManeuverGroup per scripted actor, one Event per scripted event (priority
  ``parallel``: events fire independently, as in the simulator):

  ===============  ======================================================================
  spec event       OpenSCENARIO action
  ===============  ======================================================================
  set_speed        SpeedAction, AbsoluteTargetSpeed ``target_speed``, linear, rate ``decel``
  stop             SpeedAction, AbsoluteTargetSpeed 0, linear, rate ``decel``
  lane_change      LaneChangeAction, RelativeTargetLane (entity itself, +1 left / -1 right),
                   sinusoidal over time ``duration`` (the simulator's (1 - cos) profile)
  ===============  ======================================================================

  Triggers: ``time`` -> ``SimulationTimeCondition(at, greaterOrEqual)``; ``ego_gap`` ->
  ``RelativeDistanceCondition`` of the actor to ``Ego``, ``euclidianDistance`` between reference
  points, ``freespace=false``, ``lessOrEqual`` ``at + (L_actor + L_ego) / 2``: exactly the
  simulator's trigger (centre distance minus half the two lengths).
- **Background traffic**: a spec's random :class:`TrafficSpec` traffic is drawn once (from the
  spec's seed, else ``traffic_seed``) exactly as :func:`sim.world.reset` places it, and written as
  vehicles with their start speeds and, where their desired speed differs, a speed action to it
  at t = 0 (linear at ``a_max``). IDM car following and MOBIL lane changes are driver models:
  OpenSCENARIO 1.2 has no way to state them without a simulator-specific controller, so none is
  emitted; an OpenSCENARIO player moves these vehicles at their speed along their lane (esmini's
  default controller), and the IDM parameters are kept only as properties.
- **StopTrigger**: ``SimulationTimeCondition(time_limit_s, greaterThan)``. The ego's route length
  and the spec's seed are ``ParameterDeclarations`` (``EgoRouteLength``, ``TrafficSeed``).

Import (:func:`import_xosc`) reads simple OpenSCENARIO 1.x files back into specs; see its
docstring for what is supported (traffic-light plans are not: the single roads it can import
have no lights, so a ``TrafficSignalController`` raises). The ego's Init ``AssignRouteAction``
comes back as ``EgoSpec.waypoints`` (its first waypoint dropped when it is the ego's start).
Unsupported elements raise :class:`OpenScenarioError` naming the element's XML path. Validation
against the XSD schemas ``scenariogeneration`` ships: :func:`xosc_schema_errors`,
:func:`xodr_schema_errors`.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim import road as R
from sim.scenario import (
    MAX_DECEL_MPS2,
    MAX_SPEED_MPS,
    BehaviorSpec,
    EgoSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    SegmentSpec,
    SpecError,
    build_road,
    is_closed,
    road_length,
    spec_from_dict,
)

if TYPE_CHECKING:
    from sim.lights import LightTiming

OSC_MINOR = 2  # OpenSCENARIO 1.2
ODR_MINOR = "7"  # OpenDRIVE 1.7: the schema scenariogeneration ships
VEHICLE_HEIGHT_M = 1.5  # [m] box height of exported cars (the simulator is 2-D)
WHEELBASE_M = 2.8  # [m] axle spacing of exported cars (sim.dynamics.VehicleParams default)
WHEEL_DIAMETER_M = 0.65  # [m] passenger-car wheel
TRACK_WIDTH_M = 1.6  # [m] passenger-car track
MAX_STEER_RAD = 0.6  # [rad] front axle limit written to the Axles element
DEFAULT_TIME_LIMIT_S = 60.0  # [s] for imported files without a SimulationTimeCondition stop
DEFAULT_SPEED_LIMIT_MPS = 36.1  # [m/s] 130 km/h: imported roads without a <speed> record
BEHAVIOR_PREFIX = "gendrive."  # vehicle property names carrying the IDM/MOBIL parameters


class OpenScenarioError(ValueError):
    """An OpenSCENARIO/OpenDRIVE file cannot be written or read; names the element or file."""


# ---------------------------------------------------------------------------------------------
# Roads
# ---------------------------------------------------------------------------------------------


def road_segments(road: RoadSpec) -> tuple[list[R.Segment], bool]:
    """The reference line of a procedural road as segments, and whether it is closed.

    The same pieces :func:`sim.scenario.build_road` hands to :func:`sim.road.build_highway`
    (``curved`` is the S-bend of :func:`sim.road.curved_highway`); one definition, in
    :func:`sim.opendrive.road_spec_segments`.
    """
    from sim.opendrive import OpenDriveError, road_spec_segments

    try:
        return road_spec_segments(road)
    except OpenDriveError:
        raise OpenScenarioError(f"road.kind: no OpenDRIVE writer for {road.kind!r}") from None


def _write_atomic(write: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def write_road_xodr(road: RoadSpec, path: str | Path) -> Path:
    """Write any RoadSpec as an OpenDRIVE 1.7 file (see module docstring).

    Highway roads (straight, curved, ring, segments) go through scenariogeneration; urban
    layouts and ``file`` maps through :func:`sim.opendrive.write_opendrive` from their OpenDRIVE
    model (a map is written back from its parsed model, so the scenario's folder is
    self-contained).
    """
    from scenariogeneration import xodr

    p = Path(path)
    if road.kind not in ("straight", "curved", "ring", "segments"):
        from sim.opendrive import OpenDriveError, model_from_road_spec, write_opendrive

        try:
            return write_opendrive(model_from_road_spec(road), p)
        except OpenDriveError as e:
            raise OpenScenarioError(f"road: {e}") from None
    segs, closed = road_segments(road)
    pv = xodr.PlanView(0.0, 0.0, 0.0)
    for sg in segs:
        if sg.k0 == 0.0 and sg.k1 == 0.0:
            pv.add_geometry(xodr.Line(sg.length))
        elif sg.k0 == sg.k1:
            pv.add_geometry(xodr.Arc(sg.k0, length=sg.length))
        else:
            pv.add_geometry(xodr.Spiral(sg.k0, sg.k1, length=sg.length))
    centre = xodr.Lane(lane_type=xodr.LaneType.none)
    centre.add_roadmark(xodr.std_roadmark_solid())
    section = xodr.LaneSection(0, centre)
    for k in range(1, road.num_lanes + 1):
        lane = xodr.Lane(lane_type=xodr.LaneType.driving, a=road.lane_width)
        last = k == road.num_lanes
        lane.add_roadmark(xodr.std_roadmark_solid() if last else xodr.std_roadmark_broken())
        if closed:  # a ring lane continues into itself
            lane.add_link("successor", -k)
            lane.add_link("predecessor", -k)
        section.add_right_lane(lane)
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    rd = xodr.Road(0, pv, lanes)
    rd.add_type(xodr.RoadType.motorway, s=0, speed=road.speed_limit, speed_unit="m/s")
    if closed:
        rd.add_successor(xodr.ElementType.road, 0, xodr.ContactPoint.start)
        rd.add_predecessor(xodr.ElementType.road, 0, xodr.ContactPoint.end)
    od = xodr.OpenDrive(f"gendrive_{road.kind}", revMajor="1", revMinor=ODR_MINOR)
    od.add_road(rd)
    if not closed:  # the adjuster walks links; a self-linked ring needs no adjusting
        od.adjust_roads_and_lanes()
    else:
        rd.planview.adjust_geometries()
    _write_atomic(lambda f: od.write_xml(f), p)
    return p


# ---------------------------------------------------------------------------------------------
# Schema validation
# ---------------------------------------------------------------------------------------------


def _schema_dir() -> Path:
    import scenariogeneration

    d = Path(scenariogeneration.__file__).resolve().parent.parent / "schemas"
    if not d.is_dir():
        raise OpenScenarioError(f"scenariogeneration's schemas not found at {d}")
    return d


@lru_cache(maxsize=8)
def _schema(name: str) -> Any:
    """A compiled XSD from scenariogeneration's schema folder (compiling one takes ~1 s)."""
    import xmlschema

    return xmlschema.XMLSchema(str(_schema_dir() / name))


def xosc_schema_errors(path: str | Path) -> list[str]:
    """Schema violations of an .xosc against the OpenSCENARIO XSD of its header's version."""
    tree = ET.parse(path)
    hdr = tree.find("FileHeader")
    if hdr is None:
        return ["OpenSCENARIO/FileHeader: missing"]
    minor = hdr.get("revMinor", "")
    name = {"0": "1_0", "1": "1_1", "2": "1_2", "3": "1_3_1"}.get(minor)
    if hdr.get("revMajor") != "1" or name is None:
        return [f"FileHeader: no schema for OpenSCENARIO {hdr.get('revMajor')}.{minor}"]
    schema = _schema(f"OpenSCENARIO_{name}.xsd")
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]


def xodr_schema_errors(path: str | Path) -> list[str]:
    """Schema violations of an .xodr against the OpenDRIVE 1.7 XSD scenariogeneration ships."""
    schema = _schema("opendrive_17_core.xsd")
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]


# ---------------------------------------------------------------------------------------------
# Traffic-light plans
# ---------------------------------------------------------------------------------------------

LIGHT_STATE_NAMES = ("green", "yellow", "red")  # TrafficSignalState.state per sim.lights.LightState
UNCONTROLLED_PLAN = "uncontrolled"  # plan of dynamic signals no OpenDRIVE controller lists
_SPLIT_EPS_S = 1e-9  # [s] an offset this close to a phase boundary starts at that boundary


@dataclass(frozen=True)
class SignalPhase:
    """One OpenSCENARIO ``Phase``: ``duration`` [s] and the state (:data:`LIGHT_STATE_NAMES`) of
    every signal of its plan, as (OpenDRIVE signal id, state) pairs."""

    name: str
    duration: float
    states: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SignalPlan:
    """One ``TrafficSignalController``: a junction's fixed-time plan as a cyclic phase list that
    starts at t = 0 of the scenario (the plan's offset already applied)."""

    name: str
    phases: tuple[SignalPhase, ...]

    @property
    def cycle_s(self) -> float:
        return sum(p.duration for p in self.phases)


def light_plans(road: RoadSpec) -> list[SignalPlan]:
    """The traffic-light plans of a road as the simulator runs them (:mod:`sim.lights`).

    Signals are grouped as :func:`sim.lights.compile_lights` groups them: the controllers of a
    junction share one plan (``junction_<id>``), a controller outside every junction has its own
    (``controller_<id>``), dynamic signals no controller lists share ``uncontrolled``. A plan
    with ``n`` phases (the distinct ``sequence`` numbers of its controllers, in order; at least
    two slots) lists per phase slot ``i`` its green (``green_s``: phase ``i``'s signals green,
    all others red), yellow (``yellow_s``) and all-red clearance (``all_red_s``, omitted when
    0); a second slot no controller fills is one all-red ``phase1_idle``. Each signal follows
    the first controller listing it, as in the simulator.

    The list is then rotated to start at ``u0 = offset_s mod cycle`` (at t = 0 the simulator's
    plan is ``offset_s`` seconds in): the phase ``u0`` falls in is split into its tail
    (``<name>_tail``, first) and head (``<name>_head``, last), so repeating the rotated list
    from t = 0 reproduces the shifted plan exactly. ``offset_s`` None (the simulator draws a
    per-env offset at reset) is exported as offset 0.

    Returns:
        one plan per group with at least one dynamic signal; none for highway roads and
        unsignalised layouts.
    """
    if road.kind in ("straight", "curved", "ring", "segments"):
        return []
    from sim.lights import LightTiming
    from sim.opendrive import OpenDriveError, model_from_road_spec

    lt = road.lights
    try:
        timing = LightTiming(lt.green_s, lt.yellow_s, lt.all_red_s)
        model = model_from_road_spec(road)
    except (ValueError, OpenDriveError) as e:
        raise OpenScenarioError(f"road: {e}") from None
    ctrl_seq = {c.id: c.sequence for c in model.controllers}
    group_of: dict[str, str] = {}
    for j in model.junctions:
        for cid in j.controllers:
            group_of.setdefault(cid, f"junction_{j.id}")
    keys: dict[str, list[object]] = {}
    for cid, seq in ctrl_seq.items():
        grp = keys.setdefault(group_of.get(cid, f"controller_{cid}"), [])
        key: object = seq if seq is not None else f"c{cid}"
        if key not in grp:
            grp.append(key)
    for grp_keys in keys.values():  # sim.lights.compile_lights's order of the phases
        grp_keys.sort(key=lambda k: (isinstance(k, str), str(k).zfill(8)))
    members: dict[str, dict[str, int]] = {}  # plan -> signal id -> phase slot
    for sg in model.signals:
        if not sg.dynamic:
            continue
        ctrl = sg.controllers[0] if sg.controllers else None
        if ctrl is None or ctrl not in ctrl_seq:
            plan, slot = UNCONTROLLED_PLAN, 0
        else:
            plan = group_of.get(ctrl, f"controller_{ctrl}")
            seq = ctrl_seq[ctrl]
            slot = keys[plan].index(seq if seq is not None else f"c{ctrl}")
        prev = next((p for p, m in members.items() if sg.id in m), None)
        if prev is not None and (prev, members[prev][sg.id]) != (plan, slot):
            raise OpenScenarioError(
                f"road: signal id {sg.id!r} appears twice with different plans; OpenSCENARIO "
                "names signals by their id"
            )
        members.setdefault(plan, {})[sg.id] = slot
    offset = lt.offset_s or 0.0
    out = []
    for plan, sigs in members.items():
        n_keys = len(keys.get(plan, [None]))
        phases = _cycle(sigs, max(2, n_keys), n_keys, timing)
        out.append(SignalPlan(plan, _rotate(phases, offset)))
    return out


def _cycle(sigs: dict[str, int], slots: int, n_keys: int, timing: LightTiming) -> list[SignalPhase]:
    """One unrotated cycle of a plan (:func:`light_plans`), starting with slot 0's green."""
    green, yellow, red = LIGHT_STATE_NAMES
    out = []
    for i in range(slots):
        if i >= n_keys:  # the second slot of a one-phase plan: all red
            dur = timing.green_s + timing.yellow_s + timing.all_red_s
            out.append(SignalPhase(f"phase{i}_idle", dur, tuple((s, red) for s in sigs)))
            continue
        for part, dur, state in (
            ("green", timing.green_s, green),
            ("yellow", timing.yellow_s, yellow),
            ("all_red", timing.all_red_s, red),
        ):
            if dur > 0:
                states = tuple((s, state if k == i else red) for s, k in sigs.items())
                out.append(SignalPhase(f"phase{i}_{part}", float(dur), states))
    return out


def _rotate(phases: list[SignalPhase], offset: float) -> tuple[SignalPhase, ...]:
    """The cyclic phase list started ``offset`` [s] in (:func:`light_plans`)."""
    cycle = sum(p.duration for p in phases)
    u0 = offset % cycle  # np.mod's sign, as sim.lights
    start = 0.0
    for k, ph in enumerate(phases):
        end = start + ph.duration
        if u0 < end - _SPLIT_EPS_S:
            into = u0 - start
            if into <= _SPLIT_EPS_S:
                return (*phases[k:], *phases[:k])
            tail = replace(ph, name=f"{ph.name}_tail", duration=round(end - u0, 9))
            head = replace(ph, name=f"{ph.name}_head", duration=round(into, 9))
            return (tail, *phases[k + 1 :], *phases[:k], head)
        start = end
    return tuple(phases)  # u0 within _SPLIT_EPS_S of the cycle's end: the plan's start


def _traffic_signal_controllers(road: RoadSpec) -> list[Any]:
    """The plans of :func:`light_plans` as scenariogeneration ``TrafficSignalController``s."""
    from scenariogeneration import xosc

    out = []
    for plan in light_plans(road):
        tsc = xosc.TrafficSignalController(plan.name)
        for ph in plan.phases:
            phase = xosc.Phase(ph.name, ph.duration)
            for sid, state in ph.states:
                phase.add_signal_state(sid, state)
            tsc.add_phase(phase)
        out.append(tsc)
    return out


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    """A vehicle to write: name, lane coordinates, size, speed, behaviour, events."""

    name: str
    road: int
    lane: int
    s: float
    d: float
    speed: float
    length: float
    width: float
    behavior: BehaviorSpec | None
    events: tuple[EventSpec, ...] = ()
    role: str = "scripted"
    kind: str = "vehicle"  # ActorSpec.type: vehicle | pedestrian


def _background(spec: ScenarioSpec, traffic_seed: int | None) -> list[_Placed]:
    """The spec's TrafficSpec traffic drawn as :func:`sim.world.reset` places it."""
    from sim import world

    if spec.traffic.count == 0:
        return []
    seed = spec.seed if spec.seed is not None else (traffic_seed or 0)
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(seed)])
    first = 1 + len(spec.actors)
    out = []
    idx = np.nonzero(st.valid[0, first:])[0] + first
    s_ref = R.interp(g, g.s_ref, st.lane[0, idx], st.s[0, idx])
    for k, j in enumerate(idx):
        beh = BehaviorSpec(
            v0=round(float(st.behavior.v0[0, j]), 3),
            headway=round(float(st.behavior.headway[0, j]), 3),
            min_gap=round(float(st.behavior.min_gap[0, j]), 3),
            a_max=round(float(st.behavior.a_max[0, j]), 3),
            b_comf=round(float(st.behavior.b_comf[0, j]), 3),
            politeness=round(float(st.behavior.politeness[0, j]), 3),
            b_safe=round(float(st.behavior.b_safe[0, j]), 3),
            lc_threshold=round(float(st.behavior.lc_threshold[0, j]), 3),
            lc_duration=round(float(st.behavior.lc_duration[0, j]), 3),
        )
        out.append(
            _Placed(
                name=f"traffic{k}",
                road=int(g.odr_road[st.lane[0, j]]),
                lane=int(g.odr_lane[st.lane[0, j]]),
                s=round(float(s_ref[k]), 3),
                d=0.0,
                speed=round(float(st.speed[0, j]), 3),
                length=float(st.length[0, j]),
                width=round(float(st.width[0, j]), 3),
                behavior=beh,
                role="traffic",
            )
        )
    return out


def _vehicle(p: _Placed) -> Any:
    from scenariogeneration import xosc

    bb = xosc.BoundingBox(p.width, p.length, VEHICLE_HEIGHT_M, 0.0, 0.0, VEHICLE_HEIGHT_M / 2)
    half = WHEELBASE_M / 2
    front = xosc.Axle(MAX_STEER_RAD, WHEEL_DIAMETER_M, TRACK_WIDTH_M, half, WHEEL_DIAMETER_M / 2)
    rear = xosc.Axle(0.0, WHEEL_DIAMETER_M, TRACK_WIDTH_M, -half, WHEEL_DIAMETER_M / 2)
    veh = xosc.Vehicle(
        "car", xosc.VehicleCategory.car, bb, front, rear, MAX_SPEED_MPS, 4.0, MAX_DECEL_MPS2
    )
    veh.add_property(BEHAVIOR_PREFIX + "role", p.role)
    if p.behavior is not None:
        for f in fields(BehaviorSpec):
            v = getattr(p.behavior, f.name)
            if v is not None:
                veh.add_property(BEHAVIOR_PREFIX + f.name, str(v).lower())
    return veh


PEDESTRIAN_MASS_KG = 80.0  # [kg] an adult (OpenSCENARIO requires a mass)
PEDESTRIAN_HEIGHT_M = 1.75  # [m] an adult


def _pedestrian(p: _Placed) -> Any:
    from scenariogeneration import xosc

    bb = xosc.BoundingBox(p.width, p.length, PEDESTRIAN_HEIGHT_M, 0.0, 0.0, PEDESTRIAN_HEIGHT_M / 2)
    ped = xosc.Pedestrian(
        "pedestrian", PEDESTRIAN_MASS_KG, xosc.PedestrianCategory.pedestrian, bb, "walker"
    )
    ped.add_property(BEHAVIOR_PREFIX + "role", p.role)
    return ped


def _time_trigger(name: str, t: float, rule: Any = None, point: str = "start") -> Any:
    from scenariogeneration import xosc

    return xosc.ValueTrigger(
        name,
        0,
        xosc.ConditionEdge.rising,
        xosc.SimulationTimeCondition(t, rule or xosc.Rule.greaterOrEqual),
        triggeringpoint=point,
    )


EGO_ROUTE_NAME = "EgoRoute"  # the ego's Route in its Init AssignRouteAction
EGO_ROUTE_STRATEGY = "shortest"  # RouteStrategy of every exported waypoint (sim.routes.plan's)


def _lane_position(road: float, lane: float, s: float, d: float = 0.0, **kw: Any) -> Any:
    """``LanePosition`` of a spec's lane coordinates.

    Spec roads and lanes are the OpenDRIVE ids of the exported .xodr (road 0, lanes -1..-n on
    procedural roads; the model's ids on urban layouts and maps) and ``s`` is the reference-line
    coordinate of that road, so they are written as they are.
    """
    from scenariogeneration import xosc

    return xosc.LanePosition(float(s), float(d), int(lane), int(road), **kw)


def ego_route_action(ego: EgoSpec) -> Any | None:
    """The ego's ``AssignRouteAction`` (Init), None when it has no waypoints.

    The ``Route`` ``EGO_ROUTE_NAME`` (``closed="false"``) has the ego's start (offset 0) as its
    first ``Waypoint``, then every ``ego.waypoints`` entry ``(road, lane, s)`` as
    ``LanePosition(roadId, laneId, offset 0, s)``, each with ``routeStrategy`` ``shortest``:
    :func:`sim.routes.plan` finds the shortest route (in metres, lane changes costing
    ``LANE_CHANGE_COST_M``) from each point to the next, the route ending at the last.
    """
    if not ego.waypoints:
        return None
    from scenariogeneration import xosc

    strategy = getattr(xosc.RouteStrategy, EGO_ROUTE_STRATEGY)
    route = xosc.Route(EGO_ROUTE_NAME, closed=False)
    route.add_waypoint(_lane_position(ego.road, ego.lane, ego.s), strategy)
    for w in ego.waypoints:
        route.add_waypoint(_lane_position(w[0], w[1], w[2]), strategy)
    return xosc.AssignRouteAction(route)


def export_xosc(
    spec: ScenarioSpec, out_dir: str | Path, *, traffic_seed: int | None = None
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<spec.name>.xosc`` and its road ``<spec.name>.xodr`` (module docstring).

    Args:
        spec: the scenario.
        out_dir: created if missing.
        traffic_seed: draws the spec's random traffic when the spec has no seed of its own.

    Returns:
        (xosc path, xodr path).
    """
    from scenariogeneration import xosc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)
    xodr_path = write_road_xodr(spec.road, out / f"{stem}.xodr")
    e = spec.ego
    placed = [_Placed("Ego", e.road, e.lane, e.s, e.d, e.speed, e.length, e.width, None, (), "ego")]
    placed += [
        _Placed(
            f"actor{i}",
            a.road,
            a.lane,
            a.s,
            a.d,
            a.speed,
            a.length,
            a.width,
            a.behavior if a.type == "vehicle" else None,
            a.events,
            kind=a.type,
        )
        for i, a in enumerate(spec.actors)
    ]
    placed += _background(spec, traffic_seed)

    params = xosc.ParameterDeclarations()
    params.add_parameter(
        xosc.Parameter("EgoRouteLength", xosc.ParameterType.double, str(e.route_length))
    )
    if spec.seed is not None:
        params.add_parameter(xosc.Parameter("TrafficSeed", xosc.ParameterType.int, str(spec.seed)))
    entities = xosc.Entities()
    init = xosc.Init()
    step = xosc.TransitionDynamics(xosc.DynamicsShapes.step, xosc.DynamicsDimension.time, 0)
    for p in placed:
        if p.kind == "pedestrian":
            entities.add_scenario_object(p.name, _pedestrian(p))
            # A crosser faces across the road (relative heading +-90 degrees) and its cross
            # event is a speed action: it walks along that heading, as ScenarioRunner's
            # DynamicObjectCrossing scripts its walker.
            cross = [ev for ev in p.events if ev.action == "cross"]
            h = math.pi / 2 if not cross or cross[0].direction == "left" else -math.pi / 2
            heading = xosc.Orientation(h=h, reference=xosc.ReferenceContext.relative)
            pos = _lane_position(p.road, p.lane, p.s, p.d, orientation=heading)
        else:
            entities.add_scenario_object(p.name, _vehicle(p))
            pos = _lane_position(p.road, p.lane, p.s, p.d)
        init.add_init_action(p.name, xosc.TeleportAction(pos))
        init.add_init_action(p.name, xosc.AbsoluteSpeedAction(p.speed, step))
    route = ego_route_action(e)
    if route is not None:
        init.add_init_action("Ego", route)

    story = xosc.Story("gendrive")
    act = xosc.Act("scripted", _time_trigger("act_start", 0.0))
    has_group = False
    for p in placed:
        events = list(p.events)
        group = xosc.ManeuverGroup(f"{p.name}_group")
        group.add_actor(p.name)
        man = xosc.Maneuver(f"{p.name}_maneuver")
        b = p.behavior
        if (
            p.role == "traffic"
            and b is not None
            and b.v0 is not None
            and abs(b.v0 - p.speed) > 1e-3
        ):
            # Background cars head for their desired speed, the one part of IDM OSC can say.
            ev = xosc.Event(f"{p.name}_to_v0", xosc.Priority.parallel)
            rate = b.a_max if b.v0 > p.speed else b.b_comf
            ev.add_action(
                f"{p.name}_to_v0",
                xosc.AbsoluteSpeedAction(
                    b.v0,
                    xosc.TransitionDynamics(
                        xosc.DynamicsShapes.linear, xosc.DynamicsDimension.rate, rate
                    ),
                ),
            )
            ev.add_trigger(_time_trigger(f"{p.name}_to_v0_at", 0.0))
            man.add_event(ev)
        for k, evs in enumerate(events):
            name = f"{p.name}_event{k}_{evs.action}"
            ev = xosc.Event(name, xosc.Priority.parallel)
            if evs.action == "lane_change":
                dyn = xosc.TransitionDynamics(
                    xosc.DynamicsShapes.sinusoidal, xosc.DynamicsDimension.time, evs.duration
                )
                action: Any = xosc.RelativeLaneChangeAction(
                    1 if evs.direction == "left" else -1, p.name, dyn
                )
            elif evs.action == "cross":  # walk off at once along the crossing heading
                action = xosc.AbsoluteSpeedAction(evs.target_speed, step)
            else:
                target = 0.0 if evs.action == "stop" else evs.target_speed
                action = xosc.AbsoluteSpeedAction(
                    target,
                    xosc.TransitionDynamics(
                        xosc.DynamicsShapes.linear, xosc.DynamicsDimension.rate, evs.decel
                    ),
                )
            ev.add_action(name, action)
            if evs.trigger == "time":
                ev.add_trigger(_time_trigger(f"{name}_trigger", evs.at))
            else:
                cond = xosc.RelativeDistanceCondition(
                    evs.at + 0.5 * (p.length + e.length),
                    xosc.Rule.lessOrEqual,
                    xosc.RelativeDistanceType.euclidianDistance,
                    "Ego",
                    alongroute=False,
                    freespace=False,
                )
                ev.add_trigger(
                    xosc.EntityTrigger(
                        f"{name}_trigger", 0, xosc.ConditionEdge.rising, cond, p.name
                    )
                )
            man.add_event(ev)
        if man.events:
            group.add_maneuver(man)
            act.add_maneuver_group(group)
            has_group = True
    if not has_group:  # the schema wants at least one ManeuverGroup per Act
        act.add_maneuver_group(xosc.ManeuverGroup("idle"))
    story.add_act(act)
    stop = _time_trigger("time_limit", spec.time_limit_s, xosc.Rule.greaterThan, "stop")
    board = xosc.StoryBoard(init, stop)
    board.add_story(story)
    road_net = xosc.RoadNetwork(roadfile=xodr_path.name)
    for tsc in _traffic_signal_controllers(spec.road):
        road_net.add_traffic_signal_controller(tsc)
    sce = xosc.Scenario(
        spec.name,
        "gendrive",
        params,
        entities,
        board,
        road_net,
        xosc.Catalog(),
        osc_minor_version=OSC_MINOR,
    )
    xosc_path = out / f"{stem}.xosc"
    _write_atomic(lambda f: sce.write_xml(f), xosc_path)
    return xosc_path, xodr_path


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------

CARLA_TOWN = re.compile(r"^Town\d+[A-Za-z_]*(?:_Opt)?$")
_PARAM_REF = re.compile(r"^\$(\w+)$")
_TIME_RULES = ("greaterThan", "greaterOrEqual", "equalTo")
_CLOSE_RULES = ("lessThan", "lessOrEqual")
IGNORED_GLOBAL = ("EnvironmentAction",)  # weather and time of day: the simulator has neither


@dataclass(frozen=True)
class ResolvedRoad:
    """An OpenDRIVE road expressed as a RoadSpec.

    Attributes:
        road: the RoadSpec (its road id is 0).
        road_id: the OpenDRIVE road id the file uses (positions name it).
        lane_map: OpenDRIVE lane id -> RoadSpec lane id, for the right-hand driving lanes.
        inner_offset: [m] width of the non-driving lanes between the reference line and the
            first driving lane; the RoadSpec's reference line is the driving lanes' left edge.
        theta: (geometry start s, start heading, k0, k1, length) per planView geometry, for
            mapping the file's reference s onto the RoadSpec's (offset) reference line.
    """

    road: RoadSpec
    road_id: int
    lane_map: dict[int, int]
    inner_offset: float = 0.0
    theta: tuple[tuple[float, float, float, float, float], ...] = ()

    def s(self, s_file: float) -> float:
        """Reference s on the RoadSpec of a reference s in the file.

        A line at constant offset ``o`` to the right of a curve of heading ``h(s)`` has arc
        length ``s + o (h(s) - h(0))`` (ds' = (1 + o kappa) ds).
        """
        if self.inner_offset == 0.0 or not self.theta:
            return s_file
        h = 0.0
        for s0, h0, k0, k1, length in self.theta:
            if s_file <= s0 + length or (s0, h0, k0, k1, length) == self.theta[-1]:
                u = min(max(s_file - s0, 0.0), length)
                h = h0 + k0 * u + (k1 - k0) * u * u / (2.0 * length)
                break
        return s_file + self.inner_offset * h


def _resolve_road(logic_file_path: Path) -> ResolvedRoad:
    """The OpenDRIVE file of an .xosc's RoadNetwork/LogicFile as a RoadSpec.

    Expressible: one road without junctions, planView of line/arc/spiral, one lane section,
    no lane offset, right-hand driving lanes of one constant width (non-driving lanes such as
    borders may lie between them and the reference line on a straight road, or on curves by
    the offset mapping of :meth:`ResolvedRoad.s`). Elevation is ignored (the simulator is flat).
    Anything else, and CARLA towns, need the OpenDRIVE map importer (``sim/opendrive``).

    Raises:
        OpenScenarioError: naming the LogicFile and what makes it inexpressible.
    """
    where = f"RoadNetwork/LogicFile '{logic_file_path}'"
    need = "the OpenDRIVE map importer (sim/opendrive) is needed"
    if not logic_file_path.is_file():
        if CARLA_TOWN.match(logic_file_path.name):
            raise OpenScenarioError(f"{where}: a CARLA town map; {need}")
        raise OpenScenarioError(f"{where}: file not found")
    root = ET.parse(logic_file_path).getroot()
    roads = root.findall("road")
    junctions = len(root.findall("junction"))
    if len(roads) != 1 or junctions:
        raise OpenScenarioError(
            f"{where}: {len(roads)} roads and {junctions} junctions; only a single road without "
            f"junctions is expressible as a RoadSpec; {need}"
        )
    rd = roads[0]
    geoms = rd.findall("planView/geometry")
    segs: list[SegmentSpec] = []
    theta = []
    h0 = float(geoms[0].get("hdg", 0.0)) if geoms else 0.0
    s_acc = 0.0
    for i, gm in enumerate(geoms):
        length = float(gm.get("length", 0.0))
        s0 = float(gm.get("s", 0.0))
        if abs(s0 - s_acc) > 1e-3:
            raise OpenScenarioError(
                f"{where}: planView/geometry[{i}] starts at s={s0}, not {s_acc}"
            )
        tags = [c.tag for c in gm]
        if tags == ["line"]:
            k0 = k1 = 0.0
            segs.append(SegmentSpec("line", length))
        elif tags == ["arc"]:
            k0 = k1 = float(gm[0].get("curvature", 0.0))
            segs.append(SegmentSpec("arc", length, k0, k0))
        elif tags == ["spiral"]:
            k0, k1 = float(gm[0].get("curvStart", 0.0)), float(gm[0].get("curvEnd", 0.0))
            segs.append(SegmentSpec("spiral", length, k0, k1))
        else:
            raise OpenScenarioError(
                f"{where}: planView/geometry[{i}]/{tags[0] if tags else '?'} is not a line, arc "
                f"or spiral; {need}"
            )
        theta.append((s0, float(gm.get("hdg", 0.0)) - h0, k0, k1, length))
        s_acc += length
    if rd.find("lanes/laneOffset") is not None and any(
        float(lo.get(c, 0.0)) != 0.0 for lo in rd.findall("lanes/laneOffset") for c in "abcd"
    ):
        raise OpenScenarioError(f"{where}: lanes/laneOffset is not expressible; {need}")
    sections = rd.findall("lanes/laneSection")
    if len(sections) != 1:
        raise OpenScenarioError(f"{where}: {len(sections)} lane sections; {need}")
    right = sorted(
        sections[0].findall("right/lane"), key=lambda e: -int(e.get("id", "0"))
    )  # -1, -2, ...
    inner = 0.0
    widths: list[float] = []
    odr_ids: list[int] = []
    for ln in right:
        ws = ln.findall("width")
        lane_id = int(ln.get("id", "0"))
        if len(ws) != 1 or any(float(ws[0].get(c, 0.0)) != 0.0 for c in "bcd"):
            raise OpenScenarioError(f"{where}: lane {lane_id} has a varying width; {need}")
        w = float(ws[0].get("a", 0.0))
        if ln.get("type") == "driving":
            if odr_ids and odr_ids[-1] != lane_id + 1:
                raise OpenScenarioError(
                    f"{where}: driving lanes {[*odr_ids, lane_id]} are not contiguous; {need}"
                )
            odr_ids.append(lane_id)
            widths.append(w)
        elif not odr_ids:
            inner += w
    if not odr_ids:
        raise OpenScenarioError(f"{where}: no driving lane right of the reference line")
    if max(widths) - min(widths) > 1e-6:
        raise OpenScenarioError(f"{where}: driving lanes of different widths {widths}; {need}")
    if inner > 0 and any(sg.type != "line" for sg in segs):
        # The driving lanes' left edge is an offset curve: arcs and spirals at offset o keep
        # their turn, curvature k / (1 + o k), length L (1 + o mean(k)).
        segs = [
            SegmentSpec(
                sg.type,
                sg.length * (1.0 + inner * 0.5 * (sg.curvature + sg.curvature_end)),
                sg.curvature / (1.0 + inner * sg.curvature),
                sg.curvature_end / (1.0 + inner * sg.curvature_end),
            )
            for sg in segs
        ]
    limit = DEFAULT_SPEED_LIMIT_MPS
    speed = rd.find("type/speed")
    if speed is not None and speed.get("max") not in (None, "no limit", "undefined"):
        factor = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704}.get(speed.get("unit", "m/s"))
        if factor is None:
            raise OpenScenarioError(f"{where}: road/type/speed unit {speed.get('unit')!r}")
        limit = float(speed.get("max", 0.0)) * factor
    data: dict[str, Any] = {
        "num_lanes": len(odr_ids),
        "lane_width": widths[0],
        "speed_limit": round(limit, 9),
        **_procedural(segs, rd),
    }
    try:
        road = spec_from_dict({"road": data}, source=where).road
    except SpecError as e:
        raise OpenScenarioError(f"{e}; {need}") from None
    return ResolvedRoad(
        road,
        int(rd.get("id", "0")),
        {odr: -(k + 1) for k, odr in enumerate(odr_ids)},
        inner,
        tuple(theta),
    )


def _procedural(segs: list[SegmentSpec], rd: ET.Element) -> dict[str, Any]:
    """The RoadSpec kind a reference line is: straight, ring, the curved S-bend, or segments."""
    self_linked = any(
        lk.get("elementType") == "road" and lk.get("elementId") == rd.get("id")
        for lk in rd.findall("link/successor")
    )
    total = sum(sg.length for sg in segs)
    if len(segs) == 1 and segs[0].type == "line":
        return {"kind": "straight", "length": segs[0].length}
    if len(segs) == 1 and segs[0].type == "arc" and self_linked:
        k = segs[0].curvature
        if k > 0 and abs(segs[0].length * k - 2 * math.pi) < 1e-6:
            return {"kind": "ring", "radius": 1.0 / k}
    types = [sg.type for sg in segs]
    s_bend = ["line", "spiral", "arc", "spiral"] * 2 + ["line"]
    bend = ["line", "arc"] * 2 + ["line"]
    if types in (s_bend, bend) and segs[2 if types == s_bend else 1].curvature > 0:
        arc = segs[2] if types == s_bend else segs[1]
        t = segs[1].length if types == s_bend else 0.0
        candidate: dict[str, Any] = {
            "kind": "curved",
            "length": round(total, 6),
            "radius": round(1.0 / arc.curvature, 9),
            "transition": t,
        }
        mine, _ = road_segments(RoadSpec(**candidate))
        if all(
            abs(a.length - b.length) < 1e-6 and abs(a.k0 - b.curvature) < 1e-9
            for a, b in zip(mine, segs, strict=True)
        ):
            return candidate
    return {
        "kind": "segments",
        "segments": [
            {
                "type": sg.type,
                "length": sg.length,
                "curvature": sg.curvature,
                "curvature_end": sg.curvature_end,
            }
            for sg in segs
        ],
    }


class _Doc:
    """An .xosc tree with element paths for messages and ``$parameter`` resolution."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise OpenScenarioError(f"{path}: not valid XML: {e}") from None
        if self.root.tag != "OpenSCENARIO":
            raise OpenScenarioError(f"{path}: root element is {self.root.tag}, not OpenSCENARIO")
        self.parent = {c: p for p in self.root.iter() for c in p}
        self.params: dict[str, str] = {}
        for pd in self.root.findall("ParameterDeclarations/ParameterDeclaration"):
            self.params[pd.get("name", "").lstrip("$")] = pd.get("value", "")

    def where(self, el: ET.Element) -> str:
        parts = []
        cur: ET.Element | None = el
        while cur is not None:
            name = cur.get("name")
            parts.append(f"{cur.tag}[{name}]" if name else cur.tag)
            cur = self.parent.get(cur)
        return "/".join(reversed(parts))

    def fail(self, el: ET.Element, what: str) -> OpenScenarioError:
        return OpenScenarioError(f"{self.path}: {self.where(el)}: {what}")

    def value(self, el: ET.Element, attr: str, local: dict[str, str] | None = None) -> str:
        raw = el.get(attr)
        if raw is None:
            raise self.fail(el, f"missing attribute {attr!r}")
        if raw.startswith("${"):
            raise self.fail(el, f"{attr}={raw!r}: parameter expressions are not supported")
        m = _PARAM_REF.match(raw)
        if m:
            scope = {**self.params, **(local or {})}
            if m.group(1) not in scope:
                raise self.fail(el, f"{attr}={raw!r}: undeclared parameter")
            return scope[m.group(1)]
        return raw

    def num(self, el: ET.Element, attr: str, default: float | None = None) -> float:
        if el.get(attr) is None and default is not None:
            return default
        v = self.value(el, attr)
        try:
            return float(v)
        except ValueError:
            raise self.fail(el, f"{attr}={v!r}: expected a number") from None


@dataclass
class _Entity:
    name: str
    length: float
    width: float
    centre_x: float  # [m] bounding-box centre ahead of the reference point
    props: dict[str, str]
    el: ET.Element
    lane: int | None = None  # RoadSpec lane id
    s: float | None = None  # reference s of the box centre (RoadSpec)
    s_file: float | None = None  # reference s of the reference point (file)
    d: float = 0.0
    speed: float = 0.0
    events: list[EventSpec] = field(default_factory=list)
    kind: str = "vehicle"  # ActorSpec.type
    heading: float = 0.0  # [rad] relative to the lane (pedestrians face across it)


def _catalog_vehicle(doc: _Doc, ref: ET.Element) -> tuple[ET.Element, dict[str, str]]:
    cat = doc.value(ref, "catalogName")
    entry = doc.value(ref, "entryName")
    loc = doc.root.find(f"CatalogLocations/{cat}/Directory")
    if loc is None:
        raise doc.fail(ref, f"no CatalogLocations/{cat}/Directory for catalog {cat!r}")
    directory = (doc.path.parent / doc.value(loc, "path")).resolve()
    for f in sorted(directory.glob("*.xosc")):
        croot = ET.parse(f).getroot()
        c = croot.find("Catalog")
        if c is None or c.get("name") != cat:
            continue
        for v in c:
            if v.get("name") == entry:
                if v.tag != "Vehicle":
                    raise doc.fail(
                        ref, f"catalog entry {entry!r} is a {v.tag}: only vehicles exist"
                    )
                local = {
                    p.get("name", "").lstrip("$"): p.get("value", "")
                    for p in v.findall("ParameterDeclarations/ParameterDeclaration")
                }
                for pa in ref.findall("ParameterAssignments/ParameterAssignment"):
                    local[pa.get("parameterRef", "").lstrip("$")] = doc.value(pa, "value")
                return v, local
    raise doc.fail(ref, f"entry {entry!r} not found in catalog {cat!r} under {directory}")


def _entities(doc: _Doc) -> list[_Entity]:
    out = []
    for so in doc.root.findall("Entities/ScenarioObject"):
        kids = [c for c in so if c.tag != "ObjectController"]
        if not kids:
            raise doc.fail(so, "no entity definition")
        obj = kids[0]
        local: dict[str, str] = {}
        if obj.tag == "CatalogReference":
            obj, local = _catalog_vehicle(doc, obj)
        if obj.tag not in ("Vehicle", "Pedestrian"):
            raise doc.fail(obj, f"{obj.tag} entities are not supported (vehicles, pedestrians)")
        dims = obj.find("BoundingBox/Dimensions")
        centre = obj.find("BoundingBox/Center")
        if dims is None or centre is None:
            raise doc.fail(obj, "BoundingBox/Dimensions and Center are required")

        def num(el: ET.Element, attr: str, _local: dict[str, str] = local) -> float:
            v = doc.value(el, attr, _local)
            try:
                return float(v)
            except ValueError:
                raise doc.fail(el, f"{attr}={v!r}: expected a number") from None

        props = {p.get("name", ""): p.get("value", "") for p in obj.findall("Properties/Property")}
        out.append(
            _Entity(
                so.get("name", ""),
                num(dims, "length"),
                num(dims, "width"),
                num(centre, "x"),
                props,
                so,
                kind="pedestrian" if obj.tag == "Pedestrian" else "vehicle",
            )
        )
    if not out:
        raise OpenScenarioError(f"{doc.path}: Entities: no ScenarioObject")
    return out


def _ego_index(ents: list[_Entity]) -> int:
    for i, e in enumerate(ents):
        if e.props.get(BEHAVIOR_PREFIX + "role") == "ego" or e.props.get("type") == "ego_vehicle":
            return i
    for i, e in enumerate(ents):
        if e.name.lower() in ("ego", "hero", "egovehicle"):
            return i
    return 0


def _behavior(props: dict[str, str], speed: float) -> BehaviorSpec:
    """IDM/MOBIL parameters from gendrive.* properties; others hold their start speed."""
    kw: dict[str, Any] = {}
    for f in fields(BehaviorSpec):
        raw = props.get(BEHAVIOR_PREFIX + f.name)
        if raw is not None:
            kw[f.name] = raw == "true" if isinstance(f.default, bool) else float(raw)
    if not kw:  # an OpenSCENARIO vehicle keeps its speed and lane unless the story says so
        kw = {"v0": speed, "lane_change": False}
    return replace(BehaviorSpec(), **kw)


def _speed_decel(doc: _Doc, sa: ET.Element, v_from: float, target: float) -> float:
    dyn = sa.find("SpeedActionDynamics")
    if dyn is None:
        raise doc.fail(sa, "missing SpeedActionDynamics")
    shape, dim = doc.value(dyn, "dynamicsShape"), doc.value(dyn, "dynamicsDimension")
    val = doc.num(dyn, "value")
    dv = abs(v_from - target)
    if shape == "step":
        decel = MAX_DECEL_MPS2
    elif dim == "rate":
        decel = abs(val)
    elif dim == "time":
        decel = dv / val if val > 0 else MAX_DECEL_MPS2
    elif dim == "distance":
        decel = abs(v_from**2 - target**2) / (2 * val) if val > 0 else MAX_DECEL_MPS2
    else:
        raise doc.fail(dyn, f"dynamicsDimension {dim!r} not supported")
    if decel > MAX_DECEL_MPS2 + 1e-9:
        raise doc.fail(dyn, f"{decel:.2f} m/s^2 exceeds the simulator's {MAX_DECEL_MPS2} m/s^2")
    return decel if decel > 0 else MAX_DECEL_MPS2


def import_xosc(path: str | Path) -> ScenarioSpec:
    """Read a simple OpenSCENARIO 1.x file into a ScenarioSpec.

    Supported: a road :func:`_resolve_road` can express; vehicle entities (inline or from a
    vehicle catalog); Init teleports to ``LanePosition``, ``RelativeLanePosition`` (dLane, ds)
    and ``RelativeRoadPosition`` (ds, dt) and speed actions; story events of the non-ego
    vehicles: ``SpeedAction`` to an absolute target (step, or linear/cubic/sinusoidal by
    rate, time or distance: the mean deceleration), ``LaneChangeAction`` to a relative or
    absolute target lane one lane away (time, or distance at the start speed); start triggers
    ``SimulationTimeCondition``, ``RelativeDistanceCondition`` and ``TimeHeadwayCondition``
    between the vehicle and the ego (the headway as a gap at the ego's start speed). Controllers
    on the ego are dropped (gendrive's driver drives the ego); ``EnvironmentAction`` is dropped
    (no weather); of the StopTrigger only ``SimulationTimeCondition`` is used (the time limit).
    The ego's Init ``RoutingAction`` may be an ``AssignRouteAction`` with an inline, open
    ``Route`` of ``LanePosition`` waypoints on the road's driving lanes: its waypoints become
    ``EgoSpec.waypoints`` (the first dropped when it is the ego's start), each checked on the
    road and reachable from the previous one (:func:`_ego_waypoints`); routes of other vehicles,
    route catalogs, closed routes and other routing actions raise.
    A ``RoadNetwork/TrafficSignals/TrafficSignalController`` raises (the importable roads have
    no traffic lights, and signalised junction layouts need the OpenDRIVE map importer).

    Raises:
        OpenScenarioError: anything else, naming the element's XML path.
    """
    doc = _Doc(Path(path))
    hdr = doc.root.find("FileHeader")
    if hdr is None or hdr.get("revMajor") != "1":
        raise OpenScenarioError(f"{doc.path}: FileHeader: expected OpenSCENARIO 1.x")
    lf = doc.root.find("RoadNetwork/LogicFile")
    if lf is None:
        raise OpenScenarioError(f"{doc.path}: RoadNetwork/LogicFile: missing")
    ref = doc.value(lf, "filepath")
    rr = _resolve_road((doc.path.parent / ref) if not Path(ref).is_absolute() else Path(ref))
    tsc = doc.root.find("RoadNetwork/TrafficSignals/TrafficSignalController")
    if tsc is not None:
        raise doc.fail(
            tsc,
            f"traffic signal plans are not supported: the road resolves to a {rr.road.kind!r} "
            "RoadSpec, which has no traffic lights (signalised junction layouts need the "
            "OpenDRIVE map importer)",
        )
    ents = _entities(doc)
    by_name = {e.name: e for e in ents}
    ego = ents[_ego_index(ents)]

    # -- Init ---------------------------------------------------------------------------------
    teleports: dict[str, ET.Element] = {}
    routing: ET.Element | None = None  # the ego's RoutingAction
    for act in doc.root.findall("Storyboard/Init/Actions/*"):
        if act.tag == "GlobalAction":
            for g in act:
                if g.tag not in IGNORED_GLOBAL:
                    raise doc.fail(g, "global action not supported")
            continue
        if act.tag != "Private":
            raise doc.fail(act, "not supported in Init")
        name = doc.value(act, "entityRef")
        if name not in by_name:
            raise doc.fail(act, f"entityRef {name!r} is not an entity")
        e = by_name[name]
        for pa in act.findall("PrivateAction"):
            for a in pa:
                if a.tag == "TeleportAction":
                    teleports[name] = a
                elif a.tag == "LongitudinalAction" and a.find("SpeedAction") is not None:
                    tgt = a.find("SpeedAction/SpeedActionTarget/AbsoluteTargetSpeed")
                    if tgt is None:
                        raise doc.fail(a, "only an AbsoluteTargetSpeed sets a start speed")
                    e.speed = doc.num(tgt, "value")
                elif a.tag == "ControllerAction" and e is ego:
                    continue  # the ego is gendrive's driver's, whatever controller is named
                elif a.tag == "RoutingAction" and e is ego:
                    if routing is not None:
                        raise doc.fail(a, "a second route for the ego; expected one")
                    routing = a
                elif a.tag == "RoutingAction":
                    raise doc.fail(
                        a,
                        "not supported in Init: only the ego's route is read (the other "
                        "vehicles keep their lane)",
                    )
                else:
                    raise doc.fail(a, "not supported in Init")
    for so in doc.root.findall("Entities/ScenarioObject"):
        oc = so.find("ObjectController")
        # An assigned but never activated controller does not drive (OpenSCENARIO 1.x).
        activated = any(doc.root.iter("ActivateControllerAction"))
        if oc is not None and by_name[so.get("name", "")] is not ego and activated:
            raise doc.fail(oc, "controllers are not supported (activated controller)")
    pending = dict(teleports)
    for _ in range(len(pending) + 1):
        for name, tp in list(pending.items()):
            if _place(doc, rr, by_name, by_name[name], tp):
                del pending[name]
    for name, tp in pending.items():
        raise doc.fail(tp, f"position of {name!r} refers to an entity without a position")
    for e in ents:
        if e.lane is None:
            raise doc.fail(e.el, "no TeleportAction in Init places this entity")

    # -- Story --------------------------------------------------------------------------------
    for act in doc.root.findall("Storyboard/Story/Act"):
        t_act = _act_start(doc, act)
        for stop in act.findall("StopTrigger"):
            for c in stop.iter("Condition"):
                if c.find("ByValueCondition/SimulationTimeCondition") is None:
                    raise doc.fail(
                        c, "Act StopTrigger conditions other than time are not supported"
                    )
        for mg in act.findall("ManeuverGroup"):
            actors = [
                doc.value(r, "entityRef", _story_params(doc, act))
                for r in mg.findall("Actors/EntityRef")
            ]
            if mg.find("CatalogReference") is not None:
                raise doc.fail(mg.find("CatalogReference"), "maneuver catalogs are not supported")  # type: ignore[arg-type]
            for ev in mg.findall("Maneuver/Event"):
                for name in actors:
                    if name not in by_name:
                        raise doc.fail(mg, f"actor {name!r} is not an entity")
                    actor = by_name[name]
                    if actor is ego:
                        raise doc.fail(ev, "events on the ego: gendrive's driver drives the ego")
                    spec_ev = _event(doc, rr, ev, actor, ego, by_name, t_act, act)
                    if spec_ev is not None:
                        actor.events.append(spec_ev)

    # -- Stop and assemble --------------------------------------------------------------------
    limits = [
        doc.num(c, "value")
        for c in doc.root.findall(
            "Storyboard/StopTrigger/ConditionGroup/Condition/ByValueCondition/SimulationTimeCondition"
        )
    ]
    time_limit = min(limits) if limits else DEFAULT_TIME_LIMIT_S
    graph = build_road(rr.road)
    assert ego.s is not None and ego.lane is not None
    total = road_length(graph, 0)
    lane_i = int(np.nonzero(graph.odr_lane == ego.lane)[0][0])
    route = doc.params.get("EgoRouteLength")
    route_length = (
        float(route)
        if route is not None
        else (total if is_closed(graph, lane_i) else max(total - ego.s - 1.0, 1.0))
    )
    waypoints = _ego_waypoints(doc, rr, graph, ego, routing) if routing is not None else []
    seed = doc.params.get("TrafficSeed")
    data = {
        "name": doc.path.stem,
        "road": _plain(rr.road),
        "ego": {
            "lane": ego.lane,
            "s": ego.s,
            "d": ego.d,
            "speed": ego.speed,
            "length": ego.length,
            "width": ego.width,
            "route_length": route_length,
            "waypoints": waypoints,
        },
        "actors": [_actor_data(e) for e in ents if e is not ego],
        "time_limit_s": time_limit,
        "seed": int(seed) if seed is not None else None,
    }
    try:
        return spec_from_dict(data, source=str(doc.path))
    except SpecError as e:
        raise OpenScenarioError(str(e)) from None


def _ego_waypoints(
    doc: _Doc, rr: ResolvedRoad, graph: R.LaneGraph, ego: _Entity, ra: ET.Element
) -> list[list[float]]:
    """``EgoSpec.waypoints`` of the ego's Init ``RoutingAction`` (:func:`import_xosc`).

    An inline, open ``Route`` of ``LanePosition`` waypoints on the road's driving lanes; its
    first waypoint is dropped when it is the ego's start (road, lane and s within 1 mm).
    ``offset`` and orientation are ignored (a waypoint names a lane), and so is the
    ``routeStrategy``: the simulator plans the shortest route (:func:`sim.routes.plan`), and a
    single road without junctions has one way along it.

    Raises:
        OpenScenarioError: naming the element: another routing action, a route catalog, a
            closed route, a position other than a lane position, a lane that is not a
            right-hand driving lane, s off the road, or a waypoint no route reaches.
    """
    from sim.routes import plan_through

    if len(ra) != 1 or ra[0].tag != "AssignRouteAction":
        el = ra[0] if len(ra) else ra
        raise doc.fail(el, "not supported in Init: the ego's route must be an AssignRouteAction")
    ara = ra[0]
    route = ara.find("Route")
    if route is None:
        ref = ara.find("CatalogReference")
        raise doc.fail(
            ref if ref is not None else ara, "route catalogs are not supported (inline a Route)"
        )
    if doc.value(route, "closed").lower() in ("true", "1"):
        raise doc.fail(route, "closed routes are not supported: the ego's route ends at its last")
    assert ego.lane is not None and ego.s is not None and ego.s_file is not None
    inv = {v: k for k, v in rr.lane_map.items()}
    try:
        start = graph.lane_index(0, ego.lane, ego.s)
    except KeyError as e:
        raise doc.fail(ego.el, f"the ego's start: {e.args[0]}") from None
    points: list[tuple[int, float]] = []
    out: list[list[float]] = []
    for i, wp in enumerate(route.findall("Waypoint")):
        pos = wp.find("Position")
        if pos is None or len(pos) != 1:
            raise doc.fail(wp, "expected one Position")
        p = pos[0]
        if p.tag != "LanePosition":
            raise doc.fail(p, "route waypoints must be LanePositions")
        road_id = int(doc.num(p, "roadId"))
        if road_id != rr.road_id:
            raise doc.fail(p, f"roadId {road_id}: the map has road {rr.road_id}")
        odr_lane = int(doc.num(p, "laneId"))
        if odr_lane not in rr.lane_map:
            raise doc.fail(
                p, f"laneId {odr_lane} is not a right-hand driving lane {sorted(rr.lane_map)}"
            )
        s_file = doc.num(p, "s")
        if i == 0 and odr_lane == inv[ego.lane] and abs(s_file - ego.s_file) <= 1e-3:
            continue  # the ego's start
        lane, s = rr.lane_map[odr_lane], rr.s(s_file)
        try:
            points.append(graph.lane_index(0, lane, s))
        except KeyError as e:
            raise doc.fail(p, str(e.args[0])) from None
        if plan_through(graph, start, tuple(points)) is None:
            raise doc.fail(wp, "no route reaches this waypoint from the previous one")
        out.append([0.0, float(lane), max(s, 0.0)])
    return out


def _actor_data(e: _Entity) -> dict[str, Any]:
    """An imported entity as ActorSpec data; a pedestrian's speed actions are its crossing."""
    data: dict[str, Any] = {
        "type": e.kind,
        "lane": e.lane,
        "s": e.s,
        "d": e.d,
        "speed": e.speed,
        "length": e.length,
        "width": e.width,
        "events": [_plain(x) for x in e.events],
    }
    if e.kind == "vehicle":
        data["behavior"] = _plain(_behavior(e.props, e.speed))
        return data
    side = "left" if e.heading >= 0.0 else "right"
    data["events"] = [
        {**x, "action": "cross", "direction": side, "decel": EventSpec().decel}
        for x in data["events"]
        if x["action"] == "set_speed" and x["target_speed"] > 0.0
    ]
    return data


def _plain(v: Any) -> Any:
    from sim.scenario import _to_plain

    return _to_plain(v)


def _story_params(doc: _Doc, act: ET.Element) -> dict[str, str]:
    """ParameterDeclarations of the enclosing Story (esmini's ``$owner``)."""
    cur = doc.parent.get(act)
    out: dict[str, str] = {}
    while cur is not None:
        for pd in cur.findall("ParameterDeclarations/ParameterDeclaration"):
            out[pd.get("name", "").lstrip("$")] = pd.get("value", "")
        cur = doc.parent.get(cur)
    return out


def _place(
    doc: _Doc, rr: ResolvedRoad, by_name: dict[str, _Entity], e: _Entity, tp: ET.Element
) -> bool:
    """Set ``e``'s lane coordinates from a TeleportAction; False while its reference is unplaced."""
    pos = tp.find("Position")
    if pos is None or len(pos) != 1:
        raise doc.fail(tp, "expected one Position")
    p = pos[0]
    for o in p.findall("Orientation"):
        h = doc.num(o, "h", 0.0)
        across = e.kind == "pedestrian" and o.get("type") == "relative"
        if across and abs(abs(h) - math.pi / 2) < 1e-3:
            e.heading = h  # a pedestrian facing across the road
        elif abs(h) > 1e-9 or abs(doc.num(o, "p", 0.0)) > 1e-9:
            raise doc.fail(o, "a heading other than the lane's is not supported")
    if p.tag == "LanePosition":
        road_id = int(doc.num(p, "roadId"))
        if road_id != rr.road_id:
            raise doc.fail(p, f"roadId {road_id}: the map has road {rr.road_id}")
        odr_lane = int(doc.num(p, "laneId"))
        s_file = doc.num(p, "s")
        offset = doc.num(p, "offset", 0.0)
    elif p.tag == "RelativeLanePosition":
        other = by_name.get(doc.value(p, "entityRef"))
        if other is None:
            raise doc.fail(p, f"entityRef {p.get('entityRef')!r} is not an entity")
        if other.lane is None or other.s_file is None:
            return False
        if p.get("dsLane") is not None:
            raise doc.fail(p, "dsLane (distance along the lane) is not supported; use ds")
        inv = {v: k for k, v in rr.lane_map.items()}
        odr_lane = _shift_lane(doc, p, inv[other.lane], int(doc.num(p, "dLane")))
        s_file = other.s_file + doc.num(p, "ds", 0.0)
        offset = doc.num(p, "offset", 0.0)
    elif p.tag == "RelativeRoadPosition":
        other = by_name.get(doc.value(p, "entityRef"))
        if other is None:
            raise doc.fail(p, f"entityRef {p.get('entityRef')!r} is not an entity")
        if other.lane is None or other.s_file is None:
            return False
        # Lateral position t of the other entity, then the lane holding t + dt.
        w = rr.road.lane_width
        t = -rr.inner_offset - (-other.lane - 0.5) * w + other.d + doc.num(p, "dt", 0.0)
        k = math.floor((-t - rr.inner_offset) / w)  # 0: first driving lane
        if t > 0 or not 0 <= k < rr.road.num_lanes:
            raise doc.fail(
                p,
                f"t={t:.2f} m is not on a right-hand driving lane (left lanes carry "
                "opposite traffic: not expressible)",
            )
        inv = {v: kk for kk, v in rr.lane_map.items()}
        odr_lane = inv[-(k + 1)]
        offset = t - (-rr.inner_offset - (k + 0.5) * w)
        s_file = other.s_file + doc.num(p, "ds", 0.0)
    else:
        raise doc.fail(p, "position type not supported (lane and relative lane/road positions)")
    if odr_lane not in rr.lane_map:
        raise doc.fail(
            p,
            f"laneId {odr_lane} is not a right-hand driving lane {sorted(rr.lane_map)}"
            + (" (left lanes carry opposite traffic: not expressible)" if odr_lane > 0 else ""),
        )
    e.lane = rr.lane_map[odr_lane]
    e.s_file = s_file
    e.s = rr.s(s_file + e.centre_x)  # spec positions are box centres
    e.d = offset
    return True


def _shift_lane(doc: _Doc, el: ET.Element, odr_lane: int, d_lane: int) -> int:
    """OpenDRIVE lane ``d_lane`` lanes to the left (+) of ``odr_lane`` (right lanes: id + 1)."""
    out = odr_lane + d_lane
    if odr_lane < 0 <= out:
        raise doc.fail(el, f"dLane {d_lane} from lane {odr_lane} crosses the reference line")
    return out


def _act_start(doc: _Doc, act: ET.Element) -> float:
    trig = act.find("StartTrigger")
    if trig is None:
        return 0.0
    conds = list(trig.iter("Condition"))
    times = []
    for c in conds:
        sc = c.find("ByValueCondition/SimulationTimeCondition")
        if sc is None:
            raise doc.fail(c, "Act StartTrigger conditions other than time are not supported")
        if doc.value(sc, "rule") not in _TIME_RULES:
            raise doc.fail(sc, f"rule {sc.get('rule')!r} not supported")
        times.append(doc.num(sc, "value") + doc.num(c, "delay", 0.0))
    return min(times) if times else 0.0


def _event(
    doc: _Doc,
    rr: ResolvedRoad,
    ev: ET.Element,
    actor: _Entity,
    ego: _Entity,
    by_name: dict[str, _Entity],
    t_act: float,
    act: ET.Element,
) -> EventSpec | None:
    acts = ev.findall("Action")
    if len(acts) != 1:
        raise doc.fail(ev, f"{len(acts)} actions in one event; expected 1")
    pa = acts[0].find("PrivateAction")
    if pa is None or len(pa) != 1:
        raise doc.fail(acts[0], "only private actions of the actor are supported")
    a = pa[0]
    kw: dict[str, Any] = {}
    if a.tag == "LongitudinalAction" and len(a) == 1 and a[0].tag == "SpeedAction":
        tgt = a[0].find("SpeedActionTarget/AbsoluteTargetSpeed")
        if tgt is None:
            raise doc.fail(a[0], "only AbsoluteTargetSpeed targets are supported")
        target = doc.num(tgt, "value")
        beh = _behavior(actor.props, actor.speed)
        if (
            actor.props.get(BEHAVIOR_PREFIX + "role") == "traffic"
            and beh.v0 is not None
            and abs(target - beh.v0) < 1e-6
        ):
            return None  # the exported desired speed of a background car: it is behavior.v0
        decel = _speed_decel(doc, a[0], actor.speed, target)
        kw = (
            {"action": "stop", "decel": decel}
            if target <= 0.0
            else {"action": "set_speed", "target_speed": target, "decel": decel}
        )
    elif a.tag == "LateralAction" and len(a) == 1 and a[0].tag == "LaneChangeAction":
        lc = a[0]
        if abs(doc.num(lc, "targetLaneOffset", 0.0)) > 1e-9:
            raise doc.fail(lc, "targetLaneOffset is not supported")
        assert actor.lane is not None
        rel = lc.find("LaneChangeTarget/RelativeTargetLane")
        ab = lc.find("LaneChangeTarget/AbsoluteTargetLane")
        if rel is not None:
            ref = by_name.get(doc.value(rel, "entityRef", _story_params(doc, act)))
            if ref is None or ref.lane is None:
                raise doc.fail(rel, f"entityRef {rel.get('entityRef')!r} is not an entity")
            target_lane = ref.lane + int(doc.num(rel, "value"))
        elif ab is not None:
            odr = int(doc.num(ab, "value"))
            if odr not in rr.lane_map:
                raise doc.fail(
                    ab, f"lane {odr} is not a right-hand driving lane {sorted(rr.lane_map)}"
                )
            target_lane = rr.lane_map[odr]
        else:
            raise doc.fail(lc, "missing LaneChangeTarget")
        step = target_lane - actor.lane
        if abs(step) != 1:
            raise doc.fail(lc, f"a change of {step} lanes; only one lane at a time is supported")
        dyn = lc.find("LaneChangeActionDynamics")
        if dyn is None:
            raise doc.fail(lc, "missing LaneChangeActionDynamics")
        dim = doc.value(dyn, "dynamicsDimension")
        val = doc.num(dyn, "value")
        if dim == "time":
            duration = val
        elif dim == "distance" and actor.speed > 0:
            duration = val / actor.speed
        else:
            raise doc.fail(dyn, f"dynamicsDimension {dim!r} not supported for lane changes")
        kw = {
            "action": "lane_change",
            "direction": "left" if step > 0 else "right",
            "duration": duration,
        }
    else:
        raise doc.fail(a, "action not supported")
    kw.update(_trigger(doc, ev, actor, ego, by_name, t_act, act))
    return EventSpec(**kw)


def _trigger(
    doc: _Doc,
    ev: ET.Element,
    actor: _Entity,
    ego: _Entity,
    by_name: dict[str, _Entity],
    t_act: float,
    act: ET.Element,
) -> dict[str, Any]:
    groups = ev.findall("StartTrigger/ConditionGroup")
    if len(groups) != 1 or len(groups[0]) != 1:
        raise doc.fail(
            ev.find("StartTrigger") or ev, "expected one ConditionGroup with one Condition"
        )
    c = groups[0][0]
    delay = doc.num(c, "delay", 0.0)
    sc = c.find("ByValueCondition/SimulationTimeCondition")
    if sc is not None:
        if doc.value(sc, "rule") not in _TIME_RULES:
            raise doc.fail(sc, f"rule {sc.get('rule')!r} not supported")
        return {"trigger": "time", "at": t_act + doc.num(sc, "value") + delay}
    bec = c.find("ByEntityCondition")
    if bec is None or delay != 0.0 or t_act != 0.0:
        raise doc.fail(c, "condition not supported (time, or distance/headway to the ego at once)")
    local = _story_params(doc, act)
    trig = [doc.value(r, "entityRef", local) for r in bec.findall("TriggeringEntities/EntityRef")]
    cond = bec.find("EntityCondition")
    if cond is None or len(cond) != 1:
        raise doc.fail(bec, "expected one EntityCondition")
    k = cond[0]
    other = doc.value(k, "entityRef", local) if k.get("entityRef") is not None else None
    if len(trig) != 1 or {trig[0], other} != {actor.name, ego.name}:
        raise doc.fail(
            k, f"only conditions between the actor {actor.name!r} and the ego are supported"
        )
    if doc.value(k, "rule") not in _CLOSE_RULES:
        raise doc.fail(k, f"rule {k.get('rule')!r} not supported (lessThan / lessOrEqual)")
    value = doc.num(k, "value")
    free = doc.value(k, "freespace").lower() == "true"
    half = 0.5 * (actor.length + ego.length)
    if k.tag == "RelativeDistanceCondition":
        kind = doc.value(k, "relativeDistanceType")
        if kind not in ("longitudinal", "euclidianDistance", "cartesianDistance"):
            raise doc.fail(k, f"relativeDistanceType {kind!r} not supported")
        at = value if free else value - half
    elif k.tag == "TimeHeadwayCondition":
        at = value * ego.speed + (0.0 if free else -half)
    else:
        raise doc.fail(k, "condition not supported")
    if at < 0:
        raise doc.fail(k, f"the trigger gap {at:.2f} m is negative")
    return {"trigger": "ego_gap", "at": at}
