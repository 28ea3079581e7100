"""OpenDRIVE (.xodr) maps: parse a file into a typed model, build the lane graph, cache, write.

Pipeline
--------
``read_opendrive(path) -> OdrMap`` (frozen dataclasses: roads, lane sections, lanes, junctions,
signals, controllers) ``-> build_lane_graph(model) -> sim.road.LaneGraph``.
:func:`load_lane_graph` does both with a cache of the compiled graph keyed by the file's content
hash (an ``.npz`` written atomically; an unreadable or inconsistent entry is rebuilt, never
trusted). :func:`write_opendrive` writes a model back as OpenDRIVE (CARLA's
``Client.generate_opendrive_world`` loads it); :func:`model_from_segments` makes the model of a
procedural road, so every map, procedural or loaded, can be exported.

Why not a maintained parser
---------------------------
``pyxodr`` 0.1.3 (PyPI) fails on all five CARLA towns ("Arc seems to be going in wrong
direction", IndexError) and on 21 of the 79 test maps in total. Its fork ``pyxodr-omega-prime``
0.1.5 loads 71 of 79 including the towns, but takes 2.3-10 s per town at 1 m resolution (the
budget is well under 2 s), exposes lane-level junction links only as Python object graphs, and
reads neither speed limits, signals, controllers nor the traffic rule (evaluation and numbers:
docs/maps.md). This module is written against the OpenDRIVE 1.4-1.7 specification, vectorised
with numpy; lxml parses (line numbers for errors).

Model (OpenDRIVE 1.7, sections 7-9)
-----------------------------------
Reference line (planView), by geometry of start ``(x0, y0, hdg)`` and local length ``u``:

- ``line``: ``x = x0 + u cos hdg``, ``y = y0 + u sin hdg``, curvature 0.
- ``arc`` (curvature ``k`` [1/m], + left): heading ``h = hdg + k u``,
  ``x = x0 + (sin h - sin hdg) / k``, ``y = y0 - (cos h - cos hdg) / k``.
- ``spiral`` (clothoid, ``curvStart`` k0 to ``curvEnd`` k1 over ``length`` L):
  ``kappa(u) = k0 + c u`` with ``c = (k1 - k0) / L`` [1/m^2],
  ``h(u) = hdg + k0 u + c u^2 / 2``, position ``∫ (cos h, sin h) du`` by the trapezoid rule on a
  ``SPIRAL_STEP_M`` grid (error ~ step^2 kappa / 12: sub-micrometre).
- ``poly3``: local ``v(p) = a + b p + c p^2 + d p^3`` at local ``u = p``, rotated by hdg; ``p``
  of an arc length from a dense arc-length table.
- ``paramPoly3``: ``U(p), V(p)`` cubics, ``p = u`` (pRange ``arcLength``) or ``p = u / L``
  (``normalized``, the default); heading ``hdg + atan2(V', U')``, curvature
  ``(U' V'' - V' U'') / (U'^2 + V'^2)^(3/2)``.

Lanes: ``t`` is the lateral coordinate, + left of the reference line. The lane offset
``o(s)`` and each lane's width ``w(ds)`` are piecewise cubics ``a + b ds + c ds^2 + d ds^3``
(``ds`` from the entry's start; widths relative to the section start plus ``sOffset``). Lane
``i > 0`` spans ``o + sum_{0<j<i} w_j`` to ``o + sum_{0<j<=i} w_j``; right lanes mirror it. A lane
centre at ``t(s)`` on a reference line of heading ``h`` and curvature ``k`` is
``p(s) + t n(s)`` with ``n = (-sin h, cos h)``, heading ``h + atan2(t', 1 - k t)``.

Direction of travel: in right-hand traffic (``rule="RHT"``, the default) right lanes (id < 0)
run along +s and left lanes against it; ``rule="LHT"`` swaps that. Lanes that run against s are
stored reversed, so every lane graph lane runs in its direction of travel; their ``s_ref`` is
measured from the section end (so it still grows along the lane) and a spec position
``(road, lane, s)`` still means the file's reference ``s``
(:meth:`sim.road.LaneGraph.lane_index`).

Links: lane predecessor/successor ids between consecutive sections and across road links (with
``contactPoint``), and junction ``connection``/``laneLink`` entries, are first collected as
undirected joints between lane *ends*; a joint becomes a successor edge from the lane that
leaves at that end to the lane that enters there (a joint between two exits or two entries is a
direction conflict in the file and is dropped). Left/right neighbours are the adjacent lanes of
the same section, type and direction.

Lane graph contents: driving-type lanes (``driving``, ``entry``, ``exit``, ``onRamp``,
``offRamp``, ``connectingRamp``, ``bidirectional``) as :attr:`LaneType.DRIVING`, sidewalks as
:attr:`LaneType.SIDEWALK` (for pedestrians later). Other types (shoulder, border, parking,
median, curb, none, ...) only bound the drivable area: ``left_edge``/``right_edge`` of a driving
lane reach to the outer edges of the contiguous run of driving lanes around it (across the centre
line on two-way roads). Speed limit: the lane's ``speed`` entry, else the road ``type/speed``,
else, on a junction's connecting road, the limit where its predecessor (else successor) road
meets it (CARLA towns give no limit inside junctions: a highway ramp keeps the highway's), else
``default_speed_mps``. Elevation, superelevation and road marks are ignored (the simulator
is flat). Signals and controllers are parsed into :class:`Signal`/:class:`Controller`.

Road ids: the lane graph stores int32 road ids. Numeric ids are kept; non-numeric ids
(``"Kalle"``) get ids above the largest numeric one, in file order (:attr:`OdrRoad.num_id`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from sim import road as R

F64 = NDArray[np.float64]

LOADER_VERSION = 3  # bump when the compiled graph of a given file changes (invalidates caches)
REF_SAMPLE_M = 0.5  # [m] lane polyline spacing before resampling: chord error < 7 mm at R = 5 m
SPIRAL_STEP_M = 0.01  # [m] clothoid integration grid (trapezoid error ~1e-9 m)
SLIVER_M = 0.05  # [m] shorter lane sections (numerical slivers in CARLA exports, 1 mm - 3 cm)
# carry no lane: links pass through them (a gap below the 5 cm link tolerance)
MIN_LANE_WIDTH_M = 0.05  # [m] a lane never wider than this is a placeholder, not a lane
DEFAULT_SPEED_LIMIT_MPS = 50.0 / 3.6  # [m/s] 50 km/h, the usual urban default limit
SPEED_UNITS = {"m/s": 1.0, "km/h": 1.0 / 3.6, "mph": 0.44704}  # to m/s
DRIVING_TYPES = frozenset(
    {"driving", "entry", "exit", "onRamp", "offRamp", "connectingRamp", "bidirectional"}
)
SIDEWALK_TYPES = frozenset({"sidewalk"})
GEOMETRY_KINDS = ("line", "arc", "spiral", "poly3", "paramPoly3")


class OpenDriveError(ValueError):
    """A map file is malformed or uses something unsupported; names file, element and line."""


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poly3:
    """``a + b ds + c ds^2 + d ds^3`` from ``s0`` on (widths: s0 is the section-relative
    sOffset; lane offsets: the road s)."""

    s0: float
    a: float
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0


@dataclass(frozen=True)
class Geometry:
    """One planView geometry; ``params`` by kind: arc (k,), spiral (k0, k1), poly3 (a, b, c, d),
    paramPoly3 (aU, bU, cU, dU, aV, bV, cV, dV, 1 if pRange normalized else 0)."""

    s: float
    x: float
    y: float
    hdg: float
    length: float
    kind: Literal["line", "arc", "spiral", "poly3", "paramPoly3"]
    params: tuple[float, ...] = ()


@dataclass(frozen=True)
class OdrLane:
    """One lane of a lane section; ``speeds`` are (sOffset [m], max [m/s])."""

    id: int
    type: str
    widths: tuple[Poly3, ...]
    predecessor: int | None = None
    successor: int | None = None
    speeds: tuple[tuple[float, float], ...] = ()
    level: bool = False


@dataclass(frozen=True)
class LaneSection:
    """Lanes sharing the reference coordinate from ``s`` to the next section; sorted by id
    descending (left-most first), centre lane 0 excluded."""

    s: float
    lanes: tuple[OdrLane, ...]


@dataclass(frozen=True)
class RoadLink:
    element_type: Literal["road", "junction"]
    element_id: str
    contact_point: Literal["start", "end"] | None = None


@dataclass(frozen=True)
class Signal:
    """A signal on a road (traffic lights: ``dynamic``); ``lanes`` from its ``validity``
    (inclusive id range) or empty (all); ``controllers`` that list it."""

    id: str
    road: str
    s: float
    t: float
    dynamic: bool
    orientation: str
    type: str
    subtype: str
    name: str = ""
    lanes: tuple[tuple[int, int], ...] = ()
    controllers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Controller:
    id: str
    name: str
    sequence: int | None
    signal_ids: tuple[str, ...]


@dataclass(frozen=True)
class OdrRoad:
    """One road; ``speeds`` are road ``type`` entries (s [m], max [m/s] or None: no limit)."""

    id: str
    num_id: int
    length: float
    junction: str
    rule: Literal["RHT", "LHT"]
    geometry: tuple[Geometry, ...]
    lane_offsets: tuple[Poly3, ...]
    sections: tuple[LaneSection, ...]
    predecessor: RoadLink | None = None
    successor: RoadLink | None = None
    name: str = ""
    speeds: tuple[tuple[float, str, float | None], ...] = ()  # (s, road type, max m/s)
    signals: tuple[Signal, ...] = ()


@dataclass(frozen=True)
class Connection:
    id: str
    incoming_road: str
    connecting_road: str
    contact_point: Literal["start", "end"]
    lane_links: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Junction:
    id: str
    name: str
    connections: tuple[Connection, ...]
    type: str = "default"
    controllers: tuple[str, ...] = ()  # ids of the controllers (traffic lights) it uses


@dataclass(frozen=True)
class OdrMap:
    """A parsed OpenDRIVE file."""

    name: str
    roads: tuple[OdrRoad, ...]
    junctions: tuple[Junction, ...] = ()
    controllers: tuple[Controller, ...] = ()
    rev_minor: int = 4
    source: str = ""

    @property
    def signals(self) -> tuple[Signal, ...]:
        return tuple(sg for rd in self.roads for sg in rd.signals)

    def road(self, road_id: str | int) -> OdrRoad:
        """The road of a file id (str) or lane-graph id (int); KeyError lists what exists."""
        for rd in self.roads:
            if rd.id == str(road_id) or (isinstance(road_id, int) and rd.num_id == road_id):
                return rd
        raise KeyError(f"road {road_id!r} not in map '{self.name}' ({len(self.roads)} roads)")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


class _Reader:
    """Element access with errors that name the file, element path and line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def where(self, el: Any) -> str:
        line = getattr(el, "sourceline", None)
        return f"{self.path}: <{el.tag}>" + (f" (line {line})" if line else "")

    def fail(self, el: Any, what: str) -> OpenDriveError:
        return OpenDriveError(f"{self.where(el)}: {what}")

    def text(self, el: Any, attr: str, default: str | None = None) -> str:
        v = el.get(attr)
        if v is None:
            if default is None:
                raise self.fail(el, f"missing attribute '{attr}'")
            return default
        return str(v)

    def num(self, el: Any, attr: str, default: float | None = None) -> float:
        v = el.get(attr)
        if v is None or (v == "" and default is not None):
            if default is None:
                raise self.fail(el, f"missing attribute '{attr}' (expected a number)")
            return default
        try:
            x = float(v)
        except ValueError:
            raise self.fail(el, f"attribute {attr}={v!r}: expected a number") from None
        if not math.isfinite(x):
            raise self.fail(el, f"attribute {attr}={v!r}: expected a finite number")
        return x

    def int_(self, el: Any, attr: str) -> int:
        v = self.num(el, attr)
        if v != int(v):
            raise self.fail(el, f"attribute {attr}={el.get(attr)!r}: expected an integer")
        return int(v)

    def poly(self, el: Any, s_attr: str) -> Poly3:
        return Poly3(
            self.num(el, s_attr, 0.0),
            self.num(el, "a", 0.0),
            self.num(el, "b", 0.0),
            self.num(el, "c", 0.0),
            self.num(el, "d", 0.0),
        )


