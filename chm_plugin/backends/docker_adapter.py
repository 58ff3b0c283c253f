"""Docker backend: adapts ``chm_plugin.backends.docker`` (``build_docker_run``) to the runner.

``docker.py`` builds the ``docker run ...`` command (engine CLI ``request ... --jsonl`` as the
container's command), maps host paths into the container and back, and gives the stop command.
"""

from __future__ import annotations

import shlex
import shutil
from typing import TYPE_CHECKING

from qgis.core import QgsProcessingException

from chm_plugin.backends.base import EngineRequest, Invocation, ProcessBackend
from chm_plugin.backends.docker import DockerSettings, build_docker_run

if TYPE_CHECKING:
    from chm_plugin.settings import PluginSettings

SETTINGS_PLACE = "Settings > Options > Processing > Providers > Canopy gaps"


class DockerBackend(ProcessBackend):
    """Runs the engine in a Docker container (image and GPU use from the provider settings)."""

    name = "docker"
    label = "Docker"

    def __init__(self, plugin_settings: PluginSettings) -> None:
        self.image = plugin_settings.docker_image
        self.gpus = bool(plugin_settings.docker_gpu)
        self.extra_args = shlex.split(plugin_settings.docker_args or "")

    def check(self) -> None:
        if shutil.which("docker") is None:
            raise QgsProcessingException(
                "The Docker backend needs the 'docker' command, which is not on PATH. Install "
                "Docker (https://docs.docker.com/engine/install/) or choose the Subprocess backend "
                f"in {SETTINGS_PLACE}."
            )

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "docker_image": self.image, "docker_gpus": str(self.gpus)}

    def docker_settings(self) -> DockerSettings:
        """The image, GPU use and extra ``docker run`` arguments of the provider settings."""
        return DockerSettings(image=self.image, gpus=self.gpus, extra_args=list(self.extra_args))

    def invocation(self, request: EngineRequest, workdir: str) -> Invocation:
        self.check()
        try:
            run = build_docker_run(
                request.to_dict(),
                self.docker_settings(),
                list(request.inputs),
                list(request.outputs),
            )
        except ValueError as exc:  # DockerPathError: a path the container cannot see
            raise QgsProcessingException(f"{exc} (Docker backend)") from exc
        return Invocation(
            argv=list(run.argv),
            stop_argv=list(run.stop_argv) if run.stop_argv else None,
            translate_back=run.translate_back,
            translate_event=run.translate_event,
        )

    def failure_line(self, stderr_lines: list[str]) -> str:
        """Docker's own error (``docker: ...``, ``Error response from daemon: ...``), not its
        closing "See 'docker run --help'" line."""
        for line in stderr_lines:
            text = line.strip()
            if text.startswith("docker: ") or "Error response from daemon" in text:
                return text.removeprefix("docker: ")
        return super().failure_line(stderr_lines)

    def explain_failure(self, stderr: str) -> str:
        low = stderr.lower()
        if "cannot connect to the docker daemon" in low or "docker daemon is not running" in low:
            return (
                "Start Docker (the Docker service, or Docker Desktop) and run again, or choose "
                f"the Subprocess backend in {SETTINGS_PLACE}."
            )
        if "unable to find image" in low or "pull access denied" in low or "no such image" in low:
            return (
                f"The Docker image '{self.image}' is not available: build it (see docker/README.md "
                f"of the canopygaps sources) or set 'Docker image of the engine' in "
                f"{SETTINGS_PLACE}."
            )
        if "could not select device driver" in low or ("nvidia" in low and "gpu" in low):
            return (
                "Docker could not give the container a GPU: install the NVIDIA Container Toolkit "
                f"or switch 'Docker: use the GPUs' off in {SETTINGS_PLACE}."
            )
        if "permission denied" in low and "docker" in low:
            return "Your user may not use Docker: add it to the 'docker' group and log in again."
        return (
            f"Run the Diagnostics algorithm with the Docker backend to check the image "
            f"'{self.image}'."
        )
