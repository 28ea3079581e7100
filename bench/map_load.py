"""OpenDRIVE map loading: time cold and cached, lane graph size, link continuity, reachability.

    python bench/map_load.py                    # the CARLA towns
    python bench/map_load.py --all              # plus the esmini sample and unit-test roads
    python bench/map_load.py ../shared/data/esmini/xodr/soderleden.xodr
    python bench/map_load.py --all --pyxodr pyxodr   # the same maps through pyxodr, if installed

One JSON line per map: map, ok (or error), cold_s (read + build + cache write, into an empty
cache), cached_s (from that cache), lanes, driving_lanes, points, driving_links,
link_ok_share (driving links whose ends meet within 5 cm and 0.05 rad), dropped_links
(discontinuous links in the file, not linked), sliver_sections (contracted), reach_share (share
of (from, to) driving-lane pairs a route planner connects with successor and lane-change
edges). Times are the best of ``--repeat`` runs in this process, after one warm-up load of
another map (imports).

``--pyxodr MODULE`` (``pyxodr`` or ``pyxodr_omega_prime``, installed separately) loads each map
with that package instead (``RoadNetwork(path, resolution=1.0)``, every lane's centre line) and
prints map, ok or error, and load_s: the evaluation in docs/maps.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from sim import opendrive as O  # noqa: E402
from sim import road as R  # noqa: E402
from sim.routes import reachable_share  # noqa: E402

DATA = REPO.parent / "shared" / "data"
GAP_M = 0.05  # [m] link continuity bound (the maps issue)
HEADING_RAD = 0.05  # [rad] link heading bound (the maps issue)


def link_stats(g: R.LaneGraph) -> tuple[int, float]:
    """(driving links, share within the bounds)."""
    end = g.lane_start + g.lane_npoints - 1
    src, k = np.nonzero(g.successors >= 0)
    dst = g.successors[src, k]
    drive = (g.lane_type[src] == R.LaneType.DRIVING) & (g.lane_type[dst] == R.LaneType.DRIVING)
    src, dst = src[drive], dst[drive]
    a, b = end[src], g.lane_start[dst]
    gap = np.hypot(g.x[a] - g.x[b], g.y[a] - g.y[b])
    dh = np.abs((g.heading[a] - g.heading[b] + np.pi) % (2 * np.pi) - np.pi)
    ok = (gap <= GAP_M) & (dh <= HEADING_RAD)
    return int(src.size), float(ok.mean()) if src.size else 1.0


def measure(path: Path, repeat: int) -> dict[str, object]:
    row: dict[str, object] = {"map": path.name}
    try:
        cold = cached = float("inf")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                O.load_lane_graph(path, cache_dir=d)
                t1 = time.perf_counter()
                g = O.load_lane_graph(path, cache_dir=d)
                t2 = time.perf_counter()
            cold, cached = min(cold, t1 - t0), min(cached, t2 - t1)
        rep = O.BuildReport()
        O.build_lane_graph(O.read_opendrive(path), report=rep)
    except O.OpenDriveError as e:
        row.update(ok=False, error=str(e))
        return row
    links, share = link_stats(g)
    row.update(
        ok=True,
        cold_s=round(cold, 3),
        cached_s=round(cached, 4),
        lanes=g.num_lanes,
        driving_lanes=int((g.lane_type == R.LaneType.DRIVING).sum()),
        points=g.num_points,
        driving_links=links,
        link_ok_share=round(share, 4),
        dropped_links=len(rep.discontinuous_links),
        sliver_sections=len(rep.skipped_sections),
        reach_share=round(reachable_share(g), 4),
    )
    return row


def measure_pyxodr(path: Path, module: str) -> dict[str, object]:
    import importlib

    network = importlib.import_module(f"{module}.road_objects.network")
    t0 = time.perf_counter()
    try:
        rn = network.RoadNetwork(str(path), resolution=1.0)
        lanes = 0
        for road in rn.get_roads():
            for section in road.lane_sections:
                for lane in section.lanes:
                    _ = lane.centre_line
                    lanes += 1
    except Exception as e:  # the point is to record how the package fails
        return {"map": path.name, "ok": False, "error": f"{type(e).__name__}: {e}"[:200]}
    return {"map": path.name, "ok": True, "lanes": lanes, "load_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("maps", nargs="*", type=Path, help="xodr files (default: the CARLA towns)")
    ap.add_argument("--all", action="store_true", help="also the esmini roads")
    ap.add_argument("--repeat", type=int, default=3, help="runs per map; the best is reported")
    ap.add_argument("--pyxodr", metavar="MODULE", help="load with pyxodr (or a fork) instead")
    args = ap.parse_args()
    maps = list(args.maps) or sorted((DATA / "maps" / "carla").glob("*.xodr"))
    if args.all:
        maps += sorted((DATA / "esmini" / "xodr").glob("*.xodr"))
        maps += sorted((DATA / "esmini" / "unittest_xodr").glob("*.xodr"))
    if not maps:
        sys.exit(f"no maps: {DATA / 'maps' / 'carla'} is absent and none was given")
    if args.pyxodr:
        for p in maps:
            print(json.dumps(measure_pyxodr(p, args.pyxodr)), flush=True)
        return
    O.build_lane_graph(O.model_from_segments([R.Segment.line(10.0)]))  # warm-up (imports)
    O.read_opendrive(maps[-1])
    for p in maps:
        print(json.dumps(measure(p, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
