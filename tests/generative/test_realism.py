"""Realism evaluation: W1 and C2ST helpers against hand-computed cases, snapshot relations,
and the report end to end (in process and through `gendrive generate evaluate=true`)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generative.model.dataset import lane_ratios
from generative.model.validity import Vehicles
from generative.realism import (
    SOURCES,
    c2st_accuracy,
    evaluate_realism,
    from_vehicles,
    matched_recorded_set,
    report_json_lines,
    wasserstein1,
)

US101 = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "traffic"
    / "ngsim_us101"
    / "us101_tracks.csv"
)
needs_data = pytest.mark.skipif(not US101.is_file(), reason=f"{US101} not present")


def test_wasserstein1_matches_hand_computed_values() -> None:
    # Uniform {0, 1} vs {0, 2}: move 1 -> 2 with mass 1/2.
    assert wasserstein1(np.array([0.0, 1.0]), np.array([0.0, 2.0])) == pytest.approx(0.5)
    # {0, 0, 3} vs {1}: (1 + 1 + 2) / 3.
    assert wasserstein1(np.array([0.0, 0.0, 3.0]), np.array([1.0])) == pytest.approx(4 / 3)
    # Different sizes: {0, 1, 2, 3} vs {0, 3}: 1 -> 0 and 2 -> 3 with mass 1/4 each.
    assert wasserstein1(np.arange(4.0), np.array([0.0, 3.0])) == pytest.approx(0.5)
    # A shift moves every unit of mass by the shift; symmetric; zero against itself.
    x = np.random.default_rng(0).normal(size=500)
    assert wasserstein1(x, x + 2.5) == pytest.approx(2.5)
    assert wasserstein1(x, x[::-1].copy()) == 0.0
    assert wasserstein1(x[:100], x) == pytest.approx(wasserstein1(x, x[:100]))
    with pytest.raises(ValueError, match="empty sample"):
        wasserstein1(np.array([]), x)


def test_c2st_is_chance_on_one_distribution_and_perfect_on_two() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3))
    b = rng.normal(size=(400, 3))
    same = c2st_accuracy(a, b, seed=0, epochs=100)
    assert 0.4 <= same <= 0.6
    far = c2st_accuracy(a, b + np.array([4.0, 0.0, 0.0]), seed=0, epochs=100)
    assert far >= 0.97
    # A difference only in the joint (correlation), not in the marginals, is found too.
    c = rng.normal(size=(400, 1))
    corr = np.hstack([c, c + 0.05 * rng.normal(size=(400, 1)), rng.normal(size=(400, 1))])
    assert c2st_accuracy(a, corr, seed=0, epochs=150) >= 0.85


def test_paired_c2st_folds_keep_a_context_out_and_still_detect_a_shift() -> None:
    """Matched C2ST: fake rows share their real context's fold (leave one context out)."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), 200)
    # Three real contexts far apart (first two columns); the fakes of each context sit there.
    centre = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])[groups]
    real = centre + rng.normal(size=(600, 3))
    same = centre + rng.normal(size=(600, 3))
    kw = {"folds": 3, "epochs": 100, "paired": True}
    acc = c2st_accuracy(real, same, 0, groups, fake_groups=groups, **kw)  # type: ignore[arg-type]
    assert 0.4 <= acc <= 0.6
    # Wrong in every context the same way (a feature the contexts do not move): found.
    wrong = centre + rng.normal(size=(600, 3)) + np.array([0.0, 0.0, 2.0])
    acc = c2st_accuracy(real, wrong, 0, groups, fake_groups=groups, **kw)  # type: ignore[arg-type]
    assert acc >= 0.8
    # Its blind spot, why the report keeps the 2-s-block folds too: an error that shows only
    # relative to an unseen context's own position is not learned from the other contexts.
    spread = centre + rng.normal(size=(600, 3)) * np.array([1.0, 3.0, 1.0])
    blocks = c2st_accuracy(real, spread, 0, None, epochs=100)
    loro = c2st_accuracy(real, spread, 0, groups, fake_groups=groups, **kw)  # type: ignore[arg-type]
    assert blocks >= 0.6 and loro < 0.55
    with pytest.raises(ValueError, match="paired folds need"):
        c2st_accuracy(real, same, 0, None, paired=True)


def test_lane_ratios_by_hand() -> None:
    # Snapshot 0: lanes 0, 0, 0, 1 of a 2-lane road; snapshot 1: lane 1 only.
    r = lane_ratios(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 0, 0, 1]), 2, 2)
    assert r[0] == pytest.approx([1.5, 0.5])
    assert r[1] == pytest.approx([0.1, 2.0])  # an empty lane is floored at 0.1


@needs_data
def test_matched_floor_takes_the_nearest_snapshots_cropped_to_the_window() -> None:
    from generative.data import load_ngsim_us101
    from generative.model.dataset import main_lane_snapshots, snapshot_count_density

    tracks = load_ngsim_us101(US101)
    snap = main_lane_snapshots(tracks, 5)
    dens = snapshot_count_density(snap)
    cand = np.flatnonzero(np.isfinite(dens))[:40]
    on = snap.lane >= 0
    ratio = lane_ratios(
        snap.lane[on].astype(np.int64), snap.snapshot[on].astype(np.int64), snap.n_snapshots, 5
    )
    # Targets equal to candidates 3 and 17: each is its own nearest neighbour.
    tgt = cand[[3, 17]]
    out = matched_recorded_set(
        snap, cand, dens[tgt], ratio[tgt], np.array([60.0, 80.0]), 1, np.random.default_rng(0)
    )
    assert list(np.unique(out.group)) == [0, 1]
    for j, w in enumerate((60.0, 80.0)):
        # Cropped to the window: every in-window gap is shorter than it.
        g = out.gap[(out.group[out.snapshot] == j) & np.isfinite(out.gap)]
        assert np.all(g < w)
    n_full = np.count_nonzero(on & np.isin(snap.snapshot, tgt))
    assert out.speed.size < n_full
    # One recorded moment picked for three targets (recordings 0, 1, 1) is one fold group: the
    # first target of the recording that uses it most.
    same = cand[[3, 3, 3]]
    out = matched_recorded_set(
        snap,
        cand,
        dens[same],
        ratio[same],
        np.full(3, 60.0),
        1,
        np.random.default_rng(0),
        target_recording=np.array([0, 1, 1]),
    )
    assert set(out.group.tolist()) == {1}


