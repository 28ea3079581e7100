"""Command traces: exact round trip, short hand-written records, errors naming file:line, the
scripted device; and the input mappings' shaping and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.override.command import HumanCommand
from policy.override.mapping import (
    InputConfig,
    PedalAxis,
    SteerAxis,
    check_input,
    pedal_value,
    steer_value,
)
from policy.override.scripted import ScriptedDevice, TraceWriter, read_trace


def test_trace_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cmds = [
        HumanCommand(
            t=float(rng.uniform(0, 1e4)),
            steer=float(np.float32(rng.uniform(-1, 1))),
            throttle=float(rng.uniform(0, 1)),
            brake=0.1 * k / 3,
            takeover=bool(k % 2),
            alive=k != 2,
            stale=k == 2,
        )
        for k in range(5)
    ]
    w = TraceWriter(tmp_path / "c.jsonl", {"session": {"seed": 3}})
    for c in cmds:
        w.write(c)
    w.close()
    header, back = read_trace(tmp_path / "c.jsonl")
    assert header is not None and header["session"] == {"seed": 3}
    assert back == cmds  # bit for bit


def test_short_records_take_neutral_defaults(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"steer": 0.3}\n\n{"brake": 1, "takeover": true}\n')
    header, cmds = read_trace(p)
    assert header is None
    assert cmds == [HumanCommand(steer=0.3), HumanCommand(brake=1.0, takeover=True)]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"steer": 0.3}\n{"steer": "left"}\n', r"t\.jsonl:2: steer: expected a finite number"),
        ('{"throttle": 1.5}\n', r"t\.jsonl:1: throttle: expected in \[0, 1\], got 1.5"),
        ('{"alive": 1}\n', r"t\.jsonl:1: alive: expected true/false"),
        ('{"tick": 0}\n{"tick": 2}\n', r"t\.jsonl:2: tick 2 where 1 was expected"),
        ("not json\n", r"t\.jsonl:1: not JSON"),
        ('{"format": "other", "version": 1}\n', r"t\.jsonl:1: expected format"),
    ],
)
def test_bad_traces_name_file_line_and_field(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_trace(p)


def test_missing_trace_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl: command trace not found"):
        read_trace(tmp_path / "nope.jsonl")


def test_scripted_device_replays_then_reports_no_human(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(json.dumps({"t": k * 0.1, "throttle": 0.1 * k}) for k in range(3)))
    dev = ScriptedDevice.from_file(p)
    got = [dev.poll() for _ in range(3)]
    assert [c.throttle for c in got] == [0.0, 0.1, 0.2]
    assert dev.finished
    end = dev.poll()
    assert not end.alive and end.t == pytest.approx(0.2)


# -- mappings ---------------------------------------------------------------------------------


def test_steer_deadzone_inversion_and_curve_by_hand() -> None:
    ax = SteerAxis(invert=True, deadzone=0.1, curve=2.0)
    assert steer_value(0.05, ax) == 0.0
    assert steer_value(-1.0, ax) == 1.0  # full left is +1
    assert steer_value(0.55, ax) == pytest.approx(-(0.5**2))
    assert steer_value(2.0, ax) == -1.0  # clipped


def test_pedal_ranges_by_hand() -> None:
    g29 = PedalAxis(released=1.0, pressed=-1.0, deadzone=0.0)
    assert [float(pedal_value(r, g29)) for r in (1.0, 0.0, -1.0)] == [0.0, 0.5, 1.0]
    trigger = PedalAxis(released=-1.0, pressed=1.0, deadzone=0.2)
    assert float(pedal_value(-0.7, trigger)) == 0.0  # 15 % travel: inside the deadzone
    assert float(pedal_value(1.0, trigger)) == 1.0


_axes = st.floats(-1.5, 1.5, allow_nan=False)


@given(_axes, _axes, st.floats(0.0, 0.9), st.floats(0.2, 5.0), st.booleans())
def test_steer_is_bounded_odd_and_monotonic(
    a: float, b: float, dz: float, curve: float, inv: bool
) -> None:
    ax = SteerAxis(invert=inv, deadzone=dz, curve=curve)
    ya = float(steer_value(a, ax))
    assert -1.0 <= ya <= 1.0
    assert float(steer_value(-a, ax)) == pytest.approx(-ya)
    lo, hi = (a, b) if a <= b else (b, a)
    ylo, yhi = float(steer_value(lo, ax)), float(steer_value(hi, ax))
    assert (ylo >= yhi) if inv else (ylo <= yhi)


@given(_axes, st.floats(0.0, 0.9), st.floats(0.2, 5.0), st.sampled_from([(-1.0, 1.0), (1.0, -1.0)]))
def test_pedal_is_bounded_and_zero_at_rest(
    raw: float, dz: float, curve: float, rng: tuple[float, float]
) -> None:
    ax = PedalAxis(released=rng[0], pressed=rng[1], deadzone=dz, curve=curve)
    assert 0.0 <= float(pedal_value(raw, ax)) <= 1.0
    assert float(pedal_value(rng[0], ax)) == 0.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "mouse"}, r"input\.kind: expected one of"),
        ({"steer": SteerAxis(deadzone=0.95)}, r"input\.steer\.deadzone"),
        ({"throttle": PedalAxis(axis=1, curve=0.0)}, r"input\.throttle\.curve"),
        ({"brake": PedalAxis(axis=2, released=1.0, pressed=1.0)}, r"input\.brake: released"),
        ({"kind": "joystick", "throttle": PedalAxis(axis=0)}, r"input\.throttle\.axis: axis 0"),
        ({"stale_timeout_s": 1.0}, r"input\.stale_timeout_s: a keyboard"),
        ({"kind": "scripted"}, r"input\.trace: input=scripted needs"),
    ],
)
def test_bad_mappings_name_the_field(change: dict[str, object], match: str) -> None:
    cfg = InputConfig(**change)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        check_input(cfg)
