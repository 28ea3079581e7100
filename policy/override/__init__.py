"""The safety-driver override: input devices, arbitration, safety shield, fail-safe, takeover log.

Data flow per tick (``docs/override.md`` is the user guide)::

    device.poll(events) -> HumanCommand           (joystick/wheel, keyboard, scripted trace)
    Supervisor.step(policy_action, human, world)  -> OverrideStep
        arbitrate(...)  who drives: AUTONOMOUS, HUMAN, FAILSAFE (controlled stop), ESTOP
        shield(...)     AEB below a path TTC, never an invalid action
    env.advance(step.executed_action)
    TakeoverLog.update(...) -> takeover events;  TakeoverDataWriter -> takeover_data.npz

Importing this package does not import pygame: only the joystick, keyboard and virtual
joystick modules do, and :func:`open_device` imports them when a config asks for them.
"""

from policy.override.arbiter import ArbiterParams, Mode, OverrideState, arbitrate
from policy.override.command import DeviceError, HumanCommand, HumanInputs, InputDevice
from policy.override.data import (
    TakeoverData,
    TakeoverDataWriter,
    haco_cost,
    load_takeover_data,
)
from policy.override.devices import open_device
from policy.override.failsafe import FailsafeParams, controlled_stop
from policy.override.mapping import InputConfig, check_input
from policy.override.scripted import ScriptedDevice, TraceWriter, read_trace
from policy.override.shield import ShieldParams, path_ttc, shield
from policy.override.supervisor import OverrideStep, Supervisor
from policy.override.takeover_log import TakeoverLog

__all__ = [
    "ArbiterParams",
    "DeviceError",
    "FailsafeParams",
    "HumanCommand",
    "HumanInputs",
    "InputConfig",
    "InputDevice",
    "Mode",
    "OverrideState",
    "OverrideStep",
    "ScriptedDevice",
    "ShieldParams",
    "Supervisor",
    "TakeoverData",
    "TakeoverDataWriter",
    "TakeoverLog",
    "TraceWriter",
    "arbitrate",
    "check_input",
    "controlled_stop",
    "haco_cost",
    "load_takeover_data",
    "open_device",
    "path_ttc",
    "read_trace",
    "shield",
]
