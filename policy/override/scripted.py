"""Command traces: recording every tick's :class:`HumanCommand`, and a device that replays them.

A trace is JSON Lines (``commands.jsonl`` in a drive session's run directory):

- an optional first line, the *header*: ``{"format": "gendrive.commands", "version": 1, ...}``
  with the session settings needed to replay it (scenario, seed, ``dt``, policy, override
  parameters; written by ``gendrive drive``);
- then one object per tick, in tick order: ``{"tick": 0, "t": 12.345, "steer": 0.0,
  "throttle": 0.0, "brake": 0.0, "takeover": false, "hand_back": false, "emergency_stop": false,
  "alive": true, "stale": false}``. Missing fields take their neutral value, so a hand-written
  test trace can be as short as ``{"steer": 0.3}``.

Floats are written with ``repr`` precision, so a replayed command equals the recorded one bit
for bit; the arbiter times hand-backs with the recorded ``t``, so replay does not depend on how
fast it runs. Past the last record :class:`ScriptedDevice` reports a dead device (``alive =
False``): there is no more human.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from policy.override.command import HumanCommand

TRACE_FORMAT = "gendrive.commands"
TRACE_VERSION = 1


def read_trace(path: str | Path) -> tuple[dict[str, Any] | None, list[HumanCommand]]:
    """Load a trace.

    Returns:
        (header or None, one command per tick).

    Raises:
        FileNotFoundError: no such file (the message names it).
        ValueError: a malformed line, a field of the wrong type, a tick out of order; the
            message names ``file:line`` and the field.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: command trace not found")
    header: dict[str, Any] | None = None
    cmds: list[HumanCommand] = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if isinstance(data, dict) and "format" in data:
                if cmds or header is not None:
                    raise ValueError(f"{where}: a header is only allowed on the first line")
                if data["format"] != TRACE_FORMAT or data.get("version") != TRACE_VERSION:
                    raise ValueError(
                        f"{where}: expected format {TRACE_FORMAT!r} version {TRACE_VERSION}, got "
                        f"{data['format']!r} version {data.get('version')!r}"
                    )
                header = data
                continue
            if isinstance(data, dict) and "tick" in data and data["tick"] != len(cmds):
                raise ValueError(f"{where}: tick {data['tick']} where {len(cmds)} was expected")
            cmds.append(HumanCommand.from_dict(data, where))
    return header, cmds


class TraceWriter:
    """Appends one line per tick and flushes it, so an interrupted session keeps its trace."""

    def __init__(self, path: str | Path, header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._f: IO[str] = self.path.open("w")
        self.ticks = 0
        if header is not None:
            self._write({"format": TRACE_FORMAT, "version": TRACE_VERSION, **header})

    def _write(self, data: dict[str, Any]) -> None:
        self._f.write(json.dumps(data) + "\n")
        self._f.flush()

    def write(self, cmd: HumanCommand) -> None:
        """Record the next tick's command."""
        self._write({"tick": self.ticks, **cmd.to_dict()})
        self.ticks += 1

    def close(self) -> None:
        self._f.close()


class ScriptedDevice:
    """Replays commands, one per :meth:`poll` (see the module docstring).

    Args:
        commands: the commands, one per tick.
        name: device name for logs.
    """

    def __init__(self, commands: Sequence[HumanCommand], name: str = "scripted") -> None:
        self.commands = list(commands)
        self.name = name
        self.index = 0

    @staticmethod
    def from_file(path: str | Path, name: str = "scripted") -> ScriptedDevice:
        """A device replaying the trace at ``path`` (header ignored; see :func:`read_trace`)."""
        _, cmds = read_trace(path)
        return ScriptedDevice(cmds, name)

    @property
    def finished(self) -> bool:
        """Every recorded command has been replayed."""
        return self.index >= len(self.commands)

    def source(self, control: str) -> str:
        return "trace"

    def poll(self, events: Sequence[Any] = ()) -> HumanCommand:
        """The next recorded command; past the end a dead device."""
        if self.finished:
            last_t = self.commands[-1].t if self.commands else 0.0
            return HumanCommand(t=last_t, alive=False)
        cmd = self.commands[self.index]
        self.index += 1
        return cmd

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["TRACE_FORMAT", "TRACE_VERSION", "ScriptedDevice", "TraceWriter", "read_trace"]
