"""The real pygame joystick path, driven by a virtual SDL joystick (policy.override.virtual):
mapping presets, buttons, disconnect, staleness, reconnect, a missing device, and the keyboard
through posted key events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pygame
import pytest
import yaml

from policy.override.arbiter import ArbiterParams, Mode, arbitrate, initial_state
from policy.override.command import DeviceError, HumanInputs
from policy.override.joystick import JoystickDevice, init_joysticks, joystick_snapshots
from policy.override.keyboard import KEY_FIRST_STEP_S, KeyboardDevice
from policy.override.mapping import (
    InputConfig,
    JoystickButtons,
    KeyboardKeys,
    PedalAxis,
    SteerAxis,
)
from policy.override.virtual import VirtualJoystick

PRESETS = Path(__file__).resolve().parents[3] / "configs" / "input"


def preset(name: str) -> InputConfig:
    """A configs/input preset as an InputConfig (what Hydra builds from it)."""
    d = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    return InputConfig(
        name=d["name"],
        kind=d["kind"],
        device=d.get("device"),
        stale_timeout_s=d.get("stale_timeout_s"),
        steer=SteerAxis(**d.get("steer", {})),
        throttle=PedalAxis(**d.get("throttle", {})),
        brake=PedalAxis(**d.get("brake", {})),
        buttons=JoystickButtons(**d.get("buttons", {})),
        keys=KeyboardKeys(**d.get("keys", {})),
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pad() -> Iterator[VirtualJoystick]:
    """An Xbox-style pad, triggers released (-1)."""
    init_joysticks()
    pygame.event.get()  # drop what earlier tests left in the queue
    js = VirtualJoystick("Virtual Xbox Pad", axes=6, buttons=12, initial_axes={4: -1.0, 5: -1.0})
    yield js
    js.detach()
    pygame.event.get()


@pytest.fixture
def wheel() -> Iterator[VirtualJoystick]:
    """A G29-like wheel, pedals released (+1)."""
    init_joysticks()
    pygame.event.get()
    js = VirtualJoystick(
        "Virtual G29 Racing Wheel", axes=6, buttons=25, initial_axes={1: 1.0, 2: 1.0, 3: 1.0}
    )
    yield js
    js.detach()
    pygame.event.get()


def test_gamepad_preset_reads_the_stick_and_triggers(pad: VirtualJoystick) -> None:
    dev = JoystickDevice(preset("gamepad"))
    cmd = dev.poll(pygame.event.get())
    assert (cmd.steer, cmd.throttle, cmd.brake) == (0.0, 0.0, 0.0) and cmd.alive
    pad.set_axis(0, -1.0)  # stick fully left
    pad.set_axis(5, 1.0)  # right trigger fully pressed
    cmd = dev.poll(pygame.event.get())
    assert cmd.steer == pytest.approx(0.5)  # + is left; full deflection is half lock
    assert cmd.throttle == pytest.approx(1.0, abs=1e-4) and cmd.brake == 0.0
    pad.set_axis(0, 0.05)  # stick resting off centre: inside the 0.10 deadzone
    pad.set_axis(5, -1.0)
    pad.set_axis(4, 0.0)  # left trigger half way
    cmd = dev.poll(pygame.event.get())
    assert cmd.steer == 0.0 and cmd.throttle == 0.0
    assert cmd.brake == pytest.approx((0.5 - 0.05) / 0.95, abs=1e-4)
    assert dev.source("steer") == "axis 0" and dev.source("hand_back") == "button 3"


def test_g29_pedals_go_from_plus_one_released_to_minus_one_pressed(wheel: VirtualJoystick) -> None:
    dev = JoystickDevice(preset("g29"))
    assert dev.device_name == "Virtual G29 Racing Wheel"
    cmd = dev.poll(pygame.event.get())
    assert (cmd.throttle, cmd.brake) == (0.0, 0.0)
    wheel.set_axis(2, -1.0)  # throttle floored
    wheel.set_axis(3, 0.0)  # brake half way
    wheel.set_axis(0, 0.25)  # wheel a quarter right
    cmd = dev.poll(pygame.event.get())
    assert cmd.throttle == pytest.approx(1.0)
    assert cmd.brake == pytest.approx((0.5 - 0.03) / 0.97, abs=1e-4)
    assert cmd.steer == pytest.approx(-(0.25 - 0.01) / 0.99, abs=1e-4)  # right is -


def test_buttons(pad: VirtualJoystick) -> None:
    dev = JoystickDevice(preset("gamepad"))
    for button, field in ((0, "takeover"), (3, "hand_back"), (1, "emergency_stop")):
        pad.set_button(button, True)
        assert getattr(dev.poll(pygame.event.get()), field)
        pad.set_button(button, False)
        assert not getattr(dev.poll(pygame.event.get()), field)


def test_takeover_from_the_real_device_path_adds_no_tick(pad: VirtualJoystick) -> None:
    dev = JoystickDevice(preset("gamepad"))
    p = ArbiterParams()
    state = initial_state(1, p)
    policy = np.array([[0.0, 0.5]], np.float32)
    for k in range(6):
        if k == 3:
            pad.set_axis(4, 1.0)  # full brake on the left trigger
        cmd = dev.poll(pygame.event.get())
        a, state, _ = arbitrate(policy, HumanInputs.from_commands([cmd]), state, p)
        if k < 3:
            assert state.mode[0] == Mode.AUTONOMOUS
        else:  # the tick that reads the trigger executes it
            assert state.mode[0] == Mode.HUMAN and a[0, 1] == pytest.approx(-1.0, abs=1e-4)


def test_unplugging_makes_the_device_dead_and_plugging_back_revives_it(
    pad: VirtualJoystick,
) -> None:
    dev = JoystickDevice(preset("gamepad"))
    pad.set_axis(5, 1.0)
    assert dev.poll(pygame.event.get()).throttle > 0.9
    pad.detach()
    cmd = dev.poll(pygame.event.get())
    assert not cmd.alive and not cmd.stale and cmd.throttle == 0.0  # frozen values not trusted
    again = VirtualJoystick("Virtual Xbox Pad", axes=6, buttons=12, initial_axes={4: -1, 5: -1})
    try:
        assert dev.poll(pygame.event.get()).alive
    finally:
        again.detach()


def test_a_silent_device_goes_stale_and_an_event_revives_it(pad: VirtualJoystick) -> None:
    clock = FakeClock()
    cfg = preset("gamepad")
    cfg.stale_timeout_s = 2.0
    dev = JoystickDevice(cfg, clock)
    pygame.event.get()
    clock.t += 1.9
    assert dev.poll([]).alive
    clock.t += 0.2
    cmd = dev.poll([])
    assert not cmd.alive and cmd.stale
    pad.set_axis(0, 0.5)
    assert dev.poll(pygame.event.get()).alive


def test_a_missing_joystick_is_an_error_naming_it() -> None:
    init_joysticks()
    pygame.event.get()
    with pytest.raises(DeviceError, match=r"input 'g29': no joystick matching device='G29'"):
        JoystickDevice(preset("g29"))


def test_a_mapping_beyond_the_device_is_an_error_naming_the_key(pad: VirtualJoystick) -> None:
    cfg = preset("gamepad")
    cfg.throttle.axis = 9
    with pytest.raises(DeviceError, match=r"input\.throttle\.axis=9 .* has 6 axes"):
        JoystickDevice(cfg)


def test_snapshots_list_axes_and_buttons(wheel: VirtualJoystick) -> None:
    wheel.set_button(7, True)
    pygame.event.get()
    (snap,) = [s for s in joystick_snapshots() if s.name == "Virtual G29 Racing Wheel"]
    assert len(snap.axes) == 6 and len(snap.buttons) == 25
    assert snap.axes[2] == pytest.approx(1.0, abs=1e-4) and snap.buttons[7] == 1


@pytest.fixture
def window() -> Iterator[None]:
    pygame.display.init()
    pygame.display.set_mode((64, 64))
    pygame.event.get()
    yield
    pygame.display.quit()


def _key(kind: int, name: str) -> pygame.event.Event:
    return pygame.event.Event(kind, key=pygame.key.key_code(name))


def test_keyboard_keys_ramp_and_release(window: None) -> None:
    clock = FakeClock()
    dev = KeyboardDevice(preset("keyboard"), clock)
    cmd = dev.poll([_key(pygame.KEYDOWN, "w")])
    assert cmd.throttle == pytest.approx(2.0 * KEY_FIRST_STEP_S)  # acts at once
    clock.t += 0.2
    assert dev.poll([]).throttle == pytest.approx(2.0 * (0.2 + KEY_FIRST_STEP_S))
    clock.t += 5.0
    assert dev.poll([]).throttle == 1.0
    assert dev.poll([_key(pygame.KEYUP, "w")]).throttle == 0.0
    cmd = dev.poll([_key(pygame.KEYDOWN, "space"), _key(pygame.KEYDOWN, "t")])
    assert cmd.brake > 0 and cmd.takeover


def test_keyboard_opposite_steering_keys_never_cancel(window: None) -> None:
    clock = FakeClock()
    dev = KeyboardDevice(preset("keyboard"), clock)
    dev.poll([_key(pygame.KEYDOWN, "a")])
    clock.t += 0.5
    cmd = dev.poll([_key(pygame.KEYDOWN, "d")])  # right pressed last: it wins
    assert cmd.steer < 0
    clock.t += 0.1
    assert dev.poll([_key(pygame.KEYUP, "d")]).steer > 0  # back to the left key


def test_keyboard_goes_through_the_real_event_queue(window: None) -> None:
    dev = KeyboardDevice(preset("keyboard"))
    pygame.event.post(_key(pygame.KEYDOWN, "left"))
    cmd = dev.poll(pygame.event.get())
    assert cmd.steer > 0


def test_keyboard_without_a_window_is_an_error() -> None:
    pygame.display.quit()
    with pytest.raises(DeviceError, match=r"input 'keyboard': the keyboard needs the drive window"):
        KeyboardDevice(preset("keyboard"))
