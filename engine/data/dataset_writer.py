"""Writing a dataset folder's files (layout: ARCHITECTURE.md, read by :mod:`engine.data.dataset`).

* :func:`plan_layout`: where every tile goes, a :class:`DatasetLayout` (per-site slots
  ``(split, index, tile)``, per-split counts).
* :class:`SplitArrays`: the ``inputs.npy``, ``labels.npy`` and ``chm.npy`` of every split,
  filled site by site (:meth:`SplitArrays.write_site`) through
  :class:`engine.io.npy.NpyItemWriter` (``pwrite``, no memory map), with progress and cancel.
* :func:`write_tile_records` (``tiles.json``) and :func:`build_manifest` (``manifest.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.data.config import PreprocessConfig
from engine.data.copies import copy_count, site_copy
from engine.data.labels import LABEL_RULE, NODATA_LABEL
from engine.data.sites import PreparedSite
from engine.data.split import SPLITS, SplitResult
from engine.data.tiling import Tile, cut
from engine.events import Reporter
from engine.io.files import atomic_write_text
from engine.io.npy import NpyItemWriter

FORMAT = "canopygaps-dataset"
FORMAT_VERSION = 1

Slot = tuple[str, int, Tile]
"""``(split, index in the split, tile)``: where one planned tile of a site is written."""
Writers = tuple[NpyItemWriter, NpyItemWriter, NpyItemWriter]
"""The ``inputs``, ``labels`` and ``chm`` arrays of one split."""


@dataclass
class DatasetLayout:
    """Where every tile goes and how large the split arrays are."""

    slots: dict[str, list[Slot]]
    """Per site name, its tiles' slots (training slots also take its copies)."""
    counts: dict[str, int]
    """Tiles per split (training tiles with their copies)."""
    n_train: int
    """Training tiles before their copies: copy ``c`` of slot ``k`` is ``k + c * n_train``."""
    channels: int
    n_thresholds: int
    tile_size: int

    @property
    def n_tiles(self) -> int:
        """Tiles in the whole dataset."""
        return sum(self.counts.values())

    def bytes_needed(self) -> int:
        """Size of the split arrays (float32 inputs and CHM, uint8 labels)."""
        size = self.tile_size
        per_tile = size * size * (4 * self.channels + self.n_thresholds + 4)
        return per_tile * self.n_tiles


def plan_layout(split: SplitResult, config: PreprocessConfig, n_thresholds: int) -> DatasetLayout:
    """The :class:`DatasetLayout` of the tiles dealt to splits by ``split``."""
    slots: dict[str, list[Slot]] = {site.name: [] for site in config.sites}
    for s in SPLITS:
        for k, (name, t) in enumerate(split.splits[s]):
            slots[name].append((s, k, t))
    counts = {s: len(split.splits[s]) for s in SPLITS}
    counts["train"] *= 1 + copy_count(config)
    return DatasetLayout(
        slots=slots,
        counts=counts,
        n_train=len(split.splits["train"]),
        channels=config.input_transform(1.0).channels,
        n_thresholds=n_thresholds,
        tile_size=config.tile_size,
    )


def tile_count(slots: list[Slot], copies: int) -> int:
    """Tiles a site writes: each slot once, training slots once more per copy."""
    return len(slots) + copies * sum(1 for s, _, _ in slots if s == "train")


class SplitArrays:
    """The split folders and arrays of a dataset being written in ``folder``.

    Use as a context manager: entering creates ``train/``, ``val/`` and ``test/`` with their
    arrays (items never written read as zeros); leaving closes the files. Progress of
    :meth:`write_site` runs from 0.5 to 0.98 of ``reporter`` ("write tiles") over all tiles.
    """

    def __init__(self, folder: Path, layout: DatasetLayout, reporter: Reporter) -> None:
        self.folder = folder
        self.layout = layout
        self.reporter = reporter
        self.arrays: dict[str, Writers] = {}
        self.done = 0
        self._files = ExitStack()

    def __enter__(self) -> SplitArrays:
        with ExitStack() as opened:
            for s in SPLITS:
                self.arrays[s] = self._open_split(opened, s)
            self._files = opened.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._files.close()

    def _open_split(self, files: ExitStack, split: str) -> Writers:
        folder = self.folder / split
        folder.mkdir()
        n, size = self.layout.counts[split], self.layout.tile_size
        inputs = (self.layout.channels, size, size)
        labels = (self.layout.n_thresholds, size, size)
        return (
            files.enter_context(NpyItemWriter(folder / "inputs.npy", n, inputs, np.float32)),
            files.enter_context(NpyItemWriter(folder / "labels.npy", n, labels, np.uint8)),
            files.enter_context(NpyItemWriter(folder / "chm.npy", n, (1, size, size), np.float32)),
        )

    def write_site(self, prep: PreparedSite, config: PreprocessConfig, index: int) -> None:
        """Cut site ``index``'s tiles (and their copies) into their slots."""
        slots = self.layout.slots[prep.data.name]
        n_total, before = max(1, self.layout.n_tiles), self.done

        def progress(n: int) -> None:
            self.reporter.progress(0.5 + 0.48 * (before + n) / n_total, "write tiles")

        write_site_tiles(prep, slots, self.arrays, config, index, self.layout.n_train, progress)
        n_site = tile_count(slots, copy_count(config))
        progress(n_site)  # also checks for cancel
        self.done += n_site


