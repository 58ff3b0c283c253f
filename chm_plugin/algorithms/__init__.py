"""The Canopy gaps Processing algorithms (each maps its parameters to one engine request)."""

from chm_plugin.algorithms.classical import ClassicalAlgorithm
from chm_plugin.algorithms.diagnostics import DiagnosticsAlgorithm
from chm_plugin.algorithms.evaluate import EvaluateAlgorithm
from chm_plugin.algorithms.infer import InferAlgorithm
from chm_plugin.algorithms.install import InstallEngineAlgorithm
from chm_plugin.algorithms.preprocess import PreprocessAlgorithm
from chm_plugin.algorithms.synth import SynthAlgorithm
from chm_plugin.algorithms.train import TrainAlgorithm

ALGORITHMS = [
    PreprocessAlgorithm,
    TrainAlgorithm,
    InferAlgorithm,
    EvaluateAlgorithm,
    ClassicalAlgorithm,
    SynthAlgorithm,
    DiagnosticsAlgorithm,
    InstallEngineAlgorithm,
]
