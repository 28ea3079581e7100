"""Scenario families: valid specs, difficulty that bites, background traffic kept clear."""

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.families import (
    DEFAULT_ROAD,
    FAMILIES,
    PLAYABLE,
    BatchStats,
    FamilyError,
    Range,
    drive_rule_based,
    get_family,
    sample_family,
)
from generative.sampling import TrafficSampler
from sim import world
from sim.lights import LightState
from sim.scenario import ActorSpec, RoadSpec, SpecError, build_road, check_on_road, spec_from_dict

SCRIPTED = tuple(f for f in PLAYABLE if f != "none")
HIGHWAY = tuple(f for f in SCRIPTED if FAMILIES[f].default_road is None)  # on DEFAULT_ROAD
JUNCTION_FAMILIES = ("red_light_runner",)  # need an intersection: no highway road fits them


def test_range_interpolates_from_easy_to_critical() -> None:
    r = Range((10.0, 20.0), (2.0, 4.0))
    assert r.bounds(0.0) == (10.0, 20.0)
    assert r.bounds(1.0) == (2.0, 4.0)
    assert r.bounds(0.5) == (6.0, 12.0)
    assert r.at(0.25, 0.5) == pytest.approx(7.5)
    with pytest.raises(ValueError, match="easy"):
        Range((2.0, 1.0), (0.0, 1.0))


def test_registry_lists_the_issue_families() -> None:
    assert set(SCRIPTED) == {
        "hard_brake",
        "cut_in",
        "slow_leader",
        "traffic_jam_end",
        "merge_into_slow",
        "pedestrian_crossing",
        "red_light_runner",
    }
    assert set(PLAYABLE) == set(FAMILIES)  # the simulator plays every registered family


def test_families_that_need_a_junction_say_so_on_other_roads() -> None:
    fam = get_family("red_light_runner")
    for road in (RoadSpec(), RoadSpec(kind="roundabout"), RoadSpec(kind="t_junction")):
        with pytest.raises(FamilyError, match=r"red_light_runner.*signalised 4-way junction"):
            fam.sample(np.random.default_rng(0), 0.5, road=road)
    unsignalised = RoadSpec(kind="intersection", signalised=False)
    with pytest.raises(FamilyError, match="signalised false"):
        fam.sample(np.random.default_rng(0), 0.5, road=unsignalised)
    # On its intersection it takes the learned background (corridor placement).
    from generative.model import LearnedTrafficSampler

    spec = fam.sample(np.random.default_rng(0), 0.5, background=LearnedTrafficSampler())
    assert len(spec.actors) > 1  # the runner and the sampled traffic


def test_unknown_family_and_bad_difficulty_are_named() -> None:
    with pytest.raises(FamilyError, match=r"unknown family 'nope'.*cut_in"):
        get_family("nope")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(FamilyError, match="difficulty"):
            get_family("cut_in").sample(np.random.default_rng(0), bad)
    with pytest.raises(FamilyError, match="n: expected an integer >= 1"):
        sample_family("cut_in", 0, 0.5)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(PLAYABLE),
    seed=st.integers(0, 2**31 - 1),
    difficulty=st.floats(0.0, 1.0),
)
def test_every_sampled_spec_validates_and_resets(name: str, seed: int, difficulty: float) -> None:
    spec = get_family(name).sample(np.random.default_rng(seed), difficulty)
    again = spec_from_dict(spec.to_dict())  # JSON round trip, re-validated
    assert again == spec
    g = build_road(spec.road)
    check_on_road(spec, g)
    st0 = world.reset([spec], g, [np.random.default_rng(spec.seed)])
    assert st0.valid[0, : 1 + len(spec.actors)].all()
    assert np.isfinite(st0.x[st0.valid]).all()


@pytest.mark.parametrize(
    "road",
    [
        RoadSpec(kind="curved", num_lanes=2, length=1400.0, radius=400.0, speed_limit=27.8),
        RoadSpec(kind="ring", num_lanes=3, radius=150.0, speed_limit=16.7),
    ],
)
@pytest.mark.parametrize("name", PLAYABLE)
def test_families_fit_other_roads(name: str, road: RoadSpec) -> None:
    if name in JUNCTION_FAMILIES:
        with pytest.raises(FamilyError, match=f"{name}.*needs a signalised 4-way junction"):
            get_family(name).sample(np.random.default_rng(3), 0.0, road=road)
        return
    for d in (0.0, 1.0):
        spec = get_family(name).sample(np.random.default_rng(3), d, road=road)
        assert spec.road == road
        g = build_road(road)
        world.reset([spec], g, [np.random.default_rng(0)])


def test_a_road_the_family_does_not_fit_is_an_error() -> None:
    with pytest.raises(FamilyError, match=r"cut_in.*>= 2 lanes"):
        get_family("cut_in").sample(np.random.default_rng(0), 0.5, road=RoadSpec(num_lanes=1))
    with pytest.raises(FamilyError, match=r"slow_leader.*off the road"):
        get_family("slow_leader").sample(np.random.default_rng(0), 0.0, road=RoadSpec(length=200.0))


