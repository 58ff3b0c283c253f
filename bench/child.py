"""One benchmark run in a fresh process: ``python -m bench.child SPEC.json``.

Runs one engine command (``engine.api.run(command, params)``) and writes a JSON report to
``spec["result"]``: wall time of the command, its result, and memory: the RSS before the
command (interpreter, torch, GDAL and the command's modules imported), the peak RSS of the
command alone (``VmHWM`` of ``/proc/self/status`` after resetting it through
``/proc/self/clear_refs``) and the peak RSS of the whole process, both read right after the
command so later steps do not count. (``ru_maxrss`` is recorded too but not used: Linux carries
it over fork/exec, so it can report the parent's RSS.)

With ``spec["forward"]`` it then times the *pure forward pass* of the same tiles: the same
tile plan, the same real tiles (read, normalised and cut like the pipeline does, outside the
timed region), the same batch size, runtime and precision (the ones the run used) through the
engine's own runner (:class:`~engine.inference.predictor.Predictor`, channels_last, or
:class:`~engine.inference.onnx_predictor.OnnxPredictor` on the cached ONNX export). At most
``sample`` tiles are timed and the time is scaled to all tiles of the raster
(``sample >= tiles`` times every tile).
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _proc_status() -> dict[str, int]:
    """VmHWM / VmRSS of this process in bytes (Linux ``/proc/self/status``; empty elsewhere)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so it measures the command alone."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss() -> int:
    # Linux: KiB. Note: inherited across fork/exec (it can include the parent's RSS), which
    # is why VmHWM is the primary figure.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


WARMUP_CALLS = 2
"""Untimed forward passes before the pure-forward timing. torch builds its oneDNN primitives
on the first call; onnxruntime's first call records the memory plan and its second allocates it
(both about 25 % slower than the following calls on 512 px tiles), so two calls reach the steady
state the pure forward time stands for."""


def pure_forward(params: dict[str, Any], result: dict[str, Any], sample: int) -> dict[str, Any]:
    """Time the model alone on the tiles of the run described by ``params`` / ``result``."""
    import numpy as np

    from engine.config.base import from_dict
    from engine.features.inputs import transform_for
    from engine.inference.command import plan_for
    from engine.inference.config import InferConfig
    from engine.inference.device import choose_device
    from engine.inference.onnx_predictor import OnnxPredictor
    from engine.inference.predictor import Predictor, TilePredictor, select_thresholds
    from engine.inference.readers import check_dsm, open_dsm
    from engine.inference.stream import read_strip
    from engine.models.modelfile import load_model

    config = from_dict(InferConfig, params)
    model, desc = load_model(config.model)
    _, fed, channels = select_thresholds(config.thresholds, desc.thresholds, desc.conditioned)
    # the runtime and precision the run actually used (as reported in its result)
    choice = choose_device(
        str(result.get("device") or config.device),
        str(result.get("precision") or config.precision),
        config.num_threads,
    )
    # ... and the runtime it used (onnxruntime: the cached export, loaded outside the timing)
    runtime = str(result.get("runtime") or "torch")
    predictor: TilePredictor
    if runtime == "onnxruntime":
        predictor = OnnxPredictor.from_model(model, desc, config.model, fed, choice, channels)
    else:
        predictor = Predictor(model, fed, choice, channels)
    info, resampled = check_dsm(
        Path(config.dsms[0]), desc.pixel_size, config.pixel_size_tolerance, config.resample
    )
    grid = resampled or info
    plan = plan_for(config, grid, int(model.depth))
    transform = transform_for(desc, grid.pixel_size)
    reader = open_dsm(Path(config.dsms[0]), resampled)
    try:
        transform.prepare(reader.read_window, grid.height, grid.width)
        want = min(sample, plan.n_tiles)
        tiles = []
        rows_needed = -(-want // plan.n_cols)
        start = max(0, (plan.n_rows - rows_needed) // 2)  # tiles from the middle rows
        order = [*range(start, plan.n_rows), *range(0, start)]
        for k in order:
            tiles.append(read_strip(reader.read_window, plan, k, transform).tiles)
            if sum(len(t) for t in tiles) >= want:
                break
    finally:
        reader.close()
    batch = np.concatenate(tiles)[:want]
    bs = config.batch_size
    for _ in range(WARMUP_CALLS):  # steady state: see WARMUP_CALLS
        predictor(batch[:bs])
    t0 = time.perf_counter()
    for b in range(0, len(batch), bs):
        predictor(batch[b : b + bs])
    seconds = time.perf_counter() - t0
    return {
        "tiles_timed": len(batch),
        "tiles_total": int(plan.n_tiles),
        "tile_size": int(plan.tile),
        "seconds_timed": seconds,
        "seconds_all_tiles": seconds / len(batch) * plan.n_tiles,
        "runtime": predictor.runtime,
        "precision": predictor.choice.precision,
        "device": choice.device,
        "threads": choice.threads,
        "batch_size": bs,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    t_start = time.perf_counter()
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    from engine import api
    from engine.config.base import from_dict

    config_cls, _ = api.get_command(spec["command"]).load()  # imports the command's modules
    config = from_dict(config_cls, spec["params"])
    if spec["command"] in ("infer", "classical"):
        import rasterio  # noqa: F401  (GDAL loaded before the baseline RSS)
        import scipy.ndimage  # noqa: F401
    if spec["command"] == "infer":
        import torch

        with contextlib.suppress(ImportError):  # the CPU runtime's import, like torch's
            import onnxruntime  # noqa: F401
    before = _proc_status()
    reset = _reset_peak()
    t0 = time.perf_counter()
    result = api.run(spec["command"], config)
    seconds = time.perf_counter() - t0
    after = _proc_status()
    if "VmHWM" in after:
        command_peak = after["VmHWM"] if reset else None
        peak = max(after["VmHWM"], before.get("VmHWM", 0))
        rss_before = before.get("VmRSS")
        source = "VmHWM (/proc/self/status)"
    else:  # not Linux
        command_peak, peak, rss_before, source = None, _ru_maxrss(), None, "ru_maxrss"
    report: dict[str, Any] = {
        "command": spec["command"],
        "seconds": seconds,
        "startup_seconds": t0 - t_start,
        "peak_rss_bytes": peak,
        "command_peak_rss_bytes": command_peak,
        "rss_before_bytes": rss_before,
        "ru_maxrss_bytes": _ru_maxrss(),
        "rss_source": source,
        "result": result,
    }
    if spec.get("forward"):
        report["forward"] = pure_forward(spec["params"], result, int(spec["forward"]["sample"]))
    Path(spec["result"]).write_text(json.dumps(report, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
