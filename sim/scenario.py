"""ScenarioSpec: a typed, validated, versioned description of one driving situation.

A spec names the road (a procedural road with its parameters, or a map file), the ego's start in
lane coordinates and its route, scripted actors, random background traffic, a time limit and a
seed. Positions are OpenDRIVE lane coordinates ``(road, lane, s, d)``: road id, lane id (negative
= right of the reference line; on procedural highways -1 is the leftmost lane), ``s`` along the
road's reference line [m], ``d`` lateral offset from the lane centre [m, + left]. The same spec
therefore places actors identically in the embedded simulator and in CARLA.

Specs load from and dump to YAML or JSON (:func:`load_spec`, :func:`dump_spec`,
:meth:`ScenarioSpec.to_dict`, :func:`spec_from_dict`). Every problem is a :class:`SpecError`
naming the field path (``actors[2].speed``) and what was expected. Checks that need the road
(unknown lane, ``s`` beyond the road, overlapping actors) run in :func:`check_on_road`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import yaml

from sim import road as roads

SPEC_VERSION = 1
MAX_SPEED_MPS = 90.0  # [m/s] ~324 km/h: anything faster is a unit mistake (km/h given as m/s)
MAX_EVENTS = 8  # scripted events per actor (slots in the (B, N, E) event arrays)
URBAN_KINDS = ("intersection", "t_junction", "roundabout", "on_ramp", "off_ramp")  # sim.urban
MAX_PEDESTRIAN_D_M = 15.0  # [m] a pedestrian's offset from its lane: across 4 lanes + sidewalk
MAX_VEHICLE_D_M = 3.0  # [m] a vehicle's offset from its lane centre
MAX_DECEL_MPS2 = 12.0  # [m/s^2] beyond tyre-road friction on dry asphalt (~1.2 g)


class SpecError(ValueError):
    """A scenario spec is malformed; the message names the field and what was expected."""


def _rng(lo: float | None = None, hi: float | None = None, gt: float | None = None) -> Any:
    return {"lo": lo, "hi": hi, "gt": gt}


@dataclass(frozen=True)
class SegmentSpec:
    """One reference-line piece (OpenDRIVE planView): line, arc or spiral (clothoid)."""

    type: Literal["line", "arc", "spiral"] = "line"
    length: float = field(default=100.0, metadata=_rng(gt=0))
    curvature: float = field(default=0.0, metadata=_rng(-0.5, 0.5))  # [1/m] (start, for spiral)
    curvature_end: float = field(default=0.0, metadata=_rng(-0.5, 0.5))  # [1/m] spiral end


@dataclass(frozen=True)
class LightsSpec:
    """Fixed-time traffic-light plan [s] for every junction of the road (see :mod:`sim.lights`:
    the map's controllers and their sequence decide which signals share a phase)."""

    green_s: float = field(default=20.0, metadata=_rng(gt=0, hi=600))
    yellow_s: float = field(default=3.0, metadata=_rng(gt=0, hi=60))
    all_red_s: float = field(default=1.0, metadata=_rng(lo=0, hi=60))
    # [s] where in its plan every light starts: None draws a per-env offset at reset (batched
    # envs do not switch in lockstep); a number fixes it, so a scenario can time its actors
    # against the lights (at t = 0 a plan is ``offset_s`` seconds in; phase 0 turns green at 0).
    offset_s: float | None = field(default=None, metadata=_rng(lo=0, hi=3600))


@dataclass(frozen=True)
class RoadSpec:
    """The road: ``straight``, ``curved`` (S-bend with clothoids), ``ring``, ``segments`` (your
    own reference line), ``file`` (an OpenDRIVE ``.xodr`` map at ``path``, relative to the
    working directory; see :mod:`sim.opendrive`) or an urban layout built as OpenDRIVE
    (:mod:`sim.urban`): ``intersection`` (4-way, signalised by default), ``t_junction``,
    ``roundabout`` (single lane), ``on_ramp``, ``off_ramp``. A file map brings its own lanes,
    widths and speed limits: the other fields are not used for it. Urban layouts use
    ``num_lanes`` (per direction), ``lane_width``, ``speed_limit`` and the fields after
    ``path`` (:func:`sim.urban.urban_model` says which)."""

    kind: Literal[
        "straight",
        "curved",
        "ring",
        "segments",
        "file",
        "intersection",
        "t_junction",
        "roundabout",
        "on_ramp",
        "off_ramp",
    ] = "straight"
    num_lanes: int = field(default=3, metadata=_rng(1, 5))
    lane_width: float = field(default=3.5, metadata=_rng(2.0, 6.0))  # [m]
    speed_limit: float = field(default=30.0, metadata=_rng(gt=0, hi=MAX_SPEED_MPS))  # [m/s]
    length: float = field(default=1000.0, metadata=_rng(gt=0))  # [m] straight / curved
    radius: float = field(default=300.0, metadata=_rng(gt=0))  # [m] curved / ring
    transition: float = field(default=60.0, metadata=_rng(lo=0))  # [m] clothoid length
    segments: tuple[SegmentSpec, ...] = ()
    path: str | None = None
    arm_length: float = field(default=100.0, metadata=_rng(lo=10.0, hi=5000.0))  # [m]
    junction_radius: float | None = field(default=None, metadata=_rng(gt=0, hi=100.0))  # [m]
    turn_speed_limit: float | None = field(default=None, metadata=_rng(gt=0, hi=MAX_SPEED_MPS))
    signalised: bool | None = None
    ramp_length: float = field(default=150.0, metadata=_rng(lo=10.0, hi=2000.0))  # [m]
    merge_length: float = field(default=150.0, metadata=_rng(lo=10.0, hi=2000.0))  # [m]
    ramp_angle: float = field(default=0.25, metadata=_rng(0.05, 0.8))  # [rad]
    lights: LightsSpec = LightsSpec()


@dataclass(frozen=True)
class BehaviorSpec:
    """IDM + MOBIL parameters of one vehicle (see :class:`sim.state.Behavior`).

    ``v0`` None means the road's speed limit times ``speed_factor``.
    """

    v0: float | None = field(default=None, metadata=_rng(0, MAX_SPEED_MPS))
    speed_factor: float = field(default=1.0, metadata=_rng(gt=0, hi=2.0))
    headway: float = field(default=1.5, metadata=_rng(gt=0, hi=10))  # [s]
    min_gap: float = field(default=2.0, metadata=_rng(lo=0, hi=20))  # [m]
    a_max: float = field(default=1.5, metadata=_rng(gt=0, hi=6))  # [m/s^2]
    b_comf: float = field(default=2.0, metadata=_rng(gt=0, hi=MAX_DECEL_MPS2))  # [m/s^2]
    politeness: float = field(default=0.3, metadata=_rng(0, 1))
    b_safe: float = field(default=4.0, metadata=_rng(gt=0, hi=MAX_DECEL_MPS2))  # [m/s^2]
    lc_threshold: float = field(default=0.2, metadata=_rng(lo=0))  # [m/s^2]
    lc_duration: float = field(default=3.0, metadata=_rng(gt=0, hi=20))  # [s]
    lane_change: bool = True
    # Drive through red lights and never give way at junctions (a scripted red-light runner;
    # others still expect it to stop until it can no longer, see sim.traffic_rules).
    ignore_lights: bool = False


@dataclass(frozen=True)
class EventSpec:
    """A scripted action: ``set_speed`` (brake at ``decel`` to ``target_speed``, then hold it),
    ``stop`` (brake at ``decel`` to 0 and stay), ``lane_change`` (``direction`` left/right over
    ``duration`` s, e.g. a cut-in) or, for a pedestrian, ``cross`` (walk across the road to the
    ``direction`` side at ``target_speed`` m/s, stopping on the far kerb). Fires when
    ``trigger`` is ``time`` (sim time >= ``at`` s) or ``ego_gap`` (distance to the ego <= ``at``
    m)."""

    action: Literal["set_speed", "stop", "lane_change", "cross"] = "set_speed"
    trigger: Literal["time", "ego_gap"] = "time"
    at: float = field(default=0.0, metadata=_rng(lo=0))
    target_speed: float = field(default=0.0, metadata=_rng(0, MAX_SPEED_MPS))
    decel: float = field(default=3.0, metadata=_rng(gt=0, hi=MAX_DECEL_MPS2))
    direction: Literal["left", "right"] = "left"
    duration: float = field(default=2.0, metadata=_rng(gt=0, hi=20))


@dataclass(frozen=True)
class ActorSpec:
    """One scripted actor placed in lane coordinates: a vehicle, or a pedestrian (``d`` may
    then put it on the kerb or sidewalk beside the lane, up to ``MAX_PEDESTRIAN_D_M``; give it
    ``speed`` 0, a walker's size, e.g. ``length`` 0.5 and ``width`` 0.6, and a ``cross``
    event; see :mod:`sim.pedestrians`)."""

    type: Literal["vehicle", "pedestrian"] = "vehicle"
    road: int = 0
    lane: int = -1
    s: float = field(default=0.0, metadata=_rng(lo=0))
    d: float = field(default=0.0, metadata=_rng(-MAX_PEDESTRIAN_D_M, MAX_PEDESTRIAN_D_M))
    speed: float = field(default=20.0, metadata=_rng(0, MAX_SPEED_MPS))
    length: float = field(default=4.5, metadata=_rng(gt=0, hi=25))
    width: float = field(default=1.9, metadata=_rng(gt=0, hi=4))
    behavior: BehaviorSpec = BehaviorSpec()
    events: tuple[EventSpec, ...] = ()


@dataclass(frozen=True)
class EgoSpec:
    """The ego's start and route: ``route_length`` m along successive lanes from the start
    (first successors at forks), or, with ``waypoints`` (``[road, lane, s]`` OpenDRIVE lane
    positions), the route :func:`sim.routes.plan` finds through them in order, ending at the
    last; its length then replaces ``route_length``."""

    road: int = 0
    lane: int = -2
    s: float = field(default=30.0, metadata=_rng(lo=0))
    d: float = field(default=0.0, metadata=_rng(-3, 3))
    speed: float = field(default=20.0, metadata=_rng(0, MAX_SPEED_MPS))
    length: float = field(default=4.7, metadata=_rng(gt=0, hi=25))
    width: float = field(default=1.9, metadata=_rng(gt=0, hi=4))
    route_length: float = field(default=500.0, metadata=_rng(gt=0))
    waypoints: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class TrafficSpec:
    """Random background traffic sampled at every reset from the env's seeded generator.

    ``count`` vehicles are spread over the road's driving lanes within ``s_range`` (reference
    s, [m]; default the whole road), at least ``min_spacing`` m bumper to bumper, with speed and
    desired speed drawn uniformly as fractions of the limit, and IDM/MOBIL parameters jittered
    by +-``jitter`` (relative) around ``behavior``. No vehicle is placed overlapping a
    ``keep_clear`` zone ``[road, lane, s_lo, s_hi]`` (OpenDRIVE road and lane id, reference s
    [m]): scenario families keep the stretch between the ego and their scripted actors empty.
    ``radius`` > 0 [m] instead spreads the vehicles over every driving lane (outside junctions)
    within that distance of the ego, for maps where the ego's road is a small part (towns).
    ``pedestrians`` walkers are spread over the sidewalk lanes (:mod:`sim.pedestrians`).
    """

    count: int = field(default=0, metadata=_rng(0, 1000))
    s_range: tuple[float, ...] = ()
    keep_clear: tuple[tuple[float, ...], ...] = ()
    min_spacing: float = field(default=8.0, metadata=_rng(lo=0))
    speed_frac: tuple[float, ...] = (0.6, 1.0)
    v0_frac: tuple[float, ...] = (0.8, 1.1)
    jitter: float = field(default=0.2, metadata=_rng(0, 0.9))
    behavior: BehaviorSpec = BehaviorSpec()
    radius: float = field(default=0.0, metadata=_rng(lo=0))
    pedestrians: int = field(default=0, metadata=_rng(0, 1000))


@dataclass(frozen=True)
class ScenarioSpec:
    """A complete scenario. ``seed`` None: the env's seed decides the random traffic."""

    version: int = SPEC_VERSION
    name: str = "scenario"
    road: RoadSpec = RoadSpec()
    ego: EgoSpec = EgoSpec()
    actors: tuple[ActorSpec, ...] = ()
    traffic: TrafficSpec = TrafficSpec()
    time_limit_s: float = field(default=60.0, metadata=_rng(gt=0, hi=3600))
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) for YAML/JSON."""
        return _to_plain(self)  # type: ignore[no-any-return]

    def max_actors(self) -> int:
        """Actor slots this spec needs: the ego, scripted actors and background traffic."""
        return 1 + len(self.actors) + self.traffic.count + self.traffic.pedestrians


# ---------------------------------------------------------------------------------------------
# Parsing and checking
# ---------------------------------------------------------------------------------------------


def _to_plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _to_plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple | list):
        return [_to_plain(x) for x in v]
    return v


def _parse(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _parse_dataclass(tp, value, path)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise SpecError(f"{path}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse(inner[0], value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        item_tp = get_args(tp)[0]
        return tuple(_parse(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise SpecError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{path}: expected a string, got {value!r}")
        return value
    raise SpecError(f"{path}: unsupported field type {tp}")  # pragma: no cover


def _check_range(value: Any, meta: Any, path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    lo, hi, gt = meta.get("lo"), meta.get("hi"), meta.get("gt")
    if gt is not None and not value > gt:
        raise SpecError(f"{path}: expected > {gt}, got {value}")
    if lo is not None and value < lo:
        raise SpecError(f"{path}: expected >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise SpecError(f"{path}: expected <= {hi}, got {value}")


def _parse_dataclass(cls: type, data: Any, path: str) -> Any:
    if isinstance(data, cls):
        data = _to_plain(data)
    if not isinstance(data, dict):
        raise SpecError(f"{path or 'spec'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SpecError(
            f"{path or 'spec'}: unknown field(s) {unknown}; expected some of {sorted(names)}"
        )
    kw = {}
    for name, value in data.items():
        p = f"{path}.{name}" if path else name
        parsed = _parse(hints[name], value, p)
        if parsed is not None:
            _check_range(parsed, names[name].metadata, p)
        kw[name] = parsed
    return cls(**kw)


def spec_from_dict(data: Any, source: str = "") -> ScenarioSpec:
    """Parse and check a spec from plain data (as loaded from YAML/JSON).

    Args:
        data: mapping with ScenarioSpec fields; missing fields take defaults.
        source: file name to prefix errors with.
    """
    try:
        if isinstance(data, dict) and "version" in data and data["version"] != SPEC_VERSION:
            raise SpecError(
                f"version: this gendrive reads spec version {SPEC_VERSION}, got {data['version']!r}"
            )
        spec: ScenarioSpec = _parse_dataclass(ScenarioSpec, data, "")
        _check_self(spec)
    except SpecError as e:
        raise SpecError(f"{source}: {e}" if source else str(e)) from None
    return spec


def _check_self(spec: ScenarioSpec) -> None:
    r = spec.road
    if r.kind == "segments" and not r.segments:
        raise SpecError("road.segments: expected at least one segment for kind 'segments'")
    if r.kind in URBAN_KINDS:
        from sim.urban import UrbanError, urban_model

        try:
            urban_model(r)
        except UrbanError as e:
            raise SpecError(f"road.{e}") from None
    if r.kind == "file":
        if not r.path:
            raise SpecError("road.path: expected an OpenDRIVE file path for kind 'file'")
        if not Path(r.path).is_file():
            raise SpecError(f"road.path: file not found: {r.path}")
    t = spec.traffic
    for name in ("s_range", "speed_frac", "v0_frac"):
        v = getattr(t, name)
        if name == "s_range" and not v:
            continue
        if len(v) != 2 or v[0] > v[1] or v[0] < 0:
            raise SpecError(
                f"traffic.{name}: expected [low, high] with 0 <= low <= high, got {list(v)}"
            )
    for i, w in enumerate(spec.ego.waypoints):
        if len(w) != 3 or w[0] != int(w[0]) or w[1] != int(w[1]) or w[2] < 0:
            raise SpecError(
                f"ego.waypoints[{i}]: expected [road, lane, s] with integer road and lane ids "
                f"and s >= 0, got {list(w)}"
            )
    for i, z in enumerate(t.keep_clear):
        if len(z) != 4 or z[0] != int(z[0]) or z[1] != int(z[1]) or z[2] > z[3]:
            raise SpecError(
                f"traffic.keep_clear[{i}]: expected [road, lane, s_lo, s_hi] with integer road "
                f"and lane ids and s_lo <= s_hi, got {list(z)}"
            )
    for i, a in enumerate(spec.actors):
        if a.type == "vehicle" and abs(a.d) > MAX_VEHICLE_D_M:
            raise SpecError(
                f"actors[{i}].d: expected -{MAX_VEHICLE_D_M} to {MAX_VEHICLE_D_M} m for a "
                f"vehicle, got {a.d}"
            )
        for k, ev in enumerate(a.events):
            if (ev.action == "cross") != (a.type == "pedestrian"):
                raise SpecError(
                    f"actors[{i}].events[{k}].action: {ev.action!r} does not fit a {a.type} "
                    "('cross' is for pedestrians only, and pedestrians only cross)"
                )
        if len(a.events) > MAX_EVENTS:
            raise SpecError(
                f"actors[{i}].events: at most {MAX_EVENTS} per actor, got {len(a.events)}"
            )


def load_spec(path: str | Path) -> ScenarioSpec:
    """Read a ScenarioSpec from a ``.yaml``/``.yml``/``.json`` file; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: scenario file not found")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SpecError(
            f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}"
        ) from None
    return spec_from_dict(data if data is not None else {}, source=str(p))


