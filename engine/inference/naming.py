"""Output file names for one DSM or a batch of DSMs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class OutputNames:
    """Where the outputs of one DSM go."""

    dsm: Path
    mask: Path
    probabilities: Path | None
    polygons: Path | None
    heights: Path | None = None

    @property
    def work_dir(self) -> Path:
        """Scratch folder next to the mask (part files), removed at the end of the run."""
        return self.mask.with_name(f".{self.mask.stem}.parts")


def _is_folder(path: Path, batch: bool) -> bool:
    return batch or path.is_dir() or path.suffix == ""


def _in(folder: Path | None, name: str, batch: bool, suffix: str) -> Path | None:
    if folder is None:
        return None
    if _is_folder(folder, batch):
        return folder / name
    if folder.suffix.lower() != suffix and not (
        suffix == ".tif" and folder.suffix.lower() in RASTER_SUFFIXES
    ):
        raise InputError(
            f"Output {folder} should end with {suffix}.",
            f"Name it e.g. {folder.with_suffix(suffix)}.",
        )
    return folder


def output_names(
    dsms: list[Path],
    output: Path,
    probabilities: Path | None = None,
    polygons: Path | None = None,
    mask_suffix: str = "_gaps",
    extra_suffix: str = "_probabilities",
    heights: Path | None = None,
) -> list[OutputNames]:
    """One :class:`OutputNames` per DSM. With several DSMs every output path is a folder and
    files are named ``<dsm stem><suffix>``; with one DSM a path without suffix is a folder too."""
    batch = len(dsms) > 1
    names = []
    for dsm in dsms:
        stem = Path(dsm).stem
        mask = _in(output, f"{stem}{mask_suffix}.tif", batch, ".tif")
        assert mask is not None
        n = OutputNames(
            Path(dsm),
            mask,
            _in(probabilities, f"{stem}{extra_suffix}.tif", batch, ".tif"),
            _in(polygons, f"{stem}{mask_suffix}.gpkg", batch, ".gpkg"),
            _in(heights, f"{stem}_heights.tif", batch, ".tif"),
        )
        outs = [p for p in (n.mask, n.probabilities, n.polygons, n.heights) if p is not None]
        if any(p.resolve() == Path(dsm).resolve() for p in outs):
            raise InputError(
                f"An output path equals the input DSM {dsm}.", "Choose another output name."
            )
        if len({p.resolve() for p in outs}) != len(outs):
            raise InputError(
                f"Two outputs of {dsm} share the same path.", "Give each output its own name."
            )
        names.append(n)
    stems = [n.mask for n in names]
    if len(set(stems)) != len(stems):
        raise InputError(
            "Several DSMs have the same file name, so their outputs would collide.",
            "Rename them or run them separately.",
        )
    return names