def _parse_xml(path: Path) -> Any:
    """The root element (lxml for line numbers in errors)."""
    from lxml import etree  # type: ignore[import-untyped]

    try:
        return etree.parse(str(path)).getroot()
    except etree.XMLSyntaxError as e:
        raise OpenDriveError(f"{path}: malformed XML: {e}") from None
    except OSError as e:
        raise OpenDriveError(f"{path}: cannot read: {e}") from None


def _speed(rd: _Reader, el: Any) -> float | None:
    mx = rd.text(el, "max")
    if mx in ("no limit", "undefined"):
        return None
    unit = el.get("unit", "m/s")
    if unit not in SPEED_UNITS:
        raise rd.fail(el, f"speed unit {unit!r}: expected one of {sorted(SPEED_UNITS)}")
    v = rd.num(el, "max") * SPEED_UNITS[unit]
    if v <= 0:
        raise rd.fail(el, f"speed max={mx}: expected > 0")
    return v


def _geometry(rd: _Reader, g: Any) -> Geometry:
    kids = [c for c in g if isinstance(c.tag, str)]
    if len(kids) != 1:
        raise rd.fail(g, f"expected one shape element ({', '.join(GEOMETRY_KINDS)})")
    k = kids[0]
    length = rd.num(g, "length")
    if length < 0:
        raise rd.fail(g, f"length={length}: expected >= 0")
    common = (rd.num(g, "s"), rd.num(g, "x"), rd.num(g, "y"), rd.num(g, "hdg", 0.0), length)
    if k.tag == "line":
        return Geometry(*common, "line")
    if k.tag == "arc":
        return Geometry(*common, "arc", (rd.num(k, "curvature"),))
    if k.tag == "spiral":
        return Geometry(*common, "spiral", (rd.num(k, "curvStart"), rd.num(k, "curvEnd")))
    if k.tag == "poly3":
        return Geometry(*common, "poly3", tuple(rd.num(k, c) for c in "abcd"))
    if k.tag == "paramPoly3":
        pr = k.get("pRange", "normalized")
        if pr not in ("normalized", "arcLength"):
            raise rd.fail(k, f"pRange={pr!r}: expected 'normalized' or 'arcLength'")
        coeffs = tuple(rd.num(k, f"{c}{ax}") for ax in "UV" for c in "abcd")
        return Geometry(*common, "paramPoly3", (*coeffs, 1.0 if pr == "normalized" else 0.0))
    raise rd.fail(k, f"unsupported geometry <{k.tag}>: expected one of {', '.join(GEOMETRY_KINDS)}")


