"""Seeded synthetic forest scenes: terrain, tree crowns and gaps of known size.

A scene is a DTM (slopes, ridges, valleys and smooth hills), a CHM of tree crowns of varied
height (paraboloid crowns, 10-35 m by default, over low understorey) with gaps of known
position, size and regrowth height, and their sum ``DSM = DTM + CHM``. The same seed gives the
same scene on every machine.

:func:`terrain` is reusable on its own: :mod:`engine.data.preprocess` puts synthetic terrain
under real CHMs (sites without a DSM), so a model cannot learn that "low DSM = gap".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage

from engine.data.config import SynthConfig
from engine.events import NullReporter, Reporter

Array = NDArray[np.float32]


def tilt_surface(
    shape: tuple[int, int], rng: np.random.Generator, pixel_size: float, max_slope_deg: float
) -> Array:
    """A smooth surface to add to a real DSM *and* DTM (the CHM is unchanged): a plane whose
    slope is drawn uniformly up to ``max_slope_deg`` in a random direction, bent by one long
    undulation (wavelength 150-500 m, up to a quarter of the plane's rise over it), so real
    canopy is seen on slopes the site does not have."""
    h, w = shape
    ys = (np.arange(h, dtype=np.float64) + 0.5) * pixel_size
    xs = (np.arange(w, dtype=np.float64) + 0.5) * pixel_size
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    grade = math.tan(math.radians(rng.uniform(0.0, max_slope_deg)))
    a = rng.uniform(0, 2 * math.pi)
    along = math.cos(a) * xx + math.sin(a) * yy
    wavelength = rng.uniform(150.0, 500.0)
    bend = rng.uniform(0.0, 0.25) * grade * wavelength / (2 * math.pi)
    z = grade * along + bend * np.sin(2 * math.pi * along / wavelength + rng.uniform(0, 6.3))
    return z.astype(np.float32)


def terrain(
    shape: tuple[int, int],
    rng: np.random.Generator,
    pixel_size: float = 1.0,
    relief_m: float = 30.0,
    base_m: float = 200.0,
) -> Array:
    """A smooth ground surface in metres: regional slope, ridges/valleys and rolling hills.

    ``relief_m`` scales the ridges, the valley and the hills; the regional slope adds a grade of
    2-15 %. Features have wavelengths of 100-600 m, so a 256-pixel tile sees real slopes.
    """
    h, w = shape
    ys = (np.arange(h, dtype=np.float64) + 0.5) * pixel_size
    xs = (np.arange(w, dtype=np.float64) + 0.5) * pixel_size
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    a = rng.uniform(0, 2 * math.pi)
    z = rng.uniform(0.02, 0.15) * (math.cos(a) * xx + math.sin(a) * yy)
    for _ in range(2):  # ridges and valleys
        b = rng.uniform(0, 2 * math.pi)
        wavelength = rng.uniform(150.0, 600.0)
        phase = rng.uniform(0, 2 * math.pi)
        along = math.cos(b) * xx + math.sin(b) * yy
        z += 0.25 * relief_m * np.sin(2 * math.pi * along / wavelength + phase)
    # one incised valley along a random line
    c = rng.uniform(0, 2 * math.pi)
    x0, y0 = rng.uniform(0, w * pixel_size), rng.uniform(0, h * pixel_size)
    dist = np.abs(-math.sin(c) * (xx - x0) + math.cos(c) * (yy - y0))
    z -= 0.35 * relief_m * np.exp(-((dist / rng.uniform(20.0, 60.0)) ** 2))
    # rolling hills: smooth noise on a coarse grid (every ~25 m), cubic upsampling
    step = max(1, round(25.0 / pixel_size))
    coarse = rng.standard_normal((h // step + 4, w // step + 4))
    coarse = ndimage.gaussian_filter(coarse, sigma=2.0)
    coarse /= coarse.std() + 1e-9
    hills = ndimage.zoom(coarse, step, order=3)[step : step + h, step : step + w]
    z += 0.2 * relief_m * hills
    return (z - z.min() + base_m).astype(np.float32)


def crowns(
    shape: tuple[int, int],
    rng: np.random.Generator,
    pixel_size: float = 1.0,
    spacing_m: float = 6.0,
    height_range: tuple[float, float] = (10.0, 35.0),
    exclude: NDArray[np.bool_] | None = None,
) -> Array:
    """Canopy of paraboloid crowns on a jittered grid; ``exclude`` marks where no stem stands."""
    h, w = shape
    hmin, hmax = height_range
    chm = np.zeros(shape, dtype=np.float32)
    ny = math.ceil(h * pixel_size / spacing_m) + 1
    nx = math.ceil(w * pixel_size / spacing_m) + 1
    gy, gx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ty = ((gy + rng.uniform(-0.45, 0.45, gy.shape)) * spacing_m / pixel_size).ravel()
    tx = ((gx + rng.uniform(-0.45, 0.45, gx.shape)) * spacing_m / pixel_size).ravel()
    # height: mostly mid-size trees with a few emergents
    heights = hmin + (hmax - hmin) * rng.beta(2.0, 2.5, ty.size)
    radius = (0.55 * spacing_m + 0.08 * (heights - hmin)) * rng.uniform(0.8, 1.25, ty.size)
    depth = heights * rng.uniform(0.35, 0.6, ty.size)
    for y, x, top, r_m, d in zip(ty, tx, heights, radius, depth, strict=True):
        iy, ix = int(y), int(x)
        if exclude is not None and 0 <= iy < h and 0 <= ix < w and exclude[iy, ix]:
            continue
        r = r_m / pixel_size
        r0, r1 = max(int(y - r), 0), min(int(y + r) + 2, h)
        c0, c1 = max(int(x - r), 0), min(int(x + r) + 2, w)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = np.arange(r0, r1)[:, None] + 0.5 - y
        xx = np.arange(c0, c1)[None, :] + 0.5 - x
        q = (yy * yy + xx * xx) / (r * r)
        surface = np.where(q <= 1.0, top - d * q, 0.0).astype(np.float32)
        np.maximum(chm[r0:r1, c0:c1], surface, out=chm[r0:r1, c0:c1])
    return chm


@dataclass
class Gap:
    """A synthetic gap: centre (pixels), semi-axes (metres), rotation and regrowth height."""

    row: float
    col: float
    a_m: float
    b_m: float
    angle: float
    regrowth_m: float

    def mask(
        self, shape: tuple[int, int], pixel_size: float, grow_m: float = 0.0
    ) -> NDArray[np.bool_]:
        """Pixels inside the ellipse (semi-axes enlarged by ``grow_m``)."""
        h, w = shape
        yy, xx = np.meshgrid(
            np.arange(h) + 0.5 - self.row, np.arange(w) + 0.5 - self.col, indexing="ij"
        )
        yy, xx = yy * pixel_size, xx * pixel_size
        u = math.cos(self.angle) * xx + math.sin(self.angle) * yy
        v = -math.sin(self.angle) * xx + math.cos(self.angle) * yy
        a, b = self.a_m + grow_m, self.b_m + grow_m
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0  # type: ignore[no-any-return]


@dataclass
class Scene:
    """A synthetic scene: DSM = DTM + CHM, all float32 (NaN = nodata), and its grid."""

    dsm: Array
    dtm: Array
    chm: Array
    gaps: list[Gap]
    pixel_size: float
    transform: Affine
    crs: str

    @property
    def valid(self) -> NDArray[np.bool_]:
        """Pixels with data."""
        return np.isfinite(self.dsm)  # type: ignore[no-any-return]


def make_scene(config: SynthConfig) -> Scene:
    """Build the scene described by ``config`` (deterministic for a given seed)."""
    rng = np.random.default_rng(config.seed)
    shape = (config.size, config.size)
    ps = config.pixel_size
    dtm = terrain(shape, rng, ps, config.relief_m)
    gaps = []
    for _ in range(config.gaps):
        a = rng.uniform(config.gap_radius_min_m, config.gap_radius_max_m)
        gaps.append(
            Gap(
                row=float(rng.uniform(0, config.size)),
                col=float(rng.uniform(0, config.size)),
                a_m=float(a),
                b_m=float(a * rng.uniform(0.5, 1.0)),
                angle=float(rng.uniform(0, math.pi)),
                regrowth_m=float(rng.uniform(0.0, config.regrowth_max_m)),
            )
        )
    no_stems = np.zeros(shape, dtype=bool)
    for g in gaps:
        no_stems |= g.mask(shape, ps, grow_m=0.3 * config.tree_spacing_m)
    chm = crowns(
        shape,
        rng,
        ps,
        config.tree_spacing_m,
        (config.crown_height_min, config.crown_height_max),
        no_stems,
    )
    under = ndimage.gaussian_filter(rng.uniform(0.0, 2.0, shape), 1.0).astype(np.float32)
    np.maximum(chm, under, out=chm)
    for g in gaps:
        inside = g.mask(shape, ps)
        floor = g.regrowth_m * ndimage.gaussian_filter(rng.uniform(0.3, 1.0, shape), 2.0)
        chm[inside] = np.minimum(
            chm[inside], np.maximum(under[inside], floor[inside]).astype(np.float32)
        )
    dsm = dtm + chm
    for _ in range(config.holes):
        hole = Gap(
            float(rng.uniform(0, config.size)),
            float(rng.uniform(0, config.size)),
            float(rng.uniform(3, 15)),
            float(rng.uniform(3, 15)),
            0.0,
            0.0,
        )
        m = hole.mask(shape, ps)
        dsm[m] = chm[m] = np.nan
    transform = Affine(ps, 0.0, config.origin_x, 0.0, -ps, config.origin_y)
    return Scene(
        dsm.astype(np.float32), dtm, chm.astype(np.float32), gaps, ps, transform, config.crs
    )


NODATA = -9999.0


def write_scene(scene: Scene, folder: Path) -> dict[str, str]:
    """Write ``dsm.tif``, ``dtm.tif``, ``chm.tif`` (nodata -9999) and ``scene.json``."""
    from engine.io.files import atomic_write_text
    from engine.io.geotiff import write_raster
    from engine.io.grid import make_info

    h, w = scene.dsm.shape
    like = make_info(w, h, scene.transform, scene.crs, nodata=NODATA)
    out: dict[str, str] = {}
    for name, arr in (("dsm", scene.dsm), ("dtm", scene.dtm), ("chm", scene.chm)):
        data = np.where(np.isfinite(arr), arr, NODATA).astype(np.float32)
        out[name] = str(write_raster(folder / f"{name}.tif", data, like, nodata=NODATA))
    meta = {
        "crs": scene.crs,
        "pixel_size": scene.pixel_size,
        "transform": list(scene.transform)[:6],
        "gaps": [g.__dict__ for g in scene.gaps],
    }
    atomic_write_text(folder / "scene.json", json.dumps(meta, indent=2))
    out["scene"] = str(folder / "scene.json")
    return out


def run_synth(config: SynthConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """The ``synth`` command: write one scene into ``config.output`` (atomically)."""
    from engine.data.labels import gap_fraction, gap_masks
    from engine.io.files import atomic_dir, check_output_dir

    reporter = reporter or NullReporter()
    check_output_dir(config.output)
    reporter.progress(0.0, "synth")
    scene = make_scene(config)
    reporter.progress(0.6, "synth")
    out_dir = Path(config.output)
    with atomic_dir(out_dir, command="synth") as tmp:
        written = write_scene(scene, tmp)
        reporter.progress(0.9, "synth")
    thresholds = [2.0, 5.0, 10.0, 15.0, 20.0]
    labels = gap_masks(scene.chm, scene.valid, thresholds, scene.pixel_size**2)
    fractions = gap_fraction(labels)
    reporter.progress(1.0, "synth")
    reporter.log(f"Synthetic scene written to {out_dir}")
    return {
        "output": str(out_dir),
        **{k: str(out_dir / Path(v).name) for k, v in written.items()},
        "gap_fraction": {f"{t:g}": f for t, f in zip(thresholds, fractions, strict=True)},
    }
