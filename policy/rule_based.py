"""Baseline drivers acting on the world state: a rule-based driver and a random one.

The rule-based driver is *privileged* (like CARLA's ``BasicAgent``): it reads the lane graph and
every actor's lane coordinates straight from :class:`sim.state.WorldState` and turns them into
the ego's ``[steer, accel]`` action in ``[-1, 1]^2``. Everything is batched over the B
environments; there is no per-environment Python loop.

Longitudinal control: IDM (Treiber, Hennecke, Helbing 2000; see :mod:`sim.traffic`)::

    s*(v, dv) = s0 + max(0, v T + v dv / (2 sqrt(a b)))
    a_IDM     = a [1 - (v / v0)^4 - (s* / g)^2]

behind the ego's leader, found with the batched sorted-entry search of :mod:`sim.traffic` on the
ego's lane, on the target lane during a lane change and on the neighbour lane the ego's box
still overlaps (the lowest acceleration wins); traffic changing into the ego's lane counts
through its secondary entry, as in :func:`sim.world.step`. ``g`` is the bumper-to-bumper gap,
``v0 = speed_factor * speed limit``. A curve-speed term
``a_curve = max(a [1 - (v / v_curve)^4], -b)`` with ``v_curve = sqrt(a_lat / |kappa|)``
(``kappa``: the largest lane curvature over the next ``curve_preview_time`` seconds) slows the
ego before sharp bends; the demand is ``a_des = min(a_IDM, a_curve)``. It becomes the pedal
by inverting :func:`sim.dynamics.longitudinal_accel`: with ``r`` the driving resistance and
``a_trac = min(a_max_vehicle, P / (m max(v, 1)))``::

    throttle = (a_des + r) / a_trac        if a_des + r >= 0
    brake    = -(a_des + r) / b_max_vehicle otherwise          (clipped to [-1, 1])

On maps with traffic rules (:mod:`sim.traffic_rules`: urban layouts, OpenDRIVE towns) the
demand is also capped by the rules' virtual standing leaders, as traffic obeys them: the stop
line of a red light (or a yellow one it can stop for at ``b``), the give-way point of a junction
when a conflicting connector is occupied or claimed by a higher-ranked vehicle, the end of a lane
that tapers out. Pedestrians beside the lane are not leaders; on it they are.

Lateral control: pure pursuit (Coulter 1992). The goal point lies on the target lane's centre
line ``L_d = clip(k v, L_min, L_max)`` ahead of the rear axle (crossing lane ends along
successors); with ``alpha`` its bearing in the ego frame seen from the rear axle and ``l`` its
distance from the rear axle, the wheel angle is::

    delta = atan(2 L sin(alpha) / l)

(``L`` the wheelbase), the circle through the rear axle, tangent to the heading, that passes
through the goal point. The command is ``steer_gain * delta / max_steer``, clipped to [-1, 1].
Linearised on a straight lane, pure pursuit moves the lateral error like a damped oscillator
with natural frequency ``sqrt(2) / L_d`` per metre and damping ratio ``1 / sqrt(2)``, so the
first lateral acceleration after a lateral step ``e`` is about ``2 e v^2 / L_d^2 = 2 e / k^2``.
Lane changes therefore use a longer lookahead (``lc_lookahead_time``): a 3.5 m change then starts
at about 1.75 m/s^2 whatever the speed and settles in 3-4 s.

Lane changes (MOBIL, Kesting, Treiber, Helbing 2007): with no change in progress, at least
``lc_min_interval`` seconds after the last one and above ``lc_min_speed``, the ego considers its
left and right driving neighbours. A side is *safe* when both bumper gaps (to the new leader
and to the new follower) exceed ``lc_min_gap`` and both the new follower's IDM acceleration
behind the ego and the ego's own behind its new leader are ``>= -b_safe``; it is *worth it*
when::

    (a~_ego - a_ego) + p [(a~_n - a_n) + (a~_o - a_o)] > threshold

(new follower ``n``, old follower ``o``, ``~`` after the change; ``p = 0`` is the selfish rule).
The better side wins. With a planned route (``Route.lanes``), a change towards the lane the
route leaves the current section on gets ``ROUTE_LANE_BONUS`` added to its incentive and a
change away from it the same subtracted, so the ego makes the route's lane changes when they are
safe. The change ends when the ego is matched to the target lane within
``lc_done_offset`` of its centre. The driver's only state is this lane-change bookkeeping (target
lane, side, time of the last change), one entry per environment; :meth:`RuleBasedDriver.reset`
clears it for environments that were reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from sim import road as R
from sim.dynamics import AIR_DENSITY, GRAVITY, MIN_POWER_SPEED, VehicleParams
from sim.pedestrians import listed
from sim.road import LaneGraph
from sim.state import WorldState
from sim.traffic import (
    FREE_GAP,
    SortedEntries,
    find_follower,
    find_leader,
    idm_accel,
    sort_entries,
)
from sim.traffic_rules import ego_rule_accel, rules_of

F32 = NDArray[np.float32]
# Lanes crossed by a preview: towns have runs of lane sections a few cm long (Town03, Town05)
PREVIEW_HOPS = 8
ROUTE_LANE_BONUS = 10.0  # [m/s^2] MOBIL incentive towards the planned route's lane (> any gain)
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]

CURVE_PREVIEW_SAMPLES = 8  # curvature samples over the preview window (~4 m apart at 8 m/s)
MIN_CURVATURE = 1e-6  # [1/m] below this a lane counts as straight (radius > 1000 km)
MIN_LOOKAHEAD_DIST = 1e-3  # [m] goal point distance floor: no division by zero
DEFAULT_VEHICLE = VehicleParams()  # the ego the simulator drives by default (SimParams.vehicle)


@dataclass(frozen=True)
class RuleBasedParams:
    """Parameters of :class:`RuleBasedDriver` (IDM, pure pursuit, MOBIL)."""

    # IDM, ego. Values of a calm driver; see Treiber & Kesting, "Traffic Flow Dynamics", tab. 11.2.
    speed_factor: float = 1.0  # [-] desired speed / lane speed limit: drive at the limit
    headway: float = 1.2  # [s] time gap T: within adaptive cruise control settings (1-2 s)
    min_gap: float = 2.5  # [m] jam distance s0: bumper gap kept when stopped in a queue
    a_max: float = 2.0  # [m/s^2] maximum acceleration a: brisk, below the 3.5 traction limit
    b_comf: float = 3.0  # [m/s^2] comfortable deceleration b: firm but not emergency braking
    # Curve speed: the ego slows so that v^2 |kappa| stays below this.
    max_lateral_accel: float = 3.0  # [m/s^2] ~0.3 g, passenger comfort; math.inf disables
    curve_preview_time: float = 4.0  # [s] look for bends this far ahead: at b=3 brakes 12 m/s
    # Pure pursuit.
    lookahead_time: float = 0.8  # [s] k in L_d = k v: goal point ~0.8 s ahead of the rear axle
    lookahead_min: float = 6.0  # [m] ~2 wheelbases: no steering oscillation at low speed
    lookahead_max: float = 25.0  # [m] bounds corner cutting on clothoids at highway speed
    steer_gain: float = 1.0  # [-] multiplies the geometric pure-pursuit angle (1 = exact arc)
    # Lane changes (MOBIL).
    lane_change: bool = True  # [-] allow the ego to change lanes at all
    politeness: float = 0.2  # [-] p: weight of the followers' gain (0 selfish, 1 altruistic)
    lc_threshold: float = 0.3  # [m/s^2] incentive a change must exceed: no dithering
    b_safe: float = 3.0  # [m/s^2] the new follower must not brake harder than this
    lc_min_gap: float = 2.0  # [m] bumper gaps to new leader and follower: no merging into
    # touching gaps even when speeds match (b_safe alone would allow it)
    lc_min_interval: float = 4.0  # [s] between the starts of two lane changes of one env
    lc_min_speed: float = 2.0  # [m/s] below this (queues) a lane change would barely move
    lc_lookahead_time: float = 2.0  # [s] k during a change: ~1.75 m/s^2 peak for a 3.5 m shift
    lc_lookahead_max: float = 60.0  # [m] L_d cap during a change (2 s at 30 m/s)
    lc_done_offset: float = 0.2  # [m] |d| on the target lane that ends a change

    def __post_init__(self) -> None:
        positive = (
            "headway",
            "a_max",
            "b_comf",
            "max_lateral_accel",
            "lookahead_time",
            "lookahead_min",
            "b_safe",
            "lc_lookahead_time",
            "lc_done_offset",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        nonneg = (
            "speed_factor",
            "min_gap",
            "curve_preview_time",
            "steer_gain",
            "politeness",
            "lc_threshold",
            "lc_min_gap",
            "lc_min_interval",
            "lc_min_speed",
        )
        for name in nonneg:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
        if self.lookahead_max < self.lookahead_min:
            raise ValueError(
                f"lookahead_max ({self.lookahead_max}) < lookahead_min ({self.lookahead_min})"
            )
        if self.lc_lookahead_max < self.lookahead_min:
            raise ValueError(
                f"lc_lookahead_max ({self.lc_lookahead_max}) < lookahead_min ({self.lookahead_min})"
            )


class Driver(Protocol):
    """Anything that maps a batched world state to ego actions (B, 2) in [-1, 1]."""

    def act(self, state: WorldState, road: LaneGraph) -> F32: ...

    def reset(self, mask: BoolArr) -> None: ...


@dataclass(frozen=True)
class _Lead:
    """The ego's leader on one lane: flat actor index (-1 none), bumper gap [m], dv [m/s]."""

    actor: I64
    gap: F32
    dv: F32