def test_generated_windows_get_in_window_leaders_only() -> None:
    f = np.array
    v = Vehicles(
        scene=f([0, 0, 0, 0, 1]),
        lane=f([0, 0, 0, 1, 0]),
        s_ref=f([10.0, 20.0, 200.0, 15.0, 50.0]),
        s=f([10.0, 20.0, 200.0, 15.0, 50.0]),
        speed=f([10.0, 12.0, 9.0, 8.0, 5.0]),
        length=f([4.0] * 5),
        width=f([1.8] * 5),
        v0=f([30.0] * 5),
        headway=f([1.0] * 5),
        min_gap=f([2.0] * 5),
        a_max=f([1.0] * 5),
        b_comf=f([2.0] * 5),
        politeness=f([0.3] * 5),
        lc_threshold=f([0.2] * 5),
    )
    s = from_vehicles(v, window=f([100.0, 100.0]), start=5.0)
    # The car at 200 m is outside the window; scene 1 has no leader pair: no density, dropped.
    assert s.n_snapshots == 1 and s.speed.shape == (3,)
    order = np.argsort(s.speed)  # 8 (lane 1), 10, 12
    assert np.isnan(s.gap[order[0]]) and np.isnan(s.gap[order[2]])
    assert s.gap[order[1]] == pytest.approx(6.0) and s.rel_speed[order[1]] == pytest.approx(-2.0)
    assert s.headway[order[1]] == pytest.approx(0.6)
    assert s.density[0] == pytest.approx(1000.0 / 10.0)


def _small_tracks(tmp_path: Path, recordings: tuple[str, ...]) -> Path:
    lines = US101.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",", 1)[0] in recordings]
    out = tmp_path / "tracks.csv"
    out.write_text("\n".join(keep) + "\n")
    return out


@needs_data
def test_report_on_another_file_holds_all_of_it_out(tmp_path: Path) -> None:
    data = _small_tracks(tmp_path, ("USA_US101-13_1_T-1", "USA_US101-4_1_T-1"))
    rep = evaluate_realism(data, seed=1, scenes_per_snapshot=2, rollout_scenes=6, c2st_epochs=60)
    assert rep.held_out == ("USA_US101-13_1_T-1", "USA_US101-4_1_T-1")
    assert set(rep.sources) == set(SOURCES)
    for name, res in rep.sources.items():
        m = res.metrics()
        assert all(np.isfinite(v) for v in m.values()), (name, m)
    # The rule-based baseline really is far off: uniform speeds around the limit.
    assert rep.sources["rule_based"].w1["speed"] > rep.sources["learned"].w1["speed"]
    assert rep.sources["learned"].validity["rejected"] < 0.05
    text = rep.to_markdown()
    assert "| w1_speed [m/s] |" in text and "learned beats rule_based on" in text
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["sources"]["learned"]["w1"]["gap"] == pytest.approx(rep.sources["learned"].w1["gap"])
    rows = [json.loads(x) for x in report_json_lines(rep)]
    assert [r["source"] for r in rows if r["comparison"] == "unmatched"] == list(rep.sources)
    assert [r["source"] for r in rows if r["comparison"] == "matched"] == list(rep.matched)
    assert set(rep.matched) == set(SOURCES) and "Matched (" in text and "Unmatched (" in text
    # The matched comparison still tells the clearly wrong sampler apart.
    assert rep.matched["rule_based"].c2st_vehicle_local > 0.85
    assert rep.matched["rule_based"].w1["speed"] > rep.matched["learned"].w1["speed"]


@needs_data
def test_report_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    data = _small_tracks(tmp_path, ("USA_US101-4_1_T-1",))
    kw = {"scenes_per_snapshot": 1, "rollout_scenes": 4, "c2st_epochs": 30, "train_data": None}
    a = evaluate_realism(data, seed=3, **kw).to_dict()  # type: ignore[arg-type]
    b = evaluate_realism(data, seed=3, **kw).to_dict()  # type: ignore[arg-type]
    a.pop("seconds"), b.pop("seconds")
    assert a == b


@needs_data
def test_gendrive_generate_evaluate_prints_the_table(tmp_path: Path) -> None:
    data = _small_tracks(tmp_path, ("USA_US101-13_1_T-1",))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gendrive.cli",
            "generate",
            "evaluate=true",
            f"data={data}",
            "realism.scenes_per_snapshot=1",
            "realism.rollout_scenes=4",
            "realism.c2st_epochs=40",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "| metric | learned | rule_based | train_data |" in out
    for row in ("w1_speed", "w1_gap", "w1_headway", "w1_rel_speed", "w1_lane", "w1_density"):
        assert f"| {row} " in out
    assert "c2st_vehicle" in out and "w1_speed_change_10s" in out
