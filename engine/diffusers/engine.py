"""The diffusers engine family: one loading path, the model pool, one generation loop.

Every diffusers engine (Wan, HunyuanVideo, LTX, CogVideoX, SVD) is a small subclass that says
which pipeline layouts it accepts and how a `GenerationRequest` becomes pipeline arguments. What
they share lives here:

1. Loading: `from_pretrained` offline from `engine.model` (models.source), with the dtype and
   device from the options, then the speed and memory options (accel) applied once.
2. Residency: pipelines live in the process-wide model pool (model_pool), so a render, a series
   or watch mode loads each model once; a load happens in `load()`, outside the
   per-segment retries, and at most once per process even when it fails.
3. Per request (per_call): LoRAs attached once per file and weighted per expert, scheduler
   shift and expert boundary overridden for the call only, text embeddings memoised per distinct
   prompt, a seeded CPU generator (same seed, same noise on any device), step progress reported.
4. Output: uint8 (T, H, W, 3) of exactly the requested size, and on request (keep_latents) the
   final denoised latents' last frames, taken from the step callback, for the next segment of a
   latent- or svi-chained shot.
5. Stills: engine.diffusers.stills (SDXL, FLUX, SD3.5) use the same loading, pool and LoRAs;
   `prepare_pipeline` is where a family adds to a freshly loaded pipeline (an IP-Adapter)
   before the speed and memory options apply.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from typing import Any, ClassVar

import numpy as np

from ..base import (
    Engine,
    EngineError,
    EngineLoadError,
    EngineSpec,
    GenerationRequest,
    ProgressFn,
)
from ..camera_prompt import with_camera
from ..images import fit_frames
from . import attention, step_cache
from .parallel import session as parallel
from .accel import (
    LoadReport,
    apply_load_options,
    degrade_steps,
    fit_offload,
    resolve_device,
    resolve_dtype,
    vram_budget,
)
from .model_pool import POOL, ModelPool, PoolEntry
from .models.files import inspect_files
from .models.loading import load_components
from .models.source import ModelNotFound, ModelSource, dtype_keyword, resolve_model
from .options import DiffusersOptions, EngineConfigError
from .request_checks import RequestChecks
from .per_call import PerCallState
from .latent_preview import LivePreview
from .pipeline_io import quiet_loading, to_uint8

# Storyboard keys every diffusers engine honours; families add theirs (EngineSpec.honours).
COMMON_KEYS = frozenset({"steps", "seed", "negative", "loras"})

# Defaults for generation keys a storyboard (or the engine config's params) may set.
BASE_DEFAULTS: dict[str, Any] = {"steps": 30, "cfg": 5.0}


class DiffusersEngine(RequestChecks, PerCallState, Engine):
    """Base of every diffusers engine; subclasses set the class attributes and `call_kwargs`."""

    spec: ClassVar[EngineSpec]
    # model_index.json `_class_name`s this engine loads (the first is what docs recommend).
    layouts: ClassVar[tuple[str, ...]]
    # mode -> pipeline class used for it, built from the loaded one with `from_pipe` (shares
    # the weights) when it differs; modes not listed use the loaded pipeline.
    mode_pipelines: ClassVar[dict[str, str]] = {}
    # Components that must be present (e.g. transformer_2 for two-expert engines).
    required_components: ClassVar[tuple[str, ...]] = ()
    # Generation defaults; the engine config's params and the storyboard override them.
    defaults: ClassVar[dict[str, Any]] = BASE_DEFAULTS
    # Components kept in fp32 whatever the dtype (Wan's VAE and image encoder).
    fp32_components: ClassVar[tuple[str, ...]] = ()
    # Family-specific engine.options keys.
    extra_options: ClassVar[tuple[str, ...]] = ()
    # Axis of the latent frames in the latents the pipeline's step callback sees (Wan:
    # (B, C, L, h, w) -> 2). None: the engine hands no latents to a next segment (packed
    # token latents, per-window loops), so generate_with_latents returns None for them.
    latent_frame_axis: ClassVar[int | None] = None

    def __init__(self, pool: ModelPool | None = None, **options: Any) -> None:
        self.options = DiffusersOptions.from_mapping(self.spec.name, options, self.extra_options)
        try:
            self.source: ModelSource = resolve_model(self.options.model, self.spec.name)
        except ModelNotFound as exc:
            raise EngineConfigError(str(exc)) from None
        self._check_layout()
        self.model_files = inspect_files(self.options.files, self.source, self.spec.name)
        self.pool = pool or POOL
        self.device = parallel.rank_device(resolve_device(self.options.device),
                                           self.options.parallel)
        self.dtype_name = resolve_dtype(self.options.dtype, self.device)
        # What a load holds, for the pool's budget (single files may replace most weights).
        self._estimate = (sum(self.component_bytes().values()) if self.model_files
                          else self.source.weight_bytes)
        self.offload_reason = ""
        if self.options.offload == "auto":
            self._fit_offload()
        self._ladder = degrade_steps(self.options, self.device)
        self._mag_tables = self._magcache_tables()
        self.load_report: LoadReport | None = None
        self._calibrated: list[list[float]] = []  # calibrate_magcache's latest ratios
        self.degraded: list[str] = []
        self._load_error: BaseException | None = None
        self._load_lock = threading.Lock()

    # -- what the engine is ----------------------------------------------------------------

    def component_bytes(self) -> dict[str, int]:
        """Approximate bytes of weights per component once loaded: the folder's files, and for
        single files their loaded size (fp8 files are cast up to the compute dtype)."""
        sizes = {}
        for component in self.source.components:
            folder = self.source.path / component
            sizes[component] = sum(
                f.stat().st_size for f in folder.rglob("*")
                if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".gguf")
            ) if folder.is_dir() else 0
        width = {"fp32": 4}.get(self.dtype_name, 2)
        sizes.update({c: f.loaded_bytes(width) for c, f in self.model_files.items()})
        return sizes

    def _fit_offload(self) -> None:
        """offload=auto: the fastest offload that fits the VRAM budget (accel.fit_offload);
        the options then say what was chosen, so keys, the pool and the ladder see it."""
        import dataclasses
        import logging

        budget = vram_budget(self.options, self.device)
        if budget is None:
            mode, why = "none", "on the CPU"
        else:
            denoisers = tuple(n for n in ("transformer", "transformer_2", "unet")
                              if n in self.source.components)
            mode, why = fit_offload(self.component_bytes(), denoisers, self.options.quantize,
                                    budget)
        self.offload_reason = f"offload=auto chose {mode}: {why}"
        logging.getLogger(__name__).info("%s: %s", self.spec.name, self.offload_reason)
        self.options = dataclasses.replace(self.options, offload=mode)

    def _check_layout(self) -> None:
        found = self.source.pipeline_class
        if found not in self.layouts:
            raise EngineConfigError(
                f"engine.model={self.options.model!r} holds a {found or 'unknown'} pipeline, "
                f"but engine {self.spec.name!r} loads {' or '.join(self.layouts)}; pick the "
                f"engine config that matches these weights")
        missing = [c for c in self.required_components if c not in self.source.components]
        if missing:
            raise EngineConfigError(
                f"engine.model={self.options.model!r} has no {', '.join(missing)} component; "
                f"engine {self.spec.name!r} needs it (a two-expert Wan 2.2 A14B checkpoint)")

    def identity(self) -> dict[str, Any]:
        opts = self.options
        return {
            "engine": self.spec.name,
            "model": self.source.name,
            "revision": opts.revision or self.source.revision,
            "dtype": self.dtype_name,
            "device": self.device.split(":")[0],
            # Options that change pixels; speed-only ones (offload, compile, exact attention
            # kernels) do not. Keys added later appear only when set, so older caches still hit.
            "step_cache": None if opts.step_cache == "none" else
                          [opts.step_cache, opts.step_cache_threshold],
            "vae_tiling": opts.vae_tiling,
            "camera_prompt": opts.camera_prompt,
            **({"step_cache_ratios": _digest(self._mag_tables)} if self._mag_tables else {}),
            **({"attention": attention.key_value(opts.attention_backend)}
               if attention.changes_pixels(opts.attention_backend) else {}),
            **({"quantize": opts.quantize} if opts.quantize != "none" else {}),
            # Single files replacing components: name, size and a fingerprint of each.
            **({"files": {c: f.identity for c, f in sorted(self.model_files.items())}}
               if self.model_files else {}),
        }

    def runtime(self) -> dict[str, Any]:
        """How the loaded pipeline runs (attention kernel chosen by auto, compile, quantize),
        for the manifest; empty before the first load."""
        return self.load_report.as_dict() if self.load_report is not None else {}

    @property
    def pool_key(self) -> tuple:
        opts = self.options
        return (type(self).__name__, str(self.source.path), self.dtype_name, self.device,
                opts.offload, opts.vae_tiling, opts.attention_backend, opts.quantize,
                opts.step_cache, opts.step_cache_threshold, opts.compile, opts.parallel,
                tuple((c, str(f.path), f.digest) for c, f in sorted(self.model_files.items())))

    # -- loading -----------------------------------------------------------------------------

    def _load_pipeline(self):
        import torch
        import diffusers

        cls = getattr(diffusers, self.source.pipeline_class)
        parallel.before_load(self, self.options.parallel)  # the other ranks load it too
        dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16",
                                "fp32": "float32"}[self.dtype_name])
        torch_dtype: Any = dtype
        if self.fp32_components and dtype != torch.float32:
            torch_dtype = {"default": dtype, **{c: torch.float32 for c in self.fp32_components
                                                if c in self.source.components}}
        with quiet_loading():
            # Components from single files (engine.diffusers.models.files) override the folder's.
            overrides = load_components(
                self.model_files, self.source.path,
                {c: torch.float32 if c in self.fp32_components else dtype
                 for c in self.model_files}) if self.model_files else {}
            pipe = cls.from_pretrained(str(self.source.path), local_files_only=True,
                                       **{dtype_keyword(): torch_dtype}, **overrides)
            self.prepare_pipeline(pipe)
        report = apply_load_options(pipe, self.options, self.device)
        if self.offload_reason:
            report.notes.append(self.offload_reason)
        pipe._reelforge_load_report = report
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def prepare_pipeline(self, pipe) -> None:
        """Add to a freshly loaded pipeline (still on the CPU, before offload and compile);
        e.g. an IP-Adapter. Default: nothing."""

    def _acquire(self) -> PoolEntry:
        if self._load_error is not None:
            raise EngineLoadError(f"engine {self.spec.name!r} failed to load earlier in this "
                                  f"process: {self._load_error}")
        budget = None
        if self.options.pool_budget_gb is not None:
            budget = int(self.options.pool_budget_gb * 2**30)
        try:
            entry = self.pool.acquire(self.pool_key, self._load_pipeline,
                                      estimate=self._estimate, budget=budget)
            self.load_report = getattr(entry.value, "_reelforge_load_report", None)
            return entry
        except EngineLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
            with self._load_lock:
                self._load_error = exc
            raise EngineLoadError(
                f"engine {self.spec.name!r} could not load {self.source.name!r}: "
                f"{type(exc).__name__}: {exc}") from exc

    def load(self) -> None:
        self.pool.release(self._acquire())

    def close(self) -> None:
        self.pool.unload(self.pool_key)

    def degrade(self) -> str | None:
        """Apply the next memory-saving step to the resident pipeline (see accel.degrade_steps)."""
        if not self._ladder:
            return None
        step = self._ladder.pop(0)
        entry = self._acquire()
        try:
            with entry.lock:
                step.apply(entry.value, self.device)
                entry.variants.clear()  # rebuilt from the degraded pipeline
                entry.degraded.append(step.name)
        finally:
            self.pool.release(entry)
        self.degraded.append(step.name)
        return step.describe

    # -- one request -------------------------------------------------------------------------

    def param(self, request: GenerationRequest, name: str) -> Any:
        value = request.params.get(name)
        return self.defaults.get(name) if value is None else value

    def prompt_text(self, request: GenerationRequest) -> str:
        if self.options.camera_prompt and self.spec.camera in ("prompt", "guide"):
            return with_camera(request.prompt, request.camera)
        return request.prompt

    def encoded_prompt(self, pipe, entry: PoolEntry, request: GenerationRequest,
                       default_length: int) -> tuple[tuple, int]:
        """`pipe.encode_prompt` of the prompt (with camera words) and negative prompt, memoised
        per distinct text on the resident pipeline; returns (its result, max_sequence_length)."""
        prompt = self.prompt_text(request)
        length = self.options.max_sequence_length or default_length

        def encode():
            return pipe.encode_prompt(prompt=prompt, negative_prompt=request.negative or "",
                                      do_classifier_free_guidance=True,
                                      max_sequence_length=length,
                                      device=pipe._execution_device)

        return entry.embedding(("text", prompt, request.negative, length), encode), length

    def pipeline_for(self, entry: PoolEntry, mode: str):
        wanted = self.mode_pipelines.get(mode)
        pipe = entry.value
        if wanted is None or type(pipe).__name__ == wanted:
            return pipe
        if wanted not in entry.variants:
            import diffusers

            entry.variants[wanted] = getattr(diffusers, wanted).from_pipe(pipe)
            entry.variants[wanted].set_progress_bar_config(disable=True)
        return entry.variants[wanted]

    @abc.abstractmethod
    def call_kwargs(self, pipe, entry: PoolEntry, request: GenerationRequest) -> dict[str, Any]:
        """Pipeline arguments for `request` besides generator, steps, output and callbacks."""

    def frames_of(self, output: Any) -> Any:
        return output.frames[0]

    def call_context(self, pipe, entry: PoolEntry,
                     request: GenerationRequest) -> contextlib.AbstractContextManager:
        """State the pipeline needs for this call only (Wan I2V: its own conditioning latents);
        entered with the pipeline's lock held, left before the next call. Default: none."""
        return contextlib.nullcontext()

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> np.ndarray:
        return self.generate_with_latents(request, progress)[0]

    def generate_with_latents(
        self, request: GenerationRequest, progress: ProgressFn | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self.check_request(request)
        # engine.options.parallel: on rank 0, every other rank makes this same call.
        with parallel.leading_call(self, request):
            return self._generate(request, progress)

    def _generate(self, request: GenerationRequest,
                  progress: ProgressFn | None) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        keep = max(0, int(request.keep_latents))
        captured: list = []
        entry = self._acquire()
        try:
            with entry.lock:  # a pipeline serves one call at a time
                pipe = self.pipeline_for(entry, request.mode)
                steps = int(self.param(request, "steps"))
                calibrating = self.options.step_cache == "mag_calibrate"
                capture = keep > 0 and self.latent_frame_axis is not None and \
                    "latents" in getattr(pipe, "_callback_tensor_inputs", ())
                with self._per_call_state(pipe, entry, request), \
                        self.call_context(pipe, entry, request):
                    kwargs = self.call_kwargs(pipe, entry, request)
                    live = LivePreview(progress, pipe, request)  # progress.preview, if any

                    def on_step(_pipe, i, _t, tensors):
                        if capture:
                            # Each step's tail replaces the last, so the final step's (what
                            # the VAE decodes) remains; a copy, as the pipeline may reuse the
                            # tensor. Returning no "latents" leaves the denoising untouched.
                            captured[:] = [self.latent_tail(tensors["latents"], keep)]
                        if calibrating:
                            # Read every step: the pipeline resets the hooks' state (and the
                            # ratios with it) when the call ends.
                            self._calibrated = step_cache.calibrated_ratios(_pipe)
                        live.step(i, steps, tensors)
                        if progress is not None:
                            progress(i + 1, steps)
                        return {}

                    generator = torch.Generator("cpu").manual_seed(int(request.seed))
                    extra = {"callback_on_step_end_tensor_inputs": ["latents"]} \
                        if capture or live.wants_latents else {}
                    with torch.inference_mode():
                        output = pipe(**kwargs, num_inference_steps=steps, generator=generator,
                                      output_type="np", callback_on_step_end=on_step, **extra)
                frames = to_uint8(self.frames_of(output))
        finally:
            self.pool.release(entry)
        frames = fit_frames(frames, request.width, request.height)
        if frames.shape[0] != request.num_frames:
            raise EngineError(f"{type(pipe).__name__} returned {frames.shape[0]} frames for "
                              f"segment {request.shot_id}_{request.segment_index}, asked for "
                              f"{request.num_frames}")
        latents = captured[0].float().cpu().numpy() if captured else None
        return frames, latents

    def latent_tail(self, latents, keep: int):
        """The last `keep` latent frames of the first batch item, batch dimension dropped."""
        axis = int(self.latent_frame_axis or 0)
        tail = latents.narrow(axis, max(0, latents.shape[axis] - keep),
                              min(keep, latents.shape[axis]))
        return tail[0].detach().clone()

def _digest(value: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
