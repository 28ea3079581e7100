"""Several road networks as one lane graph, and the connected parts of a lane graph.

A vector environment steps all its environments on one :class:`~sim.road.LaneGraph`. To train or
evaluate on a *mixture* of roads (a straight highway, an S-bend, a two-lane road with a cut-in)
in one batched env, :func:`union` packs the roads into a single graph: each part keeps its lanes,
links and geometry, translated so that no two parts come within ``gap_m`` of each other (a global
lane projection of an ego that left its road can never snap onto another part), and its OpenDRIVE
road ids shifted by a per-part offset (road ``r`` of part ``k`` becomes ``offsets[k] + r``), so a
spec written for part ``k`` addresses it by adding the offset (:func:`shift_spec`).

:func:`lane_components` labels the weakly connected parts of a graph (lanes joined by a
successor, predecessor or left/right link): random background traffic is spread over the
ego's part only, which on a single road or a town is the whole network.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from sim.road import LaneGraph, _with_key
from sim.scenario import ScenarioSpec

UNION_GAP_M = 2000.0  # [m] clearance between parts: far beyond any sensing or projection range

# LaneGraph fields by what they index; every init field must be listed (checked below), so a new
# field cannot be silently dropped by a union.
_POINT_FIELDS = (
    "x",
    "y",
    "heading",
    "dheading",
    "s",
    "s_ref",
    "width",
    "curvature",
    "speed_limit",
    "left_edge",
    "right_edge",
)
_LANE_FIELDS = ("lane_npoints", "lane_length", "lane_ds", "num_successors", "odr_lane", "lane_type")
_LANE_LINK_FIELDS = ("left", "right", "successors", "predecessors")  # lane indices, -1 = none
_SECTION_FIELDS = ("section_length", "section_s0")


def _check_fields_covered() -> None:
    known = {
        *_POINT_FIELDS,
        *_LANE_FIELDS,
        *_LANE_LINK_FIELDS,
        *_SECTION_FIELDS,
        "lane_start",
        "section",
        "odr_road",
        "section_road",
        "name",
        "key",
        "lane_reversed",
    }
    init = {f.name for f in dataclasses.fields(LaneGraph) if f.init}
    missing = init - known
    if missing:
        raise RuntimeError(f"sim.road_union: LaneGraph fields without a union rule: {missing}")


def union(graphs: Sequence[LaneGraph], gap_m: float = UNION_GAP_M) -> tuple[LaneGraph, list[int]]:
    """Pack several lane graphs into one.

    Parts are stacked along -y in order, each translated so its bounding box starts ``gap_m``
    below the previous one's; the first part keeps its coordinates, so a union of one graph is
    that graph (returned as is).

    Args:
        graphs: the parts.
        gap_m: clearance between parts' bounding boxes [m].

    Returns:
        (the union, per-part OpenDRIVE road-id offsets).
    """
    _check_fields_covered()
    if not graphs:
        raise ValueError("union: expected at least one lane graph")
    if len(graphs) == 1:
        return graphs[0], [0]
    # Road-id offsets: a power of ten above every part's largest id, so ids stay readable
    # (road 3 of part 2 is 2003 when ids are below 1000).
    top = max(int(g.odr_road.max()) for g in graphs) + 1
    stride = 10 ** max(3, math.ceil(math.log10(top + 1)))
    offsets = [k * stride for k in range(len(graphs))]
    cols: dict[str, list[NDArray[np.generic]]] = {}

    def put(name: str, value: NDArray[np.generic]) -> None:
        cols.setdefault(name, []).append(value)

    y_top = float(graphs[0].y.max())
    n_lanes = n_points = n_sections = 0
    for k, g in enumerate(graphs):
        dy = 0.0
        if k > 0:
            dy = y_top - gap_m - float(g.y.max())
        y_top = float(g.y.min()) + dy
        for name in _POINT_FIELDS:
            v = getattr(g, name)
            put(name, (v + np.float32(dy)).astype(np.float32) if name == "y" else v)
        for name in _LANE_FIELDS:
            put(name, getattr(g, name))
        for name in _LANE_LINK_FIELDS:
            v = getattr(g, name)
            put(name, np.where(v >= 0, v + n_lanes, v).astype(np.int32))
        for name in _SECTION_FIELDS:
            put(name, getattr(g, name))
        rev = g.lane_reversed
        put("lane_reversed", np.zeros(g.num_lanes, np.bool_) if rev is None else rev)
        put("lane_start", (g.lane_start + n_points).astype(np.int32))
        put("section", (g.section + n_sections).astype(np.int32))
        put("odr_road", (g.odr_road + offsets[k]).astype(np.int32))
        put("section_road", (g.section_road + offsets[k]).astype(np.int32))
        n_lanes += g.num_lanes
        n_points += g.num_points
        n_sections += int(g.section_length.shape[0])
    arrays = {name: np.concatenate(parts) for name, parts in cols.items()}
    out = LaneGraph(**arrays, name="+".join(g.name for g in graphs))  # type: ignore[arg-type]
    return _with_key(out), offsets


def shift_spec(spec: ScenarioSpec, offset: int) -> ScenarioSpec:
    """The spec with every OpenDRIVE road id moved by ``offset`` (its part of a union)."""
    if offset == 0:
        return spec
    clear = tuple((z[0] + offset, *z[1:]) for z in spec.traffic.keep_clear)
    return dataclasses.replace(
        spec,
        ego=dataclasses.replace(spec.ego, road=spec.ego.road + offset),
        actors=tuple(dataclasses.replace(a, road=a.road + offset) for a in spec.actors),
        traffic=dataclasses.replace(spec.traffic, keep_clear=clear),
    )


@lru_cache(maxsize=32)
def lane_components(g: LaneGraph) -> NDArray[np.int32]:
    """(L,) label of each lane's weakly connected part (the smallest lane index in it).

    Min-label propagation over all links, vectorised: each round every lane takes the smallest
    label among itself and its linked lanes, with pointer jumping (``label = label[label]``) so
    the number of rounds grows with the log of a part's diameter, not the diameter.
    """
    L = g.num_lanes
    src = np.concatenate(
        [
            np.repeat(np.arange(L), g.successors.shape[1]),
            np.repeat(np.arange(L), g.predecessors.shape[1]),
            np.arange(L),
            np.arange(L),
        ]
    )
    dst = np.concatenate([g.successors.ravel(), g.predecessors.ravel(), g.left, g.right])
    ok = dst >= 0
    src, dst = src[ok], dst[ok]
    label = np.arange(L, dtype=np.int64)
    while True:
        new = label.copy()
        np.minimum.at(new, src, label[dst])
        np.minimum.at(new, dst, label[src])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    out = label.astype(np.int32)
    out.flags.writeable = False
    return out
