"""Tests of the generative data layer: loaders, snapshots, IDM fits, lane changes, split."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from generative.data import (
    DataFormatError,
    Tracks,
    detect_lane_changes,
    fit_idm,
    fit_idm_batch,
    load_interaction_tracks,
    load_ngsim_us101,
    make_snapshots,
    road_frame,
    row_relations,
    split_recordings,
)
from generative.data.idm_fit import LOWER, UPPER
from generative.data.ngsim import build_tracks
from generative.data.snapshots import Snapshots
from generative.model.dataset import main_lane_snapshots, snapshot_count_density, snapshot_extents
from sim.traffic import idm_accel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NGSIM = DATA / "traffic" / "ngsim_us101"
FIXTURE = DATA / "traffic" / "interaction_format_fixture" / "vehicle_tracks_000.csv"
needs_ngsim = pytest.mark.skipif(
    not (NGSIM / "us101_tracks.csv").exists(), reason=f"NGSIM US-101 data absent at {NGSIM}"
)


@lru_cache(maxsize=1)
def ngsim() -> Tracks:
    return load_ngsim_us101(NGSIM)


@needs_ngsim
def test_loads_documented_counts() -> None:
    tr = ngsim()
    assert len(tr.recordings) == 20
    assert tr.n_tracks == 717
    assert tr.n_rows == 46457
    # Per-recording vehicle counts match us101_recordings.csv.
    import csv

    with (NGSIM / "us101_recordings.csv").open() as fh:
        table = {r["scenario_id"]: int(r["n_vehicles"]) for r in csv.DictReader(fh)}
    counts = np.bincount(tr.track_recording, minlength=len(tr.recordings))
    assert dict(zip(tr.recordings, counts.tolist(), strict=True)) == table
    # Sorted by (recording, track, step), tracks contiguous.
    assert np.all(np.diff(tr.track) >= 0)
    same = np.diff(tr.track) == 0
    assert np.all(np.diff(tr.time_step)[same] > 0)


@needs_ngsim
def test_road_frame_follows_travel() -> None:
    tr = ngsim()
    s, _ = road_frame(tr)
    same = np.diff(tr.track) == 0
    ds_dt = np.diff(s)[same] / np.diff(tr.t_s)[same]
    # s increases with travel at about the recorded speed.
    assert np.median(ds_dt - tr.speed_mps[1:][same]) == pytest.approx(0.0, abs=0.05)
    assert np.mean(ds_dt > -0.5) > 0.99


@needs_ngsim
def test_snapshot_gaps_positive_and_consistent() -> None:
    tr = ngsim()
    sn = make_snapshots(tr, every_n_steps=10)
    assert sn.n_snapshots > 100
    has = sn.leader >= 0
    assert has.sum() > 1000
    lead = sn.leader[has]
    assert np.all(sn.snapshot[lead] == sn.snapshot[has])
    assert np.all(sn.lane[lead] == sn.lane[has])
    assert np.all(sn.s_m[lead] > sn.s_m[has])
    gap = sn.s_m[lead] - sn.s_m[has] - 0.5 * (sn.length_m[lead] + sn.length_m[has])
    np.testing.assert_allclose(sn.gap_m[has], gap)
    assert np.all(sn.gap_m[has] > 0)
    np.testing.assert_allclose(sn.dv_mps[has], sn.speed_mps[has] - sn.speed_mps[lead])
    assert np.all(np.isnan(sn.gap_m[~has]))
    # Sorted by (snapshot, lane, s).
    key = np.lexsort((sn.s_m, sn.lane, sn.snapshot))
    np.testing.assert_array_equal(key, np.arange(sn.n_entries))


def _synthetic_following(
    theta: tuple[float, float, float, float, float], seconds: float = 120.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Follower driven by sim.traffic.idm_accel behind a leader with a varying speed."""
    dt = 0.1
    n = int(seconds / dt)
    t = np.arange(n) * dt
    v_lead = 18.0 + 9.0 * np.sin(2 * np.pi * t / 40.0) + 3.0 * np.sin(2 * np.pi * t / 9.0)
    x_lead = 60.0 + np.cumsum(v_lead) * dt
    x, v = 0.0, 15.0
    vs, gaps, dvs, accs = [], [], [], []
    f32 = np.float32
    for i in range(n):
        gap = x_lead[i] - x - 4.5
        dv = v - v_lead[i]
        a = float(
            idm_accel(
                np.array([v], f32),
                np.array([theta[0]], f32),
                np.array([gap], f32),
                np.array([dv], f32),
                *(np.array([p], f32) for p in theta[1:]),
            )[0]
        )
        vs.append(v)
        gaps.append(gap)
        dvs.append(dv)
        accs.append(a)
        v = max(0.0, v + a * dt)
        x += v * dt
    return np.array(vs), np.array(gaps), np.array(dvs), np.array(accs)