def test_difficulty_moves_every_parameter_towards_critical() -> None:
    """Common random numbers: the same seed at a higher difficulty gives a harsher scenario."""
    fam = get_family("hard_brake")
    p = [fam.sample_with_params(np.random.default_rng(5), d)[1] for d in (0.0, 0.5, 1.0)]
    assert p[0]["headway"] > p[1]["headway"] > p[2]["headway"]
    assert p[0]["decel"] < p[1]["decel"] < p[2]["decel"]
    cut = get_family("cut_in")
    q = [cut.sample_with_params(np.random.default_rng(5), d)[1] for d in (0.0, 1.0)]
    assert q[0]["cut_gap"] > q[1]["cut_gap"] and q[0]["duration"] > q[1]["duration"]


def test_traffic_spec_background_keeps_the_scenario_clear() -> None:
    spec = get_family("hard_brake").sample(np.random.default_rng(1), 0.0)
    assert spec.traffic.count > 0 and spec.traffic.keep_clear
    g = build_road(spec.road)
    for seed in range(5):
        st0 = world.reset([spec], g, [np.random.default_rng(seed)])
        n_fixed = 1 + len(spec.actors)
        lanes = g.odr_lane[st0.lane[0]]
        s_ref = g.s_ref[g.lane_start[st0.lane[0]]] + st0.s[0]  # straight road: s_ref == s
        traffic = np.arange(st0.valid.shape[1]) >= n_fixed
        assert np.count_nonzero(traffic & st0.valid[0]) > 5
        for _, lane, lo, hi in spec.traffic.keep_clear:
            inside = (lanes == lane) & (s_ref + 2.25 > lo) & (s_ref - 2.25 < hi)
            assert not np.any(inside & traffic & st0.valid[0])


class _UniformSampler:
    """A test sampler with the learned model's interface: evenly spaced cars, zones skipped."""

    def __init__(self, cheat: bool = False) -> None:
        self.calls: list[dict[str, object]] = []
        self.cheat = cheat

    def sample_traffic(
        self,
        road: RoadSpec,
        rng: np.random.Generator,
        *,
        density_veh_per_km_lane: float | None = None,
        s_range: tuple[float, float] | None = None,
        keep_clear: Sequence[tuple[int, int, float, float]] = (),
        difficulty: float = 0.0,
    ) -> tuple[ActorSpec, ...]:
        self.calls.append({"density": density_veh_per_km_lane, "keep_clear": tuple(keep_clear)})
        lo, hi = s_range or (0.0, road.length)
        out = []
        for k in range(1, road.num_lanes + 1):
            for s in np.arange(lo + 10.0, hi - 10.0, 60.0):
                blocked = any(z[1] == -k and s + 3.0 > z[2] and s - 3.0 < z[3] for z in keep_clear)
                if self.cheat or not blocked:
                    out.append(ActorSpec(lane=-k, s=float(s), speed=20.0))
        return tuple(out)


def test_background_sampler_vehicles_join_the_spec() -> None:
    sampler = _UniformSampler()
    assert isinstance(sampler, TrafficSampler)
    spec = get_family("cut_in").sample(np.random.default_rng(2), 0.3, background=sampler)
    assert spec.traffic.count == 0
    assert len(spec.actors) > 10  # the cutter and the sampler's cars
    (call,) = sampler.calls
    assert call["keep_clear"] and float(call["density"]) > 0  # type: ignore[arg-type]
    world.reset([spec], build_road(spec.road), [np.random.default_rng(0)])


def test_background_sampler_that_ignores_keep_clear_is_an_error() -> None:
    with pytest.raises(FamilyError, match=r"_UniformSampler placed vehicle \d+ .*keep_clear"):
        get_family("slow_leader").sample(
            np.random.default_rng(2), 0.3, background=_UniformSampler(cheat=True)
        )


def _stats(st: BatchStats, sl: slice) -> dict[str, float]:
    sub = BatchStats(
        st.collision[sl], st.hard_brake[sl], st.min_ttc[sl], st.route_completed[sl], st.end_time[sl]
    )
    return sub.summary()


def test_rule_based_driver_finds_harder_scenarios_harder() -> None:
    """Over a small batch per family and difficulty, the rule-based driver's collisions and hard
    braking rise and its minimum TTC falls with difficulty; at 0 it never collides."""
    n = 4
    levels = (0.0, 0.5, 1.0)
    specs = [s for d in levels for name in HIGHWAY for s, _ in sample_family(name, n, d, seed=11)]
    assert {s.road for s in specs} == {DEFAULT_ROAD}
    stats = drive_rule_based(specs, seed=0)
    per = len(HIGHWAY) * n
    by_level = [_stats(stats, slice(k * per, (k + 1) * per)) for k in range(len(levels))]
    easy, mid, hard = by_level
    assert easy["collision_rate"] == 0.0
    assert easy["route_completion_rate"] >= 0.85
    for a, b in ((easy, mid), (mid, hard)):
        assert b["collision_rate"] >= a["collision_rate"]
        assert b["hard_brake_rate"] >= a["hard_brake_rate"]
        assert b["median_min_ttc_s"] <= a["median_min_ttc_s"]
    assert hard["hard_brake_rate"] + hard["collision_rate"] >= easy["hard_brake_rate"] + 0.5
    assert hard["median_min_ttc_s"] < 0.5 * easy["median_min_ttc_s"]