def dump_spec(spec: ScenarioSpec, path: str | Path) -> None:
    """Write a spec as YAML or JSON (by suffix), atomically."""
    p = Path(path)
    text = (
        json.dumps(spec.to_dict(), indent=2)
        if p.suffix == ".json"
        else yaml.safe_dump(spec.to_dict(), sort_keys=False)
    )
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)


# ---------------------------------------------------------------------------------------------
# Roads from specs, and checks that need the road
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def build_road(r: RoadSpec) -> roads.LaneGraph:
    """The lane graph of a road spec (cached: specs are immutable)."""
    common = {"num_lanes": r.num_lanes, "lane_width": r.lane_width, "speed_limit": r.speed_limit}
    try:
        if r.kind == "file" or r.kind in URBAN_KINDS:
            from sim.lights import LightTiming
            from sim.opendrive import build_lane_graph, load_lane_graph, read_opendrive
            from sim.traffic_rules import attach_rules
            from sim.urban import urban_model

            if r.kind == "file":
                graph = load_lane_graph(str(r.path))
                model = read_opendrive(str(r.path))
            else:
                model = urban_model(r)
                graph = build_lane_graph(model)
            timing = LightTiming(r.lights.green_s, r.lights.yellow_s, r.lights.all_red_s)
            attach_rules(graph, model, timing)
            return graph
        if r.kind == "straight":
            return roads.straight_highway(r.length, **common)  # type: ignore[arg-type]
        if r.kind == "curved":
            return roads.curved_highway(r.length, r.radius, r.transition, **common)  # type: ignore[arg-type]
        if r.kind == "ring":
            return roads.ring_road(r.radius, **common)  # type: ignore[arg-type]
        if r.kind == "segments":
            segs = [
                roads.Segment(
                    sg.length,
                    sg.curvature,
                    sg.curvature_end
                    if sg.type == "spiral"
                    else sg.curvature
                    if sg.type == "arc"
                    else 0.0,
                )
                if sg.type != "line"
                else roads.Segment.line(sg.length)
                for sg in r.segments
            ]
            return roads.build_highway(segs, name="segments", **common)  # type: ignore[arg-type]
    except ValueError as e:
        raise SpecError(f"road: {e}") from None
    raise SpecError(f"road.kind: cannot build {r.kind!r}")


