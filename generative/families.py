"""Scenario families: parameterised distributions of critical driving situations.

Each family is modelled on a CARLA ScenarioRunner / Leaderboard scenario and is a distribution
over its parameters: a frozen dataclass of :class:`Range` fields, one per parameter, plus
:meth:`ScenarioFamily.sample`, which draws a :class:`sim.scenario.ScenarioSpec`.

Difficulty
----------
Every parameter has an *easy* interval ``[e_lo, e_hi]`` and a *critical* one ``[c_lo, c_hi]``.
At difficulty ``delta`` in [0, 1] the parameter is drawn uniformly from the interpolated
interval::

    lo(delta) = e_lo + delta (c_lo - e_lo),   hi(delta) = e_hi + delta (c_hi - e_hi)
    value     = lo(delta) + u (hi(delta) - lo(delta)),   u ~ U(0, 1)

The ``u`` of each parameter is drawn first, in field order, from the caller's generator, so the
same seed at two difficulties gives the same scenario with every parameter moved towards the
critical end (common random numbers): difficulty sweeps compare like with like.

Families (CARLA names in brackets)
----------------------------------
- ``hard_brake`` (FollowLeadingVehicle, HardBreakRoute): a leader in the ego's lane, a time gap
  ahead, brakes at a given deceleration to a fraction of its speed (0: to a standstill).
- ``cut_in`` (CutIn, HighwayCutIn): a slower car in the adjacent lane changes into the ego's lane
  when the ego's bumper gap to it falls below the cut-in gap, over the lane-change duration.
- ``slow_leader`` (SlowPrecedingVehicle): a much slower car in the ego's lane, first visible at
  the reveal distance.
- ``traffic_jam_end`` (EndOfTrafficJam): a queue across every lane moving at the jam speed, the
  jam's tail at a distance ahead.
- ``merge_into_slow`` (lane merge into slow traffic): the ego's lane is closed by a stopped
  vehicle (a work-zone truck) and the adjacent lane carries a slow, dense platoon the ego must
  merge into. The simulator has no on-ramps yet, so a lane closure stands in for the lane end;
  the real merge comes with the maps work.
- ``pedestrian_crossing`` (DynamicObjectCrossing): on a two-lane street a car is parked in the
  right lane; a pedestrian steps out from in front of it (hidden behind it, as the ego sees it)
  and walks across the ego's lane when the ego comes within the trigger gap.
- ``red_light_runner`` (OppositeVehicleRunningRedLight): on a signalised 4-way intersection the
  ego crosses straight on green while a car on a perpendicular arm runs its red light
  (``BehaviorSpec.ignore_lights``), timed to reach the crossing point just before the ego; the
  light plan is fixed from the spec (``LightsSpec.offset_s``) so the ego has green and the runner
  red.
- ``none``: unconditional traffic, the ego and background traffic only.

Background traffic comes from a :class:`generative.sampling.TrafficSampler` (the learned model)
or, when none is given, from the simulator's own :class:`sim.scenario.TrafficSpec` random
traffic (redrawn from the spec's seed at reset) with its count from the family's density
parameter. Either way the stretch between the ego and the scripted actors is kept clear
(``keep_clear`` zones), so background traffic does not change what the scenario is about at the
start; it may still drive into it later, as traffic does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generative.sampling import TrafficSampler
from sim.scenario import (
    ActorSpec,
    BehaviorSpec,
    EgoSpec,
    EventSpec,
    LightsSpec,
    RoadSpec,
    ScenarioSpec,
    SpecError,
    TrafficSpec,
    build_road,
    check_on_road,
    is_closed,
    road_length,
    spec_from_dict,
)

EGO_LENGTH_M = EgoSpec().length  # [m] the ego's box (EgoSpec default)
CAR_LENGTH_M = ActorSpec().length  # [m] scripted passenger cars (ActorSpec default)
EGO_START_S_M = 120.0  # [m] ego start: room behind it for background traffic to follow
ROUTE_LENGTH_M = 350.0  # [m] the situation plays out within ~10 s at highway speed
TIME_LIMIT_S = 40.0  # [s] the route at >= 9 m/s; a blocked ego times out instead of idling
CLEAR_BEHIND_M = 30.0  # [m] kept clear behind the ego and the scripted actors
CLEAR_AHEAD_M = 40.0  # [m] kept clear ahead of the scripted actors (no one in their way)
TRAFFIC_SPEED_FRAC = (0.6, 0.9)  # [-] background start speeds, fraction of the limit
TRAFFIC_V0_FRAC = (0.7, 1.0)  # [-] background desired speeds, fraction of the limit
STOP_BELOW_MPS = 0.5  # [m/s] a brake target below this is a full stop (EventSpec "stop")
TRUCK_LENGTH_M = 8.0  # [m] the work-zone truck that closes a lane (merge_into_slow)
TRUCK_WIDTH_M = 2.4  # [m] its width: a lane closure fills the lane
JAM_STANDSTILL_GAP_M = 3.0  # [m] bumper gap in a stopped queue (IDM jam distance ~2 m + slack)
JAM_HEADWAY_S = 1.2  # [s] time gap inside a moving queue
JAM_CARS_PER_LANE = 4  # [-] queue depth: enough that the tail is a wall, not one car
MIN_PLATOON_SPAN_M = 60.0  # [m] the slow platoon extends this far behind the ego and past the truck

DEFAULT_ROAD = RoadSpec(
    kind="straight", num_lanes=3, lane_width=3.5, speed_limit=30.0, length=1500.0
)  # 3-lane motorway at 108 km/h, long enough for the ego start, route and traffic ahead


class FamilyError(ValueError):
    """A family cannot be sampled as asked; the message names the family and the reason."""


@dataclass(frozen=True)
class Range:
    """One parameter's sampling interval at difficulty 0 (``easy``) and 1 (``critical``)."""

    easy: tuple[float, float]
    critical: tuple[float, float]
    unit: str = ""

    def __post_init__(self) -> None:
        for name in ("easy", "critical"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"Range.{name}: expected (low, high) with low <= high")

    def bounds(self, difficulty: float) -> tuple[float, float]:
        """The interval at ``difficulty`` (linear between the easy and critical ones)."""
        d = difficulty
        lo = self.easy[0] + d * (self.critical[0] - self.easy[0])
        hi = self.easy[1] + d * (self.critical[1] - self.easy[1])
        return lo, hi

    def at(self, u: float, difficulty: float) -> float:
        """The parameter for a uniform draw ``u`` in [0, 1) at ``difficulty``."""
        lo, hi = self.bounds(difficulty)
        return lo + u * (hi - lo)


