"""Shared base of the Canopy gaps algorithms: parameters in, one engine request out."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from chm_plugin.backends import EngineRequest
from chm_plugin.paths import PLUGIN_DIR

BACKEND_OPTIONS = ["Default (provider setting)", "In-process", "Subprocess", "Docker"]
BACKEND_IDS = [None, "inprocess", "subprocess", "docker"]
HELP_URL = "https://github.com/canopygaps/canopygaps#qgis-plugin"


class EngineAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set the names and help, add parameters in ``init_parameters`` and map them
    to one request in ``build_request``; ``outputs`` turns the engine result into outputs."""

    BACKEND = "BACKEND"
    OPTIONS = "OPTIONS"
    NAME = ""
    DISPLAY = ""
    GROUP = "Canopy gaps"
    GROUP_ID = "canopygaps"
    HELP = ""
    BACKEND_ADVANCED = True

    def __init__(self) -> None:
        super().__init__()
        self._param_help: list[tuple[str, str]] = []

    # -- identity -------------------------------------------------------------------------
    def tr(self, text: str) -> str:
        return QCoreApplication.translate("CanopyGaps", text)

    def createInstance(self):
        return type(self)()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.tr(self.DISPLAY)

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:
        return self.GROUP_ID

    def icon(self) -> QIcon:
        return QIcon(str(PLUGIN_DIR / "icon.svg"))

    def helpUrl(self) -> str:
        return HELP_URL

    def shortHelpString(self) -> str:
        entries = self._param_help
        if not entries:  # help asked before initAlgorithm: describe a fresh instance
            fresh = type(self)()
            fresh.initAlgorithm()
            entries = fresh._param_help
        items = "".join(f"<li><b>{label}</b>: {text}</li>" for label, text in entries)
        return f"{self.tr(self.HELP)}<h3>Parameters</h3><ul>{items}</ul>"

    def shortDescription(self) -> str:
        return self.tr(self.HELP.split("\n")[0].split(". ")[0])

    # -- parameters -----------------------------------------------------------------------
    def add(self, param: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False):
        """Add ``param`` with its help; ``advanced`` puts it under Advanced parameters."""
        param.setHelp(self.tr(help_text))
        if advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self._param_help.append((param.description(), help_text))
        self.addParameter(param)
        return param

    def add_options(self, example: str = "") -> None:
        """The Advanced OPTIONS parameter: free 'key=value; ...' engine settings."""
        self.add(
            QgsProcessingParameterString(
                self.OPTIONS, self.tr("More engine settings"), "", optional=True
            ),
            OPTIONS_HELP + (f" E.g. '{example}'." if example else ""),
            advanced=True,
        )

    def add_output_help(self, output, help_text: str) -> None:
        self._param_help.append((output.description() + " (output)", help_text))
        self.addOutput(output)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self._param_help = []
        self.init_parameters()
        self.add(
            QgsProcessingParameterEnum(
                self.BACKEND,
                self.tr("Engine backend"),
                options=BACKEND_OPTIONS,
                defaultValue=0,
            ),
            "Where the engine runs: the provider's default (Settings > Options > Processing > "
            "Providers > Canopy gaps), in QGIS's own Python, in a separate Python interpreter, "
            "or in a Docker container.",
            advanced=self.BACKEND_ADVANCED,
        )

    def init_parameters(self) -> None:
        raise NotImplementedError

    # -- running --------------------------------------------------------------------------
    def backend_from(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        index = self.parameterAsEnum(parameters, self.BACKEND, context)
        return BACKEND_IDS[index] if 0 <= index < len(BACKEND_IDS) else None

    def build_request(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> EngineRequest:
        raise NotImplementedError

    def outputs(
        self,
        result: dict[str, Any],
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        return {}

    def processAlgorithm(self, parameters, context, feedback):
        from chm_plugin.runner import run_engine

        feedback = feedback or QgsProcessingFeedback()
        request = self.build_request(parameters, context, feedback).with_absolute_paths()
        result = run_engine(request, feedback, self.backend_from(parameters, context))
        if feedback.isCanceled():
            raise QgsProcessingException("Cancelled by the user.")
        return self.outputs(result, parameters, context, feedback)


def thresholds_list(text: str) -> list[float]:
    """'2, 5,10' -> [2.0, 5.0, 10.0]; raises a QgsProcessingException on a bad number."""
    values = []
    for part in str(text or "").replace(";", ",").replace(" ", ",").split(","):
        if not part.strip():
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise QgsProcessingException(
                f"Height thresholds must be numbers in metres separated by commas, e.g. '2,5,10'; "
                f"got {part!r}."
            ) from None
    return values


OPTIONS_HELP = (
    "Other engine settings as 'key=value' pairs separated by ';', with dotted keys for nested "
    "settings, e.g. 'seed=3; split.block_tiles=4'. Values are JSON (numbers, true/false, "
    "[lists], {mappings}) or plain text. Keys are checked by the engine: an unknown key is an "
    "error naming the valid ones."
)


def _parse_value(text: str) -> Any:
    import json

    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("null", "none", ""):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_options(params: dict[str, Any], text: str) -> dict[str, Any]:
    """Merge 'a.b=1; c=x' overrides into ``params`` (nested mappings created as needed)."""
    for item in str(text or "").replace("\n", ";").split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise QgsProcessingException(
                f"Engine options must be key=value pairs separated by ';', got {item.strip()!r}."
            )
        key, value = item.split("=", 1)
        parts = [p.strip() for p in key.strip().split(".") if p.strip()]
        if not parts:
            raise QgsProcessingException(f"Empty key in engine option {item.strip()!r}.")
        node = params
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise QgsProcessingException(
                    f"Engine option {key.strip()!r}: {part!r} is not a section."
                )
            node = child
        node[parts[-1]] = _parse_value(value)
    return params


def optional_number(alg, parameters, name, context) -> float | None:
    """A QgsProcessingParameterNumber that may be left empty (None)."""
    value = parameters.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return alg.parameterAsDouble(parameters, name, context)
