"""The engine commands shown in docker/ (compose.yaml, run.sh, README.md) use real CLI options.

Each example (``docker/run.sh COMMAND ...``, ``docker compose ... run --rm SERVICE COMMAND ...``,
``docker run ... canopygaps:cpu COMMAND ...``) is read from the file, continuation lines joined,
and every ``--option`` after the engine command must be one that ``canopygaps COMMAND --help``
lists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.api import COMMANDS
from engine.cli import main

from .docker_helpers import ROOT

FILES = [ROOT / "docker" / name for name in ("compose.yaml", "run.sh", "README.md")]
ENGINE_COMMANDS = {*COMMANDS, "request"}
LAUNCHER = re.compile(r"(?:docker/run\.sh|\brun --rm [\w-]+|canopygaps:(?:cpu|gpu))\s+(.*)")


def _logical_lines(path: Path) -> list[str]:
    """Lines of ``path`` without comment marks, backslash continuations joined."""
    text = "\n".join(re.sub(r"^\s*# ?", "", line) for line in path.read_text().splitlines())
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def documented_commands(path: Path) -> list[tuple[str, list[str]]]:
    """(engine command, its --options) of every example in ``path``."""
    found = []
    for line in _logical_lines(path):
        for match in LAUNCHER.finditer(line):
            words = match.group(1).replace("`", " ").split()
            command = next((w for w in words if w in ENGINE_COMMANDS), None)
            if command is None:
                continue
            after = words[words.index(command) + 1 :]
            found.append((command, [w.split("=")[0] for w in after if w.startswith("--")]))
    return found


def cli_options(command: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The --options ``canopygaps COMMAND --help`` lists."""
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return set(re.findall(r"--[\w-]+", capsys.readouterr().out))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_documented_commands_use_real_options(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = documented_commands(path)
    assert "infer" in {command for command, _ in examples}, f"no infer example in {path}"
    known: dict[str, set[str]] = {}
    for command, options in examples:
        if command not in known:
            known[command] = cli_options(command, capsys)
        unknown = [o for o in options if o not in known[command]]
        assert not unknown, f"{path.name}: 'canopygaps {command}' has no option {unknown}"


def test_a_wrong_option_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control: the example the docker files used to show (``infer --input``) is refused."""
    doc = tmp_path / "run.sh"
    doc.write_text("#   docker/run.sh infer --model m.safetensors \\\n#       --input dsm.tif\n")
    ((command, options),) = documented_commands(doc)
    assert command == "infer" and options == ["--model", "--input"]
    assert "--input" not in cli_options("infer", capsys)
