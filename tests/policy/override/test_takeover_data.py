"""Learning signal and logs: HACO cost by hand, the .npz format and its loader, takeover events
and per-episode override metrics from a supervised run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policy.override.command import HumanCommand, HumanInputs
from policy.override.data import (
    SCHEMA,
    TakeoverDataWriter,
    concat,
    haco_cost,
    load_takeover_data,
)
from policy.override.supervisor import Supervisor
from policy.override.takeover_log import METRIC_KEYS, TakeoverLog
from policy.rule_based import RuleBasedDriver
from sim.env import DriveVectorEnv
from sim.observation import observe
from sim.scenario import EgoSpec, RoadSpec, ScenarioSpec

DT = 0.05  # [s]


def test_haco_cost_by_hand() -> None:
    p = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0], [np.nan, np.nan], [1, 1]])
    h = np.array([[0.0, 0.5], [0.0, -1.0], [1.0, 0.0], [0.3, 0.3], [0.0, 1.0], [1, 0]])
    np.testing.assert_allclose(
        haco_cost(p, h), [0.0, 2.0, 1.0, 1.0, 1.0, 1 - np.sqrt(0.5)], atol=1e-6
    )


def _session(tmp_path: Path) -> tuple[Path, list[dict], list[dict]]:
    """A 12 s supervised run on an empty straight road: take over at 2 s (steer + brake),
    hand back at 6 s, take over with the button at 9 s until the end. Returns the .npz path,
    the events and the episode's override metrics."""
    spec = ScenarioSpec(
        road=RoadSpec(kind="straight", num_lanes=2, length=1000.0),
        ego=EgoSpec(lane=-2, s=20.0, speed=20.0, route_length=800.0),
    )
    env = DriveVectorEnv(1, spec, dt=DT)
    env.reset(seed=0)
    policy = RuleBasedDriver()
    sup = Supervisor(1, env.road)
    tlog = TakeoverLog(1, {"steer": "axis 0", "brake": "axis 4", "takeover": "button 0"}.get)
    writer = TakeoverDataWriter({"test": True})
    events: list[dict] = []
    ones = np.ones(1, np.bool_)
    for k in range(int(12.0 / DT)):
        t = k * DT
        if 2.0 <= t < 3.0:
            cmd = HumanCommand(t=t, steer=0.01, brake=0.3)
        elif 6.0 <= t < 6.0 + DT:
            cmd = HumanCommand(t=t, hand_back=True)
        elif 9.0 <= t < 9.0 + DT:
            cmd = HumanCommand(t=t, takeover=True)
        else:
            cmd = HumanCommand(t=t)
        w = env.state
        assert w is not None
        step = sup.step(policy.act(w, env.road), HumanInputs.from_commands([cmd]), w)
        st, out, rew, _, _ = env.advance(step.executed_action)
        events += tlog.update(step, w, st, ones)
        writer.add_step(
            ones, step, observe(w, env.road), observe(st, env.road), rew, out.terminated,
            out.truncated, np.zeros(1), np.zeros(1), np.full(1, k),
        )  # fmt: skip
    metrics, closing = tlog.finish(0, "stopped", st)
    path = writer.save(tmp_path / "takeover_data.npz")
    return path, events + closing, [metrics]


def test_takeover_events_and_metrics(tmp_path: Path) -> None:
    _, events, (m,) = _session(tmp_path)
    takeovers = [e for e in events if e["type"] == "takeover"]
    assert len(takeovers) == 2
    first, second = takeovers
    assert first["t"] == pytest.approx(2.0) and first["trigger"] == ["brake", "steer"]
    assert first["trigger_source"] == ["axis 4", "axis 0"]
    assert first["human_action"] == [0.01, -0.3] and first["ended"] == "hand_back"
    assert first["duration_s"] == pytest.approx(4.0) and first["steps"] == 80
    assert first["speed_mps"] > 0 and {"x", "y", "ttc_s", "policy_action"} <= set(first)
    assert second["trigger"] == ["takeover"] and second["ended"] == "episode_end:stopped"
    assert second["duration_s"] == pytest.approx(3.0)
    assert [e["type"] for e in events if e["type"] == "hand_back"] == ["hand_back"]
    assert set(m) == set(METRIC_KEYS)
    assert m["takeovers"] == 2 and m["human_time_s"] == pytest.approx(7.0)
    assert m["human_time_frac"] == pytest.approx(7.0 / 12.0, abs=1e-4)
    assert m["takeovers_per_km"] > 0 and m["shield_interventions"] == 0


