"""Install engine: set up the Python the engine runs in, inside the QGIS profile."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import CanopyGapsAlgorithm
from chm_plugin.engine_env import engine_venv, installed_python, missing_modules, qgis_python


class InstallEngineAlgorithm(CanopyGapsAlgorithm):
    NAME = "install_engine"
    DISPLAY = "Install engine"
    GROUP, GROUP_ID = "Tools", "tools"
    ANCHOR = "install-engine-install_engine"
    ICON = "install_engine"
    TAGS = ("canopy", "gap", "install", "setup", "python", "pip", "torch", "venv", "engine")
    SHORT = "Sets up the Python the Canopy gaps engine runs in (run it once, before the rest)."
    HELP = (
        "Creates a Python environment in your QGIS profile (canopygaps/engine-venv) from the "
        "Python that runs QGIS, so GDAL, rasterio and numpy of your system are reused, then "
        "downloads and installs the engine's pinned packages (PyTorch among them: about 1 GB "
        "on disk, a few minutes) and the engine itself. pip's progress appears in the log; "
        "Cancel stops it and leaves nothing behind.\n"
        "Every other Canopy gaps algorithm then runs its engine in that Python (Subprocess "
        "backend) unless Settings > Options > Processing > Providers > Canopy gaps names "
        "another one. When the environment exists and is complete this does nothing, unless "
        "'Rebuild' is ticked. Check the result with 'Diagnostics'."
    )
    PYTHON, REQUIREMENTS, PIP_ARGS, REBUILD = "PYTHON", "REQUIREMENTS", "PIP_ARGS", "REBUILD"

    def init_parameters(self) -> None:
        self.add(
            QgsProcessingParameterBoolean(self.REBUILD, self.tr("Rebuild"), False),
            "Build the environment again even when it exists and is complete (e.g. after "
            "updating the plugin).",
        )
        self.add(
            QgsProcessingParameterString(
                self.PIP_ARGS, self.tr("Extra pip arguments"), "", optional=True
            ),
            "Passed to every pip install, e.g. '--index-url URL' for a package mirror or a "
            "PyTorch build for your GPU, '--proxy URL', or '--no-index --find-links FOLDER' "
            "offline.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(
                self.REQUIREMENTS,
                self.tr("Requirements file"),
                optional=True,
                fileFilter="Requirements (*.txt)",
            ),
            "A pip requirements file to install instead of the engine's pinned list.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFile(self.PYTHON, self.tr("Python to build from"), optional=True),
            "The Python interpreter the environment is made from (default: the one running "
            "QGIS, whose GDAL the engine then shares).",
            advanced=True,
        )
        self.addOutput(QgsProcessingOutputString("ENGINE_PYTHON", self.tr("Engine's Python")))
        self.addOutput(QgsProcessingOutputFolder("VENV", self.tr("Environment folder")))

    def base_python(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> str:
        """The Python the environment is built from: the chosen one, else QGIS's own."""
        from chm_plugin.installer import python_version, qgis_version_tag

        chosen = self.parameterAsFile(parameters, self.PYTHON, context)
        python = chosen or qgis_python()
        if not python:
            raise QgsProcessingException(
                "The Python interpreter that runs QGIS was not found: choose one with 'Python "
                "to build from' (Advanced parameters)."
            )
        version = python_version(python)
        if version is None:
            raise QgsProcessingException(f"{python} does not run as a Python interpreter.")
        if version != qgis_version_tag():
            feedback.pushWarning(
                f"{python} is Python {version}, QGIS runs Python {qgis_version_tag()}: the "
                "environment cannot share QGIS's GDAL, so pip installs rasterio's own."
            )
        return python

    def processAlgorithm(self, parameters, context, feedback):
        from chm_plugin.installer import (
            InstallPlan,
            bundled_engine,
            bundled_requirements,
            install,
        )

        venv = engine_venv()
        current = installed_python()
        rebuild = self.parameterAsBoolean(parameters, self.REBUILD, context)
        if current is not None and not rebuild and missing_modules(str(current)) == []:
            feedback.pushInfo(f"The engine's Python is already set up: {current}")
            return {"ENGINE_PYTHON": str(current), "VENV": str(venv)}
        requirements = self.parameterAsFile(parameters, self.REQUIREMENTS, context)
        plan = InstallPlan(
            base_python=self.base_python(parameters, context, feedback),
            venv=venv,
            requirements=Path(requirements) if requirements else bundled_requirements(),
            engine=bundled_engine(),
            pip_args=shlex.split(self.parameterAsString(parameters, self.PIP_ARGS, context)),
        )
        feedback.pushInfo(f"Building the engine's Python in {venv} from {plan.base_python}")
        python = install(plan, feedback)
        from chm_plugin import settings

        chosen = settings.current().python
        if chosen and Path(chosen) != python:
            feedback.pushWarning(
                f"The engine runs with {chosen}, set in Settings > Options > Processing > "
                "Providers > Canopy gaps (or $CANOPYGAPS_PYTHON): clear it to use the new one."
            )
        feedback.pushInfo(
            f"Done: the Canopy gaps algorithms now run their engine with {python}. Run "
            "'Diagnostics' to see its versions."
        )
        return {"ENGINE_PYTHON": str(python), "VENV": str(venv)}