def test_idm_fit_recovers_synthetic_parameters() -> None:
    truths = [(25.0, 1.2, 2.5, 1.2, 2.5), (32.0, 0.8, 1.5, 2.0, 1.5)]
    cols = [_synthetic_following(th) for th in truths]
    v, gap, dv, acc = (np.stack([c[j] for c in cols]) for j in range(4))
    theta, rmse = fit_idm_batch(v, gap, dv, acc, np.ones_like(v, dtype=bool))
    assert np.all(rmse < 0.05)
    # s0 trades off against T when the follower never slows to a crawl: looser tolerance.
    rtol = np.array([0.05, 0.1, 0.25, 0.1, 0.1])
    for got, want in zip(theta, truths, strict=True):
        assert np.all(np.abs(got - np.array(want)) <= rtol * np.array(want)), (got, want)


@needs_ngsim
def test_idm_fit_real_data_bounded() -> None:
    fit = fit_idm(ngsim())
    assert fit.fitted.sum() > 300
    p = fit.params()[fit.fitted]
    assert np.all(np.isfinite(p))
    assert np.all(p >= LOWER - 1e-6)
    assert np.all(p <= UPPER + 1e-6)
    assert np.all(np.isnan(fit.params()[~fit.fitted]))
    assert fit.behavior(int(np.flatnonzero(fit.fitted)[0])).headway > 0


def _one_track(lanes: list[int]) -> Tracks:
    n = len(lanes)
    t = np.arange(n) * 0.1
    cols = {
        "vehicle_id": np.zeros(n, np.int64),
        "time_step": np.arange(n, dtype=np.int32),
        "t_s": t,
        "x_m": 20.0 * t,
        "y_m": -3.5 * np.array(lanes, float),
        "heading_rad": np.zeros(n),
        "speed_mps": np.full(n, 20.0),
        "accel_mps2": np.zeros(n),
        "lane": np.array(lanes, np.int32),
        "length_m": np.full(n, 4.5),
        "width_m": np.full(n, 1.8),
    }
    return build_tracks(Path("synthetic"), ["rec"] * n, cols)


def test_lane_change_debounce_on_synthetic_track() -> None:
    # 1 s in lane 1, 0.5 s flicker to 2, back to 1 for 1 s, then lane 2 for 1.5 s (a real change),
    # then 0.3 s in lane 3 at the end (too short).
    lanes = [1] * 10 + [2] * 5 + [1] * 10 + [2] * 15 + [3] * 3
    lc = detect_lane_changes(_one_track(lanes))
    assert lc.n_events == 1
    assert int(lc.from_lane[0]) == 1 and int(lc.to_lane[0]) == 2
    assert lc.t_s[0] == pytest.approx(2.5)
    # Exactly 1 s (10 samples) in the new lane counts; 0.9 s does not.
    assert detect_lane_changes(_one_track([0] * 5 + [1] * 10)).n_events == 1
    assert detect_lane_changes(_one_track([0] * 5 + [1] * 9)).n_events == 0
    # Off-map samples are ignored.
    assert detect_lane_changes(_one_track([0] * 10 + [-1] * 3 + [0] * 10)).n_events == 0


