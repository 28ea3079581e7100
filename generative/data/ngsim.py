"""Typed track arrays and the NGSIM US-101 loader.

A :class:`Tracks` holds every observed row of a dataset as flat ``(T_total,)`` columns, sorted
by (recording, track, time step), plus a per-track index (``track_start``) so that track ``k``
is the row slice ``track_start[k]:track_start[k + 1]``. Everything downstream (snapshots, IDM
fits, lane changes) works on these columns with numpy, never on per-row Python objects.

Parsing reads the CSV text once with :mod:`csv`, then converts each column with one numpy call;
only when that call fails do we scan the column again to name the offending row, so the happy
path stays vectorised and malformed input still gets an error naming file, column and line.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I16 = NDArray[np.int16]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

NGSIM_COLUMNS: tuple[str, ...] = (
    "scenario_id",
    "obstacle_id",
    "type",
    "length_m",
    "width_m",
    "time_step",
    "t_s",
    "x_m",
    "y_m",
    "orientation_rad",
    "velocity_mps",
    "acceleration_mps2",
    "lanelet_id",
    "lane_index_from_left",
)
OFF_MAP_LANE = -1  # lane_index_from_left of a row outside every lane
AUX_LANE = 5  # lane_index_from_left of the US-101 auxiliary (on/off-ramp) lane


class DataFormatError(ValueError):
    """Malformed dataset file; the message names the file, column and (1-based) line."""


@dataclass(frozen=True)
class Tracks:
    """Trajectories of one dataset as flat columns, rows sorted by (recording, track, step).

    Row columns have shape ``(T,)``; per-track columns shape ``(K,)``; ``track_start`` shape
    ``(K + 1,)``. Positions are in the recording's map frame.

    Attributes:
        recordings: Recording names (NGSIM ``scenario_id``); ``recording`` indexes them.
        recording: Recording index of each row.
        track: Track index of each row (0..K-1, in row order).
        time_step: Integer time step of each row within its recording.
        t_s: Time of each row [s].
        x_m: Map x of the vehicle centre [m].
        y_m: Map y of the vehicle centre [m].
        heading_rad: Yaw [rad], counter-clockwise from +x.
        speed_mps: Speed [m/s].
        accel_mps2: Longitudinal acceleration [m/s^2].
        lane: Lane index from the left (0..5, 5 = auxiliary lane, -1 = off map or unknown).
        length_m: Vehicle length of each row [m].
        width_m: Vehicle width of each row [m].
        track_start: Row offsets of the tracks, ``(K + 1,)``.
        track_recording: Recording index of each track.
        track_vehicle_id: Dataset vehicle id of each track (unique within a recording).
    """

    recordings: tuple[str, ...]
    recording: I32
    track: I32
    time_step: I32
    t_s: F64
    x_m: F64
    y_m: F64
    heading_rad: F64
    speed_mps: F64
    accel_mps2: F64
    lane: I16
    length_m: F64
    width_m: F64
    track_start: I64
    track_recording: I32
    track_vehicle_id: I64

    @property
    def n_rows(self) -> int:
        """Number of rows T."""
        return int(self.t_s.shape[0])

    @property
    def n_tracks(self) -> int:
        """Number of tracks K."""
        return int(self.track_vehicle_id.shape[0])

    @property
    def track_length(self) -> I64:
        """Rows per track, ``(K,)``."""
        out: I64 = np.diff(self.track_start)
        return out

    def rows_of(self, k: int) -> slice:
        """Row slice of track ``k``."""
        return slice(int(self.track_start[k]), int(self.track_start[k + 1]))


def read_csv_columns(path: Path, required: Sequence[str]) -> dict[str, list[str]]:
    """Read a CSV file into text columns, checking the header and the row widths.

    Args:
        path: CSV file with a header line.
        required: Column names that must be present.

    Returns:
        Column name -> list of cell strings, one per data row (line ``i + 2`` of the file).

    Raises:
        DataFormatError: Missing file, missing column, or a row with the wrong number of cells.
    """
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc})") from exc
    if not rows:
        raise DataFormatError(f"{path}: empty file, expected a header line")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; header is {header}")
    width = len(header)
    body = rows[1:]
    widths = np.fromiter((len(r) for r in body), dtype=np.int64, count=len(body))
    bad = np.flatnonzero(widths != width)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"{path}: line {i + 2} has {int(widths[i])} cells, header has {width} columns"
        )
    if not body:
        raise DataFormatError(f"{path}: no data rows")
    cols = list(zip(*body, strict=True))
    return {name: list(cols[j]) for j, name in enumerate(header)}


def parse_column(
    path: Path, name: str, cells: list[str], dtype: type[np.generic]
) -> NDArray[np.generic]:
    """Convert one text column with a single numpy call; on failure name the bad line.

    Floats must also be finite: a NaN position would silently poison every later sort.

    Raises:
        DataFormatError: A cell that is not a (finite) number of ``dtype``.
    """
    try:
        if np.issubdtype(dtype, np.integer):
            # int("3.0") fails, so integers in float notation are rejected here, as they should.
            arr: NDArray[np.generic] = np.array([int(c) for c in cells], dtype=dtype)
        else:
            arr = np.array(cells, dtype=np.float64).astype(dtype, copy=False)
    except (ValueError, OverflowError):
        for i, c in enumerate(cells):
            try:
                int(c) if np.issubdtype(dtype, np.integer) else float(c)
            except (ValueError, OverflowError):
                raise DataFormatError(
                    f"{path}: column {name!r}, line {i + 2}: {c!r} is not a valid "
                    f"{np.dtype(dtype).name}"
                ) from None
        raise  # pragma: no cover - the scan always finds the cell numpy rejected
    if np.issubdtype(dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(arr.astype(np.float64)))
        if bad.size:
            i = int(bad[0])
            raise DataFormatError(
                f"{path}: column {name!r}, line {i + 2}: {cells[i]!r} is not finite"
            )
    return arr


def build_tracks(
    path: Path,
    recording_names: Sequence[str],
    columns: Mapping[str, NDArray[np.generic]],
) -> Tracks:
    """Sort raw row columns into a :class:`Tracks` and build the per-track index.

    Args:
        path: Source file, for error messages.
        recording_names: Recording name of each row.
        columns: Row columns keyed by :class:`Tracks` field name, plus ``vehicle_id`` (int64).

    Raises:
        DataFormatError: Two rows with the same (recording, vehicle, time step).
    """
    recordings, rec_idx = np.unique(np.asarray(recording_names, dtype=object), return_inverse=True)
    rec = rec_idx.astype(np.int32)
    vid = np.asarray(columns["vehicle_id"], dtype=np.int64)
    step = np.asarray(columns["time_step"], dtype=np.int32)
    order = np.lexsort((step, vid, rec))
    rec, vid, step = rec[order], vid[order], step[order]
    same_track = (rec[1:] == rec[:-1]) & (vid[1:] == vid[:-1])
    dup = np.flatnonzero(same_track & (step[1:] == step[:-1]))
    if dup.size:
        i = int(order[dup[0] + 1])
        raise DataFormatError(
            f"{path}: line {i + 2}: duplicate (recording, vehicle, time step) = "
            f"({recording_names[i]}, {int(vid[dup[0]])}, {int(step[dup[0]])})"
        )
    new_track = np.concatenate(([True], ~same_track))
    track = (np.cumsum(new_track) - 1).astype(np.int32)
    starts = np.flatnonzero(new_track)
    track_start = np.concatenate((starts, [rec.shape[0]])).astype(np.int64)

    def col(name: str, dtype: type[np.generic]) -> NDArray[np.generic]:
        return np.ascontiguousarray(np.asarray(columns[name])[order], dtype=dtype)

    return Tracks(
        recordings=tuple(str(r) for r in recordings),
        recording=rec,
        track=track,
        time_step=step,
        t_s=col("t_s", np.float64),  # type: ignore[arg-type]
        x_m=col("x_m", np.float64),  # type: ignore[arg-type]
        y_m=col("y_m", np.float64),  # type: ignore[arg-type]
        heading_rad=col("heading_rad", np.float64),  # type: ignore[arg-type]
        speed_mps=col("speed_mps", np.float64),  # type: ignore[arg-type]
        accel_mps2=col("accel_mps2", np.float64),  # type: ignore[arg-type]
        lane=col("lane", np.int16),  # type: ignore[arg-type]
        length_m=col("length_m", np.float64),  # type: ignore[arg-type]
        width_m=col("width_m", np.float64),  # type: ignore[arg-type]
        track_start=track_start,
        track_recording=rec[starts].astype(np.int32),
        track_vehicle_id=vid[starts].astype(np.int64),
    )


def load_ngsim_us101(path: Path) -> Tracks:
    """Load the NGSIM US-101 track table (``us101_tracks.csv``, CommonRoad export).

    Args:
        path: ``us101_tracks.csv``, or the folder holding it.

    Returns:
        All rows of all recordings as :class:`Tracks`; one track per (scenario_id, obstacle_id).

    Raises:
        DataFormatError: Missing columns, ragged rows, non-numeric or non-finite cells, lane
            indices outside -1..5, negative sizes or duplicate time steps; the message names the
            file, the column and the line.
    """
    if path.is_dir():
        path = path / "us101_tracks.csv"
    raw = read_csv_columns(path, NGSIM_COLUMNS)
    f, i32, i64 = np.float64, np.int32, np.int64
    spec: dict[str, tuple[str, type[np.generic]]] = {
        "vehicle_id": ("obstacle_id", i64),
        "time_step": ("time_step", i32),
        "t_s": ("t_s", f),
        "x_m": ("x_m", f),
        "y_m": ("y_m", f),
        "heading_rad": ("orientation_rad", f),
        "speed_mps": ("velocity_mps", f),
        "accel_mps2": ("acceleration_mps2", f),
        "lane": ("lane_index_from_left", i32),
        "length_m": ("length_m", f),
        "width_m": ("width_m", f),
    }
    cols = {key: parse_column(path, src, raw[src], dt) for key, (src, dt) in spec.items()}
    _check_range(path, "lane_index_from_left", cols["lane"], OFF_MAP_LANE, AUX_LANE)
    _check_range(path, "length_m", cols["length_m"], 1e-3, 50.0)
    _check_range(path, "width_m", cols["width_m"], 1e-3, 10.0)
    _check_range(path, "velocity_mps", cols["speed_mps"], 0.0, 100.0)
    return build_tracks(path, raw["scenario_id"], cols)


def _check_range(path: Path, name: str, arr: NDArray[np.generic], lo: float, hi: float) -> None:
    """Raise naming the first line whose value lies outside ``[lo, hi]``."""
    a = arr.astype(np.float64)
    bad = np.flatnonzero((a < lo) | (a > hi))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"{path}: column {name!r}, line {i + 2}: {a[i]:g} outside [{lo:g}, {hi:g}]"
        )
