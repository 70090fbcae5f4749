"""`python -m flows.calibrate engine=wan22_i2v_a14b engine.model=/models/... steps=40`: calibrate
MagCache for a model and step count, and write the ratios where `step_cache=mag` reads them.

MagCache skips a step when the accumulated change of the denoiser's residual, predicted from a
per-step "magnitude ratio" table, stays under its threshold. The table depends on the model and
the number of steps; diffusers records it in calibration mode (nothing skipped). This runs one
such generation, averages the cond and uncond passes, keeps each expert's table apart (Wan 2.2
A14B's low-noise expert runs the tail of the schedule), and adds it to the model's calibration
file (engine.step_cache), next to the tables of other step counts.

Exit status: 0 written; 2 invalid command line or engine config; 1 the generation failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from engine.base import GenerationRequest
from engine.diffusers.engine import DiffusersEngine
from engine.diffusers.step_cache import calibration_document
from flows.config.engines import construct
from flows.runtime.hydra_cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, hydra_exit_code
from flows.config.settings import ConfigInvalid
from stages.media.atomic import atomic_write_json
from stages.storyboard.units import parse_resolution

_exit_codes: list[int] = []


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient: a neutral start image when the user gives none."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return (rgb * 200 + 30).astype(np.uint8)


def calibration_request(engine: DiffusersEngine, data: dict[str, Any], cwd: Path
                        ) -> GenerationRequest:
    spec = engine.spec
    width, height = spec.default_resolution
    if data.get("resolution"):
        width, height = parse_resolution(str(data["resolution"]))
    frames = int(data.get("frames") or spec.max_frames)
    if not spec.frame_rule.is_valid(frames):
        raise ConfigInvalid(f"frames={frames}: engine {spec.name!r} needs "
                            f"{spec.frame_rule.describe()} frames, e.g. "
                            f"{spec.frame_rule.snap(frames)}")
    params = dict((data.get("engine") or {}).get("params") or {})
    steps = data.get("steps") or params.get("steps") or engine.defaults.get("steps")
    if not isinstance(steps, int) or steps < 2:
        raise ConfigInvalid(f"steps={steps!r}: give the whole number of steps you render with "
                            f"(>= 2), e.g. steps=30")
    params["steps"] = steps
    start = None
    if "t2v" not in spec.modes:  # an image-to-video engine needs a start frame
        if data.get("image"):
            from stages.media.video_io import load_png
            from engine.images import cover_resize

            path = Path(str(data["image"]))
            path = path if path.is_absolute() else cwd / path
            if not path.is_file():
                raise ConfigInvalid(f"image={data['image']}: no such file ({path})")
            start = cover_resize(load_png(path), width, height)
        else:
            start = gradient(width, height)
    return GenerationRequest(prompt=str(data.get("prompt") or ""), width=width, height=height,
                             num_frames=frames, fps=spec.default_fps, seed=int(data.get("seed")
                                                                                or 0),
                             start_image=start, params=params)


def run(data: dict[str, Any], cwd: Path) -> int:
    config = dict(data.get("engine") or {})
    config["options"] = {**dict(config.get("options") or {}), "step_cache": "mag_calibrate"}
    try:
        engine = construct(config, f"engine={config.get('name')}")
        if not isinstance(engine, DiffusersEngine):
            raise ConfigInvalid(f"engine={config.get('name')}: MagCache calibrates diffusers "
                                f"engines (wan21_t2v, wan22_i2v_a14b, ...), not this one")
        request = calibration_request(engine, data, cwd)
    except ConfigInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    steps = request.params["steps"]
    print(f"Calibrating MagCache for {engine.spec.name} ({engine.source.name}): {steps} steps, "
          f"{request.width}x{request.height}x{request.num_frames}", flush=True)
    started = time.perf_counter()
    try:
        ratios = engine.calibrate_magcache(
            request, progress=lambda done, total: print(f"  step {done}/{total}", flush=True))
    except Exception as exc:  # noqa: BLE001 - any failure of the generation itself
        print(f"error: calibration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    target = Path(str(data["out"])) if data.get("out") else engine.calibration_path()
    target = target if target.is_absolute() else cwd / target
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target, calibration_document(
        target, engine.spec.name, engine.source.name,
        engine.options.revision or engine.source.revision, steps, ratios))
    split = " + ".join(str(len(r)) for r in ratios)
    print(f"Wrote {steps}-step ratios ({split} steps per expert) in "
          f"{time.perf_counter() - started:.1f}s to {target}\n"
          f"Use them with engine.options.step_cache=mag"
          + (f" engine.options.step_cache_ratios={target}" if data.get("out") else ""))
    return EXIT_OK


@hydra.main(config_path="../conf", config_name="calibrate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    data = OmegaConf.to_container(cfg, resolve=True)
    _exit_codes.append(run(data, Path(hydra.utils.get_original_cwd())))


def cli() -> int:
    return hydra_exit_code(main, _exit_codes,
                           "Nothing was written: fix the command line above (`python -m "
                           "flows.calibrate engine=NAME engine.model=WEIGHTS steps=N`).")


if __name__ == "__main__":
    sys.exit(cli())