def check_difficulty(difficulty: float, key: str = "difficulty") -> float:
    """``difficulty`` as a float in [0, 1]; otherwise a :class:`FamilyError` naming ``key``."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, int | float):
        raise FamilyError(f"{key}: expected a number in [0, 1], got {difficulty!r}")
    if not (math.isfinite(difficulty) and 0.0 <= difficulty <= 1.0):
        raise FamilyError(f"{key}: expected a number in [0, 1], got {difficulty!r}")
    return float(difficulty)


def draw_params(params: Any, rng: np.random.Generator, difficulty: float) -> dict[str, float]:
    """Every :class:`Range` field of a parameter dataclass, drawn at ``difficulty``.

    One uniform per field, in field order, all drawn before any is used (see module docstring).
    """
    ranges = [(f.name, getattr(params, f.name)) for f in dataclasses.fields(params)]
    u = rng.uniform(0.0, 1.0, len(ranges))
    return {
        name: float(r.at(float(ui), difficulty)) for (name, r), ui in zip(ranges, u, strict=True)
    }


# ---------------------------------------------------------------------------------------------
# Road layout helpers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where a family can put things on a road: lane ids, length, whether it loops."""

    road: RoadSpec
    lanes: tuple[int, ...]  # OpenDRIVE lane ids of the driving lanes, leftmost first
    length: float  # [m] reference length of road 0
    closed: bool

    def s(self, family: str, what: str, value: float) -> float:
        """A reference ``s`` on the road (wrapped on a loop); error if it runs off the end."""
        if self.closed:
            return value % self.length
        if not 0.0 <= value <= self.length:
            raise FamilyError(
                f"family '{family}': {what} at s={value:.1f} m is off the road "
                f"(road.length {self.length:.1f} m); use a longer road"
            )
        return value

    def zone(self, lane: int, lo: float, hi: float) -> list[tuple[int, int, float, float]]:
        """keep_clear zones covering ``[lo, hi]`` on ``lane`` (split where a loop wraps)."""
        if not self.closed:
            return [(0, lane, max(lo, 0.0), min(hi, self.length))]
        if hi - lo >= self.length:
            return [(0, lane, 0.0, self.length)]
        a, b = lo % self.length, hi % self.length
        if a <= b:
            return [(0, lane, a, b)]
        return [(0, lane, a, self.length), (0, lane, 0.0, b)]


def _layout(road: RoadSpec, family: str, min_lanes: int) -> _Layout:
    try:
        spec_from_dict({"road": dataclasses.asdict(road)}, source="road")
        graph = build_road(road)
    except SpecError as e:
        raise FamilyError(f"family '{family}': {e}") from None
    if road.num_lanes < min_lanes:
        raise FamilyError(
            f"family '{family}': needs a road with >= {min_lanes} lanes, got num_lanes="
            f"{road.num_lanes}"
        )
    lane0 = int(np.nonzero(graph.odr_lane == -1)[0][0])
    return _Layout(
        road,
        tuple(-k for k in range(1, road.num_lanes + 1)),
        road_length(graph, 0),
        is_closed(graph, lane0),
    )


def _leader(v0: float) -> BehaviorSpec:
    """A scripted vehicle: holds ``v0``, never changes lanes on its own (the script does)."""
    return BehaviorSpec(v0=v0, lane_change=False)


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """What a family's ``build`` produces before background traffic is added."""

    ego: EgoSpec
    actors: list[ActorSpec]
    keep_clear: list[tuple[int, int, float, float]]
    params: dict[str, Any]
    route_length: float = ROUTE_LENGTH_M
    time_limit_s: float = TIME_LIMIT_S
    lane_km: float | None = None  # [km] lanes background traffic spreads over (None: road 0's)