@needs_ngsim
def test_lane_changes_on_real_data() -> None:
    tr = ngsim()
    lc = detect_lane_changes(tr, rel=row_relations(tr))
    assert lc.n_events == 62
    assert np.all(lc.from_lane != lc.to_lane)
    assert np.all(tr.lane[lc.row] == lc.to_lane)
    ok = ~np.isnan(lc.lead_gap_m)
    assert np.all(lc.lead_gap_m[ok] > 0)
    assert np.all(lc.follow_gap_m[lc.cut_in] > 0)
    # A debounced count is well below the raw number of lane-index changes.
    raw = np.sum((np.diff(tr.lane) != 0) & (np.diff(tr.track) == 0))
    assert lc.n_events < raw


def test_split_disjoint_and_deterministic() -> None:
    names = [f"rec_{i}" for i in range(20)]
    a = split_recordings(names, seed=3)
    assert a == split_recordings(list(reversed(names)), seed=3)
    parts = [set(a.train), set(a.validation), set(a.test)]
    assert set().union(*parts) == set(names)
    assert sum(len(p) for p in parts) == len(names)
    assert len(a.validation) == 3 and len(a.test) == 3
    assert a != split_recordings(names, seed=4)
    with pytest.raises(ValueError):
        split_recordings(["a", "a", "b"])


@needs_ngsim
def test_split_rows_by_recording() -> None:
    tr = ngsim()
    sp = split_recordings(tr.recordings, seed=0)
    masks = [sp.row_mask(tr, w) for w in ("train", "validation", "test")]
    assert np.all(np.sum(masks, axis=0) == 1)
    for i, m in enumerate(masks):
        for j, other in enumerate(masks):
            if i != j:
                assert not set(tr.recording[m].tolist()) & set(tr.recording[other].tolist())


@pytest.mark.skipif(not FIXTURE.exists(), reason=f"INTERACTION fixture absent at {FIXTURE}")
def test_interaction_fixture_loads() -> None:
    tr = load_interaction_tracks(FIXTURE)
    assert tr.n_tracks == 2
    assert tr.n_rows == 170
    np.testing.assert_array_equal(tr.track_length, [100, 70])
    assert np.all(tr.lane == -1)
    np.testing.assert_allclose(tr.speed_mps[:3], 10.0)
    assert tr.t_s[0] == pytest.approx(0.1)


def test_malformed_csv_names_file_and_column(tmp_path: Path) -> None:
    header = (
        "scenario_id,obstacle_id,type,length_m,width_m,time_step,t_s,x_m,y_m,orientation_rad,"
        "velocity_mps,acceleration_mps2,lanelet_id,lane_index_from_left\n"
    )
    good = "R,1,car,4.5,1.8,0,0.0,1.0,2.0,0.0,10.0,0.0,5,0\n"
    bad = tmp_path / "tracks.csv"
    bad.write_text(header + good + "R,1,car,4.5,1.8,1,0.1,oops,2.0,0.0,10.0,0.0,5,0\n")
    with pytest.raises(DataFormatError, match=r"tracks\.csv.*'x_m'.*line 3"):
        load_ngsim_us101(bad)
    missing = tmp_path / "nocol.csv"
    missing.write_text(header.replace("velocity_mps,", "") + good.replace("10.0,", "", 1))
    with pytest.raises(DataFormatError, match=r"nocol\.csv.*velocity_mps"):
        load_ngsim_us101(missing)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(header + good + "R,1,car\n")
    with pytest.raises(DataFormatError, match=r"ragged\.csv: line 3"):
        load_ngsim_us101(ragged)
    lane = tmp_path / "lane.csv"
    lane.write_text(header + good.replace(",5,0\n", ",5,9\n"))
    with pytest.raises(DataFormatError, match=r"lane\.csv.*'lane_index_from_left'.*line 2"):
        load_ngsim_us101(lane)
    inter = tmp_path / "vehicle_tracks_bad.csv"
    inter.write_text(
        "track_id,frame_id,timestamp_ms,agent_type,x,y,vx,vy,psi_rad,length,width\n"
        "1,1,100,car,1,2,nan,0,0,4,1.8\n"
    )
    with pytest.raises(DataFormatError, match=r"vehicle_tracks_bad\.csv.*'vx'.*line 2"):
        load_interaction_tracks(inter)


