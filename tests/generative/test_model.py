"""The learned traffic model: valid samples on any road, keep_clear, determinism, conditioning,
training and weights."""

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from generative.baseline import RuleBasedTrafficSampler
from generative.families import get_family
from generative.model import LearnedTrafficSampler, SamplerError, road_context
from generative.model.sampler import DEFAULT_WEIGHTS, FREE_FLOW_FRAC, load_net
from generative.model.validity import (
    HEADWAY_FRACTION,
    MAX_SPEED_FRAC,
    MIN_GAP_M,
    Vehicles,
    make_valid,
)
from generative.sampling import TrafficSampler, make_background
from sim import world
from sim.scenario import ActorSpec, EgoSpec, RoadSpec, ScenarioSpec, SegmentSpec, build_road

# The shared data, by its path relative to the repository root (../shared/data).
US101 = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "traffic"
    / "ngsim_us101"
    / "us101_tracks.csv"
)
needs_data = pytest.mark.skipif(not US101.is_file(), reason=f"{US101} not present")

ROADS = [
    RoadSpec(kind="straight", num_lanes=1, length=800.0, speed_limit=13.9),
    RoadSpec(kind="straight", num_lanes=3, length=1500.0, speed_limit=30.0),
    RoadSpec(kind="straight", num_lanes=5, length=600.0, speed_limit=36.0),
    RoadSpec(kind="curved", num_lanes=2, length=1400.0, radius=400.0, speed_limit=27.8),
    RoadSpec(kind="ring", num_lanes=3, radius=150.0, speed_limit=16.7),
    RoadSpec(
        kind="segments",
        num_lanes=4,
        speed_limit=25.0,
        segments=(
            SegmentSpec("line", 300.0),
            SegmentSpec("spiral", 80.0, 0.0, 0.004),
            SegmentSpec("arc", 200.0, 0.004),
        ),
    ),
]


@pytest.fixture(scope="module")
def sampler() -> LearnedTrafficSampler:
    return LearnedTrafficSampler()


def _lane_gaps(road: RoadSpec, actors: Sequence[ActorSpec]) -> list[tuple[ActorSpec, float]]:
    """(follower, bumper gap in lane-centre s) for consecutive vehicles, wrapping on loops."""
    ctx = road_context(road)
    out = []
    for k in range(road.num_lanes):
        lane = [a for a in actors if a.lane == -(k + 1)]
        if len(lane) < 2:
            continue
        s = ctx.to_lane_s(np.full(len(lane), k), np.array([a.s for a in lane]))
        order = np.argsort(s)
        for i, j in itertools.pairwise(order):
            out.append((lane[i], s[j] - s[i] - 0.5 * (lane[i].length + lane[j].length)))
        if ctx.closed:
            i, j = order[-1], order[0]
            wrap = s[j] + ctx.lane_length[k] - s[i] - 0.5 * (lane[i].length + lane[j].length)
            out.append((lane[i], wrap))
    return out


def _check_valid(
    road: RoadSpec, actors: Sequence[ActorSpec], zones: Sequence[tuple[int, int, float, float]]
) -> None:
    for a in actors:
        assert 0.0 <= a.speed <= MAX_SPEED_FRAC * road.speed_limit + 1e-9
        assert 1 <= -a.lane <= road.num_lanes
        assert a.behavior.v0 is not None and a.behavior.v0 > 0
        for _, lane, lo, hi in zones:
            assert not (a.lane == lane and a.s + a.length / 2 > lo and a.s - a.length / 2 < hi)
    for a, gap in _lane_gaps(road, actors):
        assert gap >= MIN_GAP_M - 1e-6
        b = a.behavior
        assert gap >= b.min_gap + HEADWAY_FRACTION * a.speed * b.headway - 1e-3


def test_implements_the_traffic_sampler_protocol(sampler: LearnedTrafficSampler) -> None:
    assert isinstance(sampler, TrafficSampler)