class ScenarioFamily:
    """A parameterised scenario distribution (see module docstring).

    Subclasses set ``name``, ``description``, ``carla`` (the ScenarioRunner scenario it follows),
    ``params`` (a frozen dataclass of :class:`Range` fields), ``min_lanes`` and implement
    :meth:`build`.
    """

    name: str = ""
    description: str = ""
    carla: str = ""
    min_lanes: int = 1
    params: Any = None
    default_road: RoadSpec | None = None  # None: :data:`DEFAULT_ROAD`

    def build(
        self, p: dict[str, float], rng: np.random.Generator, lay: _Layout
    ) -> _Draft:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_road(self, road: RoadSpec) -> RoadSpec:
        """The road to sample on; a family that needs a kind of road raises
        :class:`FamilyError` here (default: any road, as given)."""
        return road

    def sample(
        self,
        rng: np.random.Generator,
        difficulty: float,
        road: RoadSpec | None = None,
        background: TrafficSampler | None = None,
    ) -> ScenarioSpec:
        """One scenario at ``difficulty`` in [0, 1] on ``road`` (default: the family's
        ``default_road``, else :data:`DEFAULT_ROAD`).

        Raises:
            FamilyError: bad difficulty, a road the family does not fit on, or a background
                sampler that returned vehicles where the family asked for none.
        """
        return self.sample_with_params(rng, difficulty, road, background)[0]

    def sample_with_params(
        self,
        rng: np.random.Generator,
        difficulty: float,
        road: RoadSpec | None = None,
        background: TrafficSampler | None = None,
    ) -> tuple[ScenarioSpec, dict[str, Any]]:
        """:meth:`sample`, also returning the drawn parameters (for ``summary.json``)."""
        d = check_difficulty(difficulty)
        road = self.check_road(road or self.default_road or DEFAULT_ROAD)
        lay = _layout(road, self.name, self.min_lanes)
        p = draw_params(self.params, rng, d)
        density = p.pop("density")
        draft = self.build(p, rng, lay)
        seed = int(rng.integers(2**31 - 1))
        ego = dataclasses.replace(draft.ego, route_length=draft.route_length)
        if not (lay.closed or ego.waypoints) and ego.s + ego.route_length > lay.length:
            raise FamilyError(
                f"family '{self.name}': the route ends at s={ego.s + ego.route_length:.1f} m, "
                f"past the road's end ({lay.length:.1f} m); use a longer road"
            )
        actors = list(draft.actors)
        traffic = TrafficSpec()
        span = (0.0, lay.length)
        if background is not None:
            # s_range is a range of road 0; a layout of several roads is filled everywhere
            # outside its junctions (the keep_clear zones still hold).
            multi = draft.lane_km is not None
            extra = background.sample_traffic(
                lay.road,
                rng,
                density_veh_per_km_lane=density,
                s_range=None if multi else span,
                keep_clear=tuple(draft.keep_clear),
                difficulty=d,
            )
            actors += _checked_background(self.name, extra, draft.keep_clear, background)
        else:
            if draft.lane_km is not None:
                count = round(density * draft.lane_km)
            else:
                count = round(density * len(lay.lanes) * (span[1] - span[0]) / 1000.0)
            traffic = TrafficSpec(
                count=count,
                keep_clear=tuple(draft.keep_clear),
                speed_frac=TRAFFIC_SPEED_FRAC,
                v0_frac=TRAFFIC_V0_FRAC,
            )
        spec = ScenarioSpec(
            name=f"{self.name}_d{d:.2f}",
            road=lay.road,
            ego=ego,
            actors=tuple(actors),
            traffic=traffic,
            time_limit_s=draft.time_limit_s,
            seed=seed,
        )
        try:
            spec = spec_from_dict(spec.to_dict(), source=f"family '{self.name}'")
            check_on_road(spec, build_road(spec.road), source=f"family '{self.name}'")
        except SpecError as e:  # a family bug, or a road too tight for the drawn parameters
            raise FamilyError(str(e)) from None
        params: dict[str, Any] = {"density": density, **draft.params}
        return spec, params


def _checked_background(
    family: str,
    extra: Sequence[ActorSpec],
    zones: Sequence[tuple[int, int, float, float]],
    sampler: TrafficSampler,
) -> list[ActorSpec]:
    """The sampler's vehicles, each checked to be an ActorSpec outside every keep_clear zone."""
    out = []
    for i, a in enumerate(extra):
        if not isinstance(a, ActorSpec):
            raise FamilyError(
                f"family '{family}': background sampler {type(sampler).__name__} returned "
                f"{type(a).__name__} at index {i}, expected ActorSpec"
            )
        half = 0.5 * a.length
        for z in zones:
            if a.road == z[0] and a.lane == z[1] and a.s + half > z[2] and a.s - half < z[3]:
                raise FamilyError(
                    f"family '{family}': background sampler {type(sampler).__name__} placed "
                    f"vehicle {i} at road {a.road} lane {a.lane} s={a.s:.1f} m inside keep_clear "
                    f"zone {list(z)}"
                )
        out.append(a)
    return out


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


