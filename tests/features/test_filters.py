"""Window-exact filters: windows with a halo equal the whole image bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.features.config import AdaptiveParams, Ground
from engine.features.filters import (
    box_fraction,
    box_mean,
    box_sum,
    clamp,
    grow_minimum,
    pool_minimum,
    slope,
    smoothed_minimum,
    square_minimum,
    upsample,
    zero_nan,
)
from engine.features.ground import (
    GROUND_FACTOR,
    GroundStack,
    adaptive_heights,
    ground_halo_px,
)
from engine.features.inputs import FeatureTransform
from engine.features.spec import FeatureSpec


def _surface(seed: int = 0, shape: tuple[int, int] = (180, 220)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    terrain = 0.3 * xx + 0.1 * yy + 5 * np.sin(xx / 30.0)
    canopy = np.clip(ndimage.gaussian_filter(rng.normal(size=shape), 3) * 60 + 15, 0, 35)
    dsm = (terrain + canopy).astype(np.float32)
    valid = rng.random(shape) > 0.02
    valid[:20, :30] = False
    return dsm, valid


def test_box_sum_matches_direct_sum() -> None:
    a = np.random.default_rng(1).integers(-50, 50, size=(37, 41)).astype(np.int64)
    direct = ndimage.correlate(a, np.ones((7, 7), np.int64), mode="constant", cval=0)
    assert np.array_equal(box_sum(a, 7), direct)


def test_box_mean_and_fraction_ignore_undefined_pixels() -> None:
    values = np.array([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    defined = np.ones_like(values, bool)
    defined[0, 2] = False
    assert box_mean(values, defined, 3)[1, 1] == pytest.approx((1 + 2 + 3 + 4 + 5 + 6 + 7 + 8) / 8)
    assert box_fraction(values > 4, defined, 3)[1, 1] == pytest.approx(4 / 8)
    assert np.isnan(box_mean(values, np.zeros_like(defined), 3)).all()


@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("size", [1, 7, 41])
def test_box_sum_of_flags_equals_the_direct_count(holes: bool, size: int) -> None:
    # booleans take their own paths (outer product when all true, float32 sums otherwise)
    flags = np.random.default_rng(2).random((53, 61)) > (0.3 if holes else -1.0)
    direct = ndimage.correlate(
        flags.astype(np.int64), np.ones((size, size), np.int64), mode="constant"
    )
    got = box_sum(flags, size)
    assert got.dtype == np.float64 and np.array_equal(got, direct)


def _slope_reference(surface: np.ndarray, pixel_size: float) -> np.ndarray:
    """The rule of :func:`slope` written plainly: central differences, one-sided where one
    neighbour is undefined, 0 where both are."""
    p = np.pad(surface, 1, constant_values=np.nan)
    centre = p[1:-1, 1:-1]
    total = np.zeros(surface.shape)
    for fwd, bwd in ((p[2:, 1:-1], p[:-2, 1:-1]), (p[1:-1, 2:], p[1:-1, :-2])):
        ahead, behind = fwd - centre, centre - bwd
        g = np.where(
            np.isnan(ahead), behind, np.where(np.isnan(behind), ahead, 0.5 * (ahead + behind))
        )
        total += np.nan_to_num(g, nan=0.0) ** 2
    out = (np.sqrt(total) / pixel_size).astype(np.float32)
    out[np.isnan(surface)] = np.nan
    return out


@pytest.mark.parametrize("shape", [(40, 50), (1, 9), (9, 1), (2, 2)])
def test_slope_equals_the_plain_rule_bit_for_bit(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    surface = rng.normal(size=shape) * 5
    surface[rng.random(shape) < 0.2] = np.nan  # isolated and neighbouring holes
    assert np.array_equal(slope(surface, 2.0), _slope_reference(surface, 2.0), equal_nan=True)


@pytest.mark.parametrize("shape", [(40, 50), (41, 51)])
def test_pool_minimum_takes_the_valid_pixels_of_each_cell(shape: tuple[int, int]) -> None:
    dsm, valid = _surface(4, shape)
    low, ok = pool_minimum(dsm, valid, 2)
    h, w = -(-shape[0] // 2), -(-shape[1] // 2)
    for i, j in [(0, 0), (h - 1, w - 1), (5, 7), (10, 3)]:
        cell = dsm[2 * i : 2 * i + 2, 2 * j : 2 * j + 2][
            valid[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        ]
        assert ok[i, j] == (cell.size > 0)
        assert (low[i, j] == cell.min()) if cell.size else np.isnan(low[i, j])
    assert low.shape == (h, w) and low.dtype == dsm.dtype


@pytest.mark.parametrize(("size", "grown"), [(3, 5), (5, 9), (7, 13), (9, 17), (17, 33), (1, 1)])
def test_grown_minimum_equals_a_new_filter_pass(size: int, grown: int) -> None:
    dsm, valid = _surface(6, (45, 52))  # holes, and an invalid corner wider than the windows
    grown_min = grow_minimum(square_minimum(dsm, valid, size), size, grown)
    assert np.array_equal(grown_min, square_minimum(dsm, valid, grown))


def test_minimum_grown_too_far_is_refused() -> None:
    low = square_minimum(*_surface(7, (20, 20)), 5)
    for grown in (11, 6, 3):  # d = 3 > 5 // 2; an odd difference; smaller
        with pytest.raises(ValueError, match="cannot grow"):
            grow_minimum(low, 5, grown)


def test_clamp_and_zero_nan_work_in_place_like_clip_and_nan_to_num() -> None:
    x = np.array([-80.0, -1.5, 0.0, 12.25, 75.0, np.nan], np.float32)
    clipped = np.clip(x, -50, 50)
    assert clamp(x, -50, 50) is x and np.array_equal(x, clipped, equal_nan=True)
    assert x.dtype == np.float32
    assert zero_nan(x) is x and np.array_equal(x, np.nan_to_num(clipped, nan=0.0))


def test_upsample_into_an_array_equals_a_new_one() -> None:
    coarse = np.random.default_rng(5).normal(size=(20, 25))
    coarse[3:5, 7] = np.nan
    for shape in [(40, 50), (39, 49)]:
        fresh = upsample(coarse, 2, shape)
        into = np.full(shape, -1.0, np.float32)
        assert upsample(coarse, 2, shape, into) is into
        assert np.array_equal(fresh, into, equal_nan=True)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_upsample_is_bilinear_between_cell_centres(factor: int) -> None:
    """A plane sampled at the cell centres comes back as the plane at every pixel centre between
    cell centres; beyond the outer centres a pixel keeps its cell's value; a NaN neighbour drops
    out (its neighbour's sub-pixels on that side keep their own cell's value)."""
    ci, cj = np.mgrid[0:6, 0:7].astype(np.float64)
    centre = (factor - 1) / 2  # pixel index of a cell's centre within the cell
    coarse = 0.7 * ci - 0.3 * cj
    fine = upsample(coarse, factor, (6 * factor, 7 * factor)).astype(np.float64)
    r, c = np.mgrid[0 : 6 * factor, 0 : 7 * factor].astype(np.float64)
    plane = 0.7 * (r - centre) / factor - 0.3 * (c - centre) / factor
    inside = (r >= centre) & (r <= 5 * factor + centre) & (c >= centre) & (c <= 6 * factor + centre)
    np.testing.assert_allclose(fine[inside], plane[inside], atol=1e-5)
    np.testing.assert_allclose(fine[0, 0], coarse[0, 0], atol=1e-6)  # corner: its own cell
    holed = -0.3 * cj  # constant along rows: the row pass does not change it
    holed[2, 3] = np.nan
    fine = upsample(holed, factor, (6 * factor, 7 * factor))
    assert np.isnan(fine[2 * factor : 3 * factor, 3 * factor : 4 * factor]).all()
    beside = fine[2 * factor : 3 * factor, 3 * factor - 1]  # cell (2, 2)'s last sub-pixels
    np.testing.assert_allclose(beside, holed[2, 2], atol=1e-6)
    assert fine[2 * factor, 2 * factor - 1] != pytest.approx(holed[2, 1])  # mixed, no hole


def test_slope_of_a_plane_is_its_gradient() -> None:
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float64)
    plane = 0.3 * xx + 0.4 * yy
    assert np.allclose(slope(plane * 2.0, 2.0), 0.5)  # pixel 2 m: 0.6/2 and 0.8/2 per metre


@pytest.mark.parametrize("window", [(30, 40, 90, 120), (0, 0, 60, 70), (100, 150, 80, 70)])
def test_windowed_features_equal_whole_image(window: tuple[int, int, int, int]) -> None:
    dsm, valid = _surface()
    spec = FeatureSpec()
    whole = spec.compute(dsm, valid, 1.0)
    r, c, h, w = window
    halo = spec.halo_px(1.0)
    pad = ((halo, halo), (halo, halo))
    # boundless read: outside the raster is nodata
    big = np.pad(dsm, pad, constant_values=0)
    big_valid = np.pad(valid, pad, constant_values=False)
    part = spec.compute(
        big[r : r + h + 2 * halo, c : c + w + 2 * halo],
        big_valid[r : r + h + 2 * halo, c : c + w + 2 * halo],
        1.0,
    )
    inner = part[:, halo : halo + h, halo : halo + w]
    assert np.array_equal(inner, whole[:, r : r + h, c : c + w])


@pytest.mark.parametrize(
    "core", [(0, 180, 0, 220), (37, 121, 50, 173), (2, 60, 1, 219), (0, 90, 37, 200)]
)
def test_a_core_gives_the_whole_windows_pixels_there(core: tuple[int, int, int, int]) -> None:
    """A stack with a ``core`` computes the pixels of the core only, equal to the whole
    stack's there (odd and even offsets, holes), and the adaptive heights likewise."""
    dsm, valid = _surface(4)
    dsm[70:90, 100:104] = np.nan
    valid[70:90, 100:104] = False
    params = AdaptiveParams(openness_window_m=21.0, openness_ground_window_m=9.0)
    thresholds = [2.0, 5.0, 10.0]
    whole, part = GroundStack(dsm, valid, 1.0), GroundStack(dsm, valid, 1.0, core=core)
    r0, r1, c0, c1 = core
    for name, get in (
        ("minimum", lambda s: s.minimum(14.0)),
        ("slope", lambda s: s.slope(14.0)),
        ("ground", lambda s: s.ground(Ground(10.0, 0.75))),
        ("openness", lambda s: s.openness(params)),
        ("heights", lambda s: adaptive_heights(s, params, thresholds)),
    ):
        expected = get(whole)[..., r0:r1, c0:c1]
        got = get(part)
        assert got.shape == expected.shape, name
        assert np.array_equal(got, expected, equal_nan=True), name


