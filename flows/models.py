"""`python -m flows.models`: which weights every engine needs, which it found where, what is
missing, and the exact `hf download` command that fetches it. Nothing is downloaded.

    python -m flows.models                          # every engine in conf/engine/ (not preview)
    python -m flows.models --models-dir /data/models
    python -m flows.models engine=wan22_i2v_a14b engine.model=/models/Wan2.2-I2V-A14B-Diffusers \\
        engine.options.files.transformer=/comfy/models/diffusion_models/high.safetensors

For each engine: its `engine.model` (the conf/engine/<name>.yaml value or the override), or,
when unset, the official Diffusers repos looked for as <models-dir>/<repo name> (the folder the
printed `hf download ... --local-dir` fills) and in the local Hugging Face cache; then each
model component's weights in that folder, and each `engine.options.files` entry (format,
layout, quantization). When the weights are there, the engine is constructed as a render would
(no weights loaded), so a file of the wrong model or size shows here with the message the
render would give. Exit status 0 (the report is the result); 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from flows.config.engines import engine_config_file
from flows.config.helper_models import HELPERS, helper_folders, helper_lines
from flows.config.model_check import check_engine
from flows.config.settings import CONF_DIR, RenderSettings

DEFAULT_MODELS_DIR = "/models"


class UsageError(ValueError):
    """A bad command line (exit 2)."""


# -- command line -----------------------------------------------------------------------------


def engine_names() -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / "engine").glob("*.yaml")
                  if p.stem != "preview")


def parse_overrides(items: Sequence[str], helpers: dict[str, Any]
                    ) -> tuple[list[str] | None, dict[str, Any]]:
    """`engine=a,b`, `engine.model=X`, `engine.options.files.C=X`, `engine.options.K=V`; and
    the helper models' `depth.model=`, `pose.model=`, `pose.detector=` (into `helpers`)."""
    chosen: list[str] | None = None
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.lstrip("+")
        if not sep:
            raise UsageError(f"{item!r}: expected key=value (engine=NAME, engine.model=PATH, "
                             f"engine.options.files.transformer=FILE)")
        value = None if value in ("null", "") else value
        if key in HELPERS:
            helpers[key] = value
        elif key == "engine":
            chosen = [v for v in str(value or "").split(",") if v]
        elif key == "engine.model":
            overrides["model"] = value
        elif key.startswith("engine.options."):
            overrides.setdefault("options", {})
            parts = key.split(".")[2:]
            target = overrides["options"]
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = _scalar(value)
        else:
            raise UsageError(f"{item!r}: only engine=, engine.model=, engine.options.* and "
                             f"{', '.join(k + '=' for k in HELPERS)} are read here")
    return chosen, overrides


def _scalar(value: str | None) -> Any:
    if value is None:
        return None
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _merge(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.models",
        description="Which weights each engine found, what is missing, and the hf download "
                    "command for it. Nothing is downloaded.")
    parser.add_argument("--models-dir", default=os.environ.get("REELFORGE_MODELS_DIR",
                                                               DEFAULT_MODELS_DIR),
                        help="where downloaded diffusers folders live (<dir>/<repo name>); "
                             "default %(default)s")
    parser.add_argument("--no-construct", action="store_true",
                        help="skip building the engines (faster; no check of files against "
                             "the folder's configs)")
    parser.add_argument("overrides", nargs="*",
                        help="engine=NAME[,NAME], engine.model=PATH, "
                             "engine.options.files.COMPONENT=FILE, depth.model=FOLDER, "
                             "pose.model=FOLDER, pose.detector=FOLDER")
    args = parser.parse_intermixed_args(argv)  # overrides before and after the flags
    helpers = helper_folders(RenderSettings(storyboard=""))  # conf/config.yaml's folders
    try:
        chosen, overrides = parse_overrides(args.overrides, helpers)
        names = engine_names()
        if chosen is not None:
            unknown = [n for n in chosen if n not in names]
            if unknown:
                raise UsageError(f"engine={','.join(unknown)}: no such engine config; known: "
                                 f"{', '.join(names)}")
            names = chosen
        if overrides and (chosen is None or len(chosen) != 1):
            raise UsageError("engine.model / engine.options overrides apply to one engine: "
                             "add engine=NAME")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    models_dir = Path(args.models_dir).expanduser()
    print(f"Weights for the diffusers engines (models dir: {models_dir}; Hugging Face cache "
          f"read offline; nothing is downloaded)\n")
    for name in names:
        config = _merge(engine_config_file(name), overrides)
        report = check_engine(name, config, models_dir, construct=not args.no_construct)
        print(f"{name}: {report.status}")
        for line in report.lines:
            print(line)
        print()
    print("Helper models (local transformers folders; conf/config.yaml or KEY=FOLDER here):")
    for line in helper_lines(helpers):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