# -- hard_brake --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardBrakeParams:
    """Parameters of ``hard_brake`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.8, 0.9), (0.95, 1.0), "-")  # / the road's speed limit
    headway: Range = Range((2.5, 3.5), (0.4, 0.6), "s")  # time gap to the leader at the brake
    decel: Range = Range((2.5, 3.5), (8.5, 10.0), "m/s^2")  # leader's braking (ego's max: 8)
    target_frac: Range = Range((0.5, 0.7), (0.0, 0.1), "-")  # leader's final / initial speed
    brake_time: Range = Range((2.0, 3.0), (0.0, 0.3), "s")  # sim time of the brake
    density: Range = Range((6.0, 10.0), (10.0, 16.0), "veh/km/lane")


class HardBrake(ScenarioFamily):
    name = "hard_brake"
    description = "the leader in the ego's lane brakes hard"
    carla = "FollowLeadingVehicle / HardBreakRoute"
    params = HardBrakeParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        lane = int(_pick(rng, lay.lanes))
        v = p["ego_speed_frac"] * lay.road.speed_limit
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        gap = p["headway"] * v
        s_lead = lay.s(self.name, "leader", s_ego + gap + 0.5 * (EGO_LENGTH_M + CAR_LENGTH_M))
        target = p["target_frac"] * v
        event = (
            EventSpec(action="stop", trigger="time", at=p["brake_time"], decel=p["decel"])
            if target < STOP_BELOW_MPS
            else EventSpec(
                action="set_speed",
                trigger="time",
                at=p["brake_time"],
                target_speed=target,
                decel=p["decel"],
            )
        )
        leader = ActorSpec(lane=lane, s=s_lead, speed=v, behavior=_leader(v), events=(event,))
        zones = lay.zone(lane, s_ego - CLEAR_BEHIND_M, s_ego + gap + CLEAR_AHEAD_M)
        params = {**p, "lane": lane, "gap_m": gap, "target_speed": target}
        return _Draft(EgoSpec(lane=lane, s=s_ego, speed=v), [leader], zones, params)


# -- cut_in ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutInParams:
    """Parameters of ``cut_in`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.9, 1.0), (0.9, 1.0), "-")  # / the road's speed limit
    rel_speed: Range = Range((1.0, 3.0), (5.0, 8.0), "m/s")  # ego speed - cutter speed
    cut_gap: Range = Range((45.0, 60.0), (3.0, 6.0), "m")  # bumper gap that starts the cut-in
    duration: Range = Range((3.0, 4.0), (1.0, 1.5), "s")  # lane-change duration
    density: Range = Range((6.0, 10.0), (10.0, 16.0), "veh/km/lane")


APPROACH_S = 3.0  # [s] the ego closes on the cutter for about this long before the cut-in


class CutIn(ScenarioFamily):
    name = "cut_in"
    description = "a slower car in the adjacent lane cuts in front of the ego"
    carla = "CutIn / HighwayCutIn"
    min_lanes = 2
    params = CutInParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        # (ego lane, cutter lane, direction the cutter moves): left lanes have larger ids.
        pairs = [(a, a + 1, "right") for a in lay.lanes if a + 1 in lay.lanes]
        pairs += [(a, a - 1, "left") for a in lay.lanes if a - 1 in lay.lanes]
        ego_lane, cut_lane, direction = _pick(rng, pairs)
        v = p["ego_speed_frac"] * lay.road.speed_limit
        v_cut = max(v - p["rel_speed"], 0.0)
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        ahead = p["cut_gap"] + p["rel_speed"] * APPROACH_S + 0.5 * (EGO_LENGTH_M + CAR_LENGTH_M)
        s_cut = lay.s(self.name, "cutter", s_ego + ahead)
        event = EventSpec(
            action="lane_change",
            trigger="ego_gap",
            at=p["cut_gap"],
            direction=direction,
            duration=p["duration"],
        )
        cutter = ActorSpec(
            lane=cut_lane, s=s_cut, speed=v_cut, behavior=_leader(v_cut), events=(event,)
        )
        lo, hi = s_ego - CLEAR_BEHIND_M, s_ego + ahead + CLEAR_AHEAD_M
        zones = lay.zone(ego_lane, lo, hi) + lay.zone(cut_lane, lo, hi)
        params = {**p, "ego_lane": ego_lane, "cutter_lane": cut_lane, "direction": direction}
        return _Draft(EgoSpec(lane=ego_lane, s=s_ego, speed=v), [cutter], zones, params)


# -- slow_leader -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlowLeaderParams:
    """Parameters of ``slow_leader`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.8, 0.9), (0.95, 1.0), "-")  # / the road's speed limit
    rel_speed: Range = Range((4.0, 7.0), (14.0, 20.0), "m/s")  # ego speed - leader speed
    reveal_gap: Range = Range((150.0, 200.0), (35.0, 50.0), "m")  # bumper gap at the start
    density: Range = Range((6.0, 10.0), (10.0, 16.0), "veh/km/lane")


MIN_SLOW_SPEED_MPS = 3.0  # [m/s] the slow car still moves (a stopped one is hard_brake's stop)


class SlowLeader(ScenarioFamily):
    name = "slow_leader"
    description = "a much slower car ahead in the ego's lane, revealed late"
    carla = "SlowPrecedingVehicle"
    params = SlowLeaderParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        lane = int(_pick(rng, lay.lanes))
        v = p["ego_speed_frac"] * lay.road.speed_limit
        v_slow = max(v - p["rel_speed"], MIN_SLOW_SPEED_MPS)
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        ahead = p["reveal_gap"] + 0.5 * (EGO_LENGTH_M + CAR_LENGTH_M)
        s_slow = lay.s(self.name, "slow car", s_ego + ahead)
        slow = ActorSpec(lane=lane, s=s_slow, speed=v_slow, behavior=_leader(v_slow))
        zones = lay.zone(lane, s_ego - CLEAR_BEHIND_M, s_ego + ahead + CLEAR_AHEAD_M)
        params = {**p, "lane": lane, "slow_speed": v_slow}
        return _Draft(EgoSpec(lane=lane, s=s_ego, speed=v), [slow], zones, params)


