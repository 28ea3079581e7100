"""`gendrive drive` and `gendrive devices` end to end: the window under SDL's dummy driver with a
virtual joystick (takeover, hand-back, screenshot), exact headless replay, pure manual driving,
config composition and errors that name the device or key."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pygame
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gendrive.cli import CONFIG_DIR, SUBCOMMANDS
from gendrive.config import register_configs
from gendrive.devices import list_devices
from gendrive.drive import drive
from gendrive.drive_config import DevicesConfig, DriveConfig
from policy.override.command import DeviceError
from policy.override.data import load_takeover_data
from policy.override.joystick import init_joysticks
from policy.override.mapping import check_input
from policy.override.virtual import VirtualJoystick

INPUTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "input").glob("*.yaml"))
DT = 0.05  # [s] drive.yaml's tick


def _compose(overrides: list[str]) -> DriveConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="drive", overrides=overrides)
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, DriveConfig)
    return obj


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def _events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def pad() -> Iterator[VirtualJoystick]:
    init_joysticks()
    pygame.event.get()
    js = VirtualJoystick("Virtual Xbox Pad", axes=6, buttons=12, initial_axes={4: -1.0, 5: -1.0})
    yield js
    js.detach()
    init_joysticks()  # a drive session closes its window, and with it SDL's event queue
    pygame.event.get()


@pytest.mark.parametrize("name", INPUTS)
def test_every_input_preset_composes_and_checks(name: str, tmp_path: Path) -> None:
    extra = [f"input.trace={tmp_path / 't.jsonl'}"] if name == "scripted" else []
    cfg = _compose([f"input={name}", *extra])
    assert cfg.input.name == name and cfg.sim.dt == DT
    check_input(cfg.input)


def test_subcommands_are_registered() -> None:
    assert {"drive", "devices"} <= set(SUBCOMMANDS)
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="devices", overrides=["once=true"])
    assert OmegaConf.to_object(cfg) == DevicesConfig(once=True)


def test_bad_values_name_the_key() -> None:
    with pytest.raises(Exception, match=r"shield\.release_ttc_s"):
        _compose(["shield.release_ttc_s=0.5"])
    with pytest.raises(Exception, match=r"input\.steer\.axs"):
        _compose(["input.steer.axs=1"])
    with pytest.raises(ValueError, match=r"input\.trace: input=scripted needs a command trace"):
        drive(_compose(["input=scripted", "headless=true"]), Path("unused"), log=StringIO())


def test_live_window_takeover_hand_back_screenshot_then_exact_replay(
    pad: VirtualJoystick, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    script = {  # tick -> (kind, index, value): a gentle steer, a brake, release, hand back
        40: ("axis", 0, -0.25),
        50: ("axis", 0, 0.0),
        60: ("axis", 4, 0.0),
        80: ("axis", 4, -1.0),
        110: ("button", 3, True),
        111: ("button", 3, False),
    }

    def on_tick(k: int) -> None:
        if k in script:
            kind, i, v = script[k]
            if kind == "axis":
                pad.set_axis(i, float(v))
            else:
                pad.set_button(i, bool(v))

    cfg = _compose(
        [
            "input=gamepad",
            "duration_s=8",
            "realtime=false",
            "screenshot=shot.png",
            "window.width=640",
            "window.height=480",
        ]
    )
    summary = drive(cfg, live, log=StringIO(), on_tick=on_tick)
    assert summary["ticks"] == 160 and summary["takeovers"] == 1

    steps = _rows(live / "steps.csv")
    modes = [r["mode"] for r in steps]
    assert modes[:40] == ["AUTONOMOUS"] * 40
    assert modes[40:110] == ["HUMAN"] * 70  # from the tick that reads the stick ...
    assert modes[110:] == ["AUTONOMOUS"] * 50  # ... to the one reading the hand-back press
    assert float(steps[40]["executed_steer"]) > 0 and float(steps[40]["human_steer"]) > 0
    assert float(steps[60]["executed_accel"]) < -0.4  # the brake, in the tick it was pressed

    events = _events(live / "events.jsonl")
    (to,) = [e for e in events if e["type"] == "takeover"]
    assert to["trigger"] == ["steer"] and to["trigger_source"] == ["axis 0"]
    assert to["ended"] == "hand_back" and to["duration_s"] == pytest.approx(70 * DT)
    assert to["t"] == pytest.approx(40 * DT) and to["speed_mps"] > 10

    (row,) = _rows(live / "episodes.csv")
    assert row["takeovers"] == "1" and float(row["human_time_s"]) == pytest.approx(70 * DT)
    assert row["collision"] == "0" and row["end_reason"] == "stopped"
    data = load_takeover_data(live / "takeover_data.npz")
    assert len(data) == 160 and data.takeovers == 1 and int(data.intervened.sum()) == 70
    metrics = json.loads((live / "metrics.json").read_text())
    assert metrics["read_to_actuation_ms"]["n"] == 160

    shot = cv2.imread(str(live / "shot.png"))
    assert shot is not None and shot.shape == (480, 640, 3)
    # The mode banner (top right) is green: the session ended AUTONOMOUS.
    b, g, r = (int(v) for v in shot[20, 600])
    assert g > 120 and r < 100 and b < 120

    # Headless replay from the trace alone: the same trajectory, bit for bit.
    replay = tmp_path / "replay"
    rcfg = _compose(["headless=true", "input=scripted", f"input.trace={live / 'commands.jsonl'}"])
    out = StringIO()
    drive(rcfg, replay, log=out)
    assert "settings from the trace" in out.getvalue()
    assert (replay / "steps.csv").read_text() == (live / "steps.csv").read_text()
    np.testing.assert_array_equal(
        load_takeover_data(replay / "takeover_data.npz").executed_action, data.executed_action
    )


def test_window_shows_human_mode_and_device_loss_alert(
    pad: VirtualJoystick, tmp_path: Path
) -> None:
    def on_tick(k: int) -> None:
        if k == 5:
            pad.set_axis(4, 0.0)  # brake: takeover
        if k == 20:
            pad.detach()  # the pad is gone while the human drives

    cfg = _compose(
        [
            "input=gamepad",
            "duration_s=3",
            "realtime=false",
            "screenshot=shot.png",
            "window.width=640",
            "window.height=480",
        ]
    )
    drive(cfg, tmp_path, log=StringIO(), on_tick=on_tick)
    modes = [r["mode"] for r in _rows(tmp_path / "steps.csv")]
    assert modes[5:20] == ["HUMAN"] * 15 and set(modes[20:]) == {"FAILSAFE"}
    types = [e["type"] for e in _events(tmp_path / "events.jsonl")]
    assert {"device_lost", "failsafe", "takeover"} <= set(types)
    (to,) = [e for e in _events(tmp_path / "events.jsonl") if e["type"] == "takeover"]
    assert to["ended"] == "device_lost"
    shot = cv2.imread(str(tmp_path / "shot.png"))
    _, g, r = (int(v) for v in shot[20, 600])
    assert r > 180 and g < 80  # the red FAILSAFE banner


def test_pure_manual_driving(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    lines = [{"t": k * DT, "throttle": 0.5} for k in range(40)]
    lines += [{"t": k * DT, "hand_back": k == 45} for k in range(40, 60)]
    trace.write_text("\n".join(json.dumps(x) for x in lines))
    cfg = _compose(["policy=none", "headless=true", "input=scripted", f"input.trace={trace}"])
    summary = drive(cfg, tmp_path / "run", log=StringIO())
    assert summary["ticks"] == 60 and summary["takeovers"] == 0
    assert {r["mode"] for r in _rows(tmp_path / "run" / "steps.csv")} == {"HUMAN"}
    refused = [
        e for e in _events(tmp_path / "run" / "events.jsonl") if e["type"] == "hand_back_refused"
    ]
    assert refused[0]["reason"] == "no policy to hand back to"


def test_a_missing_device_is_a_clear_error_never_the_keyboard(tmp_path: Path) -> None:
    init_joysticks()
    pygame.event.get()
    with pytest.raises(DeviceError, match=r"input 'g29': no joystick matching device='G29'"):
        drive(_compose(["input=g29", "headless=true"]), tmp_path, log=StringIO())
    with pytest.raises(DeviceError, match=r"the keyboard needs the drive window"):
        drive(_compose(["input=keyboard", "headless=true"]), tmp_path, log=StringIO())


def test_console_drive_missing_device_exits_2_naming_it(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "gendrive"
    res = subprocess.run(
        [str(exe), "drive", "input=g29", "headless=true", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2, res.stderr
    assert "input 'g29': no joystick matching device='G29'" in res.stderr
    assert "no fallback to the keyboard" in res.stderr


def test_devices_once_lists_the_virtual_joystick(pad: VirtualJoystick) -> None:
    pad.set_axis(2, 0.5)
    pad.set_button(7, True)
    out = StringIO()
    snaps = list_devices(DevicesConfig(once=True), out)
    text = out.getvalue()
    assert any(s.name == "Virtual Xbox Pad" for s in snaps)
    assert "Virtual Xbox Pad" in text and "axes (6)" in text and "2:+0.500" in text
    assert "buttons (12): pressed 7" in text
    out = StringIO()
    list_devices(DevicesConfig(once=True, json=True), out)
    (js,) = [j for j in json.loads(out.getvalue())["joysticks"] if j["name"] == "Virtual Xbox Pad"]
    assert len(js["axes"]) == 6 and js["buttons"][7] == 1


def test_devices_live_shows_the_range_each_axis_covered(pad: VirtualJoystick) -> None:
    out = StringIO()
    pad.set_axis(3, -1.0)
    list_devices(DevicesConfig(interval_s=0.01, duration_s=0.05), out)
    assert "axis  3 -1.000   seen -1.000 .. -1.000" in out.getvalue()


def test_console_devices_once(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "gendrive"
    res = subprocess.run(
        [str(exe), "devices", "once=true"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={"SDL_AUDIODRIVER": "dummy", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert "joystick" in res.stdout
    assert list(tmp_path.iterdir()) == []  # a listing writes nothing


def test_a_trained_checkpoint_drives_and_the_human_takes_over(
    train_run: Path, tmp_path: Path
) -> None:
    run = train_run

    trace = tmp_path / "t.jsonl"
    lines = [{"t": k * DT} for k in range(20)]
    lines += [{"t": k * DT, "brake": 0.3} for k in range(20, 30)]
    lines += [{"t": k * DT, "hand_back": k == 60} for k in range(30, 80)]
    trace.write_text("\n".join(json.dumps(x) for x in lines))
    base = ["headless=true", "input=scripted", f"input.trace={trace}", "replay_settings=false"]
    out = tmp_path / "ppo"
    summary = drive(_compose([*base, f"policy={run}"]), out, log=StringIO())
    assert summary["ticks"] == 80 and summary["takeovers"] == 1
    steps = _rows(out / "steps.csv")
    assert [r["mode"] for r in steps[:20]] == ["AUTONOMOUS"] * 20
    assert [r["mode"] for r in steps[20:60]] == ["HUMAN"] * 40
    assert [r["mode"] for r in steps[60:]] == ["AUTONOMOUS"] * 20
    assert float(steps[20]["executed_accel"]) == pytest.approx(-0.3)  # the human's brake
    assert {r["episode"] for r in steps} == {"0"}

    # The checkpoint, not the rule-based driver, proposed the actions.
    rb = tmp_path / "rb"
    drive(_compose([*base, "policy=rule_based"]), rb, log=StringIO())
    ppo_a = [float(r["policy_accel"]) for r in steps[:20]]
    rb_a = [float(r["policy_accel"]) for r in _rows(rb / "steps.csv")[:20]]
    assert all(math.isfinite(a) for a in ppo_a) and ppo_a != rb_a

    # The session replays exactly from its trace (which names the checkpoint).
    replay = tmp_path / "replay"
    rcfg = _compose(["headless=true", "input=scripted", f"input.trace={out / 'commands.jsonl'}"])
    drive(rcfg, replay, log=StringIO())
    assert (replay / "steps.csv").read_text() == (out / "steps.csv").read_text()


def test_an_unknown_policy_names_what_was_expected(tmp_path: Path) -> None:
    cfg = _compose(["headless=true", "policy=nowhere/run.pt"])
    with pytest.raises(ValueError, match=r"policy: expected one of .* nowhere/run.pt"):
        drive(cfg, tmp_path, log=StringIO())
