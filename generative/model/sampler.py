"""The learned background-traffic sampler: :class:`LearnedTrafficSampler`.

Sampling a scene (:meth:`LearnedTrafficSampler.sample_vehicles`):

1. **Placement** (:mod:`generative.model.placement`): lanes left to right, vehicles front to
   back; each vehicle's (gap to the previous vehicle, speed / limit, length, width) is one draw
   of the placement head given the scene's density, the lane's own density, the difficulty,
   the lane's position, the previous vehicle and the left lane's mean speed. Per-lane
   densities are ``density * lane_ratio``: given by the caller (``lane_ratio``, e.g. what
   per-lane detectors report) or drawn per scene from the training recordings' lane use
   (:meth:`LearnedTrafficSampler.draw_lane_ratios`; in dense US-101 traffic the leftmost lane
   holds up to twice its share).
2. **Behaviour**: the behaviour head draws each vehicle's IDM parameters (v0 / limit, T, s0, a,
   b) given its sampled speed, gap, the density and difficulty. MOBIL parameters cannot be
   fitted per vehicle (NGSIM US-101 has 62 lane changes): politeness follows a fixed rule in
   the difficulty (:data:`POLITENESS`), and the lane-change threshold is *calibrated* at
   training time per density (:func:`generative.model.train.calibrate_lane_changes`): at
   each of 5 densities, the value at which sampled scenes played 10 s in the simulator change
   lanes as often as a Poisson fit of the training recordings' rate on density predicts
   (denser traffic changes lanes less), interpolated in density
   (:meth:`LearnedTrafficSampler.threshold_at`) and scaled by :data:`LC_THRESHOLD_SCALE` from
   difficulty 0 to 1.
3. **Validity** (:mod:`generative.model.validity`): repair or reject; counts accumulate in
   :attr:`LearnedTrafficSampler.stats`.

Conditioning rules.

- *Speed limit*: speeds (and v0) are fractions of the limit, learned on US-101 with its posted
  65 mph (29.1 m/s). A road posted at 16.7 m/s gets the same fractions of 16.7 m/s.
- *Lanes*: US-101 has 5 main lanes; a road with L lanes uses lane positions 0..1 across its L
  lanes (leftmost 0, rightmost 1) and the edge-lane flags. The lane count itself is not an input
  (the data has only one).
- *Density* [veh/km/lane] is counted density, vehicles per km of lane (what the recordings'
  snapshots are labelled with: :func:`generative.model.dataset.snapshot_count_density`). The
  model's density input covers the training snapshots' 5th-95th percentile (stored with the
  weights: 27-40 veh/km/lane, US-101 is congested). Each lane holds its asked density
  (``density * lane_ratio``): placement runs twice, the second pass scaling each lane's
  spacings by asked / measured spacing of the first
  (:func:`generative.model.placement.lane_scale`). Below the range, the lightest trained
  traffic is used and every spacing (gap + length) is stretched by ``d_min / density``.
  US-101 has no free-flowing traffic to learn speeds from, so there speeds follow
  Greenshields' linear speed-density relation between the lightest trained traffic and free
  flow: ``v = v_model + (1 - d / d_min) (FREE_FLOW_FRAC limit - v_model)`` (8 of 27
  veh/km/lane: 70 % of the way to 0.9 of the limit). Above the range, spacings shrink the same
  way (a gap keeps at least half its sampled size) and speeds are the model's.
- *Difficulty* in [0, 1] is the placement head's ``difficulty`` input: during training it is
  each lane-snapshot's rank by median time headway (1 = shortest headways). At the same
  density (the lanes hold it) difficulty 1 draws the faster, closer-following traffic of the
  data's short-headway lanes: median time headway ~35 % shorter than at 0.
  It also lowers MOBIL politeness and the lane-change threshold (more eager lane changes).
- *Family*: no recording is labelled with a scenario family, so a family conditions the model
  through the density and difficulty it draws (:mod:`generative.families`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from generative.model.dataset import (
    DENSITY_SCALE,
    FEATURES,
    LENGTH_SCALE,
    US101_SPEED_LIMIT_MPS,
    from_z,
    log_gap,
)
from generative.model.network import NetConfig, NumpyHead, TrafficNet
from generative.model.placement import (
    PlacementState,
    Proposal,
    RoadContext,
    SamplerError,
    corridor_contexts,
    corridor_zones,
    lane_scale,
    place,
    road_context,
    single_road,
    to_vehicles,
    zone_matrix,
)
from generative.model.validity import ValidityCounts, Vehicles, make_valid
from sim.scenario import ActorSpec, BehaviorSpec, RoadSpec

F64 = NDArray[np.float64]

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "traffic_model.pt"
WEIGHTS_FORMAT = 3  # generative.model.train.WEIGHTS_FORMAT
POLITENESS = (0.5, 0.1)  # [-] MOBIL politeness at difficulty 0 and 1 (Kesting 2007: 0..1)
LC_THRESHOLD_SCALE = (1.5, 0.5)  # [-] x the calibrated threshold at difficulty 0 and 1
DEFAULT_LC_THRESHOLD_MPS2 = BehaviorSpec.lc_threshold  # before calibration (sim default)
# [-] of the limit: free-flow speed of the light-traffic rule (module docstring); the simulator's
# own random traffic drives at 0.6-1.0 of the limit, 0.8 on average, and free-flowing motorway
# traffic runs close to the posted limit.
FREE_FLOW_FRAC = 0.9
# [veh/km/lane] kernel width over recording densities when drawing per-lane densities: lane
# use changes with congestion (the leftmost lane fills up in the dense recordings)
LANE_RATIO_BANDWIDTH = 8.0


def load_net(path: str | Path | None = None) -> tuple[TrafficNet, dict[str, Any]]:
    """The network and its metadata from a weights file (default: the shipped weights).

    Raises:
        SamplerError: missing file, or a file that is not traffic-model weights of this format.
    """
    p = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not p.is_file():
        raise SamplerError(
            f"{p}: traffic model weights not found; train them with "
            "`python -m generative.model.train`"
        )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        meta = blob["meta"]
        if meta.get("format") != WEIGHTS_FORMAT:
            raise SamplerError(
                f"{p}: weights format {meta.get('format')!r}, expected {WEIGHTS_FORMAT}"
            )
        net = TrafficNet(NetConfig(**meta["placement"]), NetConfig(**meta["behavior"]))
        net.load_state_dict(blob["state"])
    except SamplerError:
        raise
    except Exception as e:  # a foreign or truncated file: name it
        raise SamplerError(f"{p}: not traffic model weights ({type(e).__name__}: {e})") from None
    net.eval()
    return net, meta


def mobil_params(difficulty: F64, threshold: float | F64) -> tuple[F64, F64]:
    """(politeness, lane-change threshold [m/s^2]) at ``difficulty`` (module docstring).

    ``threshold`` is the calibrated threshold at the vehicle's density (a number or ``(M,)``).
    """
    d = np.clip(difficulty, 0.0, 1.0)
    pol = POLITENESS[0] + d * (POLITENESS[1] - POLITENESS[0])
    thr = threshold * (LC_THRESHOLD_SCALE[0] + d * (LC_THRESHOLD_SCALE[1] - LC_THRESHOLD_SCALE[0]))
    return pol, thr


def to_actors(v: Vehicles, ctx: RoadContext | None = None) -> tuple[ActorSpec, ...]:
    """Scene vehicles as ActorSpecs: on road 0 with lane index k -> OpenDRIVE lane -(k + 1)
    and ``s = s_ref`` (``ctx`` None, a single road), else on the corridor ``ctx``'s road and
    lanes at its reference ``s``."""
    out = []
    order = np.lexsort((v.s_ref, v.lane))
    road_id = 0 if ctx is None else ctx.road_id
    lane_id = -(v.lane + 1) if ctx is None else ctx.odr_lane(v.lane)
    s = v.s_ref if ctx is None else ctx.to_road_s(v.s_ref)
    for i in order:
        beh = BehaviorSpec(
            v0=float(v.v0[i]),
            headway=float(v.headway[i]),
            min_gap=float(v.min_gap[i]),
            a_max=float(v.a_max[i]),
            b_comf=float(v.b_comf[i]),
            politeness=float(v.politeness[i]),
            lc_threshold=float(v.lc_threshold[i]),
        )
        out.append(
            ActorSpec(
                road=road_id,
                lane=int(lane_id[i]),
                s=float(s[i]),
                speed=float(v.speed[i]),
                length=float(v.length[i]),
                width=float(v.width[i]),
                behavior=beh,
            )
        )
    return tuple(out)


class SceneSampler:
    """The :class:`generative.sampling.TrafficSampler` front end shared by the scene samplers:
    one scene through their batched ``sample_vehicles`` (S scenes at once)."""

    @property
    def default_density(self) -> float:
        """[veh/km/lane] density used when none is asked for."""
        raise NotImplementedError

    def sample_vehicles(
        self,
        ctx: RoadContext,
        rng: np.random.Generator,
        density: F64,
        difficulty: F64,
        s_range: tuple[float, float] | None = None,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None = None,
        lane_ratio: F64 | None = None,
    ) -> tuple[Vehicles, ValidityCounts]:
        """S scenes at once on one road (implemented by each sampler)."""
        raise NotImplementedError

    @staticmethod
    def _scene_args(
        ctx: RoadContext,
        density: F64,
        difficulty: F64,
        s_range: tuple[float, float] | None,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None,
    ) -> tuple[F64, F64, tuple[float, float], F64, F64]:
        """``sample_vehicles``' shared arguments checked (errors name the argument):
        (density, difficulty, s_range, zone lows, zone highs)."""
        density = np.asarray(density, np.float64)
        difficulty = np.asarray(difficulty, np.float64)
        _check(density, difficulty)
        n_s = density.shape[0]
        lo, hi = s_range if s_range is not None else (0.0, ctx.length)
        if not 0.0 <= lo < hi <= ctx.length + 1e-6:
            raise SamplerError(
                f"s_range: expected 0 <= lo < hi <= {ctx.length:.1f}, got {(lo, hi)}"
            )
        zl, zh = zone_matrix(zones if zones is not None else [()] * n_s, n_s, ctx.num_lanes)
        return density, difficulty, (lo, hi), zl, zh

    @staticmethod
    def _lane_ratio(lane_ratio: F64, n_s: int, num_lanes: int) -> F64:
        """A caller's per-lane density ratios, checked: (S, L) finite values > 0."""
        ratio = np.asarray(lane_ratio, np.float64)
        if ratio.shape != (n_s, num_lanes) or not np.all(np.isfinite(ratio) & (ratio > 0)):
            raise SamplerError(
                f"lane_ratio: expected ({n_s}, {num_lanes}) finite values > 0, got "
                f"shape {ratio.shape}"
            )
        return ratio

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
        """One scene of background vehicles on ``road`` (the TrafficSampler protocol).

        A road with junctions or several lane sections (the urban layouts) is filled corridor
        by corridor (:meth:`sample_layout`); ``s_range`` is then not supported (it is a range
        of road 0's reference ``s``) and raises :class:`SamplerError`.
        """
        d = self.default_density if density_veh_per_km_lane is None else density_veh_per_km_lane
        if not single_road(road):
            if s_range is not None:
                raise SamplerError(
                    f"s_range: supported on single-road layouts only (one road, one lane "
                    f"section); road.kind {road.kind!r} has several; pass None to fill every "
                    "road outside junctions, and keep_clear zones to keep stretches empty"
                )
            parts = self.sample_layout(
                road,
                rng,
                np.array([float(d)]),
                np.array([float(difficulty)]),
                zones=[tuple(keep_clear)],
            )
            return tuple(a for ctx, veh in parts for a in to_actors(veh, ctx))
        veh, _ = self.sample_vehicles(
            road_context(road),
            rng,
            np.array([float(d)]),
            np.array([float(difficulty)]),
            s_range=s_range,
            zones=[tuple(keep_clear)],
        )
        return to_actors(veh)

    def sample_layout(
        self,
        road: RoadSpec,
        rng: np.random.Generator,
        density: F64,
        difficulty: F64,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None = None,
    ) -> list[tuple[RoadContext, Vehicles]]:
        """S scenes at once on every corridor of ``road``
        (:func:`generative.model.placement.corridor_contexts`), one batched
        :meth:`sample_vehicles` per corridor.

        Args:
            road: Any road the simulator builds (a single road gives one corridor).
            rng: Random generator.
            density: Vehicles per km and lane of each scene, ``(S,)``.
            difficulty: Difficulty of each scene in [0, 1], ``(S,)``.
            zones: keep_clear zones ``(road, lane, s_lo, s_hi)`` of each scene (OpenDRIVE ids,
                reference ``s``; None: none).

        Returns:
            (corridor, its valid vehicles of all scenes in the corridor's placement
            coordinates) per corridor; :func:`to_actors` with the corridor gives ActorSpecs.
        """
        n_s = int(np.asarray(density).shape[0])
        zs = [()] * n_s if zones is None else zones
        out = []
        for ctx in corridor_contexts(road):
            veh, _ = self.sample_vehicles(
                ctx, rng, density, difficulty, zones=corridor_zones(ctx, zs)
            )
            out.append((ctx, veh))
        return out


