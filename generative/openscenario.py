"""OpenSCENARIO 1.2 export and import of :class:`sim.scenario.ScenarioSpec`, roads as OpenDRIVE.

Export (:func:`export_xosc`) writes ``<name>.xosc`` and its road ``<name>.xodr`` with the
``scenariogeneration`` package:

- **Road** (:func:`write_road_xodr`): one OpenDRIVE road (id 0) whose planView is the RoadSpec's
  reference line (``line``, ``arc``, ``spiral`` geometries, exactly the segments
  :func:`sim.scenario.build_road` integrates; ``ring`` is one closed arc linked to itself), with
  one lane section: the centre lane 0 on the reference line (the left edge, as in
  :func:`sim.road.build_highway`) and driving lanes ``-1 .. -num_lanes`` of ``lane_width`` to its
  right, broken markings between them, solid ones at the edges, and the speed limit as the
  road type's ``<speed max>``.
- **Entities**: ``Ego``, ``actor<i>`` per scripted actor and ``traffic<i>`` per background
  vehicle, each a ``Vehicle`` whose bounding box is centred on the reference point (spec
  positions are box centres). The IDM/MOBIL parameters ride along as ``gendrive.*`` vehicle
  properties so a re-import restores them.
- **Init**: ``TeleportAction`` to ``LanePosition(road, lane, s, offset=d)`` and an
  ``AbsoluteSpeedAction`` (step) to the start speed.
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
docstring for what is supported. Unsupported elements raise :class:`OpenScenarioError` naming the
element's XML path. Validation against the XSD schemas ``scenariogeneration`` ships:
:func:`xosc_schema_errors`, :func:`xodr_schema_errors`.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from sim import road as R
from sim.scenario import (
    MAX_DECEL_MPS2,
    MAX_SPEED_MPS,
    BehaviorSpec,
    EventSpec,
    RoadSpec,
    ScenarioSpec,
    build_road,
)

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
    (``curved`` is the S-bend of :func:`sim.road.curved_highway`).
    """
    if road.kind == "straight":
        return [R.Segment.line(road.length)], False
    if road.kind == "ring":
        return [R.Segment.arc(2 * math.pi * road.radius, 1.0 / road.radius)], True
    if road.kind == "curved":
        k = 1.0 / road.radius
        t = road.transition
        arc = math.pi / 4 / k - t
        bend = (
            [R.Segment.arc(arc, k)]
            if t == 0
            else [
                R.Segment.spiral(t, 0.0, k),
                R.Segment.arc(arc, k),
                R.Segment.spiral(t, k, 0.0),
            ]
        )
        mirror = [R.Segment(sg.length, -sg.k0, -sg.k1) for sg in bend]
        straight = (road.length - 2 * (2 * t + arc)) / 3.0
        return [
            R.Segment.line(straight),
            *bend,
            R.Segment.line(straight),
            *mirror,
            R.Segment.line(straight),
        ], False
    if road.kind == "segments":
        out = []
        for sg in road.segments:
            if sg.type == "line":
                out.append(R.Segment.line(sg.length))
            elif sg.type == "arc":
                out.append(R.Segment.arc(sg.length, sg.curvature))
            else:
                out.append(R.Segment.spiral(sg.length, sg.curvature, sg.curvature_end))
        return out, False
    raise OpenScenarioError(f"road.kind: no OpenDRIVE writer for {road.kind!r}")


def _write_atomic(write: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def write_road_xodr(road: RoadSpec, path: str | Path) -> Path:
    """Write a procedural RoadSpec as an OpenDRIVE 1.7 file (see module docstring).

    Raises:
        OpenScenarioError: ``kind: file`` (already OpenDRIVE: reference it instead).
    """
    from scenariogeneration import xodr

    p = Path(path)
    if road.kind == "file":
        raise OpenScenarioError(
            f"road.kind 'file': {road.path} is already OpenDRIVE; reference it instead"
        )
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


def xosc_schema_errors(path: str | Path) -> list[str]:
    """Schema violations of an .xosc against the OpenSCENARIO XSD of its header's version."""
    import xmlschema

    tree = ET.parse(path)
    hdr = tree.find("FileHeader")
    if hdr is None:
        return ["OpenSCENARIO/FileHeader: missing"]
    minor = hdr.get("revMinor", "")
    name = {"0": "1_0", "1": "1_1", "2": "1_2", "3": "1_3_1"}.get(minor)
    if hdr.get("revMajor") != "1" or name is None:
        return [f"FileHeader: no schema for OpenSCENARIO {hdr.get('revMajor')}.{minor}"]
    schema = xmlschema.XMLSchema(str(_schema_dir() / f"OpenSCENARIO_{name}.xsd"))
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]


def xodr_schema_errors(path: str | Path) -> list[str]:
    """Schema violations of an .xodr against the OpenDRIVE 1.7 XSD scenariogeneration ships."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(_schema_dir() / "opendrive_17_core.xsd"))
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]


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


def _time_trigger(name: str, t: float, rule: Any = None, point: str = "start") -> Any:
    from scenariogeneration import xosc

    return xosc.ValueTrigger(
        name,
        0,
        xosc.ConditionEdge.rising,
        xosc.SimulationTimeCondition(t, rule or xosc.Rule.greaterOrEqual),
        triggeringpoint=point,
    )


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
            f"actor{i}", a.road, a.lane, a.s, a.d, a.speed, a.length, a.width, a.behavior, a.events
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
        entities.add_scenario_object(p.name, _vehicle(p))
        init.add_init_action(
            p.name, xosc.TeleportAction(xosc.LanePosition(p.s, p.d, p.lane, p.road))
        )
        init.add_init_action(p.name, xosc.AbsoluteSpeedAction(p.speed, step))

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
