"""``gendrive drive``: drive one environment live with a safety driver who can take over.

The policy (``policy=rule_based``, a PPO checkpoint or a ``gendrive train`` run directory;
``policy=none`` for pure manual driving) drives the ego; the
human takes over at any moment with the ``input=`` device (keyboard, gamepad, wheel) and hands
back with the hand-back button (rules: :mod:`policy.override.arbiter`). A pygame window shows
the bird's-eye view with a HUD: speed, the mode in a clear colour (green AUTONOMOUS, orange
HUMAN, red FAILSAFE / E-STOP), takeovers, TTC, the reward terms and the human's inputs.

One tick, paced at ``sim.dt`` in real time (a late tick is not caught up: the next one starts
from now)::

    policy action -> read input (window events, device) -> arbitrate + shield -> env.advance
    -> logs -> render

The input is read after the policy so the tick's one wait, the policy, is not between the read
and the actuation; the read-to-actuation time of every tick is in ``metrics.json``.

Run directory (Hydra's, ``outputs/<date>/<time>`` unless ``hydra.run.dir=...``):

- ``commands.jsonl``: the command trace, a header with the session settings, then one command
  per tick (:mod:`policy.override.scripted`). ``gendrive drive headless=true input=scripted
  input.trace=<it>`` replays the session exactly: same settings (from the header), same
  commands, so the same trajectory.
- ``steps.csv``: the episode log, one row per tick: pose, speed, mode, intervention flags,
  policy / human / executed action, path TTC, reward.
- ``events.jsonl``: takeovers (one event each, written when it ends), hand-back refusals,
  device alerts, fail-safe stops, emergency stops, shield interventions, and the simulator's
  events (collisions, near misses, ...).
- ``episodes.csv``: one row per episode, the metrics of ``gendrive run`` plus takeovers,
  takeovers per km, time under human control and shield interventions.
- ``takeover_data.npz``: the learning signal (:mod:`policy.override.data`).
- ``metrics.json``: the summary, with the read-to-actuation latency percentiles.

Keys in the window: Esc or closing the window ends the session, F12 saves a screenshot.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import cv2
import numpy as np
from numpy.typing import NDArray

from gendrive.drive_config import POLICIES, DriveConfig, WindowConfig
from gendrive.report import summarize
from gendrive.run import metrics_config, reward_weights, scenario_from_config, write_json_atomic
from policy.override.arbiter import Mode
from policy.override.command import DeviceError, HumanCommand, HumanInputs, InputDevice
from policy.override.data import TakeoverDataWriter
from policy.override.devices import open_device
from policy.override.scripted import ScriptedDevice, TraceWriter, read_trace
from policy.override.supervisor import OverrideStep, Supervisor
from policy.override.takeover_log import TakeoverLog
from sim.env import DriveVectorEnv
from sim.episode import EpisodeTracker, TrackerConfig
from sim.metrics import MetricsConfig, Outcome, RewardWeights
from sim.observation import observe
from sim.render import BevStyle, render_bev, route_polyline
from sim.road import LaneGraph
from sim.scenario import ScenarioSpec, SpecError
from sim.state import WorldState

if TYPE_CHECKING:
    from policy.rule_based import Driver

U8 = NDArray[np.uint8]

MODE_COLOURS: dict[int, tuple[int, int, int]] = {  # RGB: green means the machine drives
    Mode.AUTONOMOUS: (40, 170, 80),
    Mode.HUMAN: (245, 150, 30),
    Mode.FAILSAFE: (215, 40, 40),
    Mode.ESTOP: (215, 40, 40),
}
MODE_LABELS = {
    Mode.AUTONOMOUS: "AUTONOMOUS",
    Mode.HUMAN: "HUMAN",
    Mode.FAILSAFE: "FAILSAFE STOP",
    Mode.ESTOP: "E-STOP",
}
HUD_TERMS = ("progress", "fuel", "ttc_risk", "comfort", "takeover")  # weighted, in the HUD
STEP_FIELDS = (
    "episode",
    "step",
    "t",
    "x",
    "y",
    "yaw",
    "speed_mps",
    "lane",
    "mode",
    "intervened",
    "takeover_start",
    "takeover_cost",
    "shield_aeb",
    "shield_invalid",
    "ttc_path_s",
    "alive",
    "policy_steer",
    "policy_accel",
    "human_steer",
    "human_accel",
    "executed_steer",
    "executed_accel",
    "reward",
)
# Session settings stored in the trace header: everything that shapes the trajectory.
SESSION_KEYS = (
    "sim",
    "reward",
    "metrics",
    "vehicle",
    "vehicle_file",
    "override",
    "shield",
    "failsafe",
    "policy",
    "lane_change",
    "seed",
)


# -- configuration ---------------------------------------------------------------------------


scenario_spec = scenario_from_config  # the same rule as gendrive run


def session_config(cfg: DriveConfig, log: TextIO = sys.stdout) -> DriveConfig:
    """``cfg`` checked, with the recorded settings of a replayed trace applied.

    With ``input=scripted`` and ``replay_settings`` the trace header's scenario, seed, ``dt``,
    policy and override rules replace the configured ones (announced on ``log``), so a replay
    needs only the trace. ``policy=none`` starts in HUMAN mode with no hand-back.

    Raises:
        ValueError: an unknown policy or a bad override/shield/failsafe value (names the key).
        FileNotFoundError: the trace does not exist.
    """
    from omegaconf import OmegaConf

    if cfg.input.kind == "scripted" and cfg.replay_settings and cfg.input.trace:
        header, _ = read_trace(cfg.input.trace)
        if header is not None and "session" in header:
            base = OmegaConf.structured(cfg)
            session = dict(header["session"])
            session["scenario_file"] = None
            merged = OmegaConf.merge(base, session)
            for whole in ("scenario", "vehicle"):  # replaced, not merged into the configured
                OmegaConf.update(merged, whole, session[whole], merge=False)
            cfg = OmegaConf.to_object(merged)  # type: ignore[assignment]
            print(
                f"replaying {cfg.input.trace}: settings from the trace (scenario "
                f"'{session['scenario'].get('name', '?')}', seed {cfg.seed}, dt {cfg.sim.dt} s, "
                f"policy {cfg.policy})",
                file=log,
            )
    if cfg.policy not in POLICIES:
        from policy.load import PolicyError, resolve_checkpoint

        try:
            resolve_checkpoint(cfg.policy)
        except PolicyError as e:
            raise ValueError(
                f"policy: expected one of {list(POLICIES)}, a .pt checkpoint or a "
                f"'gendrive train' run directory; {e}"
            ) from None
    if cfg.policy == "none":
        cfg = replace(
            cfg, override=replace(cfg.override, start_mode="human", allow_hand_back=False)
        )
    if cfg.sim.backend != "embedded":
        raise ValueError(
            f"sim.backend: 'gendrive drive' drives the embedded simulator; got {cfg.sim.backend!r}"
        )
    if cfg.duration_s is not None and not cfg.duration_s > 0:
        raise ValueError(f"duration_s: expected > 0 s or null, got {cfg.duration_s}")
    if cfg.episodes is not None and cfg.episodes < 1:
        raise ValueError(f"episodes: expected >= 1 or null, got {cfg.episodes}")
    return cfg


def _session_header(cfg: DriveConfig, spec: ScenarioSpec, device: InputDevice) -> dict[str, Any]:
    full = asdict(cfg)
    session = {k: full[k] for k in SESSION_KEYS}
    session["scenario"] = spec.to_dict()
    return {"device": device.name, "input": full["input"], "session": session}


# -- the window ------------------------------------------------------------------------------


class Window:
    """The pygame window: shows frames, collects this tick's events, Esc/close quits."""

    def __init__(self, cfg: WindowConfig, title: str) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        pygame.display.init()
        self.screen = pygame.display.set_mode((cfg.width, cfg.height))
        pygame.display.set_caption(title)
        self.size = (cfg.width, cfg.height)
        self.quit = False
        self.screenshot_requested = False

    def events(self) -> list[Any]:
        """This tick's events (pumping SDL also refreshes joystick state)."""
        pg = self.pg
        evs: list[Any] = pg.event.get()
        for ev in evs:
            if ev.type == pg.QUIT or (ev.type == pg.KEYDOWN and ev.key == pg.K_ESCAPE):
                self.quit = True
            elif ev.type == pg.KEYDOWN and ev.key == pg.K_F12:
                self.screenshot_requested = True
        return evs

    def show(self, frame: U8) -> None:
        surf = self.pg.image.frombuffer(frame.tobytes(), self.size, "RGB")
        self.screen.blit(surf, (0, 0))
        self.pg.display.flip()

    def save(self, path: Path) -> Path:
        """The window's current content as a PNG."""
        self.pg.image.save(self.screen, str(path))
        return path

    def close(self) -> None:
        self.pg.display.quit()


