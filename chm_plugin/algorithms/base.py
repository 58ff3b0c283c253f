"""Shared bases of the Canopy gaps algorithms.

:class:`CanopyGapsAlgorithm` gives every algorithm its identity, plain-text help (rendered by
the dialog and printed by ``qgis_process help``), tags, icon and help page. :class:`EngineAlgorithm`
adds the engine's parameters (:mod:`.params`, from the engine schema), the backend choice, and
the run: parameters -> one engine request -> runner -> outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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

from chm_plugin.algorithms.options import apply_options, options_help
from chm_plugin.algorithms.params import EngineParam, definition, engine_values
from chm_plugin.backends import EngineRequest
from chm_plugin.paths import help_url, icon_path

if TYPE_CHECKING:
    from chm_plugin.outputs import OutputTarget

BACKENDS = ["default", "inprocess", "subprocess", "docker"]
BACKEND_HELP = (
    "Where the engine runs: default = the provider setting (Settings > Options > Processing > "
    "Providers > Canopy gaps); inprocess = in QGIS's own Python; subprocess = in the engine's "
    "Python (set up by 'Install engine'); docker = in a Docker container."
)


class CanopyGapsAlgorithm(QgsProcessingAlgorithm):
    """Identity and help of a Canopy gaps algorithm.

    Subclasses set ``NAME``, ``DISPLAY``, ``GROUP``/``GROUP_ID``, ``SHORT`` (one line: the
    toolbox tooltip and the first line of ``qgis_process help``), ``HELP`` (plain text,
    paragraphs separated by newlines; it does not repeat ``SHORT`` nor list the parameters,
    whose own help the dialog and ``qgis_process help`` show), ``TAGS``, ``ICON`` (a file
    of ``chm_plugin/icons``) and ``ANCHOR`` (its section of the README, the help page).
    """

    NAME = DISPLAY = SHORT = HELP = ICON = ANCHOR = ""
    GROUP, GROUP_ID = "Tools", "tools"
    TAGS: tuple[str, ...] = ()

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

    def tags(self) -> list[str]:
        return [self.tr(t) for t in self.TAGS]

    def icon(self) -> QIcon:
        return QIcon(icon_path(self.ICON or self.NAME))

    def svgIconPath(self) -> str:
        return icon_path(self.ICON or self.NAME)

    def helpUrl(self) -> str:
        return help_url(self.ANCHOR)

    def shortDescription(self) -> str:
        return self.tr(self.SHORT)

    def shortHelpString(self) -> str:
        return self.tr(self.HELP)

    def add(
        self,
        param: QgsProcessingParameterDefinition,
        help_text: str,
        advanced: bool = False,
        key: str = "",
    ) -> QgsProcessingParameterDefinition:
        """Add ``param`` with its help; ``advanced`` puts it under Advanced parameters;
        ``key`` is the engine setting it feeds (messages then name the parameter)."""
        if isinstance(param, QgsProcessingParameterEnum) and param.usesStaticStrings():
            # qgis_process 3.22 calls every choice a number: say they are given by name
            help_text += f" Given by name: {', '.join(param.options())}."
        param.setHelp(self.tr(help_text))
        if advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(param)
        if key:
            self._key_names[key] = f"'{param.description()}' ({param.name()})"
        return param

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self._key_names: dict[str, str] = {}
        self.init_parameters()

    def init_parameters(self) -> None:
        raise NotImplementedError


class EngineAlgorithm(CanopyGapsAlgorithm):
    """An algorithm that maps its parameters to one engine request.

    ``init_parameters`` adds parameters (:meth:`add_engine` for schema-driven ones,
    :meth:`add` for layers, files and outputs), ``build_request`` maps them to one
    :class:`EngineRequest`, and ``outputs`` turns the engine result into outputs.
    """

    COMMAND = ""
    BACKEND = "BACKEND"
    OPTIONS = "OPTIONS"
    BACKEND_ADVANCED = True

    def add_engine(
        self, spec: EngineParam, advanced: bool | None = None
    ) -> QgsProcessingParameterDefinition:
        """Add the schema-driven parameter ``spec`` (default, bounds, help from the engine)."""
        from chm_plugin.schema import field_entry

        entry = field_entry(self.COMMAND, spec.key)
        self._engine_specs.append(spec)
        hidden = spec.advanced if advanced is None else advanced
        return self.add(definition(spec, entry), spec.help or entry["help"], hidden, spec.key)

    def add_options(self) -> None:
        """The Advanced OPTIONS parameter: settings no other parameter sets."""
        param = QgsProcessingParameterString(
            self.OPTIONS, self.tr("More engine settings"), "", optional=True
        )
        self.add(param, options_help(self.COMMAND, set(self._key_names)), advanced=True)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self._engine_specs: list[EngineParam] = []
        super().initAlgorithm(config)
        self.add(
            QgsProcessingParameterEnum(
                self.BACKEND, self.tr("Engine backend"), BACKENDS, False, "default", False, True
            ),
            BACKEND_HELP,
            advanced=self.BACKEND_ADVANCED,
        )

    def key_names(self) -> dict[str, str]:
        """Engine setting -> "'Label' (NAME)" of the parameter that sets it."""
        return dict(self._key_names)

    def engine_params(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> dict[str, Any]:
        """The engine settings of every schema-driven parameter."""
        return engine_values(self, self._engine_specs, self.COMMAND, parameters, context)

    def with_options(
        self, params: dict[str, Any], parameters: dict[str, Any], context: QgsProcessingContext
    ) -> dict[str, Any]:
        """``params`` with the OPTIONS text merged in."""
        return apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))

    def backend_from(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        name = self.parameterAsEnumString(parameters, self.BACKEND, context)
        return None if name in ("", "default") else name

    def request(
        self,
        params: dict[str, Any],
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        targets: dict[str, OutputTarget] | None = None,
    ) -> EngineRequest:
        """The request of this algorithm's command, with its parameter names for messages."""
        return EngineRequest(
            self.COMMAND,
            params,
            inputs=list(inputs),
            outputs=list(outputs),
            targets=dict(targets or {}),
            key_names=self.key_names(),
        )

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
        from chm_plugin.outputs import finish_outputs
        from chm_plugin.runner import run_engine

        feedback = feedback or QgsProcessingFeedback()
        request = self.build_request(parameters, context, feedback).with_absolute_paths()
        result = run_engine(request, feedback, self.backend_from(parameters, context))
        if feedback.isCanceled():
            raise QgsProcessingException("Cancelled by the user.")
        result = finish_outputs(request, result, context, feedback)
        return self.outputs(result, parameters, context, feedback)
