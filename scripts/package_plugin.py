"""Build the installable QGIS plugin zip: ``dist/chm_plugin-<version>.zip``.

The zip holds one top-level folder ``chm_plugin/``: the plugin code, metadata.txt, LICENSE,
icons, the engine schema (checked against a fresh export: a stale one stops the build), the
help page (README.md rendered to ``help/index.html``), from ``resources/`` the QML styles, the
graphical-modeler chain and the default model with its description and card (as
``chm_plugin/resources/``), and for the engine: its source (``chm_plugin/vendor/engine/``, run
by the in-process and subprocess backends), its pinned requirements
(``vendor/requirements.txt``) and a wheel of it (``vendor/wheels/``), which 'Install engine'
installs. Tests, caches and editor files are left out. Needs the engine's dependencies (the
schema export imports it) and setuptools (the wheel).
Usage: ``python scripts/package_plugin.py [--output-dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "chm_plugin"
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests", "vendor"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
RESOURCE_DIRS = ("styles",)  # resources/configs is not plugin data
RESOURCE_GLOBS = ("*.model3", "*.svg", "*.png")
MODEL_FILES = ("default.safetensors", "default.json", "MODEL_CARD.md")
REQUIRED = (
    "chm_plugin/metadata.txt",
    "chm_plugin/LICENSE",
    "chm_plugin/__init__.py",
    "chm_plugin/engine_schema.json",
    "chm_plugin/help/index.html",
    "chm_plugin/vendor/engine/api.py",
    "chm_plugin/vendor/requirements.txt",
    "chm_plugin/resources/models/default.safetensors",
    "chm_plugin/resources/models/default.json",
)


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


def check_schema() -> None:
    """Stop when chm_plugin/engine_schema.json is not what the engine exports now."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    schema = PLUGIN / "engine_schema.json"
    done = subprocess.run(
        [sys.executable, "-m", "engine.config.schema", "--check", str(schema)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{schema} is stale or the engine cannot be imported ({done.stderr.strip()}); "
            "regenerate it: python -m engine.config.schema --output chm_plugin/engine_schema.json"
        )


def build_wheel(work: Path) -> Path:
    """A wheel of the engine, built from a copy of the sources (the checkout stays clean)."""
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "engine", src / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = work / "wheels"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("--disable-pip-version-check", "-w", str(wheels), str(src)),
        ],
        capture_output=True,
        text=True,
    )
    built = sorted(wheels.glob("canopygaps-*.whl"))
    if done.returncode != 0 or not built:
        raise SystemExit(f"building the engine wheel failed: {done.stderr.strip()[-2000:]}")
    return built[0]


def entries(work: Path) -> list[tuple[Path, str]]:
    """(file, name in the zip) of everything packaged."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_html import to_html

    help_page = work / "index.html"
    help_page.write_text(to_html((ROOT / "README.md").read_text(encoding="utf-8")), "utf-8")
    wheel = build_wheel(work)
    out = [(path, f"chm_plugin/{rel.as_posix()}") for path, rel in _files(PLUGIN)]
    out += [
        (path, f"chm_plugin/vendor/engine/{rel.as_posix()}")
        for path, rel in _files(ROOT / "engine")
    ]
    out += [
        (help_page, "chm_plugin/help/index.html"),
        (ROOT / "requirements.txt", "chm_plugin/vendor/requirements.txt"),
        (wheel, f"chm_plugin/vendor/wheels/{wheel.name}"),
    ]
    resources = ROOT / "resources"
    for sub in RESOURCE_DIRS:
        out += [
            (p, f"chm_plugin/resources/{sub}/{r.as_posix()}") for p, r in _files(resources / sub)
        ]
    for pattern in RESOURCE_GLOBS:
        out += [(p, f"chm_plugin/resources/{p.name}") for p in sorted(resources.glob(pattern))]
    out += [(resources / "models" / n, f"chm_plugin/resources/models/{n}") for n in MODEL_FILES]
    return out


def build(output_dir: Path) -> Path:
    check_schema()
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"chm_plugin-{version()}.zip"
    tmp = target.with_suffix(".zip.part")
    with tempfile.TemporaryDirectory(prefix="canopygaps-package-") as work:
        files = entries(Path(work))
        names = {name for _, name in files}
        missing = [r for r in REQUIRED if r not in names] + [
            str(p) for p, _ in files if not p.is_file()
        ]
        if missing:
            raise SystemExit(f"missing from the package: {', '.join(missing)}")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, name in files:
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