def _pump_only() -> list[Any]:
    """Events for a joystick without a window (headless): SDL needs its event queue pumped."""
    import pygame

    return pygame.event.get()


def draw_overlay(
    frame: U8,
    mode: int,
    alert: str | None,
    aeb: bool,
    human_action: tuple[float, float],
) -> U8:
    """Mode banner (top right), alert (top centre), AEB box and the human's input bars."""
    h, w = frame.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    label = MODE_LABELS[Mode(mode)]
    (tw, th), _ = cv2.getTextSize(label, font, 0.8, 2)
    x0 = w - tw - 30
    cv2.rectangle(frame, (x0, 8), (w - 8, 20 + th + 8), MODE_COLOURS[mode], -1)
    cv2.putText(frame, label, (x0 + 11, 20 + th - 4), font, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    y = 20 + th + 20
    if aeb:
        cv2.rectangle(frame, (w - 90, y), (w - 8, y + 30), (215, 40, 40), -1)
        cv2.putText(frame, "AEB", (w - 76, y + 22), font, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    if alert:
        (aw, ah), _ = cv2.getTextSize(alert, font, 0.7, 2)
        # Below the ego (the view centre), clear of the HUD box and the mode banner.
        ax, ay = (w - aw) // 2, (3 * h) // 4
        cv2.rectangle(frame, (ax - 10, ay - ah - 10), (ax + aw + 10, ay + 10), (215, 40, 40), -1)
        cv2.putText(frame, alert, (ax, ay), font, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    # Input bars: steering around a centre mark, then accel (green) / brake (red).
    steer, accel = human_action
    bx, by, bw, bh = 10, h - 50, 200, 14
    cv2.rectangle(frame, (bx, by), (bx + bw, by + bh), (60, 60, 60), -1)
    cx = bx + bw // 2
    sx = cx - int(steer * bw / 2)  # + steer is left: the bar grows to the left
    cv2.rectangle(frame, (min(cx, sx), by), (max(cx, sx), by + bh), (240, 240, 240), -1)
    cv2.line(frame, (cx, by - 2), (cx, by + bh + 2), (255, 255, 255), 1)
    by2 = by + bh + 6
    cv2.rectangle(frame, (bx, by2), (bx + bw, by2 + bh), (60, 60, 60), -1)
    colour = (60, 200, 90) if accel >= 0 else (230, 60, 50)
    cv2.rectangle(frame, (bx, by2), (bx + int(abs(accel) * bw), by2 + bh), colour, -1)
    cv2.putText(
        frame,
        "human steer / pedal",
        (bx + bw + 8, by2 + bh - 2),
        font,
        0.45,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return frame


# -- the session -----------------------------------------------------------------------------


def _fmt_ttc(ttc: float) -> str:
    return f"{ttc:.1f} s" if math.isfinite(ttc) and ttc < 99 else "-"


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ms = np.asarray(values) * 1e3
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
        "max": round(float(ms.max()), 3),
        "n": int(ms.size),
    }


class SessionLog:
    """The run directory's files, appended and flushed tick by tick (module docstring).

    ``takeover_data.npz`` cannot be appended to; it is written by :meth:`close`, which the
    session calls also when interrupted.
    """

    def __init__(self, out_dir: Path, header: dict[str, Any], data_meta: dict[str, Any]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.trace = TraceWriter(out_dir / "commands.jsonl", header)
        self._steps_f = (out_dir / "steps.csv").open("w", newline="")
        self._steps = csv.DictWriter(self._steps_f, fieldnames=list(STEP_FIELDS))
        self._steps.writeheader()
        self._events_f = (out_dir / "events.jsonl").open("w")
        self._episodes_f = (out_dir / "episodes.csv").open("w", newline="")
        self._episodes: csv.DictWriter[str] | None = None
        self.data = TakeoverDataWriter(data_meta)
        self.rows: list[dict[str, Any]] = []

    def events(self, evs: list[dict[str, Any]]) -> None:
        for e in evs:
            self._events_f.write(json.dumps(e) + "\n")
        self._events_f.flush()

    def tick(
        self,
        cmd: HumanCommand,
        step: OverrideStep,
        prev: WorldState,
        nxt: WorldState,
        out: Outcome,
        reward: NDArray[np.float32],
        road: LaneGraph,
        episode: int,
        step_in_ep: int,
    ) -> None:
        """One tick of environment 0: the command, the episode-log row, the data row."""
        self.trace.write(cmd)
        a_p, a_h, a_e = step.policy_action[0], step.human_action[0], step.executed_action[0]
        # Floats are written with repr precision: a replay's log compares equal as text.
        self._steps.writerow(
            {
                "episode": episode,
                "step": step_in_ep,
                "t": float(prev.time[0]),
                "x": float(nxt.x[0, 0]),
                "y": float(nxt.y[0, 0]),
                "yaw": float(nxt.yaw[0, 0]),
                "speed_mps": float(nxt.speed[0, 0]),
                "lane": int(nxt.lane[0, 0]),
                "mode": Mode(int(step.mode[0])).name,
                "intervened": int(step.intervened[0]),
                "takeover_start": int(step.takeover_start[0]),
                "takeover_cost": float(step.takeover_cost[0]),
                "shield_aeb": int(step.shield_aeb[0]),
                "shield_invalid": int(step.shield_invalid[0]),
                "ttc_path_s": float(step.ttc[0]),
                "alive": int(cmd.alive),
                "policy_steer": float(a_p[0]),
                "policy_accel": float(a_p[1]),
                "human_steer": float(a_h[0]),
                "human_accel": float(a_h[1]),
                "executed_steer": float(a_e[0]),
                "executed_accel": float(a_e[1]),
                "reward": float(reward[0]),
            }
        )
        self._steps_f.flush()
        self.data.add_step(
            np.ones(1, np.bool_), step, observe(prev, road), observe(nxt, road), reward,
            out.terminated, out.truncated, np.full(1, episode), np.zeros(1),
            np.full(1, step_in_ep),
        )  # fmt: skip

    def episode(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._episodes is None:
            self._episodes = csv.DictWriter(self._episodes_f, fieldnames=list(row))
            self._episodes.writeheader()
        self._episodes.writerow(row)
        self._episodes_f.flush()

    def close(self) -> None:
        self.trace.close()
        for f in (self._steps_f, self._events_f, self._episodes_f):
            f.close()
        self.data.save(self.out_dir / "takeover_data.npz")


def _alert(step: OverrideStep, cmd: HumanCommand, kind: str) -> str | None:
    """The HUD's alert line: a device loss, with what the car does about it."""
    if step.failsafe[0]:
        return "DEVICE LOST - STOPPING IN LANE"
    if not cmd.alive and not cmd.stale and kind != "scripted":
        return "DEVICE DISCONNECTED - TAKEOVER UNAVAILABLE"
    return None


def _hud(
    step: OverrideStep,
    out: Outcome,
    reward: float,
    ep_return: float,
    takeovers: int,
    weights: RewardWeights,
) -> dict[str, str]:
    hud = {
        "mode": MODE_LABELS[Mode(int(step.mode[0]))],
        "takeovers": str(takeovers),
        "TTC": _fmt_ttc(float(step.ttc[0])),
        "reward": f"{reward:+.3f} (return {ep_return:+.1f})",
    }
    for name in HUD_TERMS:
        w = getattr(weights, name)
        if w:
            hud[name] = f"{w * float(out.terms[name][0]) + 0.0:+.3f}"  # + 0.0: no "-0.000"
    return hud


def _warm_up(env: DriveVectorEnv, mcfg: MetricsConfig) -> None:
    """One throwaway step of the pure simulator functions before the first tick.

    Their first call pays one-off costs (tens of ms of lazy initialisation) that would
    otherwise land on the first tick's read-to-actuation path. Pure functions: the session's
    state is untouched, so a replay is unaffected.
    """
    from sim import world
    from sim.metrics import evaluate

    st = env.state
    assert st is not None
    idle = np.zeros((1, 2), np.float32)
    evaluate(st, idle, world.step(st, idle, env.params, env.road), env.road, mcfg)


def _policy_driver(cfg: DriveConfig, vehicle: Any) -> Driver | None:
    """The autonomous driver of the session: rule-based, a trained PPO policy, or none.

    A checkpoint is loaded before the window opens, so a checkpoint that does not fit the
    simulator's observation fails with a message naming the file and the mismatch.
    """
    from policy.load import load_ppo_driver, resolve_checkpoint
    from policy.rule_based import RuleBasedDriver, RuleBasedParams

    if cfg.policy == "none":
        return None
    if cfg.policy == "rule_based":
        return RuleBasedDriver(RuleBasedParams(lane_change=cfg.lane_change), vehicle)
    return load_ppo_driver(resolve_checkpoint(cfg.policy))


def drive(
    cfg: DriveConfig,
    out_dir: Path,
    log: TextIO = sys.stdout,
    on_tick: Callable[[int], None] | None = None,
    tick_times: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Run a drive session and write the run directory (module docstring). Returns the summary.

    Args:
        cfg: the configuration.
        out_dir: the run directory.
        log: where the session's messages go.
        on_tick: called with the tick number at the start of every tick (tests and benchmarks
            move a virtual joystick here).
        tick_times: if given, receives ``(t_read, t_actuated)`` (``time.perf_counter``) per tick.

    Raises:
        DeviceError: the input device is missing or unusable (names it).
        ValueError, SpecError, FileNotFoundError: a bad config, scenario or trace (names it).
    """
    cfg = session_config(cfg, log)
    spec = scenario_spec(cfg)
    mcfg = metrics_config(cfg)
    weights = reward_weights(cfg)
    env = DriveVectorEnv(
        num_envs=1,
        scenario=spec,
        dt=cfg.sim.dt,
        num_actors=cfg.sim.num_actors,
        reward=weights,
        metrics=mcfg,
        mobil_interval_s=cfg.sim.mobil_interval_s,
    )
    road, dt = env.road, cfg.sim.dt
    scripted = cfg.input.kind == "scripted"
    if not scripted and cfg.headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # a joystick's events, no window
    realtime = cfg.realtime if cfg.realtime is not None else not cfg.headless
    sim_time = 0.0  # [s] simulated time of the session

    def clock() -> float:
        # Live, the human's seconds are wall seconds; faster than real time they are simulated
        # ones, so hand-back and staleness timing mean the same at any speed.
        return time.monotonic() if realtime else sim_time

    window = None if cfg.headless else Window(cfg.window, f"gendrive drive: {spec.name}")
    try:
        device = open_device(cfg.input, clock)
    except BaseException:
        if window is not None:
            window.close()
        raise
    print(f"input: {cfg.input.name} ({getattr(device, 'device_name', cfg.input.kind)})", file=log)
    policy = _policy_driver(cfg, env.params.vehicle)
    no_policy = np.full((1, 2), np.nan, np.float32)
    sup = Supervisor(1, road, cfg.override, cfg.shield, cfg.failsafe, env.params.vehicle)
    tlog = TakeoverLog(1, device.source)
    tracker = EpisodeTracker(
        1,
        TrackerConfig(near_miss_ttc_s=mcfg.near_miss_ttc_s),
        co2_g_per_l=float(getattr(mcfg.vehicle, "co2_g_per_l", 0.0)),
    )
    style = BevStyle(
        width=cfg.window.width,
        height=cfg.window.height,
        pixels_per_metre=cfg.window.pixels_per_metre,
        rotate_with_ego=cfg.window.rotate_with_ego,
    )
    files = SessionLog(
        out_dir,
        _session_header(cfg, spec, device),
        {"dt": dt, "scenario": spec.name, "policy": cfg.policy, "device": device.name},
    )
    video = None
    if cfg.video and window is not None:
        from sim.render import VideoWriter

        (out_dir / "videos").mkdir(exist_ok=True)
        video = VideoWriter(out_dir / "videos" / "session.mp4", 1.0 / dt)

    ones = np.ones(1, np.bool_)
    episode = tick = step_in_ep = overruns = takeovers = 0
    ep_return = 0.0
    latencies: list[float] = []
    last: tuple[WorldState, Outcome] | None = None  # the running episode's latest step
    interrupted = False
    running = True

    def end_episode(st: WorldState, out: Outcome, reason: str | None) -> None:
        row = {
            "scenario": spec.name,
            "seed": cfg.seed + episode,
            "policy": cfg.policy,
            "input": cfg.input.name,
            **tracker.finish(0, st, out),
        }
        if reason is not None:
            row["end_reason"] = reason
        metrics, evs = tlog.finish(0, row["end_reason"], st)
        files.events(evs)
        files.episode({**row, **metrics})

    env.reset(seed=[cfg.seed])
    _warm_up(env, mcfg)
    t_start = deadline = time.perf_counter()
    try:
        while running:
            if on_tick is not None:
                on_tick(tick)
            if isinstance(device, ScriptedDevice) and device.finished:
                break
            prev = env.state
            assert prev is not None
            # Policy first, then read and act at once: the read-to-actuation path has no wait.
            pa = policy.act(prev, road) if policy is not None else no_policy
            t_read = time.perf_counter()
            events = window.events() if window is not None else ([] if scripted else _pump_only())
            cmd = device.poll(events)
            step = sup.step(pa, HumanInputs.from_commands([cmd]), prev)
            st, out, rew, _, _ = env.advance(step.executed_action)
            t_act = time.perf_counter()
            latencies.append(t_act - t_read)
            if tick_times is not None:
                tick_times.append((t_read, t_act))

            # The takeover term belongs to the override: the env cannot know about takeovers.
            out.terms["takeover"] = step.takeover_start.astype(np.float32)
            rew = rew + np.float32(weights.takeover) * out.terms["takeover"]
            ep_return += float(rew[0])
            takeovers += int(step.takeover_start[0])
            tracker.episode[:] = tlog.episode[:] = episode
            files.events(tracker.update(prev, st, out, rew, ones))
            files.events(tlog.update(step, prev, st, ones))
            files.tick(cmd, step, prev, st, out, rew, road, episode, step_in_ep)
            tick += 1
            step_in_ep += 1
            sim_time += dt
            last = (st, out)

            if out.terminated[0] or out.truncated[0]:
                end_episode(st, out, None)
                row = files.rows[-1]
                print(
                    f"episode {episode}: {row['end_reason']}, return {ep_return:.1f}, "
                    f"takeovers {row['takeovers']}",
                    file=log,
                )
                episode += 1
                last = None
                step_in_ep, ep_return = 0, 0.0
                if cfg.episodes is not None and episode >= cfg.episodes:
                    running = False
                else:
                    env.reset(seed=[cfg.seed + episode], options={"reset_mask": ones})
                    for part in (policy, sup, tracker, tlog):
                        if part is not None:
                            part.reset(ones)
            if cfg.duration_s is not None and sim_time >= cfg.duration_s - 1e-9:
                running = False

            if window is not None:
                now = env.state
                assert now is not None
                hud = _hud(step, out, float(rew[0]), ep_return, takeovers, weights)
                frame = render_bev(road, now, 0, style, route_polyline(road, now, 0), hud)
                a_h = step.human_action[0]
                draw_overlay(
                    frame,
                    int(step.mode[0]),
                    _alert(step, cmd, cfg.input.kind),
                    bool(step.shield_aeb[0]),
                    (float(a_h[0]), float(a_h[1])),
                )
                window.show(frame)
                if video is not None:
                    video.write(frame)
                if window.screenshot_requested:
                    window.screenshot_requested = False
                    window.save(out_dir / f"screenshot_{tick:06d}.png")
                running = running and not window.quit
            if realtime and running:
                deadline += dt
                wait = deadline - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    overruns += 1
                    deadline = time.perf_counter()  # late: start the next tick now, no burst
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if last is not None:
            # The running episode ends with the session: keep its row and its open takeover.
            end_episode(*last, "stopped")
        files.close()
        if video is not None:
            video.close()
        if cfg.screenshot:
            shot = Path(cfg.screenshot)
            shot = shot if shot.is_absolute() else out_dir / shot
            if window is not None:
                window.save(shot)
            elif env.state is not None:
                img = render_bev(road, env.state, 0, style, route_polyline(road, env.state, 0))
                cv2.imwrite(str(shot), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        device.close()
        if window is not None:
            window.close()

    rows = files.rows
    km = sum(float(r.get("distance_km") or 0.0) for r in rows)
    human_s = sum(float(r.get("human_time_s") or 0.0) for r in rows)
    summary: dict[str, Any] = {
        "scenario": spec.name,
        "policy": cfg.policy,
        "input": cfg.input.name,
        "device": device.name,
        "dt": dt,
        "ticks": tick,
        "sim_time_s": round(sim_time, 3),
        "wall_time_s": round(time.perf_counter() - t_start, 3),
        "realtime": realtime,
        "overruns": overruns,
        "interrupted": interrupted,
        "read_to_actuation_ms": _percentiles_ms(latencies),
        "takeovers": takeovers,
        "takeovers_per_km": takeovers / km if km > 1e-3 else None,
        "human_time_s": round(human_s, 3),
        "human_time_frac": human_s / sim_time if sim_time > 0 else None,
        "shield_interventions": sum(int(r["shield_interventions"]) for r in rows),
        "per_episode": summarize(rows),
    }
    write_json_atomic(out_dir / "metrics.json", summary)
    print(
        f"drive: {tick} ticks ({sim_time:.1f} s), {len(rows)} episode(s), {takeovers} "
        f"takeover(s), {summary['shield_interventions']} shield intervention(s); "
        f"run directory: {out_dir}",
        file=log,
    )
    if interrupted:
        raise KeyboardInterrupt
    return summary


def main(cfg: Any) -> None:
    """Hydra entry: convert the DictConfig to :class:`DriveConfig` and drive."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        typed: DriveConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        drive(typed, out_dir)
    except (DeviceError, SpecError, ValueError, FileNotFoundError, OmegaConfBaseException) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = [
    "DriveConfig",
    "SessionLog",
    "draw_overlay",
    "drive",
    "main",
    "scenario_spec",
    "session_config",
]