def _link(rd: _Reader, el: Any) -> RoadLink | None:
    if el is None:
        return None
    et = rd.text(el, "elementType")
    if et not in ("road", "junction"):
        raise rd.fail(el, f"elementType={et!r}: expected 'road' or 'junction'")
    cp = el.get("contactPoint")
    if et == "road" and cp not in ("start", "end"):
        raise rd.fail(el, f"contactPoint={cp!r}: a road link needs 'start' or 'end'")
    return RoadLink(et, rd.text(el, "elementId"), cp)  # type: ignore[arg-type]


def _lane(rd: _Reader, el: Any) -> OdrLane:
    lid = rd.int_(el, "id")
    if el.find("border") is not None and el.find("width") is None:
        raise rd.fail(el.find("border"), "lane <border> geometry is unsupported (use <width>)")
    widths = tuple(sorted((rd.poly(w, "sOffset") for w in el.findall("width")), key=lambda p: p.s0))
    if lid != 0 and not widths:
        raise rd.fail(el, f"lane {lid} has no <width> entry")
    pred = el.find("link/predecessor")
    succ = el.find("link/successor")
    speeds = []
    for sp in el.findall("speed"):
        v = _speed(rd, sp)
        if v is not None:
            speeds.append((rd.num(sp, "sOffset", 0.0), v))
    return OdrLane(
        lid,
        el.get("type", "none"),
        widths,
        None if pred is None else rd.int_(pred, "id"),
        None if succ is None else rd.int_(succ, "id"),
        tuple(sorted(speeds)),
        el.get("level", "false") in ("true", "1"),
    )


def _signal(rd: _Reader, el: Any, road_id: str) -> Signal:
    lanes = tuple((rd.int_(v, "fromLane"), rd.int_(v, "toLane")) for v in el.findall("validity"))
    return Signal(
        id=rd.text(el, "id"),
        road=road_id,
        s=rd.num(el, "s"),
        t=rd.num(el, "t", 0.0),
        dynamic=el.get("dynamic", "no") == "yes",
        orientation=el.get("orientation", "+"),
        type=el.get("type", ""),
        subtype=el.get("subtype", ""),
        name=el.get("name", ""),
        lanes=lanes,
    )


def read_opendrive(path: str | Path) -> OdrMap:
    """Parse an OpenDRIVE file into an :class:`OdrMap` (see module docstring).

    Raises:
        OpenDriveError: malformed XML, a missing attribute or an unsupported element; the
            message names the file, the element and its line.
    """
    p = Path(path)
    rd = _Reader(p)
    root = _parse_xml(p)
    if root.tag != "OpenDRIVE":
        raise rd.fail(root, "root element must be <OpenDRIVE>")
    header = root.find("header")
    rev_minor = 4 if header is None else int(rd.num(header, "revMinor", 4))
    roads_xml = root.findall("road")
    if not roads_xml:
        raise rd.fail(root, "no <road> element")
    numeric: list[int | None] = []
    for r in roads_xml:
        rid = rd.text(r, "id")
        try:
            n = int(rid)
            numeric.append(n if -(2**31) <= n < 2**31 else None)  # lane graph ids are int32
        except ValueError:
            numeric.append(None)
    next_id = max([n for n in numeric if n is not None], default=-1) + 1
    roads: list[OdrRoad] = []
    seen: set[str] = set()
    for r, num in zip(roads_xml, numeric, strict=True):
        rid = rd.text(r, "id")
        if rid in seen:
            raise rd.fail(r, f"duplicate road id {rid!r}")
        seen.add(rid)
        if num is None:
            num, next_id = next_id, next_id + 1
        length = rd.num(r, "length")
        rule = r.get("rule", "RHT")
        if rule not in ("RHT", "LHT"):
            raise rd.fail(r, f"rule={rule!r}: expected 'RHT' or 'LHT'")
        geoms = tuple(_geometry(rd, g) for g in r.findall("planView/geometry"))
        if not geoms:
            raise rd.fail(r, f"road {rid}: no planView/geometry")
        geoms = tuple(sorted(geoms, key=lambda g: g.s))
        secs_xml = r.findall("lanes/laneSection")
        if not secs_xml:
            raise rd.fail(r, f"road {rid}: no lanes/laneSection")
        sections = []
        for sx in sorted(secs_xml, key=lambda e: rd.num(e, "s")):
            s0 = rd.num(sx, "s")
            lanes = [
                _lane(rd, ln) for side in ("left", "right") for ln in sx.findall(f"{side}/lane")
            ]
            sections.append(LaneSection(s0, tuple(sorted(lanes, key=lambda ln: -ln.id))))
        speeds = []
        for tp in r.findall("type"):
            sp = tp.find("speed")
            speeds.append(
                (rd.num(tp, "s", 0.0), tp.get("type", ""), None if sp is None else _speed(rd, sp))
            )
        roads.append(
            OdrRoad(
                id=rid,
                num_id=num,
                length=length,
                junction=r.get("junction", "-1"),
                rule=rule,  # type: ignore[arg-type]
                geometry=geoms,
                lane_offsets=tuple(
                    sorted(
                        (rd.poly(o, "s") for o in r.findall("lanes/laneOffset")), key=lambda p: p.s0
                    )
                ),
                sections=tuple(sections),
                predecessor=_link(rd, r.find("link/predecessor")),
                successor=_link(rd, r.find("link/successor")),
                name=r.get("name", ""),
                speeds=tuple(sorted(speeds, key=lambda t: t[0])),
                signals=tuple(_signal(rd, sg, rid) for sg in r.findall("signals/signal")),
            )
        )
    junctions = []
    for j in root.findall("junction"):
        conns = []
        for c in j.findall("connection"):
            cr = c.get("connectingRoad") or c.get("linkedRoad")
            if cr is None:
                raise rd.fail(c, "missing attribute 'connectingRoad' (or 'linkedRoad')")
            cp = rd.text(c, "contactPoint")
            if cp not in ("start", "end"):
                raise rd.fail(c, f"contactPoint={cp!r}: expected 'start' or 'end'")
            links = tuple((rd.int_(ll, "from"), rd.int_(ll, "to")) for ll in c.findall("laneLink"))
            conns.append(
                Connection(c.get("id", ""), rd.text(c, "incomingRoad"), cr, cp, links)  # type: ignore[arg-type]
            )
        junctions.append(
            Junction(
                rd.text(j, "id"),
                j.get("name", ""),
                tuple(conns),
                j.get("type", "default"),
                tuple(rd.text(c, "id") for c in j.findall("controller")),
            )
        )
    controllers = []
    by_signal: dict[str, list[str]] = {}
    for c in root.findall("controller"):
        cid = rd.text(c, "id")
        sig = tuple(dict.fromkeys(rd.text(x, "signalId") for x in c.findall("control")))
        seq = c.get("sequence")
        controllers.append(
            Controller(cid, c.get("name", ""), None if seq is None else int(seq), sig)
        )
        for s in sig:
            by_signal.setdefault(s, []).append(cid)
    if by_signal:
        roads = [
            dataclasses.replace(
                rd_,
                signals=tuple(
                    dataclasses.replace(sg, controllers=tuple(by_signal.get(sg.id, ())))
                    for sg in rd_.signals
                ),
            )
            for rd_ in roads
        ]
    name = "" if header is None else header.get("name", "")
    return OdrMap(
        name=name or p.stem,
        roads=tuple(roads),
        junctions=tuple(junctions),
        controllers=tuple(controllers),
        rev_minor=rev_minor,
        source=str(p),
    )


