"""From finished row bands to output files: masks, optional float layer, post-processing, polygons.

Shared by ``engine infer`` (float layer = probabilities) and ``engine classical`` (float layer =
heights above the local minimum). A method is a ``produce(first, stop)`` generator of windows
``(row_off, col_off, mask uint8[T,h,w], extras)`` (``extras``: one ``[C,h,w]`` array per
requested float layer, in the order of the ``extras`` specs) covering row bands
``first..stop-1``: bands in order, each band's windows from left to right (a window may be the
whole band). Methods compute them in blocks of a bounded number of pixels, so nothing here
depends on the raster width but uint8 mask rows.

Flow (memory bounded by one window, or one post-processing band of at most
:data:`POST_BAND_PX` uint8 pixels; see :mod:`engine.inference.postprocess` for the passes):

* single process, no post-processing: windows go straight into the (staged) final files;
* with post-processing: the raw mask goes to a scratch file, then is post-processed band by band
  (bands of :func:`post_bands`, rows adapted to the width) into the final mask;
* distributed: each rank writes part files for its share of bands; after a barrier rank 0
  assembles them (post-processing on the way) and writes the polygons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.events import Reporter
from engine.inference.distributed import DistContext, split_bands
from engine.inference.naming import OutputNames
from engine.inference.postprocess import postprocess_bands
from engine.inference.staging import Staging
from engine.io.geotiff import RasterWriter
from engine.io.grid import RasterInfo, make_info
from engine.io.raster import RasterReader

MASK_NODATA = 255
Windows = Iterator[tuple[int, int, NDArray[np.uint8], list[NDArray[Any]]]]
POST_BAND_PX = 2**21
"""Pixels per band of the post-processing pass and of copying float part files (rows adapt to
the raster width): 2 Mpx = 2 MB per uint8 mask band plus its int32 component labels."""
COPY_COLS = 4096  # columns per window when float part files are assembled
COMPUTE_END = 0.85
"""Share of a DSM's progress on rank 0 for computing the windows; the rest is post-processing
(up to 0.95) and polygons."""


def mask_descriptions(thresholds: list[float]) -> list[str]:
    """Band descriptions of a gap mask: ``gap <= 5 m``."""
    return [f"gap <= {t:g} m" for t in thresholds]


@dataclass
class ExtraSpec:
    """An optional float layer written next to the masks; ``path`` is its destination (staged
    by :func:`write_outputs`)."""

    path: Path
    count: int
    dtype: str = "float32"
    nodata: float | None = float("nan")
    descriptions: list[str] = field(default_factory=list)


@dataclass
class Post:
    """Post-processing settings in pixels (see :mod:`engine.inference.postprocess`)."""

    min_area_px: float = 0.0
    fill_holes: bool = False
    max_hole_px: float | None = None

    @property
    def active(self) -> bool:
        """True when the mask needs a post-processing pass."""
        return self.min_area_px > 0 or self.fill_holes

    @classmethod
    def from_config(cls, config: Any, pixel_area: float) -> Post:
        """Settings in m² (``min_gap_area_m2``, ``fill_holes``, ``max_hole_area_m2`` of an infer
        or classical config) converted to pixels of ``pixel_area`` m²."""
        hole = config.max_hole_area_m2
        return cls(
            config.min_gap_area_m2 / pixel_area,
            config.fill_holes,
            None if hole is None else hole / pixel_area,
        )


def sub_grid(info: RasterInfo, row0: int, row1: int, path: Path) -> RasterInfo:
    """The grid of rows ``row0..row1`` of ``info``."""
    from affine import Affine

    return make_info(
        info.width, row1 - row0, info.transform * Affine.translation(0, row0), info.crs, path=path
    )


class BandSource:
    """Read mask or float bands from part files that together cover the raster's rows."""

    def __init__(
        self, parts: list[tuple[Path, int, int]], count: int, fill: float, dtype: str
    ) -> None:
        self.parts = [(RasterReader(p), a, b) for p, a, b in parts if b > a]
        self.count = count
        self.fill = fill
        self.dtype = np.dtype(dtype)

    def read(
        self, row_off: int, height: int, col_off: int = 0, width: int | None = None
    ) -> NDArray[Any]:
        """Rows ``row_off .. row_off+height`` (columns ``col_off .. col_off+width``, default all)
        of every band."""
        if width is None:
            width = self.parts[0][0].info.width - col_off
        out = np.full((self.count, height, width), self.fill, dtype=self.dtype)
        for reader, a, b in self.parts:
            lo, hi = max(a, row_off), min(b, row_off + height)
            if hi <= lo:
                continue
            for t in range(self.count):
                values, valid = reader.read_window(lo - a, col_off, hi - lo, width, band=t + 1)
                out[t, lo - row_off : hi - row_off] = np.where(valid, values, self.fill)
        return out

    def close(self) -> None:
        """Close the part files."""
        for reader, _, _ in self.parts:
            reader.close()