@settings(max_examples=12, deadline=None)
@given(
    road_i=st.integers(0, len(ROADS) - 1),
    density=st.floats(3.0, 70.0),
    difficulty=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
    zone=st.tuples(st.integers(1, 5), st.floats(0.0, 0.8), st.floats(0.0, 200.0)),
)
def test_samples_are_valid_on_any_road(
    sampler: LearnedTrafficSampler,
    road_i: int,
    density: float,
    difficulty: float,
    seed: int,
    zone: tuple[int, float, float],
) -> None:
    road = ROADS[road_i]
    ctx = road_context(road)
    lane = -min(zone[0], road.num_lanes)
    lo = zone[1] * ctx.length
    zones = [(0, lane, lo, min(lo + zone[2], ctx.length))]
    actors = sampler.sample_traffic(
        road,
        np.random.default_rng(seed),
        density_veh_per_km_lane=density,
        keep_clear=zones,
        difficulty=difficulty,
    )
    _check_valid(road, actors, zones)
    # Every sample instantiates in the simulator with the spec checks on.
    # The ego in the middle of the zone (its 4.7 m body well inside it).
    ego_s = 0.5 * (zones[0][2] + zones[0][3]) if zones[0][3] - zones[0][2] > 12.0 else None
    if ego_s is not None:
        spec = ScenarioSpec(
            road=road, ego=EgoSpec(lane=lane, s=ego_s, route_length=1.0), actors=actors
        )
        st0 = world.reset([spec], build_road(road), [np.random.default_rng(0)])
        assert st0.valid[0].sum() == 1 + len(actors)


def test_density_is_about_what_was_asked(sampler: LearnedTrafficSampler) -> None:
    road = RoadSpec(num_lanes=3, length=2000.0)
    for d in (8.0, 20.0, 35.0):
        n = [
            len(sampler.sample_traffic(road, np.random.default_rng(s), density_veh_per_km_lane=d))
            for s in range(4)
        ]
        per_km_lane = np.mean(n) / (3 * 2.0)
        assert 0.7 * d <= per_km_lane <= 1.3 * d, (d, per_km_lane)


def test_keep_clear_zones_are_honoured_in_families(sampler: LearnedTrafficSampler) -> None:
    for name in ("hard_brake", "cut_in", "traffic_jam_end", "merge_into_slow", "none"):
        for seed in range(2):
            spec = get_family(name).sample(
                np.random.default_rng(seed), 0.5 * seed, background=sampler
            )
            assert spec.traffic.count == 0 and len(spec.actors) > 5
            world.reset([spec], build_road(spec.road), [np.random.default_rng(0)])


def test_same_seed_same_traffic(sampler: LearnedTrafficSampler) -> None:
    road = RoadSpec(num_lanes=3, length=1000.0)

    def draw(seed: int) -> tuple[ActorSpec, ...]:
        return sampler.sample_traffic(
            road, np.random.default_rng(seed), density_veh_per_km_lane=20.0, difficulty=0.3
        )

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    # A fresh sampler (fresh weights load) draws the same.
    again = LearnedTrafficSampler().sample_traffic(
        road, np.random.default_rng(7), density_veh_per_km_lane=20.0, difficulty=0.3
    )
    assert again == draw(7)


def _vehicles(
    sampler: LearnedTrafficSampler, density: float, difficulty: float, scenes: int = 40
) -> Vehicles:
    ctx = road_context(RoadSpec(num_lanes=3, length=600.0))
    veh, _ = sampler.sample_vehicles(
        ctx,
        np.random.default_rng(0),
        np.full(scenes, density),
        np.full(scenes, difficulty),
    )
    return veh