# ---------------------------------------------------------------------------------------------
# Geometry evaluation
# ---------------------------------------------------------------------------------------------


def _cubic(c: Sequence[float], p: F64) -> tuple[F64, F64, F64]:
    """Value, first and second derivative of ``c0 + c1 p + c2 p^2 + c3 p^3``."""
    a, b, cc, d = c
    v = a + p * (b + p * (cc + p * d))
    d1 = b + p * (2.0 * cc + 3.0 * d * p)
    d2 = 2.0 * cc + 6.0 * d * p
    return v, d1, d2


def eval_geometry(g: Geometry, u: F64) -> tuple[F64, F64, F64, F64]:
    """Pose of local lengths ``u`` [m] on one geometry: (x, y, heading, curvature)."""
    c0, s0 = math.cos(g.hdg), math.sin(g.hdg)
    if g.kind == "line" or (g.kind == "arc" and abs(g.params[0]) < 1e-12):
        z = np.zeros_like(u)
        return g.x + u * c0, g.y + u * s0, g.hdg + z, z
    if g.kind == "arc":
        k = g.params[0]
        h = g.hdg + k * u
        return g.x + (np.sin(h) - s0) / k, g.y - (np.cos(h) - c0) / k, h, np.full_like(u, k)
    if g.kind == "spiral":
        k0, k1 = g.params
        if g.length <= 0:
            z = np.zeros_like(u)
            return g.x + z, g.y + z, g.hdg + z, k0 + z
        c = (k1 - k0) / g.length
        n = max(2, math.ceil(g.length / SPIRAL_STEP_M) + 1)
        v = np.linspace(0.0, g.length, n)
        th = g.hdg + k0 * v + 0.5 * c * v * v
        dv = v[1] - v[0]
        cs, sn = np.cos(th), np.sin(th)
        xs = np.concatenate([[0.0], np.cumsum(0.5 * (cs[1:] + cs[:-1]) * dv)])
        ys = np.concatenate([[0.0], np.cumsum(0.5 * (sn[1:] + sn[:-1]) * dv)])
        uc = np.clip(u, 0.0, g.length)
        return (
            g.x + np.interp(uc, v, xs) + (u - uc) * math.cos(th[-1]),
            g.y + np.interp(uc, v, ys) + (u - uc) * math.sin(th[-1]),
            g.hdg + k0 * u + 0.5 * c * u * u,
            k0 + c * u,
        )
    if g.kind == "poly3":
        # local u is the parameter; arc length from a dense table
        n = max(2, math.ceil(g.length / SPIRAL_STEP_M) + 1)
        p = np.linspace(0.0, g.length, n)
        _, dv, _ = _cubic(g.params, p)
        sp = np.sqrt(1.0 + dv * dv)
        arc = np.concatenate([[0.0], np.cumsum(0.5 * (sp[1:] + sp[:-1]) * np.diff(p))])
        pu = np.interp(u, arc, p)
        cu: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0)
        cv = g.params
        norm = 1.0
    else:  # paramPoly3
        cu, cv = g.params[0:4], g.params[4:8]
        norm = g.length if g.params[8] > 0.5 and g.length > 0 else 1.0
        pu = u / norm
    U, dU, ddU = _cubic(cu, pu)
    V, dV, ddV = _cubic(cv, pu)
    h = g.hdg + np.arctan2(dV, dU)
    speed2 = np.maximum(dU * dU + dV * dV, 1e-18)
    kappa = (dU * ddV - dV * ddU) / speed2**1.5
    return g.x + U * c0 - V * s0, g.y + U * s0 + V * c0, h, kappa


def eval_reference(road: OdrRoad, s: F64) -> tuple[F64, F64, F64, F64]:
    """Reference-line pose at road coordinates ``s`` [m]: (x, y, heading, curvature)."""
    starts = np.array([g.s for g in road.geometry])
    idx = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(starts) - 1)
    x, y, h, k = (np.empty_like(s) for _ in range(4))
    for i in np.unique(idx):
        m = idx == i
        g = road.geometry[int(i)]
        x[m], y[m], h[m], k[m] = eval_geometry(g, s[m] - g.s)
    return x, y, h, k


def eval_poly(polys: Sequence[Poly3], ds: F64) -> tuple[F64, F64]:
    """Piecewise cubic (entries by ``s0``) at ``ds``: (value, derivative). 0 where none."""
    if not polys:
        z = np.zeros_like(ds)
        return z, z.copy()
    starts = np.array([p.s0 for p in polys])
    idx = np.clip(np.searchsorted(starts, ds + 1e-9, side="right") - 1, 0, len(polys) - 1)
    coef = np.array([[p.a, p.b, p.c, p.d] for p in polys])[idx]
    t = ds - starts[idx]
    v = coef[:, 0] + t * (coef[:, 1] + t * (coef[:, 2] + t * coef[:, 3]))
    d = coef[:, 1] + t * (2.0 * coef[:, 2] + 3.0 * coef[:, 3] * t)
    return v, d


def section_end(road: OdrRoad, k: int) -> float:
    """Road s where lane section ``k`` ends."""
    return road.sections[k + 1].s if k + 1 < len(road.sections) else road.length


def lane_t(road: OdrRoad, k: int, s: F64) -> dict[int, tuple[F64, F64, F64, F64]]:
    """Per lane id of section ``k``: (inner edge t, outer edge t, width, d(centre t)/ds) at
    road coordinates ``s`` (lateral t [m], + left of the reference line)."""
    sec = road.sections[k]
    # an offset entry starting at the section end belongs to the next section (CARLA starts a
    # new offset exactly there, with new lane ids)
    s_end = section_end(road, k)
    offsets = [o for o in road.lane_offsets if o.s0 < s_end - 1e-9] or list(road.lane_offsets[:1])
    off, doff = eval_poly(offsets, s)
    out: dict[int, tuple[F64, F64, F64, F64]] = {}
    for sign in (1, -1):
        inner, dinner = off.copy(), doff.copy()
        side = sorted((ln for ln in sec.lanes if ln.id * sign > 0), key=lambda ln: abs(ln.id))
        for ln in side:
            w, dw = eval_poly(ln.widths, s - sec.s)
            outer = inner + sign * w
            out[ln.id] = (inner, outer, w, dinner + sign * 0.5 * dw)
            inner, dinner = outer, dinner + sign * dw
    return out


def lane_forward(road: OdrRoad, lane_id: int) -> bool:
    """Whether traffic on ``lane_id`` runs along +s (right lanes in RHT, left lanes in LHT)."""
    return (lane_id < 0) == (road.rule == "RHT")