def test_npz_round_trip_and_learning_views(tmp_path: Path) -> None:
    path, _, _ = _session(tmp_path)
    d = load_takeover_data(path)
    T = int(12.0 / DT)
    assert len(d) == T and d.obs.shape[1] == d.next_obs.shape[1] > 0
    assert d.takeovers == 2 and int(d.intervened.sum()) == 140
    assert d.takeover_cost[~d.takeover_start].sum() == 0.0
    np.testing.assert_allclose(
        d.takeover_cost[d.takeover_start],
        haco_cost(d.policy_action[d.takeover_start], d.human_action[d.takeover_start]),
    )
    obs, act = d.demonstrations()
    assert obs.shape == (140, d.obs.shape[1]) and act.shape == (140, 2)
    np.testing.assert_array_equal(d.pvp_cost(), d.intervened.astype(np.float32))
    # next_obs of a row is the obs of the next row within an episode.
    np.testing.assert_array_equal(d.next_obs[:-1], d.obs[1:])
    both = concat([d, d])
    assert len(both) == 2 * T and len(both.meta["sessions"]) == 2
    assert d.meta["test"] is True and d.meta["format"] == "gendrive.takeover_data"


def test_loader_errors_name_file_and_key(tmp_path: Path) -> None:
    path, _, _ = _session(tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "human_action"})
    with pytest.raises(ValueError, match=r"broken\.npz: missing key 'human_action'"):
        load_takeover_data(broken)
    np.savez(broken, **{**arrays, "intervened": arrays["intervened"].astype(np.int8)})
    with pytest.raises(ValueError, match=r"broken\.npz: intervened: expected dtype bool"):
        load_takeover_data(broken)
    np.savez(broken, **{**arrays, "reward": arrays["reward"][:-1]})
    with pytest.raises(ValueError, match=r"broken\.npz: reward: expected shape"):
        load_takeover_data(broken)
    with pytest.raises(FileNotFoundError, match="takeover data not found"):
        load_takeover_data(tmp_path / "none.npz")


def test_empty_session_saves_and_loads(tmp_path: Path) -> None:
    d = load_takeover_data(TakeoverDataWriter({}).save(tmp_path / "e.npz"))
    assert len(d) == 0 and set(SCHEMA) <= {f for f in dir(d)}


def test_writer_rejects_missing_columns() -> None:
    with pytest.raises(KeyError, match="missing"):
        TakeoverDataWriter({}).add(np.ones(1, np.bool_), obs=np.zeros((1, 3)))


def test_vector_env_reports_the_override_in_info() -> None:
    from policy.override.env import OverrideVectorEnv
    from policy.override.scripted import ScriptedDevice

    spec = ScenarioSpec(
        road=RoadSpec(kind="straight", num_lanes=2, length=1000.0),
        ego=EgoSpec(lane=-2, s=20.0, speed=20.0, route_length=800.0),
        time_limit_s=1.0,
    )
    human = ScriptedDevice(
        [HumanCommand(t=k * DT) for k in range(5)] + [HumanCommand(t=5 * DT, brake=0.5)] * 40
    )
    env = OverrideVectorEnv(DriveVectorEnv(2, spec, dt=DT), [human, None])
    env.reset(seed=0)
    policy = RuleBasedDriver()
    infos = []
    for _ in range(22):  # 20 steps to the 1 s time limit, then the autoreset step
        w = env.env.state
        assert w is not None
        *_, info = env.step(policy.act(w, env.env.road))
        infos.append(info)
    keys = {"action_policy", "action_executed", "override_mode", "intervened", "takeover_start"}
    assert keys <= set(infos[0])
    assert [bool(i["takeover_start"][0]) for i in infos[:7]] == [False] * 5 + [True, False]
    assert infos[5]["reward_terms"]["takeover"][0] == 1.0
    assert infos[5]["takeover_cost"][0] > 0 and infos[5]["override_events"][0]["env"] == 0
    np.testing.assert_allclose(infos[5]["action_executed"][0], [0.0, -0.5])
    assert not infos[5]["intervened"][1]  # no human in env 1
    assert bool(infos[19]["intervened"][0]) and not infos[20]["intervened"][0]  # autoreset step
    assert infos[20]["override_mode"][0] == 0 and infos[21]["takeover_start"][0]


def test_schema_matches_the_dataclass() -> None:
    from dataclasses import fields

    from policy.override.data import TakeoverData

    assert {f.name for f in fields(TakeoverData)} - {"meta"} == set(SCHEMA)
