"""Typed configuration of the ``evaluate`` command."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.config.base import Config, between, positive
from engine.config.base import non_negative as _non_negative
from engine.errors import ConfigError
from engine.evaluation.naming import model_labels, slug
from engine.features.config import AdaptiveParams


def _thresholds_ok(value: Any) -> str | None:
    if value is None:
        return None
    if not value:
        return "give at least one threshold (or leave it empty to use the prediction bands)."
    if len(set(value)) != len(value):
        return "thresholds must be distinct."
    return None


def _edges_ok(value: Any) -> str | None:
    if any(b <= a for a, b in itertools.pairwise(value)) or any(v <= 0 for v in value):
        return "size class edges must be positive and increasing."
    return None


def _power_of_two(value: Any) -> str | None:
    ok = isinstance(value, int) and 16 <= value <= 2**20 and not value & (value - 1)
    return None if ok else "must be a power of two from 16 to 1048576."


@dataclass
class SiteConfig(Config):
    """One evaluation site: its reference heights and the gap masks to compare with them."""

    name: str = field(metadata={"help": "Site name (unique; used in tables and file names)."})
    reference_chm: Path | None = field(
        default=None, metadata={"help": "Reference canopy height model GeoTIFF (metres)."}
    )
    dsm: Path | None = field(
        default=None,
        metadata={
            "help": "The site's DSM: with reference_dtm it gives the reference CHM = DSM - DTM; "
            "models and the classical baseline are run on it."
        },
    )
    reference_dtm: Path | None = field(
        default=None,
        metadata={"help": "Reference terrain model (with dsm, instead of reference_chm)."},
    )
    predictions: dict[str, Path] = field(
        default_factory=dict,
        metadata={
            "help": "Gap-mask GeoTIFFs to evaluate: method label -> path (one band per threshold)."
        },
    )
    probabilities: dict[str, Path] = field(
        default_factory=dict,
        metadata={
            "help": "Optional gap probability GeoTIFFs of predictions: label -> path (one band "
            "per threshold, as 'infer --probabilities' writes; on the mask's grid)."
        },
    )
    heights: dict[str, Path] = field(
        default_factory=dict,
        metadata={
            "help": "Optional predicted canopy height GeoTIFFs of predictions: label -> path "
            "(float32 metres, NaN = nodata; on the mask's grid)."
        },
    )
    crs: str | None = field(
        default=None,
        metadata={"help": "CRS (e.g. EPSG:32722) assigned to this site's rasters that carry none."},
    )

    def validate(self) -> None:
        key = f"sites[{self.name}]"
        if not self.name.strip():
            raise ConfigError("Config key 'sites[].name' must not be empty.")
        if self.reference_chm is None and self.reference_dtm is None:
            raise ConfigError(
                f"Site '{self.name}' has no reference.",
                f"Set {key}.reference_chm, or {key}.dsm and {key}.reference_dtm.",
            )
        if self.reference_chm is not None and self.reference_dtm is not None:
            raise ConfigError(
                f"Site '{self.name}' has both reference_chm and reference_dtm.",
                "Give one reference: a CHM, or a DTM (with the DSM).",
            )
        if self.reference_dtm is not None and self.dsm is None:
            raise ConfigError(
                f"Site '{self.name}' has a reference_dtm but no dsm.",
                f"Set {key}.dsm (CHM = DSM - DTM).",
            )
        for label in self.predictions:
            if not label.strip():
                raise ConfigError(f"Site '{self.name}': prediction labels must not be empty.")
        for what, layer in (("probabilities", self.probabilities), ("heights", self.heights)):
            stray = sorted(set(layer) - set(self.predictions))
            if stray:
                raise ConfigError(
                    f"Site '{self.name}': {what} given for {', '.join(stray)}, which is not a "
                    "label of its predictions.",
                    f"Use the label of the gap mask in {key}.predictions as the key in "
                    f"{key}.{what}.",
                )


@dataclass
class EvaluateConfig(Config):
    """Compare gap masks with reference labels over one or more sites and write a report."""

    sites: list[SiteConfig] = field(
        metadata={
            "help": "Sites: {name, reference_chm | (dsm + reference_dtm), predictions: {label: "
            "gap-mask GeoTIFF}, probabilities / heights: {label: GeoTIFF} (optional), crs}."
        }
    )
    output: Path = field(
        metadata={"help": "Report folder (metrics.json, metrics.csv, report.md/.html, figures/)."}
    )
    models: list[Path] = field(
        default_factory=list,
        metadata={"help": "Model files (.safetensors) to run on each site's DSM and evaluate too."},
    )
    classical: bool = field(
        default=False,
        metadata={
            "help": "Also run the classical baselines (no model) on each site's DSM: the "
            "adaptive method ('classical') and the simplest filter ('ref21')."
        },
    )
    adaptive: AdaptiveParams = field(
        default_factory=AdaptiveParams,
        metadata={"help": "Parameters of the adaptive classical baseline."},
    )
    resample: bool = field(
        default=False,
        metadata={
            "help": "Run models on DSMs of another pixel size by resampling them to the model's; "
            "the classical methods then run on the same resampled DSM, so every method is "
            "compared on that grid against the same labels."
        },
    )
    thresholds: list[float] | None = field(
        default=None,
        metadata={
            "help": "Height thresholds (m) to evaluate; default: those in the prediction band "
            "descriptions ('gap <= 5 m') common to every method.",
            "check": _thresholds_ok,
        },
    )
    min_gap_area_m2: float | None = field(
        default=None,
        metadata={
            "help": "Smallest reference gap kept (m², inclusive); use the preprocessing value.",
            "check": _non_negative,
        },
    )
    max_gap_area_m2: float | None = field(
        default=None,
        metadata={
            "help": "Largest reference gap kept (m², inclusive); use the preprocessing value.",
            "check": _non_negative,
        },
    )
    filter_predicted_objects: bool = field(
        default=True,
        metadata={
            "help": "Apply the gap area limits to predicted gaps too, for object metrics and gap "
            "sizes (pixel metrics always use the raw prediction)."
        },
    )
    cell_size_m: float = field(
        default=20.0,
        metadata={
            "help": "Grid cell size (m) for per-cell gap fraction R², RMSE, bias.",
            "check": positive,
        },
    )
    size_classes_m2: list[float] = field(
        default_factory=lambda: [10.0, 100.0, 1000.0],
        metadata={
            "help": "Gap-size class edges (m²) for object metrics: <10, 10-100, ...",
            "check": _edges_ok,
        },
    )
    min_iou: float = field(
        default=0.5,
        metadata={
            "help": "IoU needed for a predicted and a reference gap to match (0.5-1).",
            "check": between(0.5, 1),
        },
    )
    lambda_method: Literal["continuous", "discrete"] = field(
        default="continuous",
        metadata={
            "help": "Gap-size exponent estimator: continuous MLE (ForestGapR Hanel_2017) or "
            "discrete zeta MLE (ForestGapR Asner_2013)."
        },
    )
    resampling: Literal["average", "bilinear", "nearest", "cubic"] = field(
        default="average",
        metadata={
            "help": "Resampling of the reference heights onto the prediction grid when the grids "
            "differ: 'average' (area-weighted, right for a finer reference), 'bilinear', "
            "'nearest', 'cubic'."
        },
    )
    probability_bins: int = field(
        default=2048,
        metadata={
            "help": "Bins of the probability histograms (PR-AUC, best cut); a power of two.",
            "check": _power_of_two,
        },
    )
    height_classes_m: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={
            "help": "Reference height class edges (m) for the canopy height error: <2, 2-5, ...",
            "check": _edges_ok,
        },
    )
    reference_nested: bool = field(
        default=True,
        metadata={"help": "Nest reference masks across thresholds (as preprocessing does)."},
    )
    figures: bool = field(default=True, metadata={"help": "Draw PNG figures (needs matplotlib)."})
    figure_threshold: float | None = field(
        default=None,
        metadata={"help": "Threshold (m) of the error maps; default: the middle threshold."},
    )
    overwrite: bool = field(default=True, metadata={"help": "Replace an existing report folder."})

    def validate(self) -> None:
        if not self.sites:
            raise ConfigError("Config key 'sites' needs at least one site.")
        names = [s.name for s in self.sites]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"Site names must be unique; repeated: {', '.join(dup)}.")
        if (
            self.min_gap_area_m2 is not None
            and self.max_gap_area_m2 is not None
            and self.min_gap_area_m2 > self.max_gap_area_m2
        ):
            raise ConfigError("Config key 'min_gap_area_m2' is larger than 'max_gap_area_m2'.")
        runs = bool(self.models) or self.classical
        for s in self.sites:
            if runs and s.dsm is None:
                raise ConfigError(
                    f"Site '{s.name}' has no dsm, but models or the classical baseline must run "
                    "on it.",
                    f"Set sites[{s.name}].dsm.",
                )
            if not s.predictions and not runs:
                raise ConfigError(
                    f"Site '{s.name}' has nothing to evaluate.",
                    "Give predictions for it, model files ('models') or 'classical: true'.",
                )
        _check_file_names(self)
        stems = [m.stem for m in self.models]
        for s in self.sites:
            clash = set(s.predictions) & ({"classical", "ref21"} if self.classical else set()) | (
                set(s.predictions) & set(stems)
            )
            if clash:
                raise ConfigError(
                    f"Site '{s.name}': prediction label(s) {', '.join(sorted(clash))} clash "
                    "with the names of models or of the classical baseline.",
                    "Rename the prediction labels.",
                )


def _same_file_name(names: list[str]) -> tuple[str, str, str] | None:
    """Two names that become the same file or folder name: ``(a, b, that name)``, else None."""
    seen: dict[str, str] = {}
    for name in names:
        key = slug(name).lower()  # case-insensitive disks (Windows, macOS) too
        if key in seen and seen[key] != name:
            return seen[key], name, slug(name)
        seen.setdefault(key, name)
    return None


def _check_file_names(config: EvaluateConfig) -> None:
    """Refuse site names, and method labels of a site, that would share a file or folder."""
    clash = _same_file_name([s.name for s in config.sites])
    if clash:
        raise ConfigError(
            f"The site names {clash[0]!r} and {clash[1]!r} both become the folder name "
            f"{clash[2]!r} in the report, so one site's predictions would overwrite the other's.",
            "Rename one of the sites (letters, digits, '_', '-' and '.' are kept as they are).",
        )
    methods = model_labels(config.models) + (["classical"] if config.classical else [])
    for site in config.sites:
        clash = _same_file_name(list(site.predictions) + methods)
        if clash:
            raise ConfigError(
                f"Site '{site.name}': the methods {clash[0]!r} and {clash[1]!r} both become the "
                f"file name {clash[2]!r} in the report, so one would overwrite the other.",
                "Rename one of the prediction labels or model files.",
            )