def road_length(graph: roads.LaneGraph, road_id: int) -> float:
    sec = graph.section_road == road_id
    return float((graph.section_s0[sec] + graph.section_length[sec]).max()) if sec.any() else 0.0


def is_closed(graph: roads.LaneGraph, lane: int) -> bool:
    return bool(np.any(graph.successors[lane] == lane))


def _length_ahead(graph: roads.LaneGraph, lane: int, s: float, need: float) -> float:
    """[m] lane length ahead of ``(lane, s)`` following first successors, up to ``need``."""
    total = float(graph.lane_length[lane]) - s
    hops = 0
    while total < need and graph.successors[lane, 0] >= 0 and hops < 10_000:
        lane = int(graph.successors[lane, 0])
        total += float(graph.lane_length[lane])
        hops += 1
    return total


def ego_route_points(
    spec: ScenarioSpec, graph: roads.LaneGraph, source: str = ""
) -> tuple[tuple[int, float], tuple[tuple[int, float], ...]]:
    """The ego's start and its waypoints as lane positions ``(lane, s)``, checked reachable.

    Raises:
        SpecError naming ``ego.waypoints[i]``: not on the road, or no path to it.
    """
    from sim.routes import plan_through

    pre = f"{source}: " if source else ""
    start = graph.lane_index(spec.ego.road, spec.ego.lane, spec.ego.s)
    points = []
    for i, w in enumerate(spec.ego.waypoints):
        try:
            points.append(graph.lane_index(int(w[0]), int(w[1]), float(w[2])))
        except KeyError as e:
            raise SpecError(f"{pre}ego.waypoints[{i}]: {e.args[0]}") from None
        if plan_through(graph, start, tuple(points)) is None:
            raise SpecError(
                f"{pre}ego.waypoints[{i}]: no route reaches road {int(w[0])} lane {int(w[1])} "
                f"s={w[2]} from the previous point"
            )
    return start, tuple(points)


