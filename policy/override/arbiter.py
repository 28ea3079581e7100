"""Arbitration between the driving policy and the safety driver: who drives this tick.

``arbitrate(policy_action, human, state, params, fallback) -> (executed, state', events)`` is a
pure function over B environments. Modes (:class:`Mode`):

=============  ===============================================================================
AUTONOMOUS     the policy's action is executed
HUMAN          the human's command is executed (``[steer, -brake if brake else throttle]``)
FAILSAFE       the device was lost while the human drove: a controlled stop in lane
               (``fallback``: lane keeping, comfortable braking; :mod:`policy.override.failsafe`)
ESTOP          the emergency-stop button was pressed: full braking (``estop_brake``), steering
               by the human if they steer, else by the lane keeper; latched until released
=============  ===============================================================================

Rules, in order of precedence, per environment:

1. **Emergency stop**: the e-stop button held -> ESTOP, from any mode.
2. **Device loss**: in HUMAN mode a device that is not alive (disconnected, or stale: no events
   for its timeout) -> FAILSAFE. In AUTONOMOUS mode the policy keeps driving; a disconnect is
   raised as a ``device_lost`` alert (an idle device going stale while the policy drives is not).
3. **Takeover**: in AUTONOMOUS or FAILSAFE mode, any *active* human input -> HUMAN. An input is
   active when an axis is outside its deadzone (``steer != 0``, ``throttle > 0``, ``brake > 0``,
   each axis judged on its own: a left steer and some throttle never cancel out) or the takeover
   button is held. The new mode applies to **this** tick: the command that triggered the
   takeover is the one executed (zero added ticks).
4. ESTOP ends only on the takeover button with the e-stop released (-> HUMAN) or a hand-back.
5. **Hand back** to AUTONOMOUS only on a *press* (rising edge) of the hand-back button, and only
   when no input has been active for ``hand_back_quiet_s`` (device time). A press while the
   human steers, pedals or holds a button is refused with a ``hand_back_refused`` event naming
   the reason; there is no automatic hand-back.

Times come from the commands' device clock ``t``, which a recorded trace carries, so a replay
arbitrates exactly like the live session. Events are dicts ``{"env": b, "type": ...}``:
``takeover_start`` (with ``trigger``: the active inputs), ``hand_back``, ``hand_back_refused``,
``emergency_stop``, ``estop_released``, ``failsafe`` (with ``cause``), ``device_lost`` (an
alert, with ``cause`` and ``mode``) and ``device_restored``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from policy.override.command import HumanInputs

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]
I8 = NDArray[np.int8]

START_MODES = ("autonomous", "human")


class Mode(IntEnum):
    """Who drives (see the module table)."""

    AUTONOMOUS = 0
    HUMAN = 1
    FAILSAFE = 2
    ESTOP = 3


def human_control(mode: NDArray[np.integer]) -> BoolArr:
    """Modes in which the human is in control (HUMAN, ESTOP): takeover time counts there."""
    out: BoolArr = (mode == Mode.HUMAN) | (mode == Mode.ESTOP)
    return out


@dataclass
class ArbiterParams:
    """Takeover and hand-back rules (the ``override`` node of ``configs/drive.yaml``)."""

    hand_back_quiet_s: float = 1.0  # [s] no active input before a hand-back press is accepted
    start_mode: str = "autonomous"  # autonomous | human (pure manual driving: policy=none)
    allow_hand_back: bool = True  # False when there is no policy to hand back to
    estop_brake: float = 1.0  # [-] brake pedal while the emergency stop is latched (full)

    def __post_init__(self) -> None:
        if self.start_mode not in START_MODES:
            raise ValueError(
                f"override.start_mode: expected one of {list(START_MODES)}, got {self.start_mode!r}"
            )
        if not self.hand_back_quiet_s >= 0:
            raise ValueError(
                f"override.hand_back_quiet_s: expected >= 0 s, got {self.hand_back_quiet_s}"
            )
        if not 0 < self.estop_brake <= 1:
            raise ValueError(f"override.estop_brake: expected in (0, 1], got {self.estop_brake}")


@dataclass(frozen=True)
class OverrideState:
    """The arbiter's memory, (B,) each.

    Attributes:
        mode: :class:`Mode` per environment.
        last_active_t: device time of the last active input [s] (-inf: never).
        hand_back_held: the hand-back button was held last tick (a press is a rising edge).
        lost_announced: a ``device_lost`` alert is standing (cleared when the device is back).
    """

    mode: I8
    last_active_t: F64
    hand_back_held: BoolArr
    lost_announced: BoolArr


def initial_state(num_envs: int, params: ArbiterParams) -> OverrideState:
    """Every environment in ``params.start_mode``, no input seen yet."""
    start = Mode.HUMAN if params.start_mode == "human" else Mode.AUTONOMOUS
    return OverrideState(
        mode=np.full(num_envs, start, np.int8),
        last_active_t=np.full(num_envs, -np.inf),
        hand_back_held=np.zeros(num_envs, np.bool_),
        lost_announced=np.zeros(num_envs, np.bool_),
    )


def reset_state(state: OverrideState, mask: BoolArr, params: ArbiterParams) -> OverrideState:
    """New episodes where ``mask`` (B,): back to the start mode; device alerts stand."""
    fresh = initial_state(state.mode.shape[0], params)
    return OverrideState(
        mode=np.where(mask, fresh.mode, state.mode).astype(np.int8),
        last_active_t=np.where(mask, fresh.last_active_t, state.last_active_t),
        hand_back_held=state.hand_back_held.copy(),
        lost_announced=state.lost_announced.copy(),
    )


def active_inputs(human: HumanInputs) -> dict[str, BoolArr]:
    """Per input, (B,) where it is active on a live device; ordered by takeover priority."""
    alive = human.alive
    return {
        "emergency_stop": alive & human.emergency_stop,
        "takeover": alive & human.takeover,
        "brake": alive & (human.brake > 0.0),
        "steer": alive & (human.steer != 0.0),
        "throttle": alive & (human.throttle > 0.0),
    }


def arbitrate(
    policy_action: NDArray[np.floating],
    human: HumanInputs,
    state: OverrideState,
    params: ArbiterParams,
    fallback: Callable[[], F32] | None = None,
) -> tuple[F32, OverrideState, list[dict[str, Any]]]:
    """Choose each environment's executed action for this tick (see the module docstring).

    Args:
        policy_action: (B, 2) the policy's ``[steer, accel]`` (NaN rows allowed where there is
            no policy; they are never chosen outside AUTONOMOUS).
        human: this tick's commands (B,).
        state: the arbiter's state after the previous tick.
        params: the rules.
        fallback: returns the (B, 2) controlled-stop action; called at most once, only when an
            environment is in FAILSAFE or ESTOP. Required then.

    Returns:
        (executed (B, 2) float32, new state, events). The executed action is not yet shielded.
    """
    pa = np.asarray(policy_action, np.float32)
    m = state.mode
    A, H, F, E = Mode.AUTONOMOUS, Mode.HUMAN, Mode.FAILSAFE, Mode.ESTOP
    act = active_inputs(human)
    any_active = np.logical_or.reduce(list(act.values()))
    es, to = act["emergency_stop"], act["takeover"]
    last_t = np.where(any_active, human.t, state.last_active_t)
    quiet = human.t - last_t
    hb_press = human.alive & human.hand_back & ~state.hand_back_held

    to_estop = es & (m != E)
    lost = ~human.alive & (m == H)
    take = any_active & ((m == A) | (m == F)) & ~es
    estop_exit = (m == E) & to & ~es
    can_hand_back = params.allow_hand_back & ~any_active & (quiet >= params.hand_back_quiet_s)
    hand_back = hb_press & (m != A) & can_hand_back
    refused = hb_press & (m != A) & ~can_hand_back

    new = np.select(
        [to_estop, lost, take, estop_exit, hand_back], [E, F, H, H, A], default=m
    ).astype(np.int8)

    executed = np.where((new == A)[:, None], pa, human.actions()).astype(np.float32)
    stopping = (new == F) | (new == E)
    if stopping.any():
        if fallback is None:
            raise ValueError("arbitrate: an environment is in FAILSAFE/ESTOP but no fallback given")
        fb = np.asarray(fallback(), np.float32)
        executed = np.where((new == F)[:, None], fb, executed)
        est = new == E
        steer = np.where(act["steer"], human.steer, fb[:, 0])
        executed[est, 0] = steer[est]
        executed[est, 1] = -params.estop_brake

    # Alerts: a disconnect in any mode, staleness only where the human was driving.
    connected = human.alive | human.stale
    announce = (
        human.present & ~human.alive & ~state.lost_announced & (~connected | human_control(m))
    )
    restored = state.lost_announced & human.alive

    events: list[dict[str, Any]] = []
    names = list(act)
    for b in map(int, np.nonzero(announce | restored | (new != m) | refused)[0]):
        cause = "stale" if human.stale[b] else "disconnected"
        if announce[b]:
            events.append(
                {"env": b, "type": "device_lost", "cause": cause, "mode": Mode(m[b]).name}
            )
        if restored[b]:
            events.append({"env": b, "type": "device_restored"})
        if to_estop[b]:
            events.append({"env": b, "type": "emergency_stop", "mode": Mode(m[b]).name})
        elif lost[b]:
            events.append({"env": b, "type": "failsafe", "cause": cause})
        elif estop_exit[b]:
            events.append({"env": b, "type": "estop_released"})
        elif hand_back[b]:
            events.append({"env": b, "type": "hand_back", "mode": Mode(m[b]).name})
        if (new[b] in (H, E)) and m[b] in (A, F):
            trig = [n for n in names if act[n][b]]
            events.append({"env": b, "type": "takeover_start", "trigger": trig})
        if refused[b]:
            if not params.allow_hand_back:
                reason = "no policy to hand back to"
            elif any_active[b]:
                reason = "input active: " + ", ".join(n for n in names if act[n][b])
            else:
                reason = f"inputs quiet for {quiet[b]:.2f} s < {params.hand_back_quiet_s:g} s"
            events.append({"env": b, "type": "hand_back_refused", "reason": reason})

    new_state = OverrideState(
        mode=new,
        last_active_t=last_t,
        hand_back_held=human.alive & human.hand_back,
        lost_announced=(state.lost_announced | announce) & ~human.alive,
    )
    return executed, new_state, events


__all__ = [
    "START_MODES",
    "ArbiterParams",
    "Mode",
    "OverrideState",
    "active_inputs",
    "arbitrate",
    "human_control",
    "initial_state",
    "reset_state",
]
