"""The safetensors container of a model file, checked before anything trusts it.

:func:`read_header` parses the header (an 8-byte length, then JSON: the tensor table and
``__metadata__``) with checks of its own, so a pickle, an HDF5 file, a truncated copy or a
corrupt tensor table gets a :class:`~engine.errors.ModelFileError` that says what the file is
and what to do. :func:`check_tensors` and :func:`check_finite` check the tensors read against
the model they are meant for.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch

from engine.errors import ModelFileError

_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
}


def _not_safetensors(path: Path, head: bytes) -> ModelFileError:
    """The error for a file that is no safetensors file, naming what its first bytes say it is."""
    if head[:1] == b"\x80" or head[:2] == b"PK":
        what = "a PyTorch pickle/zip checkpoint (.pt/.pth)"
        hint = (
            "canopygaps never loads pickles because they can run code; use a model file written by "
            "'canopygaps train' (.safetensors)."
        )
    elif head[:4] == b"\x89HDF":
        what, hint = "an HDF5 file", "Use a canopygaps .safetensors model file."
    else:
        what, hint = (
            "not a safetensors file, or it is corrupt",
            "Use a canopygaps .safetensors model file, or copy it again.",
        )
    return ModelFileError(f"Model file {path} is {what}.", hint)


def read_header(path: str | Path) -> dict[str, Any]:
    """Parse and check the safetensors header of ``path`` (tensor table + ``__metadata__``)."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(
            f"The model path {path} is a folder, not a model file.",
            "Give the path of the .safetensors file written by 'canopygaps train' (inside "
            "that folder, if it holds one).",
        )
    if not path.is_file():
        raise ModelFileError(
            f"Model file {path} does not exist.",
            "Check the path; a model file ends with .safetensors.",
        )
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _not_safetensors(path, head)
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > min(size - 8, _MAX_HEADER):
            raise _not_safetensors(path, head)
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _not_safetensors(path, head) from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, head)
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = info["data_offsets"]
            expected = math.prod(info["shape"]) * _DTYPE_SIZES.get(info["dtype"], 0)
        except (KeyError, TypeError, ValueError):
            raise _not_safetensors(path, head) from None
        if _DTYPE_SIZES.get(info["dtype"]) and stop - start != expected:
            raise ModelFileError(
                f"Model file {path} is corrupt (tensor {name!r} has a wrong size).",
                "Copy the model file again.",
            )
        end = max(end, int(stop))
    if 8 + n + end != size:
        raise ModelFileError(
            f"Model file {path} is truncated or corrupt ({size} bytes, expected {8 + n + end}).",
            "The download or copy was probably incomplete: copy the model file again.",
        )
    return header


def check_tensors(
    path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> None:
    """:class:`ModelFileError` when the tensor names or shapes differ from those the model
    built from the description expects."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"wrong shape {len(wrong)} (e.g. {'; '.join(wrong[:3])})")
        raise ModelFileError(
            f"The weights in {path} do not match the architecture in its description: "
            f"{', '.join(parts)}.",
            "The file was edited or written by an incompatible engine; "
            "use the original model file.",
        )


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """:class:`ModelFileError` if a floating-point tensor holds NaN or infinity: such weights
    give NaN logits, read as canopy everywhere, never as an error."""
    bad = [
        name
        for name, t in tensors.items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise ModelFileError(
            f"The model file {path} holds non-finite weights (NaN or infinity) in "
            f"{len(bad)} tensor(s), e.g. {', '.join(bad[:3])}: it would predict nonsense.",
            "The training diverged or the file was damaged: use an earlier checkpoint or model "
            "file, or train again (lower learning rate, gradient clipping, fp32).",
        )
