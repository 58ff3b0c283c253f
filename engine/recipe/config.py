"""Typed configs of ``canopygaps recipe`` and ``canopygaps crossval``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.base import Config, fraction
from engine.data.config import SiteConfig
from engine.errors import ConfigError


@dataclass
class HeldOutSite(Config):
    """A site the recipe never trains on, evaluated at the end: a DSM and its reference."""

    name: str = field(metadata={"help": "Site name in the reports."})
    dsm: Path = field(metadata={"help": "DSM GeoTIFF."})
    reference_dtm: Path | None = field(
        default=None, metadata={"help": "Reference DTM (labels from DSM - DTM)."}
    )
    reference_chm: Path | None = field(default=None, metadata={"help": "Reference CHM."})
    crs: str | None = field(default=None, metadata={"help": "CRS of rasters that carry none."})

    def validate(self) -> None:
        if (self.reference_dtm is None) == (self.reference_chm is None):
            raise ConfigError(
                f"Held-out site '{self.name}' needs exactly one of reference_dtm or reference_chm."
            )

    def evaluation_site(self) -> dict[str, Any]:
        """The site as an ``evaluate`` site mapping."""
        out: dict[str, Any] = {"name": self.name, "dsm": str(self.dsm)}
        if self.reference_dtm is not None:
            out["reference_dtm"] = str(self.reference_dtm)
        if self.reference_chm is not None:
            out["reference_chm"] = str(self.reference_chm)
        if self.crs:
            out["crs"] = self.crs
        return out


def _floors_ok(value: Any) -> str | None:
    values = value if isinstance(value, list) else [value]
    problems = [fraction(v) for v in values]
    return next((p for p in problems if p), None)


def _thresholds_ok(value: Any) -> str | None:
    if not value or len(set(value)) != len(value) or min(value) <= 0:
        return "give distinct positive thresholds in metres."
    return None


@dataclass
class RecipeConfig(Config):
    """Tune the classical method, preprocess, train and evaluate: the default model's recipe."""

    output: Path = field(metadata={"help": "Folder of every product of the recipe."})
    sites: list[SiteConfig] = field(metadata={"help": "Training sites (preprocess sites)."})
    held_out: list[HeldOutSite] = field(
        default_factory=list,
        metadata={"help": "Sites evaluated at the end (model vs classical vs ref21)."},
    )
    thresholds: list[float] = field(
        default_factory=lambda: [2.0, 5.0, 10.0, 15.0, 20.0],
        metadata={"help": "Gap height thresholds (m).", "check": _thresholds_ok},
    )
    tune: bool = field(
        default=True,
        metadata={
            "help": "Tune the adaptive classical method on the training pixels of 'sites' "
            "(else its defaults); the tuned method feeds the model's input channels and is the "
            "baseline of the evaluation."
        },
    )
    dataset: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "preprocess settings (all but output, sites, thresholds)."},
    )
    train: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "train settings (all but dataset, output)."}
    )
    evaluation: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "evaluate settings (all but sites, models, output, classical)."},
    )
    openness_floor: float | list[float] | None = field(
        default=None,
        metadata={
            "help": "Guard of a ground_residual model, set on the trained model before it is "
            "evaluated: its corrections are off where the openness is below this value (0-1) and "
            "full from twice it, so closed canopy keeps the classical answer; one value, or one "
            "per threshold (0: corrections everywhere); empty keeps the training value (the 1st "
            "percentile of the training pixels' openness).",
            "check": _floors_ok,
        },
    )

    def validate(self) -> None:
        floor = self.openness_floor
        if isinstance(floor, list) and len(floor) != len(self.thresholds):
            raise ConfigError(
                f"Config key 'openness_floor': give one value or {len(self.thresholds)} (one per "
                f"threshold), got {len(floor)}."
            )
        for key, banned in (
            ("dataset", {"output", "sites", "thresholds"}),
            ("train", {"dataset", "output"}),
            ("evaluation", {"sites", "models", "output", "classical", "adaptive"}),
        ):
            clash = banned & set(getattr(self, key))
            if clash:
                raise ConfigError(
                    f"Config key '{key}' must not set {', '.join(sorted(clash))}: the recipe "
                    "sets them."
                )


@dataclass
class CrossvalConfig(RecipeConfig):
    """Leave-one-site-out: for each fold site, the recipe trained on the others, evaluated on it.

    Every site of ``sites`` needs a DSM and a DTM or CHM; ``held_out`` is not used here.
    """

    folds: list[str] | None = field(
        default=None, metadata={"help": "Sites to hold out, one fold each (default: every site)."}
    )

    def validate(self) -> None:
        super().validate()
        names = [s.name for s in self.sites]
        for s in self.sites:
            if s.dsm is None or (s.dtm is None and s.chm is None):
                raise ConfigError(
                    f"Cross-validation site '{s.name}' needs a DSM and a DTM or CHM (a held-out "
                    "site is evaluated on its own DSM)."
                )
        unknown = sorted(set(self.folds or []) - set(names))
        if unknown:
            raise ConfigError(f"Unknown fold site(s) {unknown}; sites: {names}.")