def _snaps(rec: list[int], snapshot: list[int], lane: list[int], s: list[float]) -> Snapshots:
    n = len(snapshot)
    z = np.zeros(n)
    return Snapshots(
        snapshot_recording=np.array(rec, np.int32),
        snapshot_time_step=np.zeros(len(rec), np.int32),
        snapshot=np.array(snapshot, np.int32),
        row=np.arange(n, dtype=np.int64),
        track=np.arange(n, dtype=np.int32),
        lane=np.array(lane, np.int16),
        s_m=np.array(s, np.float64),
        speed_mps=z + 10.0,
        accel_mps2=z,
        length_m=z + 4.0,
        width_m=z + 1.8,
        leader=np.full(n, -1, np.int64),
        follower=np.full(n, -1, np.int64),
        gap_m=z * np.nan,
        dv_mps=z * np.nan,
        headway_s=z * np.nan,
    )


def test_count_density_by_hand() -> None:
    # Recording 0 observes lanes 0 and 1; snapshot 0: 5 vehicles from s = 10 to 90 (extent
    # 8 .. 92 = 84 m with the 4-m bodies): 1000 * 4 / (2 * 84). Snapshot 1 (recording 0): one
    # vehicle: NaN. Recording 1 observes lane 0 only: 1000 * 2 / (1 * 44).
    snap = _snaps(
        [0, 0, 1],
        [0, 0, 0, 0, 0, 1, 2, 2, 2],
        [0, 0, 0, 1, 1, 0, 0, 0, 0],
        [10.0, 50.0, 90.0, 30.0, 70.0, 5.0, 0.0, 20.0, 40.0],
    )
    lo, hi = snapshot_extents(snap)
    assert lo[0] == 8.0 and hi[0] == 92.0
    d = snapshot_count_density(snap)
    assert d[0] == pytest.approx(1000 * 4 / (2 * 84))
    assert np.isnan(d[1])
    assert d[2] == pytest.approx(1000 * 2 / 44)


@needs_ngsim
def test_recorded_road_empties_behind_the_tracked_vehicles() -> None:
    """The CommonRoad slices track only the vehicles present at their start: the occupied
    extent shrinks through a recording while the camera window stays, which is why densities
    are counted over the extent."""
    tr = ngsim()
    snap = main_lane_snapshots(tr, 10)
    lo, hi = snapshot_extents(snap)
    ext = hi - lo
    d = snapshot_count_density(snap)
    n = np.bincount(snap.snapshot[snap.lane >= 0], minlength=snap.n_snapshots)
    shrank, fewer = [], []
    for r in range(len(tr.recordings)):
        js = np.flatnonzero(snap.snapshot_recording == r)
        if js.size >= 5 and n[js[0]] >= 10:  # (one slice holds 2 vehicles throughout)
            shrank.append(ext[js[-1]] < 0.8 * ext[js[0]])
            fewer.append(n[js[-1]] < 0.8 * n[js[0]])
    assert all(fewer), fewer  # nobody enters: every recording loses vehicles
    assert np.mean(shrank) > 0.6, shrank
    # The count density stays within the range of the recordings' traffic (veh/km/lane).
    ok = np.isfinite(d)
    assert 10.0 < np.median(d[ok]) < 60.0
