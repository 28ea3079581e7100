"""Loader for INTERACTION-dataset track files (``vehicle_tracks_NNN.csv``) into :class:`Tracks`.

The INTERACTION format gives velocity components rather than speed and acceleration, and no
lane index, so speed is ``hypot(vx, vy)``, acceleration is the time derivative of that speed
within each track (central differences, one-sided at the ends) and ``lane`` is -1 (unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from generative.data.ngsim import (
    DataFormatError,
    Tracks,
    build_tracks,
    parse_column,
    read_csv_columns,
)

F64 = NDArray[np.float64]

INTERACTION_COLUMNS: tuple[str, ...] = (
    "track_id",
    "frame_id",
    "timestamp_ms",
    "agent_type",
    "x",
    "y",
    "vx",
    "vy",
    "psi_rad",
    "length",
    "width",
)


def load_interaction_tracks(path: Path, recording: str | None = None) -> Tracks:
    """Load one INTERACTION track file.

    Args:
        path: A ``vehicle_tracks_NNN.csv`` file.
        recording: Recording name for every row; defaults to the file stem.

    Returns:
        The file's tracks; ``time_step`` is ``frame_id``, ``t_s`` is ``timestamp_ms / 1000``.

    Raises:
        DataFormatError: Missing columns, ragged rows, bad numbers, non-positive sizes or
            duplicate frames; the message names the file, the column and the line.
    """
    raw = read_csv_columns(path, INTERACTION_COLUMNS)
    f = np.float64
    cols = {
        "vehicle_id": parse_column(path, "track_id", raw["track_id"], np.int64),
        "time_step": parse_column(path, "frame_id", raw["frame_id"], np.int32),
        "t_s": parse_column(path, "timestamp_ms", raw["timestamp_ms"], f).astype(f) / 1000.0,
        "x_m": parse_column(path, "x", raw["x"], f),
        "y_m": parse_column(path, "y", raw["y"], f),
        "heading_rad": parse_column(path, "psi_rad", raw["psi_rad"], f),
        "length_m": parse_column(path, "length", raw["length"], f),
        "width_m": parse_column(path, "width", raw["width"], f),
    }
    for name, key in (("length", "length_m"), ("width", "width_m")):
        bad = np.flatnonzero(cols[key].astype(f) <= 0.0)
        if bad.size:
            i = int(bad[0])
            raise DataFormatError(f"{path}: column {name!r}, line {i + 2}: must be > 0")
    vx = parse_column(path, "vx", raw["vx"], f).astype(f)
    vy = parse_column(path, "vy", raw["vy"], f).astype(f)
    cols["speed_mps"] = np.hypot(vx, vy)
    n = vx.shape[0]
    cols["accel_mps2"] = np.zeros(n)  # filled after sorting, when tracks are contiguous
    cols["lane"] = np.full(n, -1, dtype=np.int32)
    name = recording if recording is not None else path.stem
    tracks = build_tracks(path, [name] * n, cols)
    accel = _track_derivative(tracks.speed_mps, tracks.t_s, tracks.track)
    return _replace_accel(tracks, accel)


def _track_derivative(v: F64, t: F64, track: NDArray[np.int32]) -> F64:
    """d v / d t within each track [units of v / s]; 0 for single-row tracks.

    Central differences where both neighbours are in the same track, one-sided at track ends.
    """
    n = v.shape[0]
    prev = np.arange(n) - 1
    nxt = np.arange(n) + 1
    prev[0] = 0
    nxt[-1] = n - 1
    prev = np.where(track[prev] == track, prev, np.arange(n))
    nxt = np.where(track[nxt] == track, nxt, np.arange(n))
    dt = t[nxt] - t[prev]
    out: F64 = np.where(dt > 0, (v[nxt] - v[prev]) / np.where(dt > 0, dt, 1.0), 0.0)
    return out


def _replace_accel(tracks: Tracks, accel: F64) -> Tracks:
    """Copy of ``tracks`` with a new acceleration column."""
    from dataclasses import replace

    return replace(tracks, accel_mps2=accel.astype(np.float64))