def compute_reporter(reporter: Reporter, ctx: DistContext, stage: str) -> Reporter:
    """The progress slice of a method's windows: up to :data:`COMPUTE_END` on rank 0 (the
    rest is post-processing and polygons), all of it on the other ranks."""
    return reporter.sub(0.0, COMPUTE_END if ctx.rank == 0 else 1.0, stage)


def write_outputs(
    info: RasterInfo,
    thresholds: list[float],
    band_rows: list[tuple[int, int]],
    produce: Callable[[int, int], Windows],
    names: OutputNames,
    extras: list[ExtraSpec],
    post: Post,
    ctx: DistContext,
    staging: Staging,
    reporter: Reporter,
) -> dict[str, Any]:
    """Compute this rank's share of bands and (rank 0) produce the final outputs of one DSM.

    The outputs (each ``extras[i].path``, ``names.mask``, ``names.polygons``) are written under
    staged names (see :class:`Staging`); ``names.work_dir`` is a scratch folder shared by all
    ranks. Returns figures for the result.
    """
    extras = [replace(spec, path=staging.path(spec.path)) for spec in extras]
    mask_path = staging.path(names.mask)
    polygons = staging.path(names.polygons) if names.polygons else None
    needs_parts = ctx.active or post.active
    if needs_parts:
        staging.work_dir(names.work_dir)
    work_dir = names.work_dir
    targets = [
        work_dir / f"part{ctx.rank}_extra{i}.tif" if ctx.active else spec.path
        for i, spec in enumerate(extras)
    ]
    mask_target = work_dir / f"part{ctx.rank}_mask.tif" if needs_parts else mask_path
    share = split_bands(len(band_rows), ctx.rank, ctx.world)
    stats = _write_share(
        info, thresholds, band_rows, share, produce, mask_target, targets, extras, reporter
    )
    ctx.barrier()
    if ctx.rank == 0:
        assemble = reporter.sub(COMPUTE_END, 0.95, "post-process")
        _assemble(
            info,
            thresholds,
            band_rows,
            ctx,
            mask_path,
            extras,
            post,
            work_dir,
            needs_parts,
            assemble,
        )
        if polygons is not None:
            from engine.io.vector import polygonise_masks

            poly = reporter.sub(0.95, 1.0, "polygons")
            stats["polygon_counts"] = polygonise_masks(
                mask_path, polygons, thresholds, progress=poly.progress
            )
    ctx.barrier()
    return stats