def pedal_command(a_des: F32, speed: F32, p: VehicleParams) -> F32:
    """Pedal in [-1, 1] giving acceleration ``a_des`` [m/s^2] at ``speed`` [m/s].

    The inverse of :func:`sim.dynamics.longitudinal_accel` wherever ``a_des`` is reachable;
    outside, the clipped full throttle or full brake.
    """
    traction = np.minimum(p.max_accel, p.max_power / (p.mass * np.maximum(speed, MIN_POWER_SPEED)))
    resist = np.where(
        speed > 0.0,
        GRAVITY * p.rolling_coef + 0.5 * AIR_DENSITY * p.drag_area * speed * speed / p.mass,
        0.0,
    )
    need = a_des + resist
    cmd: F32 = np.clip(np.where(need >= 0.0, need / traction, need / p.max_decel), -1.0, 1.0)
    return cmd.astype(np.float32)


class RuleBasedDriver:
    """IDM + pure pursuit + MOBIL ego driver (see the module docstring)."""

    def __init__(
        self, params: RuleBasedParams = RuleBasedParams(), vehicle: VehicleParams = DEFAULT_VEHICLE
    ) -> None:
        self.params = params
        self.vehicle = vehicle
        self._target = np.zeros(0, np.int32)  # (B,) target lane index, -1: keep the lane
        self._direction = np.zeros(0, np.int8)  # (B,) +1 left, -1 right, 0 none
        self._last_change = np.zeros(0, np.float32)  # (B,) state.time at the last change [s]

    # -- state ----------------------------------------------------------------------------

    @property
    def target_lane(self) -> I32:
        """(B,) lane index each env is changing into, -1 where no change is in progress."""
        return self._target.copy()

    def _ensure(self, num_envs: int) -> None:
        if self._target.shape != (num_envs,):
            self._target = np.full(num_envs, -1, np.int32)
            self._direction = np.zeros(num_envs, np.int8)
            self._last_change = np.full(num_envs, -np.inf, np.float32)

    def reset(self, mask: BoolArr) -> None:
        """Forget lane changes in the environments where ``mask`` (B,) is True.

        A mask of another length re-sizes the driver to that many environments, all forgotten.
        """
        m = np.asarray(mask, np.bool_).reshape(-1)
        if self._target.shape != m.shape:
            self._ensure(m.size)
            return
        self._target[m] = -1
        self._direction[m] = 0
        self._last_change[m] = -np.inf

    def state_dict(self) -> dict[str, list[Any]]:
        """The lane-change memory as plain lists (a PPO guide's part of a checkpoint)."""
        return {"target": self._target.tolist(), "direction": self._direction.tolist(),
                "last_change": self._last_change.tolist()}  # fmt: skip

    def load_state_dict(self, state: dict[str, list[Any]]) -> None:
        """Inverse of :meth:`state_dict`."""
        self._target = np.asarray(state["target"], np.int32)
        self._direction = np.asarray(state["direction"], np.int8)
        self._last_change = np.asarray(state["last_change"], np.float32)

    # -- helpers --------------------------------------------------------------------------

    def _idm(self, v: F32, v0: F32, gap: F32, dv: F32) -> F32:
        p = self.params
        one = np.ones_like(v)
        return idm_accel(
            v, v0, gap, dv, one * p.headway, one * p.min_gap, one * p.a_max, one * p.b_comf
        )

    @staticmethod
    def _lead(
        ent: SortedEntries, g: LaneGraph, st: WorldState, env: I64, me: I64, lane: I32, s: F32
    ) -> _Lead:
        """The ego's leader on ``lane`` at ``s`` (one per env)."""
        choice = st.route_choice[:, 0]
        who, dist = find_leader(ent, g, env, lane, s, me, choice)
        has = who >= 0
        w = np.maximum(who, 0)
        length, speed = st.length.reshape(-1), st.speed.reshape(-1)
        gap = np.where(has, dist - 0.5 * (length[me] + length[w]), FREE_GAP).astype(np.float32)
        dv = np.where(has, speed[me] - speed[w], 0.0).astype(np.float32)
        return _Lead(who, gap, dv)

    def _traffic_idm(self, st: WorldState, who: I64, v: F32, gap: F32, dv: F32) -> F32:
        """IDM acceleration of traffic actors ``who`` (flat indices >= 0) with their params."""
        b = st.behavior
        w = np.maximum(who, 0)

        def f(a: F32) -> F32:
            return a.reshape(-1)[w]

        return idm_accel(v, f(b.v0), gap, dv, f(b.headway), f(b.min_gap), f(b.a_max), f(b.b_comf))

    def _update_lane_change(self, st: WorldState, g: LaneGraph) -> None:
        """Follow the target lane across lane ends; end finished or impossible changes."""
        lane = st.lane[:, 0]
        t = self._target
        active = t >= 0
        if not active.any():
            return
        side = np.where(self._direction > 0, g.left[lane], g.right[lane]).astype(np.int32)
        on_target = lane == t
        stale = active & ~on_target & (side != t)
        if stale.any():
            # The ego crossed a lane end: it is on the target's successor, or still beside it.
            succ = g.successors[np.maximum(t, 0)]
            on_succ = (succ == lane[:, None]).any(axis=1)
            t = np.where(stale & on_succ, lane, np.where(stale, side, t)).astype(np.int32)
            on_target = lane == t
        done = (t >= 0) & on_target & (np.abs(st.d[:, 0]) < self.params.lc_done_offset)
        t = np.where(done | (t < 0), -1, t).astype(np.int32)
        self._target = t
        self._direction = np.where(t >= 0, self._direction, 0).astype(np.int8)

    def _decide_lane_change(
        self,
        st: WorldState,
        g: LaneGraph,
        ent: SortedEntries,
        env: I64,
        me: I64,
        v0: F32,
        lead: _Lead,
        a_cur: F32,
    ) -> None:
        """MOBIL for the ego; starts changes in place (see the module docstring)."""
        p = self.params
        lane, s, v = st.lane[:, 0], st.s[:, 0], st.speed[:, 0]
        since = np.where(st.time < self._last_change, np.inf, st.time - self._last_change)
        cand = (
            (self._target < 0)
            & (since >= p.lc_min_interval)
            & (v >= p.lc_min_speed)
            & st.valid[:, 0]
        )
        rules = rules_of(g)
        if rules is not None:  # no lane changes inside a junction
            cand &= ~rules.junctions.connector[lane]
        if not cand.any():
            return
        length, speed = st.length.reshape(-1), st.speed.reshape(-1)
        ln = length[me]
        # Old follower o: behind the ego now, behind the ego's leader after the change.
        fo, dfo = find_follower(ent, g, env, lane, s, me)
        has_o = fo >= 0
        foc = np.maximum(fo, 0)
        gap_o = (dfo - 0.5 * (length[foc] + ln)).astype(np.float32)
        a_o = self._traffic_idm(st, fo, speed[foc], gap_o, (speed[foc] - v).astype(np.float32))
        has_l = lead.actor >= 0
        lc = np.maximum(lead.actor, 0)
        gap_o_new = np.where(has_l, dfo + lead.gap + 0.5 * (ln - length[foc]), FREE_GAP)
        dv_o_new = np.where(has_l, speed[foc] - speed[lc], 0.0)
        a_o_new = self._traffic_idm(
            st, fo, speed[foc], gap_o_new.astype(np.float32), dv_o_new.astype(np.float32)
        )
        gain_o = np.where(has_o, a_o_new - a_o, 0.0)

        # A planned route (sim.routes) names the lane to leave each section on: changes towards
        # it get a bonus that outweighs any speed gain, changes away from it the same penalty.
        want = np.full(lane.shape, -1, np.int32)
        if st.route.lanes is not None:
            rows = np.arange(lane.size)
            want = st.route.lanes[rows, np.minimum(st.route.index, st.route.lanes.shape[1] - 1)]
            want = np.where(g.section[np.maximum(want, 0)] == g.section[lane], want, -1)
        best = np.full(lane.shape, -np.inf, np.float32)
        best_lane = np.full(lane.shape, -1, np.int32)
        best_dir = np.zeros(lane.shape, np.int8)
        for side, direction in ((g.left, 1), (g.right, -1)):
            tgt = side[lane]
            ok = cand & (tgt >= 0)
            tgt_c = np.where(ok, tgt, lane).astype(np.int32)
            ok &= g.lane_type[tgt_c] == R.LaneType.DRIVING
            if not ok.any():
                continue
            s_t = R.map_to_neighbor(g, lane, s, tgt_c)
            new_lead = self._lead(ent, g, st, env, me, tgt_c, s_t)
            a_new = self._idm(v, v0, new_lead.gap, new_lead.dv)
            nf, dnf = find_follower(ent, g, env, tgt_c, s_t, me)
            has_n = nf >= 0
            nfc = np.maximum(nf, 0)
            gap_fc = np.where(has_n, dnf - 0.5 * (ln + length[nfc]), FREE_GAP).astype(np.float32)
            a_n_new = self._traffic_idm(
                st, nf, speed[nfc], gap_fc, (speed[nfc] - v).astype(np.float32)
            )
            # New follower before the change: behind the new leader.
            nl = np.maximum(new_lead.actor, 0)
            has_nl = new_lead.actor >= 0
            gap_n = np.where(
                has_n & has_nl, dnf + new_lead.gap + 0.5 * (ln - length[nfc]), FREE_GAP
            ).astype(np.float32)
            dv_n = np.where(has_nl, speed[nfc] - speed[nl], 0.0).astype(np.float32)
            a_n = self._traffic_idm(st, nf, speed[nfc], gap_n, dv_n)
            safe = ok & (new_lead.gap > p.lc_min_gap) & (gap_fc > p.lc_min_gap)
            # The ego's own demand too: IDM saturates at -MAX_DECEL, so when the ego already
            # brakes that hard a worse gap would look no worse in the incentive.
            safe &= (a_new >= -p.b_safe) & (~has_n | (a_n_new >= -p.b_safe))
            gain = (a_new - a_cur) + p.politeness * (np.where(has_n, a_n_new - a_n, 0.0) + gain_o)
            toward = (want >= 0) & ((tgt_c == want) | (side[tgt_c] == want))
            away = (want >= 0) & (lane == want)
            gain = gain + np.where(toward, ROUTE_LANE_BONUS, np.where(away, -ROUTE_LANE_BONUS, 0.0))
            take = safe & (gain > p.lc_threshold) & (gain > best)
            best = np.where(take, gain, best).astype(np.float32)
            best_lane = np.where(take, tgt_c, best_lane).astype(np.int32)
            best_dir = np.where(take, direction, best_dir).astype(np.int8)
        go = best_lane >= 0
        self._target = np.where(go, best_lane, self._target).astype(np.int32)
        self._direction = np.where(go, best_dir, self._direction).astype(np.int8)
        self._last_change = np.where(go, st.time, self._last_change).astype(np.float32)

    def _curve_speed(self, st: WorldState, g: LaneGraph, lane: I32, s: F32) -> F32:
        """Speed [m/s] that keeps v^2 |kappa| <= max_lateral_accel over the preview window."""
        p = self.params
        v = st.speed[:, 0]
        horizon = np.maximum(v * p.curve_preview_time, p.lookahead_min)
        frac = np.linspace(0.0, 1.0, CURVE_PREVIEW_SAMPLES, dtype=np.float32)
        ss = (s[:, None] + horizon[:, None] * frac[None, :]).astype(np.float32)
        ll = np.broadcast_to(lane[:, None], ss.shape).astype(np.int32)
        choice = np.broadcast_to(st.route_choice[:, :1], ss.shape).astype(np.int32)
        la, sa, _ = R.advance(g, ll, ss, choice, max_hops=PREVIEW_HOPS)
        sa = np.minimum(sa, g.lane_length[la]).astype(np.float32)
        kappa: F32 = np.abs(R.interp(g, g.curvature, la, sa)).max(axis=1)
        v_curve: F32 = np.sqrt(p.max_lateral_accel / np.maximum(kappa, MIN_CURVATURE))
        return v_curve.astype(np.float32)

    def _steer(self, st: WorldState, g: LaneGraph) -> F32:
        """Pure-pursuit steering command towards the target lane's centre line."""
        p, vp = self.params, self.vehicle
        lane, s, v = st.lane[:, 0], st.s[:, 0], st.speed[:, 0]
        changing = self._target >= 0
        lane_t = np.where(changing, self._target, lane).astype(np.int32)
        s_t = np.where(changing, R.map_to_neighbor(g, lane, s, lane_t), s).astype(np.float32)
        ld = np.where(
            changing,
            np.clip(p.lc_lookahead_time * v, p.lookahead_min, p.lc_lookahead_max),
            np.clip(p.lookahead_time * v, p.lookahead_min, p.lookahead_max),
        )
        half = 0.5 * vp.wheelbase
        # Goal ``ld`` ahead of the rear axle, which sits ``half`` behind the box centre.
        s_goal = (s_t - half + ld).astype(np.float32)
        lg, sg, _ = R.advance(g, lane_t, s_goal, st.route_choice[:, 0], max_hops=PREVIEW_HOPS)
        over = np.maximum(sg - g.lane_length[lg], 0.0)  # past a dead end: extend straight on
        sg = np.minimum(sg, g.lane_length[lg]).astype(np.float32)
        gx, gy, gh = R.lane_pose(g, lg, sg, np.zeros_like(sg))
        gx = gx + over * np.cos(gh)
        gy = gy + over * np.sin(gh)
        yaw = st.yaw[:, 0]
        c, sn = np.cos(yaw), np.sin(yaw)
        dx = gx - (st.x[:, 0] - half * c)
        dy = gy - (st.y[:, 0] - half * sn)
        fwd = c * dx + sn * dy
        left = -sn * dx + c * dy
        alpha = np.arctan2(left, fwd)
        dist = np.maximum(np.hypot(fwd, left), MIN_LOOKAHEAD_DIST)
        delta: F32 = np.arctan(2.0 * vp.wheelbase * np.sin(alpha) / dist)
        cmd: F32 = np.clip(p.steer_gain * delta / vp.max_steer, -1.0, 1.0)
        return cmd.astype(np.float32)

    # -- policy ---------------------------------------------------------------------------

    def act(self, state: WorldState, road: LaneGraph) -> F32:
        """Ego actions (B, 2) float32 ``[steer, accel]`` in [-1, 1] for every environment."""
        st, g, p = state, road, self.params
        B, N = st.x.shape
        self._ensure(B)
        self._update_lane_change(st, g)
        env = np.arange(B, dtype=np.int64)
        me = env * N
        lane, s, v = st.lane[:, 0], st.s[:, 0], st.speed[:, 0]

        # Entries: every actor on its lane, traffic also on the lane it is changing into.
        lane2 = st.lc_target.copy()
        lane2[:, 0] = -1
        s2 = R.map_to_neighbor(g, st.lane, st.s, lane2)
        ent, _ = sort_entries(g, st.lane, st.s, listed(st, g), lane2, s2)

        limit = R.interp(g, g.speed_limit, lane, s)
        v0 = (p.speed_factor * limit).astype(np.float32)
        lead = self._lead(ent, g, st, env, me, lane, s)
        a_cur = self._idm(v, v0, lead.gap, lead.dv)
        if p.lane_change:
            self._decide_lane_change(st, g, ent, env, me, v0, lead, a_cur)

        # Also follow the leaders of the lane being changed into and of the neighbour lane the
        # ego's box still overlaps (as world.step lists the ego there); the closest binds.
        a_des = a_cur
        width = R.interp(g, g.width, lane, s)
        overlap = np.abs(st.d[:, 0]) > 0.5 * (width - st.width[:, 0])
        beside = np.where(st.d[:, 0] > 0, g.left[lane], g.right[lane])
        for other in (self._target, np.where(overlap, beside, -1)):
            use = other >= 0
            if not use.any():
                continue
            lane_o = np.where(use, other, lane).astype(np.int32)
            s_o = R.map_to_neighbor(g, lane, s, lane_o)
            lead_o = self._lead(ent, g, st, env, me, lane_o, s_o)
            a_o = self._idm(v, v0, lead_o.gap, lead_o.dv)
            a_des = np.where(use, np.minimum(a_des, a_o), a_des).astype(np.float32)
        rules = rules_of(g)
        if rules is not None:  # stop for red/yellow lights, give way in junctions
            a_rule = ego_rule_accel(rules, g, st, v0, p.headway, p.min_gap, p.a_max, p.b_comf)
            a_des = np.minimum(a_des, a_rule).astype(np.float32)
        if math.isfinite(p.max_lateral_accel):
            v_curve = self._curve_speed(st, g, lane, s)
            a_curve = np.maximum(p.a_max * (1.0 - (v / v_curve) ** 4), -p.b_comf)
            a_des = np.minimum(a_des, a_curve).astype(np.float32)

        out = np.empty((B, 2), np.float32)
        out[:, 0] = self._steer(st, g)
        out[:, 1] = pedal_command(a_des, v, self.vehicle)
        return out


class RandomDriver:
    """Uniform random actions in [-1, 1]^2 from its own generator (a sanity baseline)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, state: WorldState, road: LaneGraph) -> F32:
        return self.rng.uniform(-1.0, 1.0, (state.num_envs, 2)).astype(np.float32)

    def reset(self, mask: BoolArr) -> None:
        """Nothing to forget."""


DRIVERS = ("rule_based", "random")


def make_driver(name: str, seed: int | None = None) -> Driver:
    """A driver by name: ``"rule_based"`` (default parameters) or ``"random"`` (seeded).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if name == "rule_based":
        return RuleBasedDriver()
    if name == "random":
        return RandomDriver(seed)
    raise ValueError(f"unknown driver {name!r}; expected one of {list(DRIVERS)}")


__all__ = [
    "DRIVERS",
    "Driver",
    "RandomDriver",
    "RuleBasedDriver",
    "RuleBasedParams",
    "make_driver",
    "pedal_command",
]
