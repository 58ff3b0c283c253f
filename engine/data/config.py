"""The configs of the ``engine.data`` commands and their sections, in one place.

* :class:`PreprocessConfig` (``preprocess``) with its :class:`SiteConfig` list,
  :class:`SplitConfig` (and :class:`HoldoutConfig` rectangles) and :class:`NormalisationConfig`.
* :class:`SynthConfig` (``synth``).

Fields carry ``metadata={"help": ..., "check": fn}``: the CLI options, the plugin's parameter
schema (:mod:`engine.config.schema`) and the error messages come from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.config.base import Config, at_least, fraction, non_negative, positive
from engine.errors import ConfigError
from engine.features.spec import FeatureSpec

if TYPE_CHECKING:
    from engine.features.inputs import InputTransform


@dataclass
class NormalisationConfig(Config):
    """How DSM heights are turned into model input (recorded in manifests and model files)."""

    method: str = field(default="local_low_percentile", metadata={"help": "Normalisation method."})
    window_m: float = field(
        default=64.0,
        metadata={"help": "Block size in metres of the local low percentile.", "check": positive},
    )
    percentile: float = field(
        default=2.0, metadata={"help": "Low percentile (0-100) of the DSM in each block."}
    )
    scale: float = field(
        default=10.0,
        metadata={"help": "Divisor (metres) applied after subtraction.", "check": positive},
    )
    clip_m: float = field(
        default=80.0,
        metadata={
            "help": "Heights above the low surface are clipped to this (metres).",
            "check": positive,
        },
    )

    def validate(self) -> None:
        if self.method != "local_low_percentile":
            raise ConfigError(
                f"Config key 'normalisation.method' = {self.method!r}; "
                "valid: 'local_low_percentile'."
            )
        if not 0 <= self.percentile <= 100:
            raise ConfigError("Config key 'normalisation.percentile' must be between 0 and 100.")


@dataclass
class HoldoutConfig(Config):
    """A rectangle of one site reserved for one split."""

    site: str = field(metadata={"help": "Name of the site to hold out from."})
    region: list[float] | None = field(
        default=None, metadata={"help": "[xmin, ymin, xmax, ymax] in the site's CRS."}
    )
    fraction: float | None = field(
        default=None, metadata={"help": "Share of the site's width/height taken from 'side'."}
    )
    side: Literal["left", "right", "top", "bottom"] = field(
        default="right", metadata={"help": "Side the fraction is taken from."}
    )
    split: Literal["test", "val"] = field(default="test", metadata={"help": "Split it goes to."})

    def validate(self) -> None:
        if (self.region is None) == (self.fraction is None):
            raise ConfigError(
                f"Hold-out of site '{self.site}': give exactly one of 'region' or 'fraction'."
            )
        if self.region is not None:
            r = self.region
            if len(r) != 4 or not (r[0] < r[2] and r[1] < r[3]):
                raise ConfigError(
                    f"Hold-out region {r} of site '{self.site}' must be [xmin, ymin, xmax, ymax] "
                    "with xmin < xmax and ymin < ymax."
                )
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise ConfigError(f"Hold-out fraction of site '{self.site}' must be between 0 and 1.")


@dataclass
class SplitConfig(Config):
    """How tiles are dealt to train/val/test."""

    val_fraction: float = field(
        default=0.15, metadata={"help": "Share of tiles for validation.", "check": fraction}
    )
    test_fraction: float = field(
        default=0.15, metadata={"help": "Share of tiles for test.", "check": fraction}
    )
    block_m: float | None = field(
        default=None, metadata={"help": "Block edge in metres (default: block_tiles tiles)."}
    )
    block_tiles: int = field(
        default=2,
        metadata={"help": "Block edge in tiles when block_m is unset.", "check": at_least(1)},
    )
    holdout: list[HoldoutConfig] = field(
        default_factory=list, metadata={"help": "Rectangles held out for test/val, per site."}
    )

    def validate(self) -> None:
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("split.val_fraction + split.test_fraction must be below 1.")
        if self.block_tiles < 1 or (self.block_m is not None and self.block_m <= 0):
            raise ConfigError("split.block_tiles must be >= 1 and split.block_m > 0.")


@dataclass
class SiteConfig(Config):
    """One site: a DSM with a CHM or DTM, or a CHM alone."""

    name: str = field(metadata={"help": "Site name (unique in the dataset)."})
    dsm: Path | None = field(default=None, metadata={"help": "DSM GeoTIFF (model input)."})
    chm: Path | None = field(default=None, metadata={"help": "CHM GeoTIFF (reference heights)."})
    dtm: Path | None = field(default=None, metadata={"help": "DTM GeoTIFF (CHM = DSM - DTM)."})
    crs: str | None = field(
        default=None,
        metadata={"help": "CRS to assign to rasters that carry none (e.g. EPSG:32721)."},
    )
    synthetic_terrain: bool = field(
        default=True, metadata={"help": "CHM-only site: DSM = CHM + synthetic terrain (else flat)."}
    )
    terrain_relief_m: float = field(
        default=30.0, metadata={"help": "Relief of the synthetic terrain."}
    )

    def validate(self) -> None:
        if self.dsm is None and self.chm is None:
            raise ConfigError(f"Site '{self.name}' needs a 'dsm' (with 'chm' or 'dtm') or a 'chm'.")
        if self.dsm is not None and self.chm is None and self.dtm is None:
            raise ConfigError(
                f"Site '{self.name}' has a DSM but no reference heights.",
                "Add its 'chm' or its 'dtm' (labels come from CHM = DSM - DTM).",
            )
        if self.dsm is None and self.dtm is not None:
            raise ConfigError(
                f"Site '{self.name}' has a DTM but no DSM.", "Give 'dsm' and 'dtm', or a 'chm'."
            )


def _thresholds_ok(value: Any) -> str | None:
    if not value:
        return "give at least one threshold."
    if len(set(value)) != len(value):
        return "thresholds must be distinct."
    return None


@dataclass
class PreprocessConfig(Config):
    """Settings of the ``preprocess`` command."""

    output: Path = field(metadata={"help": "Dataset folder to write."})
    sites: list[SiteConfig] = field(
        metadata={"help": "Sites (give them in --config or --set sites=[{name: a, dsm: ...}])."}
    )
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={"help": "Gap height thresholds in metres.", "check": _thresholds_ok},
    )
    min_gap_area_m2: float | None = field(
        default=None, metadata={"help": "Smallest gap kept (m²).", "check": non_negative}
    )
    max_gap_area_m2: float | None = field(
        default=None, metadata={"help": "Largest gap kept (m²).", "check": non_negative}
    )
    nested: bool = field(default=True, metadata={"help": "Make masks nested across thresholds."})
    tile_size: int = field(
        default=256, metadata={"help": "Tile edge in pixels.", "check": positive}
    )
    overlap: int = field(
        default=0, metadata={"help": "Overlap between tiles in pixels.", "check": non_negative}
    )
    edge: Literal["align", "pad"] = field(
        default="align", metadata={"help": "Last tile: aligned to the edge or padded."}
    )
    max_nodata_fraction: float = field(
        default=0.5, metadata={"help": "Drop tiles with more nodata than this.", "check": fraction}
    )
    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = field(default=0, metadata={"help": "Seed of the split and synthetic terrain."})
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    features: FeatureSpec | None = field(
        default=None,
        metadata={
            "help": "Feature channels (engine.features) as model input instead of the one "
            "normalised-DSM channel; their adaptive-height thresholds are set to 'thresholds'."
        },
    )
    terrain_copies: int = field(
        default=0,
        metadata={
            "help": "Training-split copies of every site on a random tilted surface added to "
            "DSM and DTM alike (labels unchanged): real canopy on steeper slopes."
        },
    )
    terrain_max_slope_deg: float = field(
        default=40.0, metadata={"help": "Steepest plane slope (degrees) of the terrain copies."}
    )
    coarse_copies: int = field(
        default=0,
        metadata={
            "help": "Training-split copies of every site, tilted like the terrain copies, seen "
            "as a coarser lidar product: highest DSM and mean DTM per coarse_factor cells, "
            "interpolated back (labels from that DSM - DTM)."
        },
    )
    coarse_factor: int = field(
        default=2, metadata={"help": "Pixels per side of the coarse copies' cells (2 or more)."}
    )
    pixel_size: float | None = field(
        default=None, metadata={"help": "Resample every site to this pixel size (m)."}
    )
    target_crs: str | None = field(
        default=None, metadata={"help": "Reproject every site to this projected CRS."}
    )
    resampling: str = field(default="bilinear", metadata={"help": "Resampling when grids differ."})

    def validate(self) -> None:
        names = [s.name for s in self.sites]
        if not names:
            raise ConfigError("Config key 'sites' must list at least one site.")
        if len(set(names)) != len(names):
            raise ConfigError(f"Site names must be unique, got {names}.")
        if not 0 <= self.overlap < self.tile_size:
            raise ConfigError("Config key 'overlap' must be between 0 and tile_size - 1.")
        lo, hi = self.min_gap_area_m2, self.max_gap_area_m2
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError("min_gap_area_m2 must not exceed max_gap_area_m2.")
        if self.pixel_size is not None and self.pixel_size <= 0:
            raise ConfigError("Config key 'pixel_size' must be greater than 0.")
        if self.terrain_copies < 0 or not 0 <= self.terrain_max_slope_deg < 80:
            raise ConfigError(
                "Config keys 'terrain_copies' (>= 0) and 'terrain_max_slope_deg' (0-80) are out "
                "of range."
            )
        if self.coarse_copies < 0 or self.coarse_factor < 2:
            raise ConfigError(
                "Config keys 'coarse_copies' (>= 0) and 'coarse_factor' (>= 2) are out of range."
            )

    def input_transform(self, pixel_size: float) -> InputTransform:
        """What the model sees: the feature channels, or the normalised DSM."""
        # imported here: engine.features.inputs imports engine.data.normalise, which imports
        # this module
        from engine.features.inputs import FeatureTransform, LowSurfaceTransform

        if self.features is not None:
            return FeatureTransform(self.features, pixel_size)
        return LowSurfaceTransform(self.normalisation, pixel_size)


def _check_crs(value: Any) -> str | None:
    from engine.io.grid import to_crs

    try:
        crs = to_crs(value)
    except Exception as exc:
        return str(exc)
    return None if crs is not None and crs.is_projected else "must be a projected CRS in metres."


@dataclass
class SynthConfig(Config):
    """Settings of the ``synth`` command (one synthetic scene written as GeoTIFFs)."""

    output: Path = field(
        metadata={"help": "Output folder (dsm.tif, dtm.tif, chm.tif, scene.json)."}
    )
    size: int = field(
        default=512, metadata={"help": "Scene width and height in pixels.", "check": positive}
    )
    pixel_size: float = field(
        default=1.0, metadata={"help": "Pixel size in metres.", "check": positive}
    )
    seed: int = field(default=0, metadata={"help": "Random seed (same seed, same scene)."})
    crs: str = field(
        default="EPSG:32618",
        metadata={"help": "Projected CRS of the outputs.", "check": _check_crs},
    )
    origin_x: float = field(
        default=500000.0, metadata={"help": "X of the upper-left corner (CRS units)."}
    )
    origin_y: float = field(
        default=4700000.0, metadata={"help": "Y of the upper-left corner (CRS units)."}
    )
    relief_m: float = field(
        default=30.0, metadata={"help": "Terrain relief scale in metres.", "check": non_negative}
    )
    tree_spacing_m: float = field(
        default=6.0, metadata={"help": "Mean distance between trees (m).", "check": positive}
    )
    crown_height_min: float = field(
        default=10.0, metadata={"help": "Lowest tree height (m).", "check": non_negative}
    )
    crown_height_max: float = field(default=35.0, metadata={"help": "Highest tree height (m)."})
    gaps: int = field(default=12, metadata={"help": "Number of gaps.", "check": non_negative})
    gap_radius_min_m: float = field(
        default=3.0, metadata={"help": "Smallest gap semi-axis (m).", "check": positive}
    )
    gap_radius_max_m: float = field(
        default=20.0, metadata={"help": "Largest gap semi-axis (m).", "check": positive}
    )
    regrowth_max_m: float = field(
        default=8.0, metadata={"help": "Highest regrowth inside gaps (m).", "check": non_negative}
    )
    holes: int = field(
        default=0,
        metadata={"help": "Number of nodata holes (no lidar returns).", "check": non_negative},
    )

    def validate(self) -> None:
        if self.crown_height_min >= self.crown_height_max:
            raise ConfigError("Config key 'crown_height_min' must be below 'crown_height_max'.")
        if self.gap_radius_min_m > self.gap_radius_max_m:
            raise ConfigError("Config key 'gap_radius_min_m' must not exceed 'gap_radius_max_m'.")
        if self.gaps < 0 or self.holes < 0:
            raise ConfigError("Config keys 'gaps' and 'holes' must be 0 or more.")