class LearnedTrafficSampler(SceneSampler):
    """Background traffic from the learned model; implements
    :class:`generative.sampling.TrafficSampler` (see the module docstring).

    Args:
        weights: Weights file (default: the shipped ``weights/traffic_model.pt``).
        temperature: Scale of the mixture components' std at sampling (1: the learned model).
    """

    name = "learned"

    def __init__(self, weights: str | Path | None = None, temperature: float = 1.0) -> None:
        net, meta = load_net(weights)
        self._init(net, meta, temperature)

    @classmethod
    def from_net(
        cls, net: TrafficNet, meta: dict[str, Any], temperature: float = 1.0
    ) -> LearnedTrafficSampler:
        """A sampler around an in-memory network (training, calibration, tests)."""
        self = cls.__new__(cls)
        self._init(net, meta, temperature)
        return self

    def _init(self, net: TrafficNet, meta: dict[str, Any], temperature: float) -> None:
        self.net, self.meta = net, meta
        self._place_head = NumpyHead(net.placement)
        self._beh_head = NumpyHead(net.behavior)
        self.lc_threshold = float(meta.get("lc_threshold", DEFAULT_LC_THRESHOLD_MPS2))
        tab = meta.get("lc_threshold_table")
        self._lc_table = (
            None
            if tab is None
            else (np.asarray(tab["density"], np.float64), np.asarray(tab["threshold"], np.float64))
        )
        lr = meta.get("lane_ratios")
        self._lane_table = (
            None
            if lr is None
            else (np.asarray(lr["density"], np.float64), np.asarray(lr["ratio"], np.float64))
        )
        self.temperature = float(temperature)
        lo, hi = self.meta["density_range"]
        self.density_range = (float(lo), float(hi))
        self._stats = ValidityCounts()

    @property
    def stats(self) -> ValidityCounts:
        """Validity counts accumulated over every call so far."""
        return self._stats

    def density_input(self, density: F64) -> tuple[F64, F64]:
        """The model's density input and the spacing stretch for ``density`` [veh/km/lane].

        ``clip(density, lo, hi)`` to the trained range (:attr:`density_range`) and
        ``clip / density``: below the range the lightest trained traffic with every spacing
        stretched (above it, shrunk) to the asked density. ``(S,)`` each.
        """
        d_lo, d_hi = self.density_range
        d_cond = np.clip(density, d_lo, d_hi)
        return d_cond, d_cond / np.maximum(density, 1e-3)

    def threshold_at(self, density: F64) -> F64:
        """Calibrated MOBIL threshold [m/s^2] at each ``density`` [veh/km/lane].

        Interpolated in log threshold between the calibration's density levels
        (:func:`generative.model.train.calibrate_lane_changes`), held constant beyond them;
        the single ``lc_threshold`` when the weights have no table.
        """
        if self._lc_table is None:
            return np.full(np.shape(density), self.lc_threshold)
        levels, thr = self._lc_table
        out: F64 = np.exp(np.interp(density, levels, np.log(thr)))
        return out

    def draw_lane_ratios(self, density: F64, num_lanes: int, rng: np.random.Generator) -> F64:
        """Per-lane density / scene density for each scene, ``(S, L)``, mean 1 over lanes.

        A training recording is drawn per scene with weights ``exp(-((d - d_rec) / 8)^2 / 2)``
        (its median density ``d_rec``), and its 5 lane ratios (leftmost first) are interpolated
        to the road's ``L`` lane positions. All ones for one lane or weights without a table.
        """
        n = density.shape[0]
        if self._lane_table is None or num_lanes == 1:
            return np.ones((n, num_lanes))
        d_rec, ratio = self._lane_table
        w = np.exp(-0.5 * ((density[:, None] - d_rec[None, :]) / LANE_RATIO_BANDWIDTH) ** 2)
        w = w + 1e-12
        cdf = np.cumsum(w, 1)
        u = rng.uniform(0.0, 1.0, (n, 1)) * cdf[:, -1:]
        rec = np.minimum((cdf < u).sum(1), d_rec.size - 1)
        x = np.linspace(0.0, ratio.shape[1] - 1, num_lanes)
        lo = np.minimum(np.floor(x).astype(np.int64), ratio.shape[1] - 2)
        f = x - lo
        r = ratio[rec][:, lo] * (1 - f) + ratio[rec][:, lo + 1] * f
        out: F64 = r / r.mean(1, keepdims=True)
        return out

    @property
    def default_density(self) -> float:
        """[veh/km/lane] density used when none is asked for: the middle of the trained range."""
        return 0.5 * (self.density_range[0] + self.density_range[1])

    def sample_vehicles(
        self,
        ctx: RoadContext,
        rng: np.random.Generator,
        density: F64,
        difficulty: F64,
        s_range: tuple[float, float] | None = None,
        zones: Sequence[Sequence[tuple[int, int, float, float]]] | None = None,
        lane_ratio: F64 | None = None,
    ) -> tuple[Vehicles, ValidityCounts]:
        """S scenes at once on one road, all randomness from ``rng``.

        Args:
            ctx: The road (:func:`generative.model.placement.road_context`).
            rng: Random generator.
            density: Vehicles per km and lane of each scene, ``(S,)``.
            difficulty: Difficulty of each scene in [0, 1], ``(S,)``.
            s_range: Reference s range [m] (None: the whole road).
            zones: keep_clear zones of each scene (None: none).
            lane_ratio: Per-lane density / ``density`` of each scene and lane, ``(S, L)``
                (leftmost lane first; None: drawn, :meth:`draw_lane_ratios`).

        Returns:
            (valid vehicles of all scenes, this call's validity counts).
        """
        density, difficulty, (lo, hi), zl, zh = self._scene_args(
            ctx, density, difficulty, s_range, zones
        )
        n_s = density.shape[0]
        if lane_ratio is None:
            ratio = self.draw_lane_ratios(density, ctx.num_lanes, rng)
        else:
            ratio = self._lane_ratio(lane_ratio, n_s, ctx.num_lanes)
        d_cond, stretch = self.density_input(density)
        limit = ctx.limit
        place_head, beh_head, temp = self._place_head, self._beh_head, self.temperature

        def propose(st: PlacementState) -> Proposal:
            q = st.scene
            lane_pos = st.lane / (st.num_lanes - 1) if st.num_lanes > 1 else 0.5
            has_gap = np.isfinite(st.prev_gap)
            has_left = np.isfinite(st.left_v)
            n = q.shape[0]
            cols = {
                "density": d_cond[q] / DENSITY_SCALE,
                "lane_density": d_cond[q] * ratio[q, st.lane] / DENSITY_SCALE,
                "difficulty": difficulty[q],
                "lane_pos": np.full(n, lane_pos),
                "is_left": np.full(n, float(st.lane == 0)),
                "is_right": np.full(n, float(st.lane == st.num_lanes - 1)),
                "first": st.first.astype(np.float64),
                "prev_v": st.prev_v,
                "prev_log_gap": log_gap(st.prev_gap, has_gap),
                "prev_has_gap": has_gap.astype(np.float64),
                "prev_len": st.prev_len / LENGTH_SCALE,
                "left_v": np.where(has_left, np.nan_to_num(st.left_v), 0.0),
                "has_left": has_left.astype(np.float64),
            }
            x = np.stack([cols[f] for f in FEATURES], 1)
            y = place_head.sample(x, rng, temp)
            length = np.exp(y[:, 2])
            gap = np.exp(np.minimum(y[:, 0], 7.0))  # e^7 = 1.1 km: a far tail, not an overflow
            k = stretch[q]
            # Spacing (gap + length) scales by k (module docstring); when packing tighter than
            # the data (k < 1) a gap keeps at least half its sampled size.
            gap = np.maximum(gap * k + (k - 1.0) * length, 0.5 * gap * np.minimum(k, 1.0))
            return Proposal(gap=gap, v=y[:, 1], length=length, width=y[:, 3])

        scene, lane, s_ref, gap, v, length, width = place(
            ctx, propose, density[:, None] * ratio, (lo, hi), zl, zh, rng
        )
        # Second pass: each lane's spacings scaled so that it holds its asked density
        # (module docstring, "Per-lane densities").
        scale = lane_scale(ctx, scene, lane, s_ref, n_s, density[:, None] * ratio, (lo, hi), zl, zh)

        def propose_scaled(st: PlacementState) -> Proposal:
            p = propose(st)
            k = scale[st.scene, st.lane]
            gap = np.maximum(p.gap * k + (k - 1.0) * p.length, 0.5 * p.gap * np.minimum(k, 1.0))
            return Proposal(gap=gap, v=p.v, length=p.length, width=p.width)

        scene, lane, s_ref, gap, v, length, width = place(
            ctx, propose_scaled, density[:, None] * ratio, (lo, hi), zl, zh, rng
        )
        # Lighter than any training scene: speeds move towards free flow (module docstring).
        free = np.clip(1.0 - 1.0 / np.maximum(stretch, 1e-9), 0.0, 1.0)[scene]
        v = v + free * (FREE_FLOW_FRAC - v)
        has_gap = np.isfinite(gap)
        bx = np.stack(
            [
                v,
                log_gap(gap, has_gap),
                has_gap.astype(np.float64),
                d_cond[scene] / DENSITY_SCALE,
                difficulty[scene],
            ],
            1,
        )
        z = beh_head.sample(bx, rng, temp) if scene.size else np.zeros((0, 5))
        beh = from_z(z)
        beh[:, 0] *= limit
        pol, thr = mobil_params(difficulty[scene], self.threshold_at(density)[scene])
        beh = np.column_stack([beh, pol, thr])
        veh = to_vehicles(ctx, scene, lane, s_ref, v * limit, length, width, beh)
        out, counts = make_valid(veh, limit, ctx.lane_length if ctx.closed else None)
        self._stats = self._stats + counts
        return out, counts


def _check(density: F64, difficulty: F64) -> None:
    if density.ndim != 1 or density.shape != difficulty.shape:
        raise SamplerError(
            f"density/difficulty: expected two (S,) arrays, got shapes {density.shape} and "
            f"{difficulty.shape}"
        )
    if not (np.all(np.isfinite(density)) and np.all(density > 0)):
        raise SamplerError(f"density_veh_per_km_lane: expected > 0, got {density.tolist()}")
    if not (np.all(np.isfinite(difficulty)) and np.all((difficulty >= 0) & (difficulty <= 1))):
        raise SamplerError(f"difficulty: expected a number in [0, 1], got {difficulty.tolist()}")


__all__ = [
    "LC_THRESHOLD_SCALE",
    "POLITENESS",
    "US101_SPEED_LIMIT_MPS",
    "LearnedTrafficSampler",
    "load_net",
    "mobil_params",
    "to_actors",
]
