"""Names in the report folder: file-name-safe site and method names, model method labels."""

from __future__ import annotations

import re
from pathlib import Path


def slug(text: str) -> str:
    """File-name-safe form of a site or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def model_labels(models: list[Path]) -> list[str]:
    """Method labels of model files: the file stem, made unique with -2, -3..."""
    labels: list[str] = []
    for m in models:
        base, label, i = m.stem, m.stem, 2
        while label in labels:
            label, i = f"{base}-{i}", i + 1
        labels.append(label)
    return labels