def test_keep_clear_zones_are_validated_by_name() -> None:
    good = {"traffic": {"count": 3, "keep_clear": [[0, -1, 10.0, 50.0]]}}
    assert spec_from_dict(good).traffic.keep_clear == ((0.0, -1.0, 10.0, 50.0),)
    for bad in ([[0, -1, 50.0, 10.0]], [[0, -1.5, 0.0, 10.0]], [[0, -1, 5.0]]):
        with pytest.raises(SpecError, match=r"traffic\.keep_clear\[0\]: expected \[road, lane"):
            spec_from_dict({"traffic": {"count": 3, "keep_clear": bad}})


def test_pedestrian_crossing_is_harmless_when_easy_and_critical_when_hard() -> None:
    """DynamicObjectCrossing: at difficulty 0 the rule-based driver stops in time without hard
    braking; at 1 the walker steps out so late that it brakes hard every time and cannot
    always stop (a collision with a pedestrian is its own infraction)."""
    fam = get_family("pedestrian_crossing")
    spec, params = fam.sample_with_params(np.random.default_rng(0), 0.5)
    walker = [a for a in spec.actors if a.type == "pedestrian"]
    assert len(walker) == 1 and walker[0].events[0].action == "cross"
    assert walker[0].lane == params["ego_lane"] == spec.ego.lane
    assert any(a.type == "vehicle" and a.speed == 0.0 for a in spec.actors)  # the parked car
    n = 12
    specs = [s for d in (0.0, 1.0) for s, _ in sample_family("pedestrian_crossing", n, d, seed=4)]
    stats = drive_rule_based(specs, seed=0)
    easy, hard = _stats(stats, slice(0, n)), _stats(stats, slice(n, 2 * n))
    assert easy["collision_rate"] == 0.0 and easy["hard_brake_rate"] == 0.0
    assert easy["route_completion_rate"] == 1.0
    assert hard["hard_brake_rate"] == 1.0 and hard["collision_rate"] > 0.0


def test_red_light_runner_runs_a_red_across_the_green_ego_and_bites_when_hard() -> None:
    """OppositeVehicleRunningRedLight: the ego crosses straight on green; the runner crosses its
    stop line on red. At difficulty 0 the rule-based driver never collides nor brakes hard; at 1
    it brakes hard in most episodes and cannot always avoid the runner. Without the runner the
    same ego drives through calmly (the hard braking is the runner's doing)."""
    from sim.traffic_rules import plan_offset, rules_of, states_at

    n = 12
    levels = (0.0, 1.0)
    pairs = [pr for d in levels for pr in sample_family("red_light_runner", n, d, seed=2)]
    specs = [s for s, _ in pairs]
    road = specs[0].road
    assert {s.road for s in specs} == {road} and road.kind == "intersection"
    g = build_road(road)
    rules = rules_of(g)
    assert rules is not None
    # Replay the episodes with the world alone (ego cruising on its route, 12 s): read the
    # lights when the runner and the ego cross their stop lines.
    st = world.reset(specs, g, [np.random.default_rng(s.seed) for s in specs])
    runner = 1
    assert st.behavior.ignore_lights is not None and st.behavior.ignore_lights[:, runner].all()
    assert not st.behavior.ignore_lights[:, 0].any()
    B = len(specs)
    seen: dict[int, list[int]] = {0: [-1] * B, runner: [-1] * B}
    act = np.zeros((B, 2), np.float32)
    for _ in range(200):
        nxt = world.step(st, act, world.SimParams(), g)
        lights = states_at(rules, st.time, plan_offset(st))
        for j in (0, runner):
            k = rules.lights.lane_light[st.lane[:, j]]
            stop = rules.lights.lane_stop_s[st.lane[:, j]]
            crossed = (k >= 0) & (st.s[:, j] < stop) & (nxt.lane[:, j] != st.lane[:, j])
            for b in np.nonzero(crossed & st.valid[:, j])[0]:
                if seen[j][b] < 0:
                    seen[j][b] = int(lights[b, k[b]])
        st = nxt
    assert seen[runner] == [int(LightState.RED)] * B
    assert seen[0] == [int(LightState.GREEN)] * B
    stats = drive_rule_based(specs, seed=0)
    easy, hard = _stats(stats, slice(0, n)), _stats(stats, slice(n, 2 * n))
    assert easy["collision_rate"] == 0.0 and easy["hard_brake_rate"] == 0.0
    assert easy["route_completion_rate"] == 1.0
    assert hard["hard_brake_rate"] >= 0.5 and hard["collision_rate"] > 0.0
    alone = drive_rule_based([dataclasses.replace(s, actors=()) for s in specs[n:]], seed=0)
    assert alone.summary()["hard_brake_rate"] == 0.0 and not alone.collision.any()