def check_on_road(spec: ScenarioSpec, graph: roads.LaneGraph, source: str = "") -> None:
    """Checks that need the road: lanes exist, positions lie on the road, no overlap at start.

    Raises:
        SpecError naming the field (``actors[1].lane``) and what the road offers.
    """
    pre = f"{source}: " if source else ""
    placed: list[tuple[str, int, float, float, float]] = []  # (field, lane, s, length, d)
    items: list[tuple[str, Any]] = [("ego", spec.ego)]
    items += [(f"actors[{i}]", a) for i, a in enumerate(spec.actors)]
    for name, a in items:
        try:
            lane, s = graph.lane_index(a.road, a.lane, a.s)
        except KeyError as e:
            raise SpecError(f"{pre}{name}.lane/s: {e.args[0]}") from None
        width = float(roads.interp(graph, graph.width, np.array(lane), np.array(s, np.float32)))
        if getattr(a, "type", "vehicle") == "pedestrian":
            placed.append((name, lane, s, a.length, a.d))
            continue
        if abs(a.d) + a.width / 2 > width / 2 + 1.0:
            raise SpecError(
                f"{pre}{name}.d: {a.d} m puts the vehicle off its lane (width {width:.2f} m)"
            )
        placed.append((name, lane, s, a.length, a.d))
    # Overlap at start: same lane, longitudinal intervals intersect (closed roads wrap).
    for i in range(len(placed)):
        for j in range(i + 1, len(placed)):
            ni, li, si, Li, di = placed[i]
            nj, lj, sj, Lj, dj = placed[j]
            if li != lj or abs(di - dj) > 2.0:
                continue
            gap = abs(si - sj)
            if is_closed(graph, li):
                gap = min(gap, float(graph.lane_length[li]) - gap)
            if gap < (Li + Lj) / 2:
                raise SpecError(
                    f"{pre}{nj}: overlaps {ni} at start (same lane, centres {gap:.2f} m apart, "
                    f"need >= {(Li + Lj) / 2:.2f} m)"
                )
    ego_lane = placed[0][1]
    if spec.ego.waypoints:
        ego_route_points(spec, graph, source)  # raises on an unknown or unreachable waypoint
    elif spec.road.kind == "file" or spec.road.kind in URBAN_KINDS:
        avail = _length_ahead(graph, ego_lane, placed[0][2], spec.ego.route_length)
        if spec.ego.route_length > avail + 1e-3:
            raise SpecError(
                f"{pre}ego.route_length: {spec.ego.route_length} m but the lanes ahead of the "
                f"ego (following first successors) end after {avail:.1f} m"
            )
    elif not is_closed(graph, ego_lane):
        avail = road_length(graph, spec.ego.road) - spec.ego.s
        if spec.ego.route_length > avail + 1e-3:
            raise SpecError(
                f"{pre}ego.route_length: {spec.ego.route_length} m but only {avail:.1f} m of road "
                f"ahead of ego.s={spec.ego.s}"
            )
    t = spec.traffic
    if t.s_range:
        total = road_length(graph, 0)
        if t.s_range[1] > total + 1e-3:
            raise SpecError(
                f"{pre}traffic.s_range: {list(t.s_range)} beyond the road ({total:.1f} m)"
            )
