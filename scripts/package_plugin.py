"""Build the installable QGIS plugin zip: ``dist/chm_plugin-<version>.zip``.

The zip holds one top-level folder ``chm_plugin/``: the plugin code, metadata.txt, LICENSE, the
icon, the QML styles and graphical-modeler models from ``resources/`` (as
``chm_plugin/resources/``) and the engine package from ``engine/`` (as
``chm_plugin/vendor/engine/``, found by the in-process and subprocess backends). Tests, caches
and editor files are left out. Usage: ``python scripts/package_plugin.py [--output-dir DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "chm_plugin"
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests", "vendor"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
RESOURCE_DIRS = ("styles",)  # resources/configs and resources/models are not plugin data
RESOURCE_GLOBS = ("*.model3", "*.svg", "*.png")


def version() -> str:
    for line in (PLUGIN / "metadata.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("chm_plugin/metadata.txt has no version= line")


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in EXCLUDED_SUFFIXES and ".part-" not in path.name:
            yield path, rel


def build(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"chm_plugin-{version()}.zip"
    tmp = target.with_suffix(".zip.part")
    entries: list[tuple[Path, str]] = []
    for path, rel in _files(PLUGIN):
        entries.append((path, f"chm_plugin/{rel.as_posix()}"))
    for path, rel in _files(ROOT / "engine"):
        entries.append((path, f"chm_plugin/vendor/engine/{rel.as_posix()}"))
    resources = ROOT / "resources"
    for sub in RESOURCE_DIRS:
        if (resources / sub).is_dir():
            for path, rel in _files(resources / sub):
                entries.append((path, f"chm_plugin/resources/{sub}/{rel.as_posix()}"))
    for pattern in RESOURCE_GLOBS:
        for path in sorted(resources.glob(pattern)):
            entries.append((path, f"chm_plugin/resources/{path.name}"))
    for required in (
        "chm_plugin/metadata.txt",
        "chm_plugin/LICENSE",
        "chm_plugin/__init__.py",
        "chm_plugin/vendor/engine/api.py",
    ):
        if required not in {name for _, name in entries}:
            raise SystemExit(f"missing from the package: {required}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in entries:
            zf.write(path, name)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    target = build(args.output_dir)
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print(f"{target} ({count} files, {target.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
