"""NpyItemWriter: items in any order give the file np.save writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.io.npy import NpyItemWriter


def test_items_in_any_order_equal_np_save(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for dtype, shape in [(np.float32, (1, 8, 8)), (np.uint8, (3, 5, 7))]:
        data = (rng.random((6, *shape)) * 200).astype(dtype)
        path = tmp_path / f"{np.dtype(dtype).name}.npy"
        with NpyItemWriter(path, 6, shape, dtype) as writer:
            for k in (5, 0, 3, 1, 4, 2):
                writer.write(k, data[k].astype(np.float64))  # cast to the file's dtype
        np.save(tmp_path / "ref.npy", data)
        assert path.read_bytes() == (tmp_path / "ref.npy").read_bytes()
        np.testing.assert_array_equal(np.load(path, mmap_mode="r"), data)


def test_unwritten_items_are_zero_and_bad_items_raise(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    with NpyItemWriter(path, 3, (2, 2), np.float32) as writer:
        writer.write(1, np.ones((2, 2)))
        with pytest.raises(IndexError):
            writer.write(3, np.ones((2, 2)))
        with pytest.raises(ValueError, match="shape"):
            writer.write(0, np.ones((2, 3)))
    np.testing.assert_array_equal(
        np.load(path), [np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]
    )
    with NpyItemWriter(tmp_path / "empty.npy", 0, (4,), np.uint8):
        pass
    assert np.load(tmp_path / "empty.npy").shape == (0, 4)