# ---------------------------------------------------------------------------------------------
# Lane graph
# ---------------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    """What building a lane graph dropped or could not link (for tests and the bench)."""

    lanes: int = 0
    skipped_sections: list[str] = field(default_factory=list)
    unresolved_links: list[str] = field(default_factory=list)
    direction_conflicts: list[str] = field(default_factory=list)
    discontinuous_links: list[str] = field(default_factory=list)


_End = tuple[int, int, int, str]  # (road index, section index, lane id, 'start' | 'end')


def _speed_at(road: OdrRoad, sec: LaneSection, ln: OdrLane, s: F64, default: float) -> F64:
    out = np.full_like(s, default)
    if road.speeds:
        starts = np.array([t[0] for t in road.speeds])
        vals = np.array([np.nan if t[2] is None else t[2] for t in road.speeds])
        idx = np.clip(np.searchsorted(starts, s + 1e-9, side="right") - 1, 0, len(starts) - 1)
        v = vals[idx]
        out = np.where(np.isnan(v), out, v)
    if ln.speeds:
        starts = np.array([t[0] for t in ln.speeds])
        vals = np.array([t[1] for t in ln.speeds])
        idx = np.searchsorted(starts, s - sec.s + 1e-9, side="right") - 1
        out = np.where(idx >= 0, vals[np.maximum(idx, 0)], out)
    return out


def _junction_speed(
    model: OdrMap, road: OdrRoad, road_idx: dict[str, int], default: float
) -> float:
    """The limit a connecting road without its own takes from the road it continues."""
    if road.junction == "-1" or any(v is not None for _, _, v in road.speeds):
        return default
    for link in (road.predecessor, road.successor):
        if link is None or link.element_type != "road" or link.element_id not in road_idx:
            continue
        other = model.roads[road_idx[link.element_id]]
        at = 0.0 if link.contact_point == "start" else other.length
        limits = [v for s, _, v in other.speeds if s <= at + 1e-6]
        if limits and limits[-1] is not None:
            return limits[-1]
    return default


def build_lane_graph(
    model: OdrMap,
    spacing: float = R.LANE_SPACING_M,
    default_speed_mps: float = DEFAULT_SPEED_LIMIT_MPS,
    report: BuildReport | None = None,
) -> R.LaneGraph:
    """The :class:`sim.road.LaneGraph` of a parsed map (module docstring: model and rules).

    Args:
        model: from :func:`read_opendrive` or :func:`model_from_segments`.
        spacing: lane sample spacing [m].
        default_speed_mps: the limit where the file gives none [m/s].
        report: filled with what was dropped (sliver sections, links to missing lanes,
            direction conflicts).

    Raises:
        OpenDriveError: a lane has more than ``MAX_LINKS`` successors or predecessors.
    """
    rep = report if report is not None else BuildReport()
    road_idx = {rd.id: i for i, rd in enumerate(model.roads)}
    drafts: list[R._LaneDraft] = []
    draft_of: dict[tuple[int, int, int], int] = {}
    forward: list[bool] = []
    sec_len: list[float] = []
    sec_road: list[int] = []
    sec_s0: list[float] = []
    road_default = [_junction_speed(model, rd, road_idx, default_speed_mps) for rd in model.roads]
    for ri, road in enumerate(model.roads):
        for k, sec in enumerate(road.sections):
            s0, s1 = sec.s, section_end(road, k)
            if s1 - s0 < SLIVER_M:
                rep.skipped_sections.append(f"road {road.id} section {k} (s={s0:.3f})")
                continue
            kinds = {
                ln.id: (
                    R.LaneType.DRIVING
                    if ln.type in DRIVING_TYPES
                    else R.LaneType.SIDEWALK
                    if ln.type in SIDEWALK_TYPES
                    else None
                )
                for ln in sec.lanes
            }
            if not any(v is not None for v in kinds.values()):
                continue
            n = max(2, math.ceil((s1 - s0) / REF_SAMPLE_M) + 1)
            s = np.linspace(s0, s1, n)
            rx, ry, rh, rk = eval_reference(road, s)
            nx, ny = -np.sin(rh), np.cos(rh)
            ts = lane_t(road, k, s)
            # contiguous runs of drivable lanes, ordered left-most (largest id) first
            order = [ln.id for ln in sec.lanes]
            run_hi: dict[int, F64] = {}
            run_lo: dict[int, F64] = {}
            i = 0
            while i < len(order):
                if kinds[order[i]] != R.LaneType.DRIVING:
                    i += 1
                    continue
                j = i
                while j + 1 < len(order) and kinds[order[j + 1]] == R.LaneType.DRIVING:
                    j += 1
                hi = np.maximum(ts[order[i]][0], ts[order[i]][1])
                lo = np.minimum(ts[order[j]][0], ts[order[j]][1])
                for lid in order[i : j + 1]:
                    run_hi[lid], run_lo[lid] = hi, lo
                i = j + 1
            si = len(sec_len)
            sec_len.append(s1 - s0)
            sec_road.append(road.num_id)
            sec_s0.append(s0)
            for ln in sec.lanes:
                lt = kinds[ln.id]
                if lt is None:
                    continue
                inner, outer, w, dtc = ts[ln.id]
                if float(np.max(w)) < MIN_LANE_WIDTH_M:
                    continue
                tc = 0.5 * (inner + outer)
                fwd = lane_forward(road, ln.id)
                h = rh + np.arctan2(dtc, 1.0 - rk * tc)
                if lt == R.LaneType.DRIVING:
                    left = run_hi[ln.id] - tc
                    right = tc - run_lo[ln.id]
                else:
                    left = right = 0.5 * w
                x, y = rx + tc * nx, ry + tc * ny
                sref = s - s0
                spd = _speed_at(road, sec, ln, s, road_default[ri])
                if not fwd:
                    x, y, w, spd = x[::-1], y[::-1], w[::-1], spd[::-1]
                    h = h[::-1] + np.pi
                    left, right = right[::-1], left[::-1]
                    sref = (s1 - s)[::-1]
                hu = np.unwrap(h)
                seg = np.hypot(np.diff(x), np.diff(y))
                sl = np.concatenate([[0.0], np.cumsum(seg)])
                curv = np.gradient(hu, sl) if np.all(seg > 1e-9) else np.zeros_like(hu)
                draft_of[(ri, k, ln.id)] = len(drafts)
                forward.append(fwd)
                drafts.append(
                    R._LaneDraft(
                        x=x,
                        y=y,
                        heading=hu,
                        s_ref=sref,
                        width=np.maximum(w, 0.0),
                        curvature=curv,
                        speed_limit=spd,
                        left_edge=np.maximum(left, 0.0),
                        right_edge=np.maximum(right, 0.0),
                        section=si,
                        odr_road=road.num_id,
                        odr_lane=ln.id,
                        lane_type=int(lt),
                    )
                )
    if not drafts:
        raise OpenDriveError(f"{model.source or model.name}: no driving or sidewalk lane")
    _link_drafts(model, road_idx, draft_of, drafts, forward, rep)
    _bridge_slivers(drafts, rep)
    rep.lanes = len(drafts)
    for d in drafts:
        for kind, links in (("successors", d.successors), ("predecessors", d.predecessors)):
            if len(links) > R.MAX_LINKS:
                raise OpenDriveError(
                    f"{model.source or model.name}: road {d.odr_road} lane {d.odr_lane} has "
                    f"{len(links)} {kind}; the lane graph holds at most {R.MAX_LINKS}"
                )
    graph = R.assemble(drafts, sec_len, sec_road, sec_s0, model.name, spacing)
    return dataclasses.replace(graph, lane_reversed=np.array([not f for f in forward], np.bool_))