def _headways(v: Vehicles) -> np.ndarray:
    order = np.lexsort((v.s, v.lane, v.scene))
    s, ln, sc, L, sp = v.s[order], v.lane[order], v.scene[order], v.length[order], v.speed[order]
    same = (ln[1:] == ln[:-1]) & (sc[1:] == sc[:-1])
    gap = s[1:] - s[:-1] - 0.5 * (L[1:] + L[:-1])
    ok = same & (sp[:-1] > 1.0)
    out: np.ndarray = gap[ok] / sp[:-1][ok]
    return out


def test_light_traffic_flows_faster(sampler: LearnedTrafficSampler) -> None:
    """Below the trained densities speeds follow the Greenshields rule towards free flow."""
    light = np.median(_vehicles(sampler, 8.0, 0.5).speed)
    trained = np.median(_vehicles(sampler, 35.0, 0.5).speed)
    assert light > trained + 3.0
    assert light < FREE_FLOW_FRAC * 30.0 + 1e-9


def test_speed_falls_with_density_like_the_recordings(sampler: LearnedTrafficSampler) -> None:
    """The fundamental diagram of the training recordings: median speed / limit 0.58, 0.50,
    0.46 at 25-30, 30-35, 35-40 veh/km/lane (count density); the samples follow it within
    0.07, and keep slowing beyond (40-45 holds 3 % of the rows, too few to pin a value)."""
    dens = (27.5, 32.5, 37.5, 42.5)
    med = [np.median(_vehicles(sampler, d, 0.5).speed) / 30.0 for d in dens]
    assert med[0] > med[1] > med[2] > med[3], med
    assert med[:3] == pytest.approx([0.58, 0.50, 0.46], abs=0.07)


def test_higher_density_gives_more_vehicles(sampler: LearnedTrafficSampler) -> None:
    counts = [_vehicles(sampler, d, 0.5).n for d in (10.0, 25.0, 45.0)]
    assert counts[0] < counts[1] < counts[2]


def test_difficulty_shortens_headways_at_the_same_density(sampler: LearnedTrafficSampler) -> None:
    easy_v, hard_v = _vehicles(sampler, 30.0, 0.0), _vehicles(sampler, 30.0, 1.0)
    easy, hard = np.median(_headways(easy_v)), np.median(_headways(hard_v))
    assert hard < 0.9 * easy, (easy, hard)
    assert abs(hard_v.n - easy_v.n) < 0.1 * easy_v.n  # the asked density holds


def test_per_lane_density_conditions_lane_use_and_speed(sampler: LearnedTrafficSampler) -> None:
    """Asked per-lane densities are the lanes' densities, and a denser lane drives slower."""
    ctx = road_context(RoadSpec(num_lanes=3, length=1200.0))
    n = 30
    ratio = np.tile([1.8, 0.8, 0.4], (n, 1))
    veh, _ = sampler.sample_vehicles(
        ctx, np.random.default_rng(0), np.full(n, 35.0), np.full(n, 0.5), lane_ratio=ratio
    )
    counts = np.bincount(veh.lane, minlength=3)
    # Each lane holds its asked density (the second placement pass), within 8 %.
    per_km = counts / n / (ctx.lane_length / 1000.0)
    assert per_km == pytest.approx(35.0 * ratio[0], rel=0.08), per_km
    speed = [np.median(veh.speed[veh.lane == k]) for k in range(3)]
    assert speed[0] < speed[2], speed
    # Without a ratio the sampler draws one per scene from the training recordings: mean 1.
    drawn = sampler.draw_lane_ratios(np.full(50, 45.0), 4, np.random.default_rng(1))
    assert drawn.shape == (50, 4) and np.allclose(drawn.mean(1), 1.0)
    assert drawn.std() > 0.05  # lanes differ
    assert np.all(sampler.draw_lane_ratios(np.full(3, 45.0), 1, np.random.default_rng(1)) == 1)
    with pytest.raises(SamplerError, match=r"lane_ratio: expected \(30, 3\)"):
        sampler.sample_vehicles(
            ctx,
            np.random.default_rng(0),
            np.full(n, 35.0),
            np.full(n, 0.5),
            lane_ratio=ratio[:, :2],
        )


