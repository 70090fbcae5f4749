"""The weights check behind `python -m flows.models`: for one engine config, which model
folder and component weights it needs, which were found where (a models folder, the Hugging Face
cache, `engine.options.files`), what is missing with the `hf download` command that fetches it,
and whether the engine builds from them (no weights loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence



@dataclass(frozen=True)
class Weights:
    repos: tuple[str, ...]  # official Diffusers repos, the recommended first
    # Model components (with weights) of the pipeline; the rest are configs and tokenizers.
    components: tuple[str, ...] = ("transformer", "vae", "text_encoder")
    # The repo's root also holds large single-file checkpoints the engine does not use.
    subfolders_only: bool = False


_WAN_A14B = ("transformer", "transformer_2", "vae", "text_encoder")
WEIGHTS: dict[str, Weights] = {
    "wan21_t2v": Weights(("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.1-T2V-14B-Diffusers")),
    "wan21_i2v": Weights(("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
                          "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
                          "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"),
                         ("transformer", "vae", "text_encoder", "image_encoder")),
    "wan22_t2v_a14b": Weights(("Wan-AI/Wan2.2-T2V-A14B-Diffusers",), _WAN_A14B),
    "wan22_i2v_a14b": Weights(("Wan-AI/Wan2.2-I2V-A14B-Diffusers",), _WAN_A14B),
    "wan22_ti2v_5b": Weights(("Wan-AI/Wan2.2-TI2V-5B-Diffusers",)),
    "wan_vace": Weights(("Wan-AI/Wan2.1-VACE-1.3B-diffusers", "Wan-AI/Wan2.1-VACE-14B-diffusers")),
    "wan_v2v": Weights(("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.1-T2V-14B-Diffusers")),
    "wan_animate": Weights(("Wan-AI/Wan2.2-Animate-14B-Diffusers",),
                           ("transformer", "vae", "text_encoder", "image_encoder")),
    "hunyuan_t2v": Weights(("hunyuanvideo-community/HunyuanVideo",),
                           ("transformer", "vae", "text_encoder", "text_encoder_2")),
    "hunyuan_i2v": Weights(("hunyuanvideo-community/HunyuanVideo-I2V",),
                           ("transformer", "vae", "text_encoder", "text_encoder_2")),
    "ltx": Weights(("Lightricks/LTX-Video",), subfolders_only=True),
    "cogvideox": Weights(("THUDM/CogVideoX-5b", "THUDM/CogVideoX-5b-I2V")),
    "svd": Weights(("stabilityai/stable-video-diffusion-img2vid-xt",),
                   ("unet", "vae", "image_encoder"), subfolders_only=True),
    # Image engines (generated keyframes).
    "sdxl": Weights(("stabilityai/stable-diffusion-xl-base-1.0",),
                    ("unet", "vae", "text_encoder", "text_encoder_2"), subfolders_only=True),
    "sdxl_turbo": Weights(("stabilityai/sdxl-turbo",),
                          ("unet", "vae", "text_encoder", "text_encoder_2"),
                          subfolders_only=True),
    "flux": Weights(("black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-schnell"),
                    ("transformer", "vae", "text_encoder", "text_encoder_2"),
                    subfolders_only=True),
    "sd35": Weights(("stabilityai/stable-diffusion-3.5-large",
                     "stabilityai/stable-diffusion-3.5-medium",
                     "stabilityai/stable-diffusion-3.5-large-turbo"),
                    ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"),
                    subfolders_only=True),
}


def repo_dir_name(repo: str) -> str:
    return repo.rsplit("/", 1)[-1]


def download_command(repo: str, local_dir: str | Path | None, weights: Weights | None = None,
                     only: Sequence[str] | None = None) -> str:
    """The `hf download` command (huggingface_hub's `hf` CLI) for a repo; `only`: just these
    component folders plus every config and tokenizer (a base for single files)."""
    parts = ["hf", "download", repo]
    if local_dir is not None:
        parts += ["--local-dir", _quote(str(local_dir))]
    if only is not None:
        patterns = ["*.json", "tokenizer*/*"] + [f"{c}/*" for c in only]
        parts += [f"--include {_quote(p, always=True)}" for p in patterns]
    elif weights is not None and weights.subfolders_only:
        parts += ['--include "model_index.json"', '--include "*/*"']
    return " ".join(parts)


def _quote(text: str, always: bool = False) -> str:
    if always or any(c in text for c in " *?'\"$"):
        return '"' + text.replace('"', '\\"') + '"'
    return text


# -- what one engine has ----------------------------------------------------------------------


@dataclass
class Report:
    engine: str
    status: str = "ready"            # ready | found | missing | problem
    lines: list[str] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"  {label}: {text}")

    def worse(self, status: str) -> None:
        order = ("ready", "found", "missing", "problem")
        if order.index(status) > order.index(self.status):
            self.status = status


def _cached(repo: str) -> Path | None:
    from engine.diffusers.models.source import ModelNotFound, resolve_model

    try:
        return resolve_model(repo, "check").path
    except ModelNotFound:
        return None


def _is_pipeline(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()


def _repo_for(weights: Weights, folder: Path | str) -> str:
    name = Path(str(folder)).name.lower()
    return next((r for r in weights.repos if repo_dir_name(r).lower() == name), weights.repos[0])


def check_engine(name: str, config: dict[str, Any], models_dir: Path,
                 construct: bool = True) -> Report:
    weights = WEIGHTS.get(name, Weights(()))
    report = Report(name)
    model = config.get("model")
    options = dict(config.get("options") or {})
    if model is None:
        model = options.get("model")
    files = {k: v for k, v in dict(options.get("files") or {}).items() if v not in (None, "")}
    replaced = set(files)
    keep = [c for c in weights.components if c not in replaced]
    base, configured, use = _find_base(report, weights, model, models_dir, keep, bool(files))
    if base is not None:
        _check_components(report, weights, base, replaced)
    for component, value in sorted(files.items()):
        _check_file(report, component, value)
    _check_profiles(report, config)
    if base is not None and report.status in ("ready", "found") and construct:
        engine = _construct(report, name, config, use)
        if engine is not None:
            _check_calibration(report, engine, use)
    if base is not None and not configured and report.status != "problem":
        report.add(*_use_line(name, use))
    return report


def _use_line(name: str, model: str) -> tuple[str, str]:
    """How to use found weights: a render for video engines; image engines make keyframes."""
    from engine.registry import UnknownEngineError, engine_spec

    try:
        stills = not engine_spec(name).makes_video
    except UnknownEngineError:
        stills = False
    if stills:
        return ("keyframes with", f"`image: {{generate: \"...\", engine: {name}}}` in a shot, "
                                  f"model: {_quote(model)} in conf/engine/{name}.yaml")
    return ("render with", f"python -m flows.render storyboard=ep01 engine={name} "
                           f"engine.model={_quote(model)}")


def _find_base(report: Report, weights: Weights, model: Any, models_dir: Path,
               keep: list[str], has_files: bool) -> tuple[Path | None, bool, str]:
    """(the diffusers folder the engine would load, whether engine.model names it, the
    engine.model value that loads it)."""
    only = keep if has_files else None
    if model not in (None, ""):
        text = str(model)
        path = Path(text).expanduser()
        if path.is_file():
            report.worse("problem")
            report.add("model", f"{text} is a single checkpoint file; engine.model must be a "
                                f"diffusers folder (configs, tokenizer, scheduler): put the "
                                f"file under engine.options.files.transformer")
            return None, True, ""
        if path.is_dir():
            if _is_pipeline(path):
                report.add("model", f"found {path} ({_pipeline_class(path)} folder)")
                return path, True, text
            report.worse("missing")
            report.add("model", f"missing: {path} has no model_index.json (not a diffusers "
                                f"pipeline folder)")
            if weights.repos:
                report.add("download", download_command(_repo_for(weights, path), path,
                                                        weights, only))
            return None, True, ""
        from engine.diffusers.models.source import _HUB_ID

        if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
            cached = _cached(text)
            if cached is not None:
                report.add("model", f"found {text} in the Hugging Face cache ({cached})")
                return cached, True, text
            report.worse("missing")
            report.add("model", f"missing: {text} is not in the Hugging Face cache")
            report.add("download", download_command(text, None, None, only))
            return None, True, ""
        report.worse("missing")
        report.add("model", f"missing: no folder {path}")
        if weights.repos:
            report.add("download", download_command(_repo_for(weights, path), path, weights,
                                                    only))
        return None, True, ""
    looked = []
    for repo in weights.repos:
        folder = models_dir / repo_dir_name(repo)
        looked.append(str(folder))
        if _is_pipeline(folder):
            report.worse("found")
            report.add("model", f"found {folder} ({_pipeline_class(folder)} folder), but "
                                f"engine.model is not set")
            return folder, False, str(folder)
        cached = _cached(repo)
        if cached is not None:
            report.worse("found")
            report.add("model", f"found {repo} in the Hugging Face cache, but engine.model is "
                                f"not set")
            return cached, False, repo
    report.worse("missing")
    where = (f"looked in {', '.join(looked)} and the Hugging Face cache" if looked else
             "no known repo to look for; set engine.model")
    report.add("model", f"missing: engine.model is not set; {where}")
    if weights.repos:
        repo = weights.repos[0]
        folder = models_dir / repo_dir_name(repo)
        report.add("download", download_command(repo, folder, weights, only))
        label, text = _use_line(report.engine, str(folder))
        report.add(f"then {label}", text)
    return None, False, ""


def _pipeline_class(folder: Path) -> str:
    try:
        return str(json.loads((folder / "model_index.json").read_text()).get("_class_name"))
    except (OSError, ValueError, AttributeError):
        return "unreadable model_index.json"


def _check_components(report: Report, weights: Weights, base: Path, replaced: set[str]) -> None:
    from engine.diffusers.models.files import missing_weights

    lacking = missing_weights(base)
    present = []
    try:
        index = json.loads((base / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    for component, value in sorted(index.items()):
        if component.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        if component in lacking:
            if component in replaced:
                report.add(component, f"from engine.options.files.{component} (the folder has "
                                      f"no weights for it)")
            else:
                report.worse("missing")
                report.add(component, f"missing: {base / component} has a config but no "
                                      f"weights; set engine.options.files.{component}=<file> "
                                      f"or download them")
                repo = _repo_for(weights, base) if weights.repos else None
                if repo:
                    report.add("download", f"hf download {repo} --local-dir "
                                           f"{_quote(str(base))} --include \"{component}/*\"")
        elif component in replaced:
            report.add(component, f"from engine.options.files.{component} (instead of the "
                                  f"folder's)")
        elif (base / component / "config.json").is_file():
            present.append(component)
    if present:
        report.add("weights", f"found in the folder: {', '.join(present)}")


def _check_file(report: Report, component: str, value: Any) -> None:
    from engine.diffusers.models.headers import _Unreadable, describe_header, identify, quantization_of
    from engine.diffusers.models.headers import read_header

    key = f"files.{component}"
    path = Path(str(value)).expanduser()
    if not path.is_file():
        report.worse("missing")
        report.add(key, f"missing: no such file {path}")
        return
    try:
        header = read_header(path)
    except (_Unreadable, OSError) as exc:
        report.worse("problem")
        report.add(key, f"problem: {path.name}: {exc}")
        return
    match = identify(set(header.tensors))
    report.add(key, f"found {path} ({quantization_of(header)}): "
                    f"{describe_header(header, match)}")


def _check_profiles(report: Report, config: dict[str, Any]) -> None:
    """The LoRA files the engine config's profiles need (draft: a step-distilled LoRA)."""
    from stages.plan.profiles import ProfileConfigError, profiles_from_config

    try:
        profiles = profiles_from_config(config)
    except ProfileConfigError as exc:
        report.worse("problem")
        report.add("problem", str(exc))
        return
    for name, profile in sorted(profiles.items()):
        for key in profile.missing:
            report.add(f"profile {name}", f"set {key}=<step-distilled LoRA>.safetensors "
                                          f"(LightX2V / Lightning) to use it")
        for lora in profile.loras:
            if not Path(lora.path).is_file():
                report.worse("problem")
                report.add(f"profile {name}", f"LoRA {lora.path} not found")


def _check_calibration(report: Report, engine: Any, model: str) -> None:
    """Which step counts MagCache (step_cache=mag) is calibrated for."""
    from engine.diffusers.options import EngineConfigError
    from engine.diffusers.step_cache import read_calibration

    path = engine.calibration_path()
    if not path.is_file():
        report.add("magcache", f"not calibrated (for step_cache=mag: python -m flows.calibrate "
                               f"engine={engine.spec.name} engine.model={_quote(model)} "
                               f"steps=N)")
        return
    try:
        steps = sorted(read_calibration(path), key=int)
    except EngineConfigError as exc:
        report.add("magcache", str(exc))
        return
    report.add("magcache", f"calibrated for {', '.join(steps)} steps ({path})")


def _construct(report: Report, name: str, config: dict[str, Any], model: str) -> Any:
    """Build the engine as a render would (headers and configs only): its verdict on the
    layout and the files. Returns the engine, or None when it cannot be built."""
    from engine.diffusers.options import EngineConfigError
    from engine.registry import get_engine
    from flows.config.engines import engine_options

    options = engine_options({**config, "model": model})
    try:
        return get_engine(name, **options)
    except (EngineConfigError, ValueError, TypeError) as exc:
        report.worse("problem")
        report.add("problem", str(exc))
        return None