def _link_drafts(
    model: OdrMap,
    road_idx: dict[str, int],
    draft_of: dict[tuple[int, int, int], int],
    drafts: list[R._LaneDraft],
    forward: list[bool],
    rep: BuildReport,
) -> None:
    """Successor/predecessor and left/right links of the drafts (module docstring: Links)."""
    joints: set[tuple[_End, _End]] = set()

    def sec_at(ri: int, cp: str) -> int:
        return 0 if cp == "start" else len(model.roads[ri].sections) - 1

    def join(a: _End, b: _End) -> None:
        joints.add((a, b) if a <= b else (b, a))

    for ri, road in enumerate(model.roads):
        last = len(road.sections) - 1
        for k, sec in enumerate(road.sections):
            for ln in sec.lanes:
                if ln.successor is not None and k < last:
                    join((ri, k, ln.id, "end"), (ri, k + 1, ln.successor, "start"))
                if ln.predecessor is not None and k > 0:
                    join((ri, k, ln.id, "start"), (ri, k - 1, ln.predecessor, "end"))
        for link, end, k in (
            (road.successor, "end", last),
            (road.predecessor, "start", 0),
        ):
            if link is None or link.element_type != "road":
                continue
            oi = road_idx.get(link.element_id)
            if oi is None:
                rep.unresolved_links.append(f"road {road.id}: linked road {link.element_id}")
                continue
            cp = link.contact_point or "start"
            for ln in road.sections[k].lanes:
                other = ln.successor if end == "end" else ln.predecessor
                if other is not None:
                    join((ri, k, ln.id, end), (oi, sec_at(oi, cp), other, cp))
    for j in model.junctions:
        for c in j.connections:
            ii, ci = road_idx.get(c.incoming_road), road_idx.get(c.connecting_road)
            if ii is None or ci is None:
                rep.unresolved_links.append(
                    f"junction {j.id} connection {c.id}: road {c.incoming_road} or "
                    f"{c.connecting_road} missing"
                )
                continue
            inc = model.roads[ii]
            ends = [
                e
                for e, lk in (("end", inc.successor), ("start", inc.predecessor))
                if lk is not None and lk.element_type == "junction" and lk.element_id == j.id
            ]
            if len(ends) != 1:
                ends = [_nearest_end(model, ii, ci, c.contact_point)]
            end = ends[0]
            k = sec_at(ii, end)
            for f, t in c.lane_links:
                join((ii, k, f, end), (ci, sec_at(ci, c.contact_point), t, c.contact_point))
    joints = _through_slivers(model, joints)
    succ: dict[int, list[int]] = {}
    for a, b in sorted(joints):
        da, db = draft_of.get(a[:3]), draft_of.get(b[:3])
        if da is None or db is None:
            continue  # a non-lane (shoulder, placeholder) or a dropped sliver section
        if drafts[da].lane_type != drafts[db].lane_type:
            continue
        exit_a = "end" if forward[da] else "start"
        exit_b = "end" if forward[db] else "start"
        if a[3] == exit_a and b[3] != exit_b:
            succ.setdefault(da, []).append(db)
        elif b[3] == exit_b and a[3] != exit_a:
            succ.setdefault(db, []).append(da)
        elif drafts[da].lane_type == R.LaneType.DRIVING:  # sidewalks have no direction
            rep.direction_conflicts.append(f"{a} - {b}")
    for src, dsts in succ.items():
        for dst in dict.fromkeys(dsts):
            drafts[src].successors.append(dst)
            drafts[dst].predecessors.append(src)
    for (ri, k, lid), di in draft_of.items():
        up = lid + 1 if lid != -1 else 1  # the lane on the +t side
        down = lid - 1 if lid != 1 else -1
        left, right = (up, down) if forward[di] else (down, up)
        for attr, nid in (("left", left), ("right", right)):
            ni = draft_of.get((ri, k, nid))
            if (
                ni is not None
                and forward[ni] == forward[di]
                and drafts[ni].lane_type == drafts[di].lane_type
            ):
                setattr(drafts[di], attr, ni)


BRIDGE_MAX_M = 0.2  # [m] link gaps closed by a bridging point: contracted sliver chains only


def _bridge_slivers(drafts: list[R._LaneDraft], rep: BuildReport) -> None:
    """Close the gaps a contracted sliver chain leaves (a few cm) by one point: prepended to
    the successor when it has one predecessor, else appended to the predecessor. Links whose
    lane ends lie more than ``BRIDGE_MAX_M`` apart are removed (``discontinuous_links``)."""

    def put(d: R._LaneDraft, i: int, x: float, y: float, h: float) -> None:
        for name in ("width", "curvature", "speed_limit", "left_edge", "right_edge", "s_ref"):
            v = getattr(d, name)
            setattr(d, name, np.insert(v, i, v[0 if i == 0 else -1]))
        d.x, d.y = np.insert(d.x, i, x), np.insert(d.y, i, y)
        d.heading = np.insert(d.heading, i, h)
        d.heading = np.unwrap(d.heading)

    for a, da in enumerate(drafts):
        for b in list(da.successors):
            db = drafts[b]
            gap = math.hypot(da.x[-1] - db.x[0], da.y[-1] - db.y[0])
            if gap > BRIDGE_MAX_M:
                # the file links lanes that do not meet: a merge lane ending at zero width
                # beside its successor, or a width typo; a vehicle would jump sideways
                da.successors.remove(b)
                db.predecessors.remove(a)
                rep.discontinuous_links.append(
                    f"road {da.odr_road} lane {da.odr_lane} -> road {db.odr_road} lane "
                    f"{db.odr_lane}: ends {gap:.2f} m apart, not linked"
                )
                continue
            if gap < 1e-3:
                continue
            if len(db.predecessors) == 1:
                put(db, 0, float(da.x[-1]), float(da.y[-1]), float(da.heading[-1]))
            elif len(da.successors) == 1:
                put(da, len(da.x), float(db.x[0]), float(db.y[0]), float(db.heading[0]))
            else:
                rep.unresolved_links.append(
                    f"road {da.odr_road} lane {da.odr_lane} -> road {db.odr_road} lane "
                    f"{db.odr_lane}: {gap:.3f} m gap not bridged"
                )


def _through_slivers(model: OdrMap, joints: set[tuple[_End, _End]]) -> set[tuple[_End, _End]]:
    """Joints with sliver sections contracted: lane ends joined through a chain of lanes of
    sections shorter than ``SLIVER_M`` are joined directly."""

    def sliver(e: _End) -> bool:
        rd = model.roads[e[0]]
        return section_end(rd, e[1]) - rd.sections[e[1]].s < SLIVER_M

    partners: dict[_End, list[_End]] = {}
    for a, b in joints:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    out = {(a, b) for a, b in joints if not sliver(a) and not sliver(b)}
    for start in partners:
        if sliver(start):
            continue
        seen: set[_End] = set()
        stack = [p for p in partners[start] if sliver(p)]
        while stack:
            e = stack.pop()
            if e in seen:
                continue
            seen.add(e)
            across: _End = (e[0], e[1], e[2], "start" if e[3] == "end" else "end")
            for f in partners.get(across, []):
                if sliver(f):
                    stack.append(f)
                elif f != start:
                    out.add((start, f) if start <= f else (f, start))
    return out


