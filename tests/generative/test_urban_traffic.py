"""Background traffic on multi-road layouts (sim.urban): the samplers fill every road outside
junctions, in each lane's direction of travel, and the scenes play in the simulator."""

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from generative.baseline import RuleBasedTrafficSampler
from generative.families import get_family
from generative.model import LearnedTrafficSampler, SamplerError
from generative.model.sampler import SceneSampler
from generative.model.validity import MIN_GAP_M
from sim import world
from sim.collision import pairwise_collisions
from sim.road import LaneGraph, LaneType
from sim.scenario import ActorSpec, ScenarioSpec, build_road, load_spec
from sim.traffic_rules import rules_of
from sim.world import SimParams

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "scenario"
URBAN = ("intersection", "t_junction", "roundabout", "on_ramp", "off_ramp")
KEEP_EGO_CLEAR_M = 40.0  # [m] kept clear behind and ahead of the ego
PLAY_S = 4.0  # [s] played in the simulator


@pytest.fixture(scope="module")
def samplers() -> dict[str, SceneSampler]:
    return {"learned": LearnedTrafficSampler(), "rule_based": RuleBasedTrafficSampler()}


def _ego_zone(spec: ScenarioSpec) -> tuple[int, int, float, float]:
    e = spec.ego
    return (e.road, e.lane, max(e.s - KEEP_EGO_CLEAR_M, 0.0), e.s + KEEP_EGO_CLEAR_M)


def _placement_problems(g: LaneGraph, actors: Sequence[ActorSpec]) -> list[str]:
    """What is wrong with the actors' start: off a driving lane, in a junction, off the lane's
    ends, or closer than MIN_GAP_M to the vehicle ahead in the same lane."""
    rules = rules_of(g)
    assert rules is not None
    out = []
    lane_s: dict[int, list[tuple[float, float]]] = {}
    for i, a in enumerate(actors):
        li, s = g.lane_index(a.road, a.lane, a.s)
        if g.lane_type[li] != LaneType.DRIVING:
            out.append(f"{i}: lane type {g.lane_type[li]}")
        if rules.junctions.connector[li]:
            out.append(f"{i}: in a junction (road {a.road})")
        if s - 0.5 * a.length < -1e-3 or s + 0.5 * a.length > float(g.lane_length[li]) + 1e-3:
            out.append(f"{i}: sticks out of its lane (s={s:.1f}, length {a.length:.1f})")
        lane_s.setdefault(li, []).append((s, a.length))
    for li, cars in lane_s.items():
        cars.sort()
        for (s0, l0), (s1, l1) in itertools.pairwise(cars):
            if s1 - s0 - 0.5 * (l0 + l1) < MIN_GAP_M - 1e-3:
                out.append(f"lane {li}: vehicles at s={s0:.1f} and {s1:.1f} overlap")
    return out


def _traffic_collisions(spec: ScenarioSpec, seconds: float) -> tuple[int, int]:
    """(pairs of traffic vehicles that overlap at the start, at any step within ``seconds``),
    the ego excluded, with the spec reset and stepped in the simulator (ego holding speed)."""
    g = build_road(spec.road)
    st = world.reset([spec], g, [np.random.default_rng(0)], check=False)
    params = SimParams()

    def pairs() -> int:
        valid = st.valid.copy()
        valid[:, 0] = False
        hit = pairwise_collisions(st.x, st.y, st.yaw, st.length, st.width, valid)
        return int(np.count_nonzero(np.triu(hit[0])))

    at_start, worst = pairs(), 0
    for _ in range(round(seconds / params.dt)):
        st = world.step(st, np.zeros((1, 2), np.float32), params, g)
        worst = max(worst, pairs())
    return at_start, worst


def test_the_checks_catch_overlapping_and_misplaced_vehicles() -> None:
    spec = load_spec(CONFIGS / "intersection.yaml")
    g = build_road(spec.road)
    a = ActorSpec(road=1, lane=-1, s=50.0, speed=5.0)
    assert _placement_problems(g, [a]) == []
    twin = ActorSpec(road=1, lane=-1, s=52.0, speed=5.0)
    assert any("overlap" in p for p in _placement_problems(g, [a, twin]))
    assert any("sticks out" in p for p in _placement_problems(g, [ActorSpec(road=1, s=1.0)]))
    conn = int(np.flatnonzero(rules_of(g).junctions.connector)[0])  # type: ignore[union-attr]
    inside = ActorSpec(road=int(g.odr_road[conn]), lane=int(g.odr_lane[conn]), s=5.0)
    assert any("junction" in p for p in _placement_problems(g, [inside]))
    crash = ScenarioSpec(road=spec.road, ego=spec.ego, actors=(a, twin))
    assert _traffic_collisions(crash, 0.1)[0] == 1