def test_rule_based_follows_the_per_lane_densities() -> None:
    ctx = road_context(RoadSpec(num_lanes=2, length=2000.0))
    n = 10
    veh, _ = RuleBasedTrafficSampler().sample_vehicles(
        ctx,
        np.random.default_rng(0),
        np.full(n, 30.0),
        np.zeros(n),
        lane_ratio=np.tile([1.5, 0.5], (n, 1)),
    )
    per_km = np.bincount(veh.lane, minlength=2) / (n * 2.0)
    assert per_km == pytest.approx([45.0, 15.0], rel=0.1)


def test_lane_change_threshold_rises_with_density(sampler: LearnedTrafficSampler) -> None:
    """Denser traffic changes lanes less (the calibration's Poisson fit): higher threshold."""
    thr = sampler.threshold_at(np.array([20.0, 35.0, 50.0, 80.0]))
    assert np.all(np.diff(thr) >= 0) and thr[-1] > thr[0]
    light = _vehicles(sampler, 25.0, 0.5)
    dense = _vehicles(sampler, 55.0, 0.5)
    assert np.median(dense.lc_threshold) > np.median(light.lc_threshold)


def test_poisson_fit_recovers_a_known_rate() -> None:
    from generative.model.train import fit_lane_change_rate

    rng = np.random.default_rng(0)
    dens = rng.uniform(20.0, 60.0, 400)
    expo = rng.uniform(10.0, 50.0, 400)
    events = rng.poisson(expo * np.exp(-0.5 - 0.04 * dens)).astype(np.float64)
    a, b = fit_lane_change_rate(events, expo, dens)
    assert a == pytest.approx(-0.5, abs=0.15) and b == pytest.approx(-0.04, abs=0.005)


def test_validity_repairs_and_rejects_and_counts() -> None:
    f = np.array
    v = Vehicles(
        scene=f([0, 0, 0, 0]),
        lane=f([0, 0, 0, 0]),
        s_ref=f([0.0, 4.0, 30.0, 60.0]),
        s=f([0.0, 4.0, 30.0, 60.0]),
        speed=f([10.0, 10.0, 50.0, np.nan]),
        length=f([4.0, 4.0, 4.0, 4.0]),
        width=f([1.8, 1.8, 1.8, 1.8]),
        v0=f([30.0] * 4),
        headway=f([1.0] * 4),
        min_gap=f([2.0] * 4),
        a_max=f([1.0] * 4),
        b_comf=f([2.0] * 4),
        politeness=f([0.3] * 4),
        lc_threshold=f([0.2] * 4),
    )
    out, c = make_valid(v, speed_limit=30.0)
    # NaN rejected; the car 4 m behind another (0 m gap) rejected; 50 m/s clipped to 39 m/s
    # then slowed so that its 0.3 v T still fits the gap to the end of the lane (no leader).
    assert c.sampled == 4 and c.rejected_nonfinite == 1 and c.rejected_overlap == 1
    assert out.n == 2 and c.repaired_speed_limit == 1
    assert out.speed.max() <= MAX_SPEED_FRAC * 30.0
    # The remaining pair: gap 30 - 0 - 4 = 26 m; follower at 10 m/s with T 1: 26 >= 2 + 3.
    assert c.repaired_gap_speed == 0
    assert c.rates()["rejected"] == pytest.approx(0.5)