# -- traffic_jam_end ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficJamEndParams:
    """Parameters of ``traffic_jam_end`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.8, 0.9), (0.95, 1.0), "-")  # / the road's speed limit
    jam_speed: Range = Range((7.0, 10.0), (0.0, 1.0), "m/s")
    jam_gap: Range = Range((200.0, 260.0), (50.0, 70.0), "m")  # ego bumper to the jam's tail
    density: Range = Range((6.0, 10.0), (10.0, 16.0), "veh/km/lane")


class TrafficJamEnd(ScenarioFamily):
    name = "traffic_jam_end"
    description = "the tail of a traffic jam across every lane ahead"
    carla = "EndOfTrafficJam (ASAM OpenSCENARIO example)"
    params = TrafficJamEndParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        lane = int(_pick(rng, lay.lanes))
        v, vj = p["ego_speed_frac"] * lay.road.speed_limit, p["jam_speed"]
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        tail = s_ego + 0.5 * EGO_LENGTH_M + p["jam_gap"] + 0.5 * CAR_LENGTH_M
        pitch = CAR_LENGTH_M + JAM_STANDSTILL_GAP_M + vj * JAM_HEADWAY_S
        # Queue rows staggered by lane (a real queue is not a grid): lane k starts k/L pitches on.
        actors, zones = [], []
        n_l = len(lay.lanes)
        for k, ln in enumerate(lay.lanes):
            for j in range(JAM_CARS_PER_LANE):
                s = lay.s(self.name, "jam", tail + (j + k / n_l) * pitch)
                actors.append(ActorSpec(lane=ln, s=s, speed=vj, behavior=_leader(vj)))
            head = tail + (JAM_CARS_PER_LANE + 1) * pitch
            zones += lay.zone(ln, s_ego - CLEAR_BEHIND_M, head + CLEAR_AHEAD_M)
        params = {**p, "lane": lane, "jam_cars": len(actors)}
        return _Draft(EgoSpec(lane=lane, s=s_ego, speed=v), actors, zones, params)


# -- merge_into_slow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeIntoSlowParams:
    """Parameters of ``merge_into_slow`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.8, 0.9), (0.95, 1.0), "-")  # / the road's speed limit
    closure_gap: Range = Range((280.0, 320.0), (70.0, 90.0), "m")  # ego bumper to the truck
    platoon_speed: Range = Range((18.0, 22.0), (4.0, 7.0), "m/s")  # the lane to merge into
    platoon_gap: Range = Range((100.0, 130.0), (7.0, 10.0), "m")  # bumper gaps in the platoon
    density: Range = Range((6.0, 10.0), (10.0, 16.0), "veh/km/lane")


class MergeIntoSlow(ScenarioFamily):
    name = "merge_into_slow"
    description = (
        "the ego's lane is closed by a stopped truck; merge into the slow adjacent lane "
        "(a lane closure stands in for an on-ramp until the maps work brings merges)"
    )
    carla = "lane merge into slow traffic (HighwayMerge-like)"
    min_lanes = 2
    params = MergeIntoSlowParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        pairs = [(a, a + 1) for a in lay.lanes if a + 1 in lay.lanes]
        pairs += [(a, a - 1) for a in lay.lanes if a - 1 in lay.lanes]
        ego_lane, slow_lane = _pick(rng, pairs)
        v, vp = p["ego_speed_frac"] * lay.road.speed_limit, p["platoon_speed"]
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        s_truck = lay.s(
            self.name,
            "truck",
            s_ego + 0.5 * EGO_LENGTH_M + p["closure_gap"] + 0.5 * TRUCK_LENGTH_M,
        )
        truck = ActorSpec(
            lane=ego_lane,
            s=s_truck,
            speed=0.0,
            length=TRUCK_LENGTH_M,
            width=TRUCK_WIDTH_M,
            behavior=_leader(0.0),
        )
        pitch = CAR_LENGTH_M + p["platoon_gap"]
        first = s_ego - MIN_PLATOON_SPAN_M + float(rng.uniform(0.0, pitch))
        last = s_truck + MIN_PLATOON_SPAN_M
        n = int((last - first) // pitch) + 1
        platoon = [
            ActorSpec(
                lane=slow_lane,
                s=lay.s(self.name, "platoon", first + j * pitch),
                speed=vp,
                behavior=_leader(vp),
            )
            for j in range(n)
        ]
        zones = lay.zone(ego_lane, s_ego - CLEAR_BEHIND_M, s_truck + CLEAR_AHEAD_M)
        zones += lay.zone(slow_lane, first - CLEAR_BEHIND_M, last + CLEAR_AHEAD_M)
        params = {**p, "ego_lane": ego_lane, "slow_lane": slow_lane, "platoon_cars": n}
        return _Draft(EgoSpec(lane=ego_lane, s=s_ego, speed=v), [truck, *platoon], zones, params)


# -- pedestrian_crossing -----------------------------------------------------------------------


@dataclass(frozen=True)
class PedestrianCrossingParams:
    """Parameters of ``pedestrian_crossing`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.7, 0.8), (0.95, 1.0), "-")  # / the road's speed limit
    trigger_gap: Range = Range((40.0, 55.0), (12.0, 18.0), "m")  # ego distance that starts it
    walk_speed: Range = Range((1.0, 1.4), (2.2, 3.0), "m/s")  # walking ... to running
    density: Range = Range((2.0, 4.0), (4.0, 8.0), "veh/km/lane")


URBAN_ROAD = RoadSpec(
    kind="straight", num_lanes=2, lane_width=3.5, speed_limit=13.9, length=700.0
)  # a two-lane one-way street at 50 km/h (ScenarioRunner plays DynamicObjectCrossing in towns)
PEDESTRIAN_EDGE_M = 0.9  # [m] the walker's centre this far right of the ego lane's right edge
PARKED_CAR_AHEAD_M = 1.0  # [m] gap from the parked car's front bumper to the pedestrian


class PedestrianCrossing(ScenarioFamily):
    name = "pedestrian_crossing"
    description = (
        "a pedestrian steps out from in front of a car parked in the right lane and crosses "
        "the ego's lane when the ego comes within the trigger gap"
    )
    carla = "DynamicObjectCrossing"
    min_lanes = 2
    params = PedestrianCrossingParams()
    default_road = URBAN_ROAD

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        # The parked car (the occluder) stands in the rightmost lane; the ego drives in the
        # lane to its left, so the pedestrian appears from behind the car, as seen by the ego.
        kerb_lane = lay.lanes[-1]
        ego_lane = kerb_lane + 1
        v = p["ego_speed_frac"] * lay.road.speed_limit
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        # The walker stands where the ego reaches it a few seconds after the start, in the
        # parked lane just in front of the parked car, at the edge of the ego's lane.
        ahead = max(2.0 * p["trigger_gap"], 80.0)
        s_ped = lay.s(self.name, "pedestrian", s_ego + ahead)
        s_car = lay.s(self.name, "parked car", s_ped - PARKED_CAR_AHEAD_M - 0.5 * CAR_LENGTH_M)
        parked = ActorSpec(lane=kerb_lane, s=s_car, speed=0.0, behavior=_leader(0.0))
        # Placed in the ego lane's coordinates (the lane it crosses, which it blocks for
        # drivers once it is about to step in), physically in the parked lane.
        walker = ActorSpec(
            type="pedestrian",
            lane=ego_lane,
            s=s_ped,
            d=-(0.5 * lay.road.lane_width + PEDESTRIAN_EDGE_M),
            speed=0.0,
            length=0.5,
            width=0.6,
            events=(
                EventSpec(
                    action="cross",
                    trigger="ego_gap",
                    at=p["trigger_gap"],
                    target_speed=p["walk_speed"],
                    direction="left",
                ),
            ),
        )
        lo, hi = s_ego - CLEAR_BEHIND_M, s_ped + CLEAR_AHEAD_M
        zones = lay.zone(ego_lane, lo, hi) + lay.zone(kerb_lane, lo, hi)
        params = {**p, "ego_lane": ego_lane, "kerb_lane": kerb_lane, "pedestrian_s": s_ped}
        return _Draft(EgoSpec(lane=ego_lane, s=s_ego, speed=v), [parked, walker], zones, params)


