"""Write a ``.npy`` array item by item, in any order, without mapping it into memory.

``np.lib.format.open_memmap`` would do the same, but every page written through a memory map
stays in the process's resident set until the map is closed: writing the 1,536 tiles (256 px)
of six 4k² sites that way took preprocess's peak RSS to 1.6 GB, against 0.61 GB (that of one
site) with :class:`NpyItemWriter`, which writes the standard header, then each item with
``os.pwrite`` at its offset. The file is byte for byte the one a memory map writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray


class NpyItemWriter:
    """A ``.npy`` file of shape ``(n, *item_shape)``; :meth:`write` puts item ``k``.

    Items never written read as zeros. Use as a context manager (closes the file)."""

    def __init__(
        self, path: str | os.PathLike[str], n: int, item_shape: tuple[int, ...], dtype: DTypeLike
    ) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.item_shape = tuple(int(d) for d in item_shape)
        self.n = int(n)
        self.item_bytes = int(np.prod(self.item_shape, dtype=np.int64)) * self.dtype.itemsize
        header: dict[str, Any] = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.n, *self.item_shape),
        }
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        try:
            np.lib.format.write_array_header_1_0(self._fh, header)
            self._fh.flush()
            self.offset = self._fh.tell()
            self._fh.truncate(self.offset + self.n * self.item_bytes)
        except OSError as exc:
            self._fh.close()
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        except BaseException:
            self._fh.close()
            raise

    def write(self, k: int, item: NDArray[Any]) -> None:
        """Write item ``k`` (any array of ``item_shape``, cast to the file's dtype)."""
        if not 0 <= k < self.n:
            raise IndexError(f"item {k} is outside 0..{self.n - 1}")
        arr = np.ascontiguousarray(item, dtype=self.dtype)
        if arr.shape != self.item_shape:
            raise ValueError(f"item of shape {arr.shape}; expected {self.item_shape}")
        try:
            os.pwrite(self._fh.fileno(), arr.tobytes(), self.offset + k * self.item_bytes)
        except OSError as exc:  # name the file: the caller turns it into a clear message
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> NpyItemWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
