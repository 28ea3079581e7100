"""Typed schema of ``gendrive generate`` (``configs/generate.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PreviewConfig:
    """The PNG grid of bird's-eye previews (t = 0) of the first ``count`` scenarios."""

    count: int = 9  # scenarios in the grid (0: no preview)
    columns: int = 3
    width: int = 480  # [px] one tile
    height: int = 320  # [px] one tile
    pixels_per_metre: float = 2.5  # [px/m] 192 m across a tile: the ego and what it meets


@dataclass
class ExportConfig:
    """Interchange formats written next to the JSON specs."""

    xosc: bool = False  # OpenSCENARIO 1.2 .xosc + OpenDRIVE .xodr per scenario (xosc/)


@dataclass
class RealismConfig:
    """Sizes of the realism evaluation (``evaluate=true``, generative.realism)."""

    scenes_per_snapshot: int = 8  # generated scenes per held-out snapshot
    rollout_scenes: int = 48  # scenes per sampler played 10 s in the simulator (0: no rollout)
    c2st_epochs: int = 300  # Adam steps of each two-sample-test classifier
    matched: bool = True  # also the matched comparison (per-snapshot road context and window)


@dataclass
class GenerateConfig:
    """``gendrive generate``: sample scenarios of a family, or evaluate realism on recordings."""

    family: str = "cut_in"  # a name in generative.families.FAMILIES; "none": traffic only
    n: int = 8  # scenarios to sample
    difficulty: float = 0.5  # 0 (easy) .. 1 (critical)
    seed: int = 0  # scenario i is drawn from numpy default_rng([seed, i])
    road: str | None = None  # the road of a scenario config name or spec file (default: family's)
    background: str = "learned"  # learned (traffic model) | random (simulator's) | rule_based
    export: ExportConfig = field(default_factory=ExportConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    evaluate: bool = False  # print the realism table for ``data`` instead of sampling
    data: str | None = None  # recordings in the us101_tracks.csv format (evaluate=true)
    realism: RealismConfig = field(default_factory=RealismConfig)
    progress_bar: bool = True