def _write_share(
    info: RasterInfo,
    thresholds: list[float],
    band_rows: list[tuple[int, int]],
    share: tuple[int, int],
    produce: Callable[[int, int], Windows],
    mask_target: Path,
    targets: list[Path],
    extras: list[ExtraSpec],
    reporter: Reporter,
) -> dict[str, Any]:
    """Write the windows of bands ``share = (first, stop)`` into ``mask_target`` and the float
    layers' ``targets`` (files covering the share's rows)."""
    first, stop = share
    stats: dict[str, Any] = {"bands_written": 0, "max_band_rows": 0}
    if stop <= first:
        return stats
    row0, row1 = band_rows[first][0], band_rows[stop - 1][1]
    grid = sub_grid(info, row0, row1, mask_target)
    with ExitStack() as stack:
        mw = stack.enter_context(_mask_writer(mask_target, grid, thresholds))
        writers = [
            stack.enter_context(_writer(target, grid, spec))
            for target, spec in zip(targets, extras, strict=True)
        ]
        for row, col, mask, values in produce(first, stop):
            mw.write_window(mask, row - row0, col)
            for writer, value in zip(writers, values, strict=True):
                writer.write_window(value, row - row0, col)
            if col + mask.shape[-1] >= info.width:
                stats["bands_written"] += 1
            stats["max_band_rows"] = max(stats["max_band_rows"], mask.shape[-2])
            del mask, values
            reporter.check_cancelled()
    return stats


def _mask_writer(path: Path, grid: RasterInfo, thresholds: list[float]) -> RasterWriter:
    return RasterWriter(
        path,
        grid,
        count=len(thresholds),
        dtype="uint8",
        nodata=MASK_NODATA,
        band_descriptions=mask_descriptions(thresholds),
    )


def _writer(path: Path, grid: RasterInfo, spec: ExtraSpec) -> RasterWriter:
    return RasterWriter(
        path,
        grid,
        count=spec.count,
        dtype=spec.dtype,
        nodata=spec.nodata,
        band_descriptions=spec.descriptions or None,
    )


def post_bands(
    band_rows: list[tuple[int, int]], width: int, budget_px: int | None = None
) -> list[tuple[int, int]]:
    """The bands of the post-processing pass: the output bands, each split into bands of at
    most ``budget_px`` (default :data:`POST_BAND_PX`) pixels (at least 16 rows)."""
    rows = max(16, (POST_BAND_PX if budget_px is None else budget_px) // max(width, 1))
    return [(r, min(r + rows, b)) for a, b in band_rows for r in range(a, b, rows)]


def _parts(
    band_rows: list[tuple[int, int]], world: int, work_dir: Path, kind: str
) -> list[tuple[Path, int, int]]:
    out = []
    for r in range(world):
        a, b = split_bands(len(band_rows), r, world)
        if b > a:
            out.append((work_dir / f"part{r}_{kind}.tif", band_rows[a][0], band_rows[b - 1][1]))
    return out


def _assemble(
    info: RasterInfo,
    thresholds: list[float],
    band_rows: list[tuple[int, int]],
    ctx: DistContext,
    mask_path: Path,
    extras: list[ExtraSpec],
    post: Post,
    work_dir: Path,
    needs_parts: bool,
    reporter: Reporter,
) -> None:
    """Rank 0: final mask (post-processed) and float layer from the part files."""
    n_t = len(thresholds)
    if needs_parts:
        src = BandSource(_parts(band_rows, ctx.world, work_dir, "mask"), n_t, MASK_NODATA, "uint8")
        try:
            with _mask_writer(mask_path, info, thresholds) as writer:
                pbands = post_bands(band_rows, info.width)
                bands = postprocess_bands(
                    src.read,
                    pbands,
                    info.width,
                    n_t,
                    post.min_area_px,
                    post.fill_holes,
                    post.max_hole_px,
                    check=reporter.check_cancelled,
                )
                for i, (row, mask) in enumerate(bands):
                    writer.write_window(mask, row, 0)
                    reporter.progress((i + 1) / len(pbands))
        finally:
            src.close()
    for i, extra in enumerate(extras if ctx.active else []):
        fill = float("nan") if extra.nodata is None else extra.nodata
        fsrc = BandSource(
            _parts(band_rows, ctx.world, work_dir, f"extra{i}"), extra.count, fill, extra.dtype
        )
        try:
            with _writer(extra.path, info, extra) as writer:
                for a, b in band_rows:
                    for c in range(0, info.width, COPY_COLS):
                        w = min(COPY_COLS, info.width - c)
                        writer.write_window(fsrc.read(a, b - a, c, w), a, c)
        finally:
            fsrc.close()