# -- red_light_runner --------------------------------------------------------------------------


@dataclass(frozen=True)
class RedLightRunnerParams:
    """Parameters of ``red_light_runner`` (easy -> critical)."""

    ego_speed_frac: Range = Range((0.6, 0.8), (0.9, 1.0), "-")  # / the road's speed limit
    runner_speed_frac: Range = Range((0.45, 0.6), (0.9, 1.0), "-")  # / the road's speed limit
    arrival_lag: Range = Range((2.0, 3.5), (0.3, 1.2), "s")  # ego after the runner, at the crossing
    reveal_dist: Range = Range((40.0, 55.0), (22.0, 30.0), "m")  # runner to its stop line at t=0
    density: Range = Range((2.0, 4.0), (4.0, 8.0), "veh/km/lane")


RLR_GREEN_SINCE_S = 1.0  # [s] at t = 0 the ego's light (phase 0: arms 0, 2) has been green this
# long; the runner's (phase 1: arms 1, 3) turned red 1 s before that: a fresh red it runs
RLR_OFFSET_S = RLR_GREEN_SINCE_S  # [s] RoadSpec.lights.offset_s giving that (phase 0 starts at 0)
INTERSECTION_ROAD = RoadSpec(
    kind="intersection",
    num_lanes=1,
    lane_width=3.5,
    speed_limit=13.9,
    arm_length=200.0,
    lights=LightsSpec(offset_s=RLR_OFFSET_S),
)  # a signalised 4-way junction of 50 km/h streets; arms long enough for the easy approaches
EGO_MIN_STOP_LINE_M = 4.0  # [m] the ego's centre at least this far before its stop line
EGO_MAX_STOP_LINE_M = 160.0  # [m] ... and at most this far (room behind it on a 200 m arm)
RUNNER_MAX_STOP_LINE_M = 170.0  # [m] the runner's start at most this far from its stop line
EGO_EXIT_M = 40.0  # [m] the ego's route ends this far down the far arm
GREEN_MARGIN_S = 2.0  # [s] the ego is past its stop line this long before its green ends
RLR_TIME_LIMIT_S = 30.0  # [s] the slowest easy approach is ~16 s


def ego_arrival_s(dist_m: float, line_m: float, v_start: float, limit: float) -> float:
    """[s] when the rule-based ego (:mod:`policy.rule_based` defaults, free road) has driven
    ``dist_m`` from a start ``line_m`` before a stop line at ``v_start``.

    Its demand is IDM free-road ``a (1 - (v / v_des)^4)`` towards ``v_des = min(limit, v_cap)``,
    ``v_cap = sqrt(v_entry^2 + 2 b rest)`` before the line (it enters a contested junction lane
    at ``JUNCTION_ENTRY_MPS``, :mod:`sim.traffic_rules`), the limit past it; Euler steps of the
    simulator's 0.1 s.
    """
    from policy.rule_based import RuleBasedParams
    from sim.traffic_rules import JUNCTION_ENTRY_MPS

    rp = RuleBasedParams()
    dt, x, v, t = 0.1, 0.0, v_start, 0.0
    while x < dist_m and t < 120.0:
        rest = line_m - x
        v_des = limit
        if rest > 0.0:
            v_des = min(limit, math.sqrt(JUNCTION_ENTRY_MPS**2 + 2.0 * rp.b_comf * rest))
        a = rp.a_max * (1.0 - (v / v_des) ** 4)
        v = max(v + a * dt, 0.0)
        x += v * dt
        t += dt
    return t


