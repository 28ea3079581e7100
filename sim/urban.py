"""Procedural urban roads as OpenDRIVE models: intersections, T-junctions, roundabouts, ramps.

Every builder returns an :class:`sim.opendrive.OdrMap`, so an urban road is compiled by the same
:func:`sim.opendrive.build_lane_graph` as a CARLA town and can be written with
:func:`sim.opendrive.write_opendrive` (and loaded by CARLA's ``generate_opendrive_world``).

Layouts (right-hand traffic, OpenDRIVE conventions: lane ids < 0 run along the reference line,
> 0 against it; t lateral, + left):

- **Intersection / T-junction** (:func:`intersection_model`): arms ``i`` in ``arms`` at angles
  ``i * 90 deg``; arm ``i`` is road ``i``, a straight two-way road of ``arm_length`` m starting
  at distance ``H = num_lanes * lane_width + radius`` from the centre and pointing outwards, with
  ``num_lanes`` lanes each way plus a sidewalk on both sides. Lanes ``1..n`` (against s) come
  into the junction, lanes ``-1..-n`` leave it. Junction ``100`` holds one single-lane
  connecting road per movement: straight (lane k to lane -k: a line of ``2 H``), right turn
  (outermost lane ``n`` to ``-n``, an arc of radius ``H - (n - 1/2) w``) and left turn (lane 1
  to -1, radius ``H + w / 2``). A connecting road's reference line is its lane centre (lane
  offset ``w / 2``). ``signalised``: one dynamic signal (type 1000001, a three-light head) per
  incoming arm at its stop line, controllers ``c0`` (arms 0 and 2, sequence 0) and ``c1``
  (arms 1 and 3, sequence 1); :mod:`sim.lights` runs them.
- **Roundabout** (:func:`roundabout_model`): a single-lane ring of centre-line radius
  ``radius`` driven counter-clockwise, four two-way single-lane arms. Around each arm the ring
  passes through a junction spanning ``+-RING_JUNCTION_RAD``: a ring-through connector (arc),
  an entry connector (arm lane 1 onto the ring, downstream of the arm) and an exit connector
  (the ring onto arm lane -1, upstream). Between junctions the ring is a road of its own.
- **On-ramp** (:func:`on_ramp_model`): main road 0 (``num_lanes``) into junction 100; a
  single-lane ramp road 3 joins at ``ramp_angle``; past the junction road 1 carries an
  acceleration lane ``-(n + 1)`` for ``accel_length`` m that then tapers to zero width over
  ``taper_length`` m (a lane that ends: traffic must merge left); road 2 continues.
- **Off-ramp** (:func:`off_ramp_model`): main road 0, then road 1 where a deceleration lane
  ``-(n + 1)`` opens (taper, then full width), junction 100 splitting it onto exit ramp road 3
  while the main lanes continue onto road 2.

Connecting roads whose end poses are not joined by one straight line use line-arc-line
(tangent lengths ``r tan(phi / 2)`` for a deflection ``phi``), or, where the two tangent lines
do not meet ahead of both poses, a cubic Hermite curve written as a normalized ``paramPoly3``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.opendrive import (
    Connection,
    Controller,
    Geometry,
    Junction,
    LaneSection,
    OdrLane,
    OdrMap,
    OdrRoad,
    Poly3,
    RoadLink,
    Signal,
    eval_geometry,
)

JUNCTION_ID = "100"
SIDEWALK_WIDTH_M = 2.0  # [m] a usual urban footway (two people side by side)
RING_JUNCTION_RAD = 0.4  # [rad] half the ring angle a roundabout junction spans (~23 deg):
# room for entry/exit curves of ~9 m radius on a 20 m ring
RING_ARM_GAP_M = 8.0  # [m] ring lane centre to an arm's start (room for the entry curve)
TRAFFIC_LIGHT_TYPE = "1000001"  # OpenDRIVE/German catalogue: three-light signal head
HERMITE_TANGENT = 1.0  # [-] Hermite tangent length as a fraction of the chord (smooth bends)


class UrbanError(ValueError):
    """Bad builder parameters; names the parameter and what was expected."""


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    h: float  # [rad]


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _hermite(p: Pose, q: Pose, s0: float) -> Geometry:
    """A normalized ``paramPoly3`` from pose ``p`` to pose ``q`` (cubic Hermite in p's frame)."""
    dx, dy = q.x - p.x, q.y - p.y
    c, s = math.cos(p.h), math.sin(p.h)
    X, Y = dx * c + dy * s, -dx * s + dy * c
    H = _wrap(q.h - p.h)
    k = HERMITE_TANGENT * math.hypot(X, Y)
    # U(0)=0, U'(0)=k, U(1)=X, U'(1)=k cos H; V likewise with V'(0)=0, V'(1)=k sin H.
    cu = (0.0, k, 3 * X - 2 * k - k * math.cos(H), -2 * X + k + k * math.cos(H))
    cv = (0.0, 0.0, 3 * Y - k * math.sin(H), -2 * Y + k * math.sin(H))
    pp = np.linspace(0.0, 1.0, 2001)
    du = cu[1] + pp * (2 * cu[2] + 3 * cu[3] * pp)
    dv = cv[1] + pp * (2 * cv[2] + 3 * cv[3] * pp)
    sp = np.hypot(du, dv)
    length = float(np.sum(0.5 * (sp[1:] + sp[:-1]) * np.diff(pp)))
    return Geometry(s0, p.x, p.y, p.h, length, "paramPoly3", (*cu, *cv, 1.0))


def connect(p: Pose, q: Pose) -> tuple[Geometry, ...]:
    """Reference-line geometries from pose ``p`` to pose ``q`` (module docstring)."""
    phi = _wrap(q.h - p.h)
    dx, dy = q.x - p.x, q.y - p.y
    if abs(phi) < 1e-9:
        cross = -math.sin(p.h) * dx + math.cos(p.h) * dy
        if abs(cross) < 1e-6:
            return (Geometry(0.0, p.x, p.y, p.h, math.hypot(dx, dy), "line"),)
        return (_hermite(p, q, 0.0),)
    # Corner C = p + a (cos hp, sin hp) = q - b (cos hq, sin hq).
    cp, sp, cq, sq = math.cos(p.h), math.sin(p.h), math.cos(q.h), math.sin(q.h)
    det = cp * sq - cq * sp
    a = (dx * sq - cq * dy) / det
    b = (cp * dy - sp * dx) / det
    t_unit = math.tan(abs(phi) / 2.0)
    if a <= 0 or b <= 0 or abs(phi) > math.pi - 1e-3:
        return (_hermite(p, q, 0.0),)
    r = min(a, b) / t_unit
    tan_len = r * t_unit
    geoms: list[Geometry] = []
    s, x, y = 0.0, p.x, p.y
    if a - tan_len > 1e-6:
        geoms.append(Geometry(s, x, y, p.h, a - tan_len, "line"))
        s += a - tan_len
        x, y = x + (a - tan_len) * cp, y + (a - tan_len) * sp
    k = math.copysign(1.0 / r, phi)
    arc = Geometry(s, x, y, p.h, r * abs(phi), "arc", (k,))
    geoms.append(arc)
    s += r * abs(phi)
    ex, ey, _, _ = eval_geometry(arc, np.array([arc.length]))
    if b - tan_len > 1e-6:
        geoms.append(Geometry(s, float(ex[0]), float(ey[0]), q.h, b - tan_len, "line"))
    return tuple(geoms)


def _length(geoms: tuple[Geometry, ...]) -> float:
    return sum(g.length for g in geoms)


def _lane_centred_road(
    rid: str,
    geoms: tuple[Geometry, ...],
    width: float,
    speed: float,
    pred: RoadLink | None,
    succ: RoadLink | None,
    lane_pred: int | None,
    lane_succ: int | None,
    junction: str = "-1",
    name: str = "",
) -> OdrRoad:
    """A one-lane road (lane -1) whose reference line is the lane centre."""
    lane = OdrLane(-1, "driving", (Poly3(0.0, width),), predecessor=lane_pred, successor=lane_succ)
    return OdrRoad(
        id=rid,
        num_id=int(rid),
        length=_length(geoms),
        junction=junction,
        rule="RHT",
        geometry=geoms,
        lane_offsets=(Poly3(0.0, 0.5 * width),),
        sections=(LaneSection(0.0, (lane,)),),
        predecessor=pred,
        successor=succ,
        name=name or f"road {rid}",
        speeds=((0.0, "town", speed),),
    )


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise UrbanError(f"{name}: expected {lo} to {hi}, got {value}")


# ---------------------------------------------------------------------------------------------
# Intersections
# ---------------------------------------------------------------------------------------------


def _arm_road(
    i: int, H: float, n: int, w: float, length: float, speed: float, sidewalk: float
) -> OdrRoad:
    th = i * math.pi / 2.0
    lanes = []
    for k in range(1, n + 1):
        lanes.append(OdrLane(k, "driving", (Poly3(0.0, w),)))
        lanes.append(OdrLane(-k, "driving", (Poly3(0.0, w),)))
    if sidewalk > 0:
        lanes.append(OdrLane(n + 1, "sidewalk", (Poly3(0.0, sidewalk),)))
        lanes.append(OdrLane(-(n + 1), "sidewalk", (Poly3(0.0, sidewalk),)))
    lanes.sort(key=lambda ln: -ln.id)
    return OdrRoad(
        id=str(i),
        num_id=i,
        length=length,
        junction="-1",
        rule="RHT",
        geometry=(Geometry(0.0, H * math.cos(th), H * math.sin(th), th, length, "line"),),
        lane_offsets=(),
        sections=(LaneSection(0.0, tuple(lanes)),),
        predecessor=RoadLink("junction", JUNCTION_ID),
        name=f"arm {i}",
        speeds=((0.0, "town", speed),),
    )


def intersection_model(
    num_lanes: int = 1,
    lane_width: float = 3.5,
    arm_length: float = 100.0,
    radius: float = 8.0,
    speed_limit: float = 13.9,
    turn_speed_limit: float = 8.3,
    arms: tuple[int, ...] = (0, 1, 2, 3),
    signalised: bool = True,
    sidewalk_width: float = SIDEWALK_WIDTH_M,
    name: str = "intersection",
) -> OdrMap:
    """A 4-way (or, with three ``arms``, T) junction of straight two-way arms (module docstring).

    Args:
        num_lanes: lanes per direction on every arm (1 to 3).
        lane_width: [m].
        arm_length: [m] length of each arm from the junction's edge.
        radius: [m] kerb radius: the right turn's centre line radius is ``radius + w / 2``.
        speed_limit: [m/s] on the arms and straight through the junction.
        turn_speed_limit: [m/s] on turning connectors.
        arms: which of the four arms (0 east, 1 north, 2 west, 3 south) exist; three make a T.
        signalised: traffic lights on every incoming arm (two phases: 0 and 2, then 1 and 3).
        sidewalk_width: [m] sidewalk on both sides of every arm; 0 for none.
    """
    _check("num_lanes", num_lanes, 1, 3)
    _check("lane_width", lane_width, 2.0, 6.0)
    _check("arm_length", arm_length, 10.0, 5000.0)
    _check("radius", radius, 2.0, 100.0)
    _check("speed_limit", speed_limit, 1.0, 40.0)
    _check("turn_speed_limit", turn_speed_limit, 1.0, 40.0)
    arm_set = sorted(set(arms))
    if len(arm_set) < 3 or any(a not in (0, 1, 2, 3) for a in arm_set):
        raise UrbanError(f"arms: expected 3 or 4 of 0, 1, 2, 3, got {list(arms)}")
    n, w = num_lanes, lane_width
    H = n * w + radius
    roads = [_arm_road(i, H, n, w, arm_length, speed_limit, sidewalk_width) for i in arm_set]
    conns: list[Connection] = []
    rid = int(JUNCTION_ID) + 1
    for i in arm_set:
        th_in = i * math.pi / 2.0 + math.pi
        ui = (math.cos(i * math.pi / 2.0), math.sin(i * math.pi / 2.0))
        ni = (-ui[1], ui[0])
        moves: list[tuple[int, int, int]] = []  # (in lane id, out arm, out lane id)
        for j, lanes in (
            ((i + 2) % 4, [(k, -k) for k in range(1, n + 1)]),
            ((i + 1) % 4, [(n, -n)]),
            ((i + 3) % 4, [(1, -1)]),
        ):
            if j in arm_set:
                moves += [(a, j, b) for a, b in lanes]
        for lin, j, lout in moves:
            tin = (lin - 0.5) * w
            p = Pose(H * ui[0] + tin * ni[0], H * ui[1] + tin * ni[1], th_in)
            thj = j * math.pi / 2.0
            uj = (math.cos(thj), math.sin(thj))
            nj = (-uj[1], uj[0])
            tout = (lout + 0.5) * w  # lout < 0: centre at -(|lout| - 1/2) w
            q = Pose(H * uj[0] + tout * nj[0], H * uj[1] + tout * nj[1], thj)
            geoms = connect(p, q)
            turn = "straight" if j == (i + 2) % 4 else "right" if j == (i + 1) % 4 else "left"
            roads.append(
                _lane_centred_road(
                    str(rid),
                    geoms,
                    w,
                    speed_limit if turn == "straight" else turn_speed_limit,
                    RoadLink("road", str(i), "start"),
                    RoadLink("road", str(j), "start"),
                    lin,
                    lout,
                    junction=JUNCTION_ID,
                    name=f"{turn} {i}->{j}",
                )
            )
            conns.append(Connection(str(len(conns)), str(i), str(rid), "start", ((lin, -1),)))
            rid += 1
    signals: dict[int, Signal] = {}
    controllers: list[Controller] = []
    if signalised:
        for i in arm_set:
            signals[i] = Signal(
                id=f"s{i}",
                road=str(i),
                s=0.0,
                t=(n + 0.5) * w,
                dynamic=True,
                orientation="-",
                type=TRAFFIC_LIGHT_TYPE,
                subtype="-1",
                name=f"light arm {i}",
                lanes=((1, n),),
                controllers=(f"c{i % 2}",),
            )
        for c in (0, 1):
            ids = tuple(f"s{i}" for i in arm_set if i % 2 == c)
            controllers.append(Controller(f"c{c}", f"phase {c}", c, ids))
        roads = [
            dataclasses.replace(rd, signals=(signals[rd.num_id],)) if rd.num_id in signals else rd
            for rd in roads
        ]
    junction = Junction(
        JUNCTION_ID,
        "intersection",
        tuple(conns),
        controllers=tuple(c.id for c in controllers),
    )
    return OdrMap(name, tuple(roads), (junction,), tuple(controllers), rev_minor=4)


# ---------------------------------------------------------------------------------------------
# Roundabout
# ---------------------------------------------------------------------------------------------


def roundabout_model(
    radius: float = 20.0,
    lane_width: float = 4.0,
    arm_length: float = 100.0,
    speed_limit: float = 13.9,
    ring_speed_limit: float = 8.3,
    sidewalk_width: float = SIDEWALK_WIDTH_M,
    name: str = "roundabout",
) -> OdrMap:
    """A single-lane roundabout with four single-lane two-way arms (module docstring).

    Args:
        radius: [m] ring lane centre-line radius (15 to 60).
        lane_width: [m] ring and arm lane width.
        arm_length: [m] length of each arm.
        speed_limit: [m/s] on the arms.
        ring_speed_limit: [m/s] on the ring and its connectors.
        sidewalk_width: [m] sidewalks on the arms; 0 for none.
    """
    _check("radius", radius, 15.0, 60.0)
    _check("lane_width", lane_width, 2.5, 6.0)
    _check("arm_length", arm_length, 10.0, 5000.0)
    _check("speed_limit", speed_limit, 1.0, 40.0)
    _check("ring_speed_limit", ring_speed_limit, 1.0, 40.0)
    w, Rc, dl = lane_width, radius, RING_JUNCTION_RAD
    start = Rc + RING_ARM_GAP_M
    roads = [_arm_road(i, start, 1, w, arm_length, speed_limit, sidewalk_width) for i in range(4)]
    roads = [
        dataclasses.replace(rd, predecessor=RoadLink("junction", str(int(JUNCTION_ID) + 10 * i)))
        for i, rd in enumerate(roads)
    ]

    def ring_pose(a: float) -> Pose:
        return Pose(Rc * math.cos(a), Rc * math.sin(a), a + math.pi / 2.0)

    def arc(p: Pose, angle: float) -> tuple[Geometry, ...]:
        return (Geometry(0.0, p.x, p.y, p.h, Rc * angle, "arc", (1.0 / Rc,)),)

    junctions = []
    for i in range(4):
        th = i * math.pi / 2.0
        jid = str(int(JUNCTION_ID) + 10 * i)
        ring_in, ring_out = str(10 + (i - 1) % 4), str(10 + i)  # ring roads before/after
        u = (math.cos(th), math.sin(th))
        nrm = (-u[1], u[0])
        lane_in = Pose(
            start * u[0] + 0.5 * w * nrm[0], start * u[1] + 0.5 * w * nrm[1], th + math.pi
        )
        lane_out = Pose(start * u[0] - 0.5 * w * nrm[0], start * u[1] - 0.5 * w * nrm[1], th)
        base = int(jid) + 1
        specs = [
            (str(base), arc(ring_pose(th - dl), 2 * dl), ring_in, ring_out, -1, -1, "through"),
            (str(base + 1), connect(lane_in, ring_pose(th + dl)), str(i), ring_out, 1, -1, "entry"),
            (str(base + 2), connect(ring_pose(th - dl), lane_out), ring_in, str(i), -1, -1, "exit"),
        ]
        conns = []
        for k, (cid, geoms, frm, to, lin, lout, kind) in enumerate(specs):
            roads.append(
                _lane_centred_road(
                    cid,
                    geoms,
                    w,
                    ring_speed_limit,
                    RoadLink("road", frm, "start" if frm == str(i) else "end"),
                    RoadLink("road", to, "start"),
                    lin,
                    lout,
                    junction=jid,
                    name=f"{kind} {i}",
                )
            )
            conns.append(Connection(str(k), frm, cid, "start", ((lin, -1),)))
        junctions.append(Junction(jid, f"roundabout {i}", tuple(conns)))
    for i in range(4):
        a0 = i * math.pi / 2.0 + dl
        geoms = arc(ring_pose(a0), math.pi / 2.0 - 2 * dl)
        roads.append(
            _lane_centred_road(
                str(10 + i),
                geoms,
                w,
                ring_speed_limit,
                RoadLink("junction", str(int(JUNCTION_ID) + 10 * i)),
                RoadLink("junction", str(int(JUNCTION_ID) + 10 * ((i + 1) % 4))),
                None,
                None,
                name=f"ring {i}",
            )
        )
    return OdrMap(name, tuple(roads), tuple(junctions), rev_minor=4)


# ---------------------------------------------------------------------------------------------
# Ramps
# ---------------------------------------------------------------------------------------------


def _main_road(
    rid: int,
    x0: float,
    length: float,
    n: int,
    w: float,
    speed: float,
    extra: tuple[tuple[float, tuple[Poly3, ...]], ...] = (),
    pred: RoadLink | None = None,
    succ: RoadLink | None = None,
) -> OdrRoad:
    """A one-way road along +x at y = 0 (reference line = left edge), lanes -1..-n; ``extra``
    lists lane sections ``(s, widths of lane -(n + 1))`` that carry an added right lane."""
    plain = tuple(
        OdrLane(-k, "driving", (Poly3(0.0, w),), predecessor=-k, successor=-k)
        for k in range(1, n + 1)
    )
    sections = []
    if not extra or extra[0][0] > 0:
        sections.append(LaneSection(0.0, plain))
    for s, widths in extra:
        added = OdrLane(-(n + 1), "driving", widths, predecessor=-(n + 1), successor=-(n + 1))
        sections.append(LaneSection(s, (*plain, added)))
    return OdrRoad(
        id=str(rid),
        num_id=rid,
        length=length,
        junction="-1",
        rule="RHT",
        geometry=(Geometry(0.0, x0, 0.0, 0.0, length, "line"),),
        lane_offsets=(),
        sections=tuple(sections),
        predecessor=pred,
        successor=succ,
        name=f"main {rid}",
        speeds=((0.0, "motorway", speed),),
    )


def _taper(w: float, length: float, opening: bool) -> Poly3:
    """Width cubic with zero slope at both ends: 0 -> w (opening) or w -> 0 over ``length``."""
    a, dw = (0.0, w) if opening else (w, -w)
    return Poly3(0.0, a, 0.0, 3.0 * dw / length**2, -2.0 * dw / length**3)


def _ramp_checks(num_lanes: int, lane_width: float, speed_limit: float, ramp_angle: float) -> None:
    _check("num_lanes", num_lanes, 1, 4)
    _check("lane_width", lane_width, 2.5, 6.0)
    _check("speed_limit", speed_limit, 1.0, 60.0)
    _check("ramp_angle", ramp_angle, 0.05, 0.8)


def on_ramp_model(
    num_lanes: int = 2,
    lane_width: float = 3.5,
    upstream_length: float = 300.0,
    accel_length: float = 150.0,
    taper_length: float = 60.0,
    downstream_length: float = 300.0,
    ramp_length: float = 150.0,
    ramp_angle: float = 0.25,
    junction_length: float = 30.0,
    speed_limit: float = 27.8,
    ramp_speed_limit: float = 22.2,
    name: str = "on_ramp",
) -> OdrMap:
    """A motorway on-ramp (module docstring). Lengths [m], speeds [m/s], ``ramp_angle`` [rad]
    between the ramp and the main road where the ramp reaches the junction."""
    _ramp_checks(num_lanes, lane_width, speed_limit, ramp_angle)
    n, w, jl = num_lanes, lane_width, junction_length
    x_j = upstream_length
    x1 = x_j + jl
    r0 = _main_road(
        0, 0.0, upstream_length, n, w, speed_limit, succ=RoadLink("junction", JUNCTION_ID)
    )
    r1 = _main_road(
        1,
        x1,
        accel_length + taper_length,
        n,
        w,
        speed_limit,
        extra=((0.0, (Poly3(0.0, w),)), (accel_length, (_taper(w, taper_length, False),))),
        pred=RoadLink("junction", JUNCTION_ID),
        succ=RoadLink("road", "2", "start"),
    )
    r1 = dataclasses.replace(
        r1, sections=(r1.sections[0], _unlinked(r1.sections[1], -(n + 1), at_end=True))
    )
    r2 = _main_road(
        2,
        x1 + accel_length + taper_length,
        downstream_length,
        n,
        w,
        speed_limit,
        pred=RoadLink("road", "1", "end"),
    )
    # The ramp ends where the junction starts, offset right of the acceleration lane.
    y_end = _ramp_lane_y(n, w, jl, ramp_angle)
    end = Pose(x_j, y_end, ramp_angle)
    ramp_start = Pose(
        x_j - ramp_length * math.cos(ramp_angle),
        y_end - ramp_length * math.sin(ramp_angle),
        ramp_angle,
    )
    ramp = _lane_centred_road(
        "3",
        (Geometry(0.0, ramp_start.x, ramp_start.y, ramp_angle, ramp_length, "line"),),
        w,
        ramp_speed_limit,
        None,
        RoadLink("junction", JUNCTION_ID),
        None,
        None,
        name="on-ramp",
    )
    through = _through_road(x_j, jl, n, w, speed_limit, "0", "1")
    merge = _lane_centred_road(
        "102",
        connect(end, Pose(x1, -(n + 0.5) * w, 0.0)),
        w,
        ramp_speed_limit,
        RoadLink("road", "3", "end"),
        RoadLink("road", "1", "start"),
        -1,
        -(n + 1),
        junction=JUNCTION_ID,
        name="ramp merge",
    )
    conns = (
        Connection("0", "0", "101", "start", tuple((-k, -k) for k in range(1, n + 1))),
        Connection("1", "3", "102", "start", ((-1, -1),)),
    )
    junction = Junction(JUNCTION_ID, "on-ramp", conns)
    return OdrMap(name, (r0, r1, r2, ramp, through, merge), (junction,), rev_minor=4)


def _ramp_lane_y(n: int, w: float, jl: float, ramp_angle: float) -> float:
    """[m] lateral position where a ramp meets its junction: right of the outer main lane."""
    return -(n + 0.5) * w - 0.5 * jl * math.tan(ramp_angle)


def _through_road(
    x_j: float, jl: float, n: int, w: float, speed_limit: float, pred: str, succ: str
) -> OdrRoad:
    """Road 101: the main lanes straight through a ramp's junction, from road ``pred``'s end
    to road ``succ``'s start."""
    road = _main_road(101, x_j, jl, n, w, speed_limit, pred=RoadLink("road", pred, "end"),
                      succ=RoadLink("road", succ, "start"))  # fmt: skip
    return dataclasses.replace(road, junction=JUNCTION_ID, name="main through")


def _unlinked(section: LaneSection, lane_id: int, at_end: bool) -> LaneSection:
    """``section`` with lane ``lane_id``'s successor (``at_end``) or predecessor removed: the
    tapered acceleration/deceleration lane ends there."""

    def cut(ln: OdrLane) -> OdrLane:
        if ln.id != lane_id:
            return ln
        if at_end:
            return dataclasses.replace(ln, successor=None)
        return dataclasses.replace(ln, predecessor=None)

    return dataclasses.replace(section, lanes=tuple(cut(ln) for ln in section.lanes))


def off_ramp_model(
    num_lanes: int = 2,
    lane_width: float = 3.5,
    upstream_length: float = 300.0,
    decel_length: float = 150.0,
    taper_length: float = 60.0,
    downstream_length: float = 300.0,
    ramp_length: float = 150.0,
    ramp_angle: float = 0.25,
    junction_length: float = 30.0,
    speed_limit: float = 27.8,
    ramp_speed_limit: float = 22.2,
    name: str = "off_ramp",
) -> OdrMap:
    """A motorway off-ramp (module docstring): the mirror of :func:`on_ramp_model`."""
    _ramp_checks(num_lanes, lane_width, speed_limit, ramp_angle)
    n, w, jl = num_lanes, lane_width, junction_length
    x1 = upstream_length
    x_j = x1 + taper_length + decel_length
    r0 = _main_road(0, 0.0, upstream_length, n, w, speed_limit, succ=RoadLink("road", "1", "start"))
    r1 = _main_road(
        1,
        x1,
        taper_length + decel_length,
        n,
        w,
        speed_limit,
        extra=((0.0, (_taper(w, taper_length, True),)), (taper_length, (Poly3(0.0, w),))),
        pred=RoadLink("road", "0", "end"),
        succ=RoadLink("junction", JUNCTION_ID),
    )
    r1 = dataclasses.replace(
        r1, sections=(_unlinked(r1.sections[0], -(n + 1), at_end=False), r1.sections[1])
    )
    x2 = x_j + jl
    r2 = _main_road(
        2, x2, downstream_length, n, w, speed_limit, pred=RoadLink("junction", JUNCTION_ID)
    )
    y_start = _ramp_lane_y(n, w, jl, ramp_angle)
    start = Pose(x2, y_start, -ramp_angle)
    ramp = _lane_centred_road(
        "3",
        (Geometry(0.0, start.x, start.y, -ramp_angle, ramp_length, "line"),),
        w,
        ramp_speed_limit,
        RoadLink("junction", JUNCTION_ID),
        None,
        None,
        None,
        name="off-ramp",
    )
    through = _through_road(x_j, jl, n, w, speed_limit, "1", "2")
    diverge = _lane_centred_road(
        "102",
        connect(Pose(x_j, -(n + 0.5) * w, 0.0), start),
        w,
        ramp_speed_limit,
        RoadLink("road", "1", "end"),
        RoadLink("road", "3", "start"),
        -(n + 1),
        -1,
        junction=JUNCTION_ID,
        name="ramp diverge",
    )
    conns = (
        Connection("0", "1", "101", "start", tuple((-k, -k) for k in range(1, n + 1))),
        Connection("1", "1", "102", "start", ((-(n + 1), -1),)),
    )
    junction = Junction(JUNCTION_ID, "off-ramp", conns)
    return OdrMap(name, (r0, r1, r2, ramp, through, diverge), (junction,), rev_minor=4)


# ---------------------------------------------------------------------------------------------
# From a RoadSpec
# ---------------------------------------------------------------------------------------------

URBAN_KINDS = ("intersection", "t_junction", "roundabout", "on_ramp", "off_ramp")
RAMP_JUNCTION_M = 30.0  # [m] junction length where a ramp meets the main road
RAMP_TAPER_M = 60.0  # [m] width taper of an acceleration/deceleration lane


def urban_model(road: Any) -> OdrMap:
    """The OpenDRIVE model of an urban :class:`sim.scenario.RoadSpec` (``kind`` in
    :data:`URBAN_KINDS`). Field use: ``num_lanes`` (per direction; the roundabout's ring has
    one), ``lane_width``, ``speed_limit``, ``arm_length`` (intersection arms; ramps' main road
    before and after), ``junction_radius`` (kerb radius of intersections, default 8 m; ring
    radius of roundabouts, default 20 m), ``turn_speed_limit`` (junction connectors; default
    8.3 m/s, or 80 % of the limit on ramps), ``signalised`` (default: intersections yes,
    T-junctions no), ``ramp_length``, ``merge_length`` (acceleration / deceleration lane),
    ``ramp_angle``.

    Raises:
        UrbanError: a parameter out of range, named as the RoadSpec field.
    """
    try:
        return _urban_model(road)
    except UrbanError as e:
        field_name, _, rest = str(e).partition(":")
        spec_name = _SPEC_FIELD.get(field_name, field_name)
        raise UrbanError(f"{spec_name}:{rest}") from None


# builder parameter -> the RoadSpec field that sets it (for error messages)
_SPEC_FIELD = {
    "radius": "junction_radius",
    "ring_speed_limit": "turn_speed_limit",
    "upstream_length": "arm_length",
    "downstream_length": "arm_length",
}


def _urban_model(road: Any) -> OdrMap:
    kind = road.kind
    turn = road.turn_speed_limit
    if kind in ("intersection", "t_junction"):
        return intersection_model(
            num_lanes=road.num_lanes,
            lane_width=road.lane_width,
            arm_length=road.arm_length,
            radius=8.0 if road.junction_radius is None else road.junction_radius,
            speed_limit=road.speed_limit,
            turn_speed_limit=min(8.3, road.speed_limit) if turn is None else turn,
            arms=(0, 1, 2, 3) if kind == "intersection" else (0, 1, 2),
            signalised=(kind == "intersection") if road.signalised is None else road.signalised,
            name=kind,
        )
    if kind == "roundabout":
        if road.num_lanes != 1:
            raise UrbanError(
                f"num_lanes: the roundabout has single-lane arms and ring; expected 1, "
                f"got {road.num_lanes}"
            )
        if road.signalised:
            raise UrbanError("signalised: a roundabout has no traffic lights; expected false")
        return roundabout_model(
            radius=20.0 if road.junction_radius is None else road.junction_radius,
            lane_width=road.lane_width,
            arm_length=road.arm_length,
            speed_limit=road.speed_limit,
            ring_speed_limit=min(8.3, road.speed_limit) if turn is None else turn,
            name=kind,
        )
    if kind in ("on_ramp", "off_ramp"):
        if road.signalised:
            raise UrbanError(f"signalised: a {kind} has no traffic lights; expected false")
        build = on_ramp_model if kind == "on_ramp" else off_ramp_model
        lengths = {
            "upstream_length": road.arm_length,
            "downstream_length": road.arm_length,
            ("accel_length" if kind == "on_ramp" else "decel_length"): road.merge_length,
        }
        return build(
            num_lanes=road.num_lanes,
            lane_width=road.lane_width,
            ramp_length=road.ramp_length,
            ramp_angle=road.ramp_angle,
            junction_length=RAMP_JUNCTION_M,
            taper_length=RAMP_TAPER_M,
            speed_limit=road.speed_limit,
            ramp_speed_limit=0.8 * road.speed_limit if turn is None else turn,
            name=kind,
            **lengths,  # type: ignore[arg-type]
        )
    raise UrbanError(f"kind: expected one of {list(URBAN_KINDS)}, got {kind!r}")
