"""Data layer of the generative scenario model: tracks, snapshots, IDM fits, lane changes."""

from generative.data.idm_fit import IdmFit, fit_idm, fit_idm_batch
from generative.data.interaction import load_interaction_tracks
from generative.data.lane_changes import LaneChanges, detect_lane_changes
from generative.data.ngsim import DataFormatError, Tracks, load_ngsim_us101
from generative.data.snapshots import Snapshots, make_snapshots, road_frame, row_relations
from generative.data.split import RecordingSplit, split_recordings

__all__ = [
    "DataFormatError",
    "IdmFit",
    "LaneChanges",
    "RecordingSplit",
    "Snapshots",
    "Tracks",
    "detect_lane_changes",
    "fit_idm",
    "fit_idm_batch",
    "load_interaction_tracks",
    "load_ngsim_us101",
    "make_snapshots",
    "road_frame",
    "row_relations",
    "split_recordings",
]