class RedLightRunner(ScenarioFamily):
    name = "red_light_runner"
    description = (
        "the ego crosses a signalised junction straight on green; a car on a perpendicular "
        "arm runs its red light, timed to reach the crossing point with the ego"
    )
    carla = "OppositeVehicleRunningRedLight"
    params = RedLightRunnerParams()
    default_road = INTERSECTION_ROAD

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        road = lay.road
        limit = road.speed_limit
        n, w = road.num_lanes, road.lane_width
        radius = road.junction_radius if road.junction_radius is not None else 8.0  # sim.urban's
        H = n * w + radius  # junction centre to where the arms start
        # The ego comes in on arm 0 or 2 (phase 0, green at t = 0), the runner on the arm to
        # its left or right (phase 1, red). Lanes k = 1..n enter the junction; lane k's centre
        # is (k - 1/2) w left of the arm's axis, so a runner from the left crosses the ego's
        # path on the near side of the junction, one from the right on the far side.
        ego_arm = int(_pick(rng, (0, 2)))
        side = str(_pick(rng, ("left", "right")))
        runner_arm = (ego_arm + (3 if side == "left" else 1)) % 4
        ke, kr = int(rng.integers(1, n + 1)), int(rng.integers(1, n + 1))
        near = side == "left"
        d_ego = H - (kr - 0.5) * w if near else H + (kr - 0.5) * w  # junction edge -> crossing
        d_run = H + (ke - 0.5) * w if near else H - (ke - 0.5) * w
        v_run = p["runner_speed_frac"] * limit
        s_run = p["reveal_dist"]
        gap = -p["arrival_lag"]  # runner - ego arrival [s]
        v_frac = p["ego_speed_frac"] * limit

        def v_start(line: float) -> float:  # the ego starts no faster than its approach cap
            from policy.rule_based import RuleBasedParams
            from sim.traffic_rules import JUNCTION_ENTRY_MPS

            b = RuleBasedParams().b_comf
            return min(v_frac, math.sqrt(JUNCTION_ENTRY_MPS**2 + 2.0 * b * line))

        def t_ego(line: float) -> float:
            return ego_arrival_s(line + d_ego, line, v_start(line), limit)

        target = (s_run + d_run) / v_run - gap
        lo = EGO_MIN_STOP_LINE_M
        hi = min(EGO_MAX_STOP_LINE_M, road.arm_length - 0.5 * EGO_LENGTH_M)
        if target <= t_ego(lo) or target >= t_ego(hi):
            # The ego cannot be placed for this timing: it starts at the nearest end and the
            # runner's start moves to keep the arrival gap (reported in the parameters).
            s_ego = lo if target <= t_ego(lo) else hi
            s_run = v_run * (t_ego(s_ego) + gap) - d_run
        else:
            for _ in range(40):  # bisection: the ego's arrival time grows with its distance
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if t_ego(mid) < target else (lo, mid)
            s_ego = 0.5 * (lo + hi)
        run_max = min(RUNNER_MAX_STOP_LINE_M, road.arm_length - 0.5 * CAR_LENGTH_M)
        if not 0.5 * CAR_LENGTH_M < s_run <= run_max:
            raise FamilyError(
                f"family '{self.name}': no start for the runner fits the drawn timing "
                f"(runner {s_run:.1f} m before its stop line); use a longer road.arm_length"
            )
        t_line = ego_arrival_s(s_ego, s_ego, v_start(s_ego), limit)
        green_left = road.lights.green_s - RLR_GREEN_SINCE_S
        if t_line > green_left - GREEN_MARGIN_S:
            raise FamilyError(
                f"family '{self.name}': the ego reaches its stop line at {t_line:.1f} s but its "
                f"green ends at {green_left:.1f} s; use a longer road.lights.green_s"
            )
        ego = EgoSpec(
            road=ego_arm,
            lane=ke,
            s=s_ego,
            speed=v_start(s_ego),
            waypoints=((float((ego_arm + 2) % 4), float(-ke), EGO_EXIT_M),),
        )
        runner = ActorSpec(
            road=runner_arm,
            lane=kr,
            s=s_run,
            speed=v_run,
            behavior=BehaviorSpec(v0=v_run, lane_change=False, ignore_lights=True),
        )
        # Nobody in front of either of them on their approach lanes or on the lanes they
        # leave on at the start.
        zones: list[tuple[int, int, float, float]] = [
            (ego_arm, ke, 0.0, s_ego + CLEAR_BEHIND_M),
            (runner_arm, kr, 0.0, s_run + CLEAR_BEHIND_M),
            ((ego_arm + 2) % 4, -ke, 0.0, EGO_EXIT_M + CLEAR_AHEAD_M),
            ((runner_arm + 2) % 4, -kr, 0.0, CLEAR_AHEAD_M),
        ]
        params = {
            **p,
            "reveal_dist": s_run,
            "ego_arm": ego_arm,
            "ego_lane": ke,
            "runner_arm": runner_arm,
            "runner_lane": kr,
            "runner_side": side,
            "ego_stop_line_m": s_ego,
            "runner_arrival_s": (s_run + d_run) / v_run,
        }
        return _Draft(
            ego,
            [runner],
            zones,
            params,
            time_limit_s=RLR_TIME_LIMIT_S,
            lane_km=_lane_km(lay),
        )

    def check_road(self, road: RoadSpec) -> RoadSpec:
        if road.kind != "intersection" or road.signalised is False:
            raise FamilyError(
                f"family '{self.name}': needs a signalised 4-way junction (road.kind "
                f"'intersection'), got road.kind {road.kind!r}"
                + (" with signalised false" if road.signalised is False else "")
            )
        off = road.lights.offset_s
        if off is None:
            return dataclasses.replace(
                road, lights=dataclasses.replace(road.lights, offset_s=RLR_OFFSET_S)
            )
        if off != RLR_OFFSET_S:
            raise FamilyError(
                f"family '{self.name}': road.lights.offset_s: the family times the ego's green "
                f"and the runner's red with {RLR_OFFSET_S} s; got {off}"
            )
        return road


def _lane_km(lay: _Layout) -> float:
    """[km] driving lanes outside junctions (background traffic spreads over all of them)."""
    from sim.road import LaneType
    from sim.traffic_rules import rules_of

    g = build_road(lay.road)
    rules = rules_of(g)
    lanes = g.lane_type == LaneType.DRIVING
    if rules is not None:
        lanes &= ~rules.junctions.connector
    return float(g.lane_length[lanes].sum()) / 1000.0


# -- unconditional traffic ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficOnlyParams:
    """Parameters of ``none`` (unconditional traffic): the ego's start speed and the density."""

    ego_speed_frac: Range = Range((0.6, 0.8), (0.8, 1.0), "-")  # / the road's speed limit
    density: Range = Range((6.0, 12.0), (18.0, 28.0), "veh/km/lane")