@pytest.mark.parametrize("kind", URBAN)
@pytest.mark.parametrize("which", ["learned", "rule_based"])
def test_urban_layouts_get_traffic_on_every_road_that_plays(
    samplers: dict[str, SceneSampler], kind: str, which: str
) -> None:
    base = load_spec(CONFIGS / f"{kind}.yaml")
    g = build_road(base.road)
    rules = rules_of(g)
    assert rules is not None
    outside = (g.lane_type == LaneType.DRIVING) & ~rules.junctions.connector
    # Every road with room for a few cars (a roundabout's ring pieces between its junctions
    # are ~20 m, which a one-second headway to the next junction may fill).
    roads = {int(r) for r in g.odr_road[outside & (g.lane_length >= 50.0)]}
    zone = _ego_zone(base)
    seen: set[tuple[int, int]] = set()
    for seed in range(3):
        actors = samplers[which].sample_traffic(
            base.road,
            np.random.default_rng(seed),
            density_veh_per_km_lane=30.0,
            keep_clear=[zone],
            difficulty=0.5 * seed,
        )
        assert len(actors) >= len(roads)
        assert _placement_problems(g, actors) == []
        for a in actors:
            assert not (
                (a.road, a.lane) == zone[:2]
                and a.s + 0.5 * a.length > zone[2]
                and a.s - 0.5 * a.length < zone[3]
            )
        seen |= {(a.road, a.lane) for a in actors}
        spec = ScenarioSpec(
            name=f"{kind}_{which}_{seed}", road=base.road, ego=base.ego, actors=actors, seed=seed
        )
        assert _traffic_collisions(spec, PLAY_S) == (0, 0)
    # Both directions of travel, on every road outside the junctions.
    assert {r for r, _ in seen} >= roads
    assert any(lane > 0 for _, lane in seen) == bool((g.odr_lane[outside] > 0).any())
    assert any(lane < 0 for _, lane in seen)


def test_lanes_against_the_reference_line_fill_downstream_first(
    samplers: dict[str, SceneSampler],
) -> None:
    """On a positive (reversed) lane the front vehicle is the one at the smallest reference s:
    at a low density the lane's only vehicle sits near its downstream end (s near 0)."""
    road = load_spec(CONFIGS / "intersection.yaml").road
    front_s = []
    for seed in range(20):
        actors = samplers["rule_based"].sample_traffic(
            road, np.random.default_rng(seed), density_veh_per_km_lane=12.0
        )
        on = [a.s for a in actors if a.road == 2 and a.lane == 1]
        if on:
            front_s.append(min(on))
    # The front vehicle sits within one mean spacing (83 m) of the downstream end plus its
    # one-second reserve; were the direction wrong it would start from the arm's far end.
    assert front_s and float(np.mean(front_s)) < 60.0


def test_s_range_is_for_single_roads_only(samplers: dict[str, SceneSampler]) -> None:
    road = load_spec(CONFIGS / "t_junction.yaml").road
    with pytest.raises(SamplerError, match="s_range: supported on single-road layouts only"):
        samplers["learned"].sample_traffic(road, np.random.default_rng(0), s_range=(0.0, 50.0))


def test_red_light_runner_takes_sampled_background(samplers: dict[str, SceneSampler]) -> None:
    """The family's intersection gets learned traffic on every arm, outside its keep_clear
    zones (the family checks them) and the spec's checks."""
    fam = get_family("red_light_runner")
    spec = fam.sample(np.random.default_rng(0), 0.5, background=samplers["learned"])
    extra = [a for a in spec.actors if not a.behavior.ignore_lights]
    assert spec.traffic.count == 0 and len(extra) >= 4
    assert {a.road for a in extra} == {0, 1, 2, 3}
    assert _placement_problems(build_road(spec.road), extra) == []
    assert _traffic_collisions(spec, 0.1)[0] == 0
