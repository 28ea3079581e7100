"""Debounced lane-change events with the gaps and relative speeds in the target lane.

Debounce. ``lane_index_from_left`` is derived from lane geometry per row, so a vehicle riding a
lane line flickers between two indices. We run-length encode each track's lane sequence; a run
is *stable* when it lasts >= ``min_hold_s`` (1 s). An event is the first row of a stable run
whose lane differs from the lane before it: the previous stable run's lane, or for the first
stable run of a track the lane the track started in. A-B-A flicker shorter than 1 s thus gives no
event, and an A-B flicker ending in a stable B gives one event, at B's start. Off-map rows
(lane -1) break no runs and are ignored.

At the event row (first row in the new lane) the gap and closing speed to the new leader and to
the new follower come from :func:`generative.data.snapshots.row_relations`. A *cut-in* is an
event with a follower in the target lane: that vehicle had a car cut in ahead of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from generative.data.ngsim import OFF_MAP_LANE, Tracks
from generative.data.snapshots import Snapshots, row_relations

F64 = NDArray[np.float64]
I16 = NDArray[np.int16]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class LaneChanges:
    """Lane-change events, ``(E,)`` each; NaN where the target lane has no leader/follower.

    Attributes:
        track: Track index.
        row: Row (in the source :class:`Tracks`) of the first sample in the new lane.
        t_s: Time of that row [s].
        from_lane: Lane left (index from the left).
        to_lane: Lane entered; ``to_lane < from_lane`` is a change to the left.
        lead_gap_m: Bumper gap to the new leader [m].
        lead_dv_mps: Closing speed to the new leader ``v - v_leader`` [m/s].
        follow_gap_m: Bumper gap from the new follower to the vehicle [m].
        follow_dv_mps: Closing speed of the new follower ``v_follower - v`` [m/s].
        cut_in: Whether there is a new follower (the vehicle cut in ahead of it).
    """

    track: I64
    row: I64
    t_s: F64
    from_lane: I16
    to_lane: I16
    lead_gap_m: F64
    lead_dv_mps: F64
    follow_gap_m: F64
    follow_dv_mps: F64
    cut_in: B

    @property
    def n_events(self) -> int:
        """Number of events E."""
        return int(self.track.shape[0])


def detect_lane_changes(
    tracks: Tracks, min_hold_s: float = 1.0, rel: Snapshots | None = None
) -> LaneChanges:
    """Debounced lane changes of every track (see the module docstring).

    Args:
        tracks: Source tracks with lane indices.
        min_hold_s: Minimum time in the new lane for a change to count [s].
        rel: Row relations, if already computed (:func:`row_relations`).

    Returns:
        The events, in row order.
    """
    on = np.flatnonzero(tracks.lane != OFF_MAP_LANE)
    lane = tracks.lane[on].astype(np.int64)
    trk = tracks.track[on].astype(np.int64)
    t = tracks.t_s[on]
    n = on.size
    if n == 0:
        return _events(tracks, np.zeros(0, np.int64), np.zeros(0, np.int64), rel)
    run_start = np.concatenate(([True], (lane[1:] != lane[:-1]) | (trk[1:] != trk[:-1])))
    starts = np.flatnonzero(run_start)
    ends = np.concatenate((starts[1:], [n])) - 1
    # Duration counts the last sample's own interval: 10 samples at 10 Hz hold for 1 s.
    dt = np.median(np.diff(tracks.t_s)[np.diff(tracks.track) == 0]) if tracks.n_rows > 1 else 0.1
    dur = t[ends] - t[starts] + dt
    stable = dur >= min_hold_s - 1e-6
    run_trk = trk[starts]
    run_lane = lane[starts]
    first_of_track = np.concatenate(([True], run_trk[1:] != run_trk[:-1]))
    # Lane before each run: the latest earlier stable run of the same track, else the track's
    # first lane. Forward-fill the index of stable runs, shifted by one.
    ridx = np.arange(starts.size)
    last_stable = np.maximum.accumulate(np.where(stable, ridx, -1))
    prev_stable = np.concatenate(([-1], last_stable[:-1]))
    track_first_run = np.maximum.accumulate(np.where(first_of_track, ridx, 0))
    has_prev = prev_stable >= track_first_run
    before = np.where(has_prev, run_lane[np.maximum(prev_stable, 0)], run_lane[track_first_run])
    event = stable & ~first_of_track & (run_lane != before)
    ev = np.flatnonzero(event)
    return _events(tracks, on[starts[ev]], before[ev], rel)


def _events(tracks: Tracks, rows: I64, from_lane: I64, rel: Snapshots | None) -> LaneChanges:
    """Attach target-lane relations to event rows."""
    rel = rel if rel is not None else row_relations(tracks)
    entry_of_row = np.full(tracks.n_rows, -1, dtype=np.int64)
    entry_of_row[rel.row] = np.arange(rel.n_entries)
    e = entry_of_row[rows]
    lead = rel.leader[e]
    fol = rel.follower[e]
    has_f = fol >= 0
    fs = np.maximum(fol, 0)
    follow_gap = np.where(has_f, rel.gap_m[fs], np.nan)
    follow_dv = np.where(has_f, rel.dv_mps[fs], np.nan)
    return LaneChanges(
        track=tracks.track[rows].astype(np.int64),
        row=rows.astype(np.int64),
        t_s=tracks.t_s[rows],
        from_lane=from_lane.astype(np.int16),
        to_lane=tracks.lane[rows].astype(np.int16),
        lead_gap_m=np.where(lead >= 0, rel.gap_m[e], np.nan),
        lead_dv_mps=np.where(lead >= 0, rel.dv_mps[e], np.nan),
        follow_gap_m=follow_gap,
        follow_dv_mps=follow_dv,
        cut_in=has_f,
    )