@pytest.mark.parametrize("what", ["ground"])
def test_halo_is_needed_in_full(what: str) -> None:
    """Less context than the halo changes some values (guards the halo rules)."""
    dsm, valid = _surface(2)
    params = AdaptiveParams(openness_window_m=21.0, openness_ground_window_m=9.0)
    g = Ground(13.0, 0.75)

    def compute(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
        stack = GroundStack(v, ok, 1.0)
        return stack.ground(g) if what == "ground" else stack.openness(params)

    halo = (
        ground_halo_px(g, 1.0)
        if what == "ground"
        else ground_halo_px(params.openness_ground, 1.0) + 10
    )
    whole = compute(dsm, valid)
    r, c, h, w = 60, 60, 50, 50
    # even cuts keep the windows on the ground grid; two cells less than the halo must break it
    assert halo % GROUND_FACTOR == 0
    for cut, expect_equal in ((halo, True), (halo - 2 * GROUND_FACTOR, False)):
        sl = np.s_[r - cut : r + h + cut, c - cut : c + w + cut]
        part = compute(dsm[sl], valid[sl])[cut : cut + h, cut : cut + w]
        same = np.array_equal(part, whole[r : r + h, c : c + w], equal_nan=True)
        assert same is expect_equal, (cut, halo)


def test_smoothed_minimum_is_below_the_surface() -> None:
    dsm, valid = _surface(3)
    m = smoothed_minimum(dsm, valid, 11, 1)
    assert np.all(m[valid] <= dsm[valid] + 1e-6)


@pytest.mark.parametrize("window", [(31, 47, 61, 73), (0, 1, 50, 40), (121, 150, 59, 70)])
def test_feature_transform_windows_at_odd_offsets_equal_whole_image(
    window: tuple[int, int, int, int],
) -> None:
    """Windows starting anywhere (odd rows and columns too) are aligned to the ground grid."""
    dsm, valid = _surface(4)
    transform = FeatureTransform(FeatureSpec(), 1.0)
    whole = transform.whole(dsm, valid)
    r, c, h, w = window
    halo = transform.halo
    pad = ((halo, halo), (halo, halo))
    big = np.pad(dsm, pad, constant_values=0)
    big_valid = np.pad(valid, pad, constant_values=False)
    read = np.s_[r : r + h + 2 * halo, c : c + w + 2 * halo]
    part = transform.window(big[read], big_valid[read], r, c)
    assert np.array_equal(part, whole[:, r : r + h, c : c + w])
