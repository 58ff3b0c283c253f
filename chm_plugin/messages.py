"""Engine messages in QGIS terms: parameters and Processing actions, not engine keys or commands.

The engine speaks to every front end (command line, YAML configs, the plugin), so its errors
name config keys ('resample'), commands ('canopygaps preprocess') and shell tools (gdalwarp,
pip). :func:`to_qgis` rewrites such a message for QGIS users: a key an algorithm parameter sets
becomes that parameter ("'Resample to the model's pixel size' (RESAMPLE)"), an engine command
the algorithm's name, a shell tool the QGIS tool doing the same, pip the 'Install engine'
algorithm. Keys no parameter sets (given in 'More engine settings') are called engine settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chm_plugin.engine_env import INSTALL_ACTION

ALGORITHM_NAMES = {
    "preprocess": "Build training dataset",
    "train": "Train gap model",
    "infer": "Predict gap masks",
    "classical": "Classical gap masks (no model)",
    "evaluate": "Evaluate gap masks",
    "synth": "Synthetic forest scene",
    "diagnostics": "Diagnostics (versions, GPU, backend)",
}
WARP = "QGIS Raster > Projections > Warp (Reproject)"
_COMMANDS = "|".join(ALGORITHM_NAMES) + "|export"
_SHELL = r"(?:gdalwarp|gdal_translate|gdal_edit\.py)"

Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]
RULES: list[Rule] = [
    # shell commands offered next to the QGIS tool: drop them
    (re.compile(rf"'{_SHELL}[^']*'(?:, | or )"), ""),
    (re.compile(rf"(?: or|,) '{_SHELL}[^']*'"), ""),
    # shell commands alone: name the QGIS tool instead
    (re.compile(rf"\s*\((?:e\.g\. )?'?{_SHELL}[^)]*\)"), f" ({WARP})"),
    (re.compile(r"\bwith gdalwarp\b"), f"with {WARP}"),
    # pip: name the packages (to_qgis then adds the 'Install engine' action)
    (
        re.compile(
            r"(?:Install (?:it|them) into the engine's Python:? ?\(?)?'?python -m pip install "
            r"([\w\-. ]+?)'?\)?(?=[,;]| or|\.?$)"
        ),
        lambda m: f"Install {m.group(1).strip()} into the engine's Python",
    ),
    # engine commands: the algorithms
    (
        re.compile(rf"'canopygaps ({_COMMANDS})'|\bcanopygaps ({_COMMANDS})\b"),
        lambda m: f"'{ALGORITHM_NAMES.get(m.group(1) or m.group(2), m.group(1) or m.group(2))}'",
    ),
    (
        re.compile(rf"\b([Rr]un) ({'|'.join(ALGORITHM_NAMES)})\b"),
        lambda m: f"{m.group(1)} '{ALGORITHM_NAMES[m.group(2)]}'",
    ),
]
_SITE_KEY = re.compile(r"\bsites\[[^\]]*\]\.(\w+)")


def _keys(text: str, key_names: dict[str, str]) -> str:
    """Engine keys -> parameter names; other keys -> 'engine setting'."""
    text = _SITE_KEY.sub(lambda m: f"sites[].{m.group(1)}", text)
    for key in sorted(key_names, key=len, reverse=True):
        label = key_names[key]
        text = text.replace(f"Config key '{key}'", label).replace(f"'{key}'", label)
        if "_" in key or "." in key:
            text = re.sub(rf"(?<![\w.'\[]){re.escape(key)}(?![\w'])", label, text)
    text = re.sub(
        r"\b([Cc])onfig key", lambda m: ("E" if m.group(1) == "C" else "e") + "ngine setting", text
    )
    return text.replace("sites[].", "")


def to_qgis(text: str, key_names: dict[str, str] | None = None) -> str:
    """``text`` (an engine message or hint) in QGIS terms."""
    if not text:
        return text
    names = dict(key_names or {})
    if "band" in names:
        text = re.sub(
            r"Extract the height band first \([^)]*\) and give a \d+-band raster\.",
            f"Choose the band holding the heights with {names['band']}.",
            text,
        )
    pip = "pip install" in text
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    text = _keys(text, names)
    if not pip:
        return text
    text = text.rstrip()
    return f"{text}{'' if text.endswith('.') else '.'} {INSTALL_ACTION}"