class TrafficOnly(ScenarioFamily):
    name = "none"
    description = "unconditional traffic: the ego and background traffic only"
    carla = "(background traffic)"
    params = TrafficOnlyParams()

    def build(self, p: dict[str, float], rng: np.random.Generator, lay: _Layout) -> _Draft:
        lane = int(_pick(rng, lay.lanes))
        s_ego = lay.s(self.name, "ego", EGO_START_S_M)
        zones = lay.zone(lane, s_ego - CLEAR_BEHIND_M, s_ego + CLEAR_AHEAD_M)
        return _Draft(
            EgoSpec(lane=lane, s=s_ego, speed=p["ego_speed_frac"] * lay.road.speed_limit),
            [],
            zones,
            {**p, "lane": lane},
        )


FAMILIES: dict[str, ScenarioFamily] = {
    f.name: f
    for f in (
        HardBrake(),
        CutIn(),
        SlowLeader(),
        TrafficJamEnd(),
        MergeIntoSlow(),
        PedestrianCrossing(),
        RedLightRunner(),
        TrafficOnly(),
    )
}
PLAYABLE = tuple(FAMILIES)  # every registered family plays in the embedded simulator


def get_family(name: str) -> ScenarioFamily:
    """A family by name; unknown names raise :class:`FamilyError` listing the known ones."""
    if name not in FAMILIES:
        raise FamilyError(f"family: unknown family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def sample_family(
    name: str,
    n: int,
    difficulty: float,
    seed: int = 0,
    road: RoadSpec | None = None,
    background: TrafficSampler | None = None,
) -> list[tuple[ScenarioSpec, dict[str, Any]]]:
    """``n`` scenarios of family ``name``; scenario ``i`` is drawn from ``default_rng([seed, i])``
    so any one can be redrawn alone, and the same ``(seed, i)`` at another difficulty is the
    same scenario moved along the difficulty axis."""
    fam = get_family(name)
    check_difficulty(difficulty)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise FamilyError(f"n: expected an integer >= 1, got {n!r}")
    out = []
    for i in range(n):
        spec, params = fam.sample_with_params(
            np.random.default_rng([seed, i]), difficulty, road, background
        )
        out.append((dataclasses.replace(spec, name=f"{name}_{i}"), params))
    return out


# ---------------------------------------------------------------------------------------------
# Driving a batch of sampled scenarios with the rule-based driver
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStats:
    """Per-scenario outcome of :func:`drive_rule_based`, arrays (B,)."""

    collision: np.ndarray
    hard_brake: np.ndarray  # the ego braked at <= -hard_brake_mps2 at least once
    min_ttc: np.ndarray  # [s] minimum TTC to the leader over the episode (inf: never closing)
    route_completed: np.ndarray
    end_time: np.ndarray  # [s] sim time when the episode ended

    def summary(self) -> dict[str, float]:
        """Rates and the median minimum TTC (capped at 10 s so 'never closing' counts)."""
        return {
            "collision_rate": float(np.mean(self.collision)),
            "hard_brake_rate": float(np.mean(self.hard_brake)),
            "median_min_ttc_s": float(np.median(np.minimum(self.min_ttc, 10.0))),
            "route_completion_rate": float(np.mean(self.route_completed)),
        }


def drive_rule_based(
    specs: Sequence[ScenarioSpec],
    seed: int = 0,
    hard_brake_mps2: float = 4.0,
    driver_factory: Callable[[], Any] | None = None,
) -> BatchStats:
    """Drive each spec once with the rule-based driver, all in one batched vector env.

    All specs must share a road (:data:`DEFAULT_ROAD` unless the caller chose one). Env ``b``
    starts spec ``b``; episodes run to their end (collision, off-road, route completion, time
    limit) without autoreset.
    """
    from policy.rule_based import RuleBasedDriver
    from sim.env import DriveVectorEnv
    from sim.metrics import MetricsConfig

    specs = list(specs)
    B = len(specs)
    env = DriveVectorEnv(
        num_envs=B, scenario=specs, metrics=MetricsConfig(hard_brake_mps2=hard_brake_mps2)
    )
    env.reset(seed=seed)
    # One spec per env (the env's own spec draw is random): restart every env on its spec,
    # each from its spec's seed, as the env does for specs with a fixed seed.
    env.backend.reset(
        np.ones(B, np.bool_),
        specs,
        [
            np.random.default_rng(sp.seed if sp.seed is not None else seed + b)
            for b, sp in enumerate(specs)
        ],
    )
    driver = driver_factory() if driver_factory is not None else RuleBasedDriver()
    driver.reset(np.ones(B, np.bool_))
    active = np.ones(B, np.bool_)
    collision = np.zeros(B, np.bool_)
    hard = np.zeros(B, np.bool_)
    completed = np.zeros(B, np.bool_)
    min_ttc = np.full(B, np.inf)
    end_time = np.zeros(B)
    while active.any():
        st = env.state
        assert st is not None
        nxt, out, _, _, _ = env.advance(driver.act(st, env.road))
        collision |= active & out.collision
        hard |= active & out.hard_brake
        completed |= active & out.route_completed
        min_ttc = np.where(active, np.minimum(min_ttc, out.ttc), min_ttc)
        ended = active & (out.terminated | out.truncated)
        end_time = np.where(ended, nxt.time, end_time)
        active &= ~ended
    env.close()
    return BatchStats(collision, hard, min_ttc, completed, end_time)


__all__ = [
    "DEFAULT_ROAD",
    "FAMILIES",
    "PLAYABLE",
    "BatchStats",
    "FamilyError",
    "Range",
    "ScenarioFamily",
    "check_difficulty",
    "drive_rule_based",
    "get_family",
    "sample_family",
]