def write_site_tiles(
    prep: PreparedSite,
    slots: list[Slot],
    arrays: dict[str, Writers],
    config: PreprocessConfig,
    index: int,
    n_train: int,
    progress: Callable[[int], None],
) -> None:
    """Cut the site's tiles (model input computed here on the whole site, once per copy) into
    their ``(split, index)`` slots; copies of training tiles (:mod:`engine.data.copies`) go to
    slot ``index + copy * n_train`` of the training split. ``progress(tiles_done)`` every 16 tiles
    (it may raise ``Cancelled``)."""
    data, size = prep.data, config.tile_size
    transform = config.input_transform(data.grid.pixel_size)
    done = 0
    for copy in range(1 + copy_count(config)):
        c = site_copy(prep, config, index, copy)
        x = transform.whole(c.dsm, c.dsm_valid)
        for split, k, t in slots:
            if copy and split != "train":
                continue
            inputs, labs, chms = arrays[split]
            slot = k + copy * n_train
            inputs.write(slot, cut(x, t.row, t.col, size, 0.0))
            labs.write(slot, cut(c.labels, t.row, t.col, size, NODATA_LABEL))
            chm_t = cut(c.chm, t.row, t.col, size, np.nan)
            ok_t = cut(c.valid, t.row, t.col, size, False)
            chms.write(slot, np.where(ok_t, chm_t, np.nan)[None])
            done += 1
            if done % 16 == 0:
                progress(done)
        del x, c


def write_tile_records(
    folder: Path, split: SplitResult, config: PreprocessConfig, n_train: int
) -> None:
    """``<split>/tiles.json``: each tile's ``{"site", "row", "col"}`` in slot order; training
    copies follow as ``{..., "terrain_copy": c}`` (and ``"coarse": true`` for coarse copies)."""
    copies, terrain = copy_count(config), config.terrain_copies
    for s in SPLITS:
        records: list[dict[str, Any]] = [
            {"site": name, "row": t.row, "col": t.col} for name, t in split.splits[s]
        ]
        if s == "train":
            records += [
                {**r, "terrain_copy": c, **({"coarse": True} if c > terrain else {})}
                for c in range(1, copies + 1)
                for r in records[:n_train]
            ]
        atomic_write_text(folder / s / "tiles.json", json.dumps(records))


def build_manifest(
    config: PreprocessConfig,
    thresholds: list[float],
    site_stats: list[dict[str, Any]],
    pixel_sizes: set[float],
    split: SplitResult,
    counts: dict[str, int],
) -> dict[str, Any]:
    """The ``manifest.json`` document (format, thresholds, tiles, normalisation or features,
    label rule, sites, split, counts)."""
    features = config.features
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine_version": __version__,
        "thresholds": thresholds,
        "tile_size": config.tile_size,
        "overlap": config.overlap,
        "channels": features.channel_names() if features else ["normalised_dsm"],
        "pixel_size": next(iter(pixel_sizes)) if len(pixel_sizes) == 1 else None,
        "normalisation": {} if features else config.normalisation.to_dict(),
        "features": features.to_dict() if features else None,
        "terrain_copies": config.terrain_copies,
        "coarse_copies": config.coarse_copies,
        "coarse_factor": config.coarse_factor,
        "label_rule": {
            **LABEL_RULE,
            "min_area_m2": config.min_gap_area_m2,
            "max_area_m2": config.max_gap_area_m2,
            "nested": config.nested,
        },
        "sites": site_stats,
        "split": split.description,
        "counts": counts,
        "seed": config.seed,
    }