def test_gap_rule_slows_a_follower_that_is_too_fast() -> None:
    f = np.array
    v = Vehicles(
        scene=f([0, 0]),
        lane=f([0, 0]),
        s_ref=f([0.0, 10.0]),
        s=f([0.0, 10.0]),
        speed=f([20.0, 20.0]),
        length=f([4.0, 4.0]),
        width=f([1.8, 1.8]),
        v0=f([30.0, 30.0]),
        headway=f([1.0, 1.0]),
        min_gap=f([2.0, 2.0]),
        a_max=f([1.0, 1.0]),
        b_comf=f([2.0, 2.0]),
        politeness=f([0.3, 0.3]),
        lc_threshold=f([0.2, 0.2]),
    )
    out, c = make_valid(v, speed_limit=30.0)
    # gap 6 m: s0 2 + 0.3 * v * 1 <= 6 -> v <= 13.33 m/s.
    assert c.repaired_gap_speed == 1 and c.repaired_min_gap == 0
    assert out.speed[0] == pytest.approx(4.0 / 0.3)
    assert out.speed[1] == 20.0


@pytest.mark.parametrize("which", ["learned", "rule_based"])
def test_bad_arguments_are_named(sampler: LearnedTrafficSampler, which: str) -> None:
    """Both samplers check their arguments the same way (one shared front end)."""
    smp = sampler if which == "learned" else RuleBasedTrafficSampler()
    rng = np.random.default_rng(0)
    with pytest.raises(SamplerError, match="density_veh_per_km_lane: expected > 0"):
        smp.sample_traffic(RoadSpec(), rng, density_veh_per_km_lane=-1.0)
    with pytest.raises(SamplerError, match=r"difficulty: expected a number in \[0, 1\]"):
        smp.sample_traffic(RoadSpec(), rng, difficulty=1.5)
    with pytest.raises(SamplerError, match="s_range: expected 0 <= lo < hi"):
        smp.sample_traffic(RoadSpec(length=500.0), rng, s_range=(100.0, 900.0))


def test_backgrounds_by_name() -> None:
    assert isinstance(make_background("learned"), LearnedTrafficSampler)
    assert isinstance(make_background("rule_based"), RuleBasedTrafficSampler)
    assert make_background("random") is None
    with pytest.raises(ValueError, match=r"background: unknown sampler 'x'.*learned"):
        make_background("x")


def test_shipped_weights_are_small_and_load() -> None:
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    _, meta = load_net()
    assert meta["format"] == 3 and meta["test_recordings"]
    lo, hi = meta["density_range"]
    assert 0 < lo < hi
    assert 0.05 <= meta["lc_threshold"] <= 5.0
    # The lane-change threshold table: denser traffic, higher threshold (fewer lane changes).
    thr = meta["lc_threshold_table"]["threshold"]
    assert len(thr) == len(meta["lc_threshold_table"]["density"]) >= 3
    assert thr[-1] > thr[0] and all(0.05 <= t <= 5.0 for t in thr)
    # Lane ratios come from training recordings only and average 1 over the lanes.
    r = np.asarray(meta["lane_ratios"]["ratio"])
    assert r.shape[1] == 5 and np.allclose(r.mean(1), 1.0)


def test_bad_weights_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(SamplerError, match=r"w\.pt: not traffic model weights"):
        LearnedTrafficSampler(bad)
    with pytest.raises(SamplerError, match=r"nope\.pt: traffic model weights not found"):
        LearnedTrafficSampler(tmp_path / "nope.pt")


@needs_data
def test_a_short_training_run_reduces_the_loss_and_its_weights_load(tmp_path: Path) -> None:
    from generative.model.train import TrainConfig, save, train

    torch.manual_seed(0)
    cfg = TrainConfig(data=str(US101), out=str(tmp_path / "w.pt"), epochs=4, calibrate=False)
    net, meta, res = train(cfg, progress=False)
    assert res.train_nll[-1] < res.train_nll[0] - 0.5
    assert res.n_train > 1000 and res.n_val > 100
    path = save(net, meta, cfg.out)
    s = LearnedTrafficSampler(path)
    actors = s.sample_traffic(RoadSpec(), np.random.default_rng(0), density_veh_per_km_lane=20.0)
    _check_valid(RoadSpec(), actors, ())
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