def _nearest_end(model: OdrMap, ii: int, ci: int, cp: str) -> str:
    """The end of road ``ii`` nearer to connecting road ``ci``'s contact point."""
    c = model.roads[ci]
    px, py, _, _ = eval_reference(c, np.array([0.0 if cp == "start" else c.length]))
    r = model.roads[ii]
    ex, ey, _, _ = eval_reference(r, np.array([0.0, r.length]))
    d = np.hypot(ex - px[0], ey - py[0])
    return "start" if d[0] <= d[1] else "end"


# ---------------------------------------------------------------------------------------------
# Loading with a cache
# ---------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$GENDRIVE_CACHE_DIR/maps`` or ``~/.cache/gendrive/maps``."""
    base = os.environ.get("GENDRIVE_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "gendrive") / "maps"


def _graph_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(R.LaneGraph) if f.init and f.name != "name"]


def cache_key(data: bytes, spacing: float, default_speed_mps: float) -> str:
    """Content hash of a map file plus everything that changes its compiled graph."""
    h = hashlib.sha256(data)
    h.update(f"v{LOADER_VERSION}|{spacing!r}|{default_speed_mps!r}|".encode())
    h.update(",".join(_graph_fields()).encode())
    return h.hexdigest()[:32]


def _save(graph: R.LaneGraph, path: Path) -> None:
    arrays: dict[str, Any] = {}
    for name in _graph_fields():
        v = getattr(graph, name)
        if v is None:
            continue
        arrays[name] = np.asarray(v)
    arrays["__name__"] = np.array(graph.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(path: Path) -> R.LaneGraph:
    """A graph from a cache entry; ValueError when it is unreadable or inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # any unreadable entry: zip, header or dtype errors
        raise ValueError(f"unreadable ({type(e).__name__}: {e})") from None
    name = str(data.pop("__name__", "road"))
    key = str(data.pop("key", ""))
    missing = {f for f in _graph_fields() if f != "key"} - set(data) - {"lane_reversed"}
    if missing:
        raise ValueError(f"missing arrays {sorted(missing)}")
    L = data["lane_start"].shape[0]
    P = data["x"].shape[0]
    if (
        data["lane_npoints"].shape != (L,)
        or int(data["lane_npoints"].sum()) != P
        or data["successors"].shape != (L, R.MAX_LINKS)
        or int(data["lane_start"][-1] + data["lane_npoints"][-1]) != P
    ):
        raise ValueError("inconsistent array shapes")
    g = R.LaneGraph(**data, name=name)
    g = R._with_key(g)
    if key and g.key != key:
        raise ValueError(f"content key {g.key} != stored {key}")
    return g


def load_lane_graph(
    path: str | Path,
    spacing: float = R.LANE_SPACING_M,
    default_speed_mps: float = DEFAULT_SPEED_LIMIT_MPS,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> R.LaneGraph:
    """The lane graph of an OpenDRIVE file, from the cache when its content was seen before.

    Args:
        path: the .xodr file.
        spacing: lane sample spacing [m].
        default_speed_mps: limit where the file gives none [m/s].
        cache_dir: where compiled graphs live (default :func:`default_cache_dir`).
        use_cache: False reads and builds every time and writes nothing.

    Raises:
        OpenDriveError: the file is missing, malformed or unsupported (file, element, line).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise OpenDriveError(f"{p}: cannot read OpenDRIVE map: {e.strerror}") from None
    entry = None
    if use_cache:
        d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        entry = d / f"{p.stem}-{cache_key(data, spacing, default_speed_mps)}.npz"
        if entry.is_file():
            try:
                return _load_cached(entry)
            except ValueError as e:
                warnings.warn(f"map cache {entry}: {e}; rebuilding", stacklevel=2)
    graph = build_lane_graph(read_opendrive(p), spacing, default_speed_mps)
    if entry is not None:
        try:
            _save(graph, entry)
        except OSError as e:
            warnings.warn(f"map cache {entry}: not written ({e.strerror})", stacklevel=2)
    return graph


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return repr(float(v))


def _poly_attrs(el: ET.Element, p: Poly3, s_attr: str) -> None:
    el.set(s_attr, _fmt(p.s0))
    for c in "abcd":
        el.set(c, _fmt(getattr(p, c)))


def _link_el(parent: ET.Element, tag: str, lk: RoadLink | None) -> None:
    if lk is None:
        return
    e = ET.SubElement(parent, tag, elementType=lk.element_type, elementId=lk.element_id)
    if lk.contact_point is not None:
        e.set("contactPoint", lk.contact_point)


def opendrive_xml(model: OdrMap) -> str:
    """The OpenDRIVE 1.4-compatible XML text of a model (what :func:`write_opendrive` writes).

    Every element the model holds is written: header, planView, laneOffset, lane sections with
    lane links, widths and speeds, road types with speed, signals, junction connections with
    lane links, controllers. Road marks (not modelled) are written as a standard solid line on
    the centre lane so viewers draw the reference line.
    """
    root = ET.Element("OpenDRIVE")
    ET.SubElement(
        root,
        "header",
        revMajor="1",
        revMinor=str(model.rev_minor),
        name=model.name,
        version="1.00",
        vendor="gendrive",
    )
    for rd in model.roads:
        r = ET.SubElement(
            root,
            "road",
            name=rd.name,
            length=_fmt(rd.length),
            id=rd.id,
            junction=rd.junction,
        )
        if rd.rule != "RHT":
            r.set("rule", rd.rule)
        if rd.predecessor or rd.successor:
            lk = ET.SubElement(r, "link")
            _link_el(lk, "predecessor", rd.predecessor)
            _link_el(lk, "successor", rd.successor)
        for s, typ, v in rd.speeds:
            t = ET.SubElement(r, "type", s=_fmt(s), type=typ or "town")
            ET.SubElement(t, "speed", max="no limit" if v is None else _fmt(v), unit="m/s")
        pv = ET.SubElement(r, "planView")
        for g in rd.geometry:
            ge = ET.SubElement(
                pv,
                "geometry",
                s=_fmt(g.s),
                x=_fmt(g.x),
                y=_fmt(g.y),
                hdg=_fmt(g.hdg),
                length=_fmt(g.length),
            )
            if g.kind == "line":
                ET.SubElement(ge, "line")
            elif g.kind == "arc":
                ET.SubElement(ge, "arc", curvature=_fmt(g.params[0]))
            elif g.kind == "spiral":
                ET.SubElement(ge, "spiral", curvStart=_fmt(g.params[0]), curvEnd=_fmt(g.params[1]))
            elif g.kind == "poly3":
                ET.SubElement(
                    ge, "poly3", {c: _fmt(v) for c, v in zip("abcd", g.params, strict=True)}
                )
            else:
                attrs = {
                    f"{c}{ax}": _fmt(g.params[i * 4 + j])
                    for i, ax in enumerate("UV")
                    for j, c in enumerate("abcd")
                }
                attrs["pRange"] = "normalized" if g.params[8] > 0.5 else "arcLength"
                ET.SubElement(ge, "paramPoly3", attrs)
        lanes = ET.SubElement(r, "lanes")
        for o in rd.lane_offsets:
            _poly_attrs(ET.SubElement(lanes, "laneOffset"), o, "s")
        for sec in rd.sections:
            se = ET.SubElement(lanes, "laneSection", s=_fmt(sec.s))
            left = [ln for ln in sec.lanes if ln.id > 0]
            right = [ln for ln in sec.lanes if ln.id < 0]
            if left:
                _lanes_el(ET.SubElement(se, "left"), left)
            ce = ET.SubElement(
                ET.SubElement(se, "center"), "lane", id="0", type="none", level="false"
            )
            ET.SubElement(
                ce,
                "roadMark",
                sOffset="0",
                type="solid",
                weight="standard",
                color="standard",
                width="0.12",
            )
            if right:
                _lanes_el(ET.SubElement(se, "right"), right)
        if rd.signals:
            sigs = ET.SubElement(r, "signals")
            for sg in rd.signals:
                e = ET.SubElement(
                    sigs,
                    "signal",
                    id=sg.id,
                    name=sg.name,
                    s=_fmt(sg.s),
                    t=_fmt(sg.t),
                    dynamic="yes" if sg.dynamic else "no",
                    orientation=sg.orientation,
                    type=sg.type,
                    subtype=sg.subtype,
                    country="OpenDRIVE",
                    zOffset="0",
                    value="-1",
                    height="1",
                    width="0.5",
                )
                for a, b in sg.lanes:
                    ET.SubElement(e, "validity", fromLane=str(a), toLane=str(b))
    for c in model.controllers:
        ce = ET.SubElement(root, "controller", id=c.id, name=c.name)
        if c.sequence is not None:
            ce.set("sequence", str(c.sequence))
        for sid in c.signal_ids:
            ET.SubElement(ce, "control", signalId=sid, type="0")
    for j in model.junctions:
        je = ET.SubElement(root, "junction", id=j.id, name=j.name)
        if j.type != "default":
            je.set("type", j.type)
        for cn in j.connections:
            road_attr = "linkedRoad" if j.type == "direct" else "connectingRoad"
            ce = ET.SubElement(
                je,
                "connection",
                {
                    "id": cn.id,
                    "incomingRoad": cn.incoming_road,
                    road_attr: cn.connecting_road,
                    "contactPoint": cn.contact_point,
                },
            )
            for fr, to in cn.lane_links:
                ET.SubElement(ce, "laneLink", {"from": str(fr), "to": str(to)})
        for cid in j.controllers:
            ET.SubElement(je, "controller", id=cid)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _lanes_el(parent: ET.Element, lanes: Iterable[OdrLane]) -> None:
    for ln in sorted(lanes, key=lambda x: -x.id):
        e = ET.SubElement(
            parent, "lane", id=str(ln.id), type=ln.type, level="true" if ln.level else "false"
        )
        if ln.predecessor is not None or ln.successor is not None:
            lk = ET.SubElement(e, "link")
            if ln.predecessor is not None:
                ET.SubElement(lk, "predecessor", id=str(ln.predecessor))
            if ln.successor is not None:
                ET.SubElement(lk, "successor", id=str(ln.successor))
        for w in ln.widths:
            _poly_attrs(ET.SubElement(e, "width"), w, "sOffset")
        ET.SubElement(
            e,
            "roadMark",
            sOffset="0",
            type="broken",
            weight="standard",
            color="standard",
            width="0.12",
        )
        for s_off, v in ln.speeds:
            ET.SubElement(e, "speed", sOffset=_fmt(s_off), max=_fmt(v), unit="m/s")


def write_opendrive(model: OdrMap, path: str | Path) -> Path:
    """Write a model as an .xodr file, atomically; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(opendrive_xml(model))
    tmp.replace(p)
    return p


def model_from_segments(
    segments: Sequence[R.Segment],
    num_lanes: int = 3,
    lane_width: float = 3.5,
    speed_limit: float = 30.0,
    closed: bool = False,
    name: str = "road",
) -> OdrMap:
    """The OpenDRIVE model of a procedural road (:func:`sim.road.build_highway`'s layout).

    Road 0 with the reference line at the median edge, driving lanes -1 (left-most) to
    ``-num_lanes``, one lane section, the speed limit as the road type speed; a closed road
    links to itself.
    """
    geoms = []
    s = 0.0
    u, rx, ry, th, _ = R.sample_reference(list(segments))
    for sg in segments:
        i = int(np.searchsorted(u, s - 1e-9))
        x, y, h = float(rx[i]), float(ry[i]), float(th[i])
        if sg.k0 == 0.0 and sg.k1 == 0.0:
            geoms.append(Geometry(s, x, y, h, sg.length, "line"))
        elif sg.k0 == sg.k1:
            geoms.append(Geometry(s, x, y, h, sg.length, "arc", (sg.k0,)))
        else:
            geoms.append(Geometry(s, x, y, h, sg.length, "spiral", (sg.k0, sg.k1)))
        s += sg.length
    lanes = tuple(
        OdrLane(
            -k,
            "driving",
            (Poly3(0.0, lane_width),),
            predecessor=-k if closed else None,
            successor=-k if closed else None,
        )
        for k in range(1, num_lanes + 1)
    )
    link = RoadLink("road", "0", "start") if closed else None
    road = OdrRoad(
        id="0",
        num_id=0,
        length=s,
        junction="-1",
        rule="RHT",
        geometry=tuple(geoms),
        lane_offsets=(),
        sections=(LaneSection(0.0, lanes),),
        predecessor=RoadLink("road", "0", "end") if closed else None,
        successor=link,
        name=name,
        speeds=((0.0, "motorway", speed_limit),),
    )
    return OdrMap(name=name, roads=(road,), rev_minor=4)


def road_spec_segments(road: Any) -> tuple[list[R.Segment], bool]:
    """The reference line of a procedural :class:`sim.scenario.RoadSpec` and whether it is
    closed: the pieces :func:`sim.scenario.build_road` builds (``curved``: the S-bend of
    :func:`sim.road.curved_highway`)."""
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
            else [R.Segment.spiral(t, 0.0, k), R.Segment.arc(arc, k), R.Segment.spiral(t, k, 0.0)]
        )
        mirror = [R.Segment(sg.length, -sg.k0, -sg.k1) for sg in bend]
        straight = (road.length - 2 * (2 * t + arc)) / 3.0
        line = R.Segment.line(straight)
        return [line, *bend, line, *mirror, line], False
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
    raise OpenDriveError(f"road.kind: no procedural reference line for {road.kind!r}")


def model_from_road_spec(road: Any) -> OdrMap:
    """The OpenDRIVE model of any :class:`sim.scenario.RoadSpec`: a ``file`` road's parsed
    map, an urban layout's :func:`sim.urban.urban_model`, or a highway's
    :func:`model_from_segments`."""
    if road.kind == "file":
        return read_opendrive(road.path)
    from sim.urban import URBAN_KINDS, urban_model

    if road.kind in URBAN_KINDS:
        return urban_model(road)
    segs, closed = road_spec_segments(road)
    return model_from_segments(
        segs, road.num_lanes, road.lane_width, road.speed_limit, closed, name=road.kind
    )
