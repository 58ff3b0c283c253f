"""A fresh QGIS profile with the packaged plugin installed, driven by qgis_process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path


def qgis_process_binary() -> str | None:
    """Debian's qgis_process wrapper passes an option 3.22 lacks: call the binary."""
    return shutil.which("qgis_process.bin") or shutil.which("qgis_process")


class FreshProfile:
    """``plugin_zip`` unpacked into ``<tmp>/profile``, enabled, nothing else configured.

    ``env`` adds variables; the environment otherwise has no CANOPYGAPS_*, no PYTHONPATH and
    a PATH of system folders only, as for a user who never opened a terminal.
    """

    def __init__(self, tmp: Path, plugin_zip: Path, env: dict[str, str] | None = None) -> None:
        self.root = tmp / "profile"
        plugins = self.root / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        zipfile.ZipFile(plugin_zip).extractall(plugins)
        self.plugin_dir = plugins / "chm_plugin"
        self.venv = self.root / "profiles" / "default" / "canopygaps" / "engine-venv"
        self.cwd = tmp
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CANOPYGAPS_", "PYTHON", "QGIS_", "VIRTUAL_ENV"))
        }
        self.env.update(
            QGIS_CUSTOM_CONFIG_PATH=str(self.root),
            QT_QPA_PLATFORM="offscreen",
            OMP_NUM_THREADS="1",
            PATH="/usr/local/bin:/usr/bin:/bin",
            **(env or {}),
        )
        done = self.qgis_process("plugins", "enable", "chm_plugin")
        assert done.returncode == 0, done.stdout + done.stderr

    def qgis_process(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        binary = qgis_process_binary()
        assert binary is not None
        return subprocess.run(
            [binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            cwd=self.cwd,
        )

    def run(self, alg: str, json_output: bool = True, **params) -> subprocess.CompletedProcess:
        """``qgis_process run`` (``--json``: results only; else the log and progress too)."""
        args = ["run", f"canopygaps:{alg}", *(["--json"] if json_output else []), "--"]
        return self.qgis_process(*args, *(f"{k}={v}" for k, v in params.items()))

    def run_ok(self, alg: str, **params) -> dict:
        done = self.run(alg, **params)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        return json.loads(done.stdout[done.stdout.index("{") :])["results"]
