"""Tiny random-weight text-to-image pipelines (SDXL, FLUX, SD3.5) and tiny SDXL and FLUX
IP-Adapters,
built offline and saved with save_pretrained, for the image engines' tests.

The architectures are the real ones (UNet2DConditionModel with SDXL's text_time embedding, two
CLIP text encoders, the FLUX and SD3 transformers, T5, AutoencoderKL, a CLIP vision encoder) at
toy sizes, as diffusers' own tests build them; the tokenizer is the word-level one of
tiny_pipelines. A 32x32 still takes well under a second on one thread.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .tiny_pipelines import tiny_tokenizer

CLIP_LENGTH = 16  # tokens the tiny CLIP encoders read (SD uses 77)


def clip_tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = CLIP_LENGTH
    return tokenizer


def _clip_config(hidden: int = 32, projection: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=hidden,
                          intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
                          num_hidden_layers=2, pad_token_id=1, vocab_size=64, hidden_act="gelu",
                          projection_dim=projection, max_position_embeddings=CLIP_LENGTH)


def _clip(seed: int, projection: bool):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(_clip_config())


def _t5(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    return T5EncoderModel(T5Config(vocab_size=64, d_model=d_model, d_ff=37, d_kv=8,
                                   num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                                   dropout_rate=0.0))


def _small_vae(latent_channels: int):
    """One-level AutoencoderKL (no spatial scaling), as diffusers' FLUX / SD3 tests use."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=1,
                         use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                         scaling_factor=1.5035)


def save_sdxl(path: Path) -> Path:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    # addition_embed_type text_time: 6 size/crop ids x 8 + the pooled projection (32) = 80;
    # cross attention over both encoders' hidden states (32 + 32).
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1)
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
                        norm_num_groups=2, sample_size=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=_clip(0, projection=False), tokenizer=clip_tokenizer(),
        text_encoder_2=_clip(1, projection=True), tokenizer_2=clip_tokenizer(), unet=unet,
        scheduler=scheduler, image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(path)
    return path


def save_flux(path: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=_small_vae(1),
                        text_encoder=_clip(0, projection=False), tokenizer=clip_tokenizer(),
                        text_encoder_2=_t5(), tokenizer_2=tiny_tokenizer(),
                        transformer=transformer)
    pipe.save_pretrained(path)
    return path


def save_sd35(path: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from diffusers import StableDiffusion3Pipeline

    torch.manual_seed(0)
    # pooled projection: both CLIP projections (32 + 32); joint attention: T5's width, to which
    # the pipeline pads the CLIP hidden states.
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
        pooled_projection_dim=64, out_channels=4)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=_small_vae(4),
        text_encoder=_clip(0, projection=True), tokenizer=clip_tokenizer(),
        text_encoder_2=_clip(1, projection=True), tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5(), tokenizer_3=tiny_tokenizer(), transformer=transformer,
        image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(path)
    return path


def save_sdxl_ip_adapter(path: Path, pipe_dir: Path, seed: int = 5) -> Path:
    """A random IP-Adapter for the tiny SDXL UNet in h94/IP-Adapter's file layout: one
    safetensors with `image_proj.*` (proj: 4 image tokens of the UNet's cross-attention width
    from the encoder's image embedding; norm) and `ip_adapter.{k}.to_{k,v}_ip.weight` for the
    k-th attention processor (cross-attention ones, odd k, the order diffusers' loader reads),
    and an image_encoder/ folder beside it (a tiny CLIPVisionModelWithProjection). Returns the
    weight file."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    encoder = _tiny_image_encoder(path / "image_encoder", seed)
    unet = UNet2DConditionModel.from_pretrained(pipe_dir / "unet")
    cross = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.5

    clip_dim = encoder.config.projection_dim
    state = {"image_proj.proj.weight": rand(cross * 4, clip_dim),
             "image_proj.proj.bias": rand(cross * 4),
             "image_proj.norm.weight": torch.ones(cross),
             "image_proj.norm.bias": torch.zeros(cross)}
    key_id = 1
    channels = unet.config.block_out_channels
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, cross)
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, cross)
        key_id += 2
    weights = path / "ip-adapter_tiny.safetensors"
    save_file(state, str(weights))
    return weights


def _tiny_image_encoder(folder: Path, seed: int):
    """A tiny CLIPVisionModelWithProjection (32x32 input, 16-wide image embedding) saved there."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=16, num_hidden_layers=1, num_attention_heads=4,
        image_size=32, intermediate_size=37, patch_size=8))
    encoder.save_pretrained(folder)
    return encoder


def save_flux_ip_adapter(path: Path, pipe_dir: Path, seed: int = 5) -> Path:
    """A random IP-Adapter for the tiny FLUX transformer in XLabs-AI/flux-ip-adapter's layout
    (what FluxIPAdapterMixin.load_ip_adapter reads): `ip_adapter_proj_model.{proj,norm}.*` (4
    image tokens of the transformer's joint-attention width from the encoder's image embedding)
    and `double_blocks.{i}.processor.ip_adapter_double_stream_{k,v}_proj.{weight,bias}` for each
    double-stream block; an image_encoder/ folder beside it. Returns the weight file."""
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    encoder = _tiny_image_encoder(path / "image_encoder", seed)
    transformer = FluxTransformer2DModel.from_pretrained(pipe_dir / "transformer")
    cross, hidden = transformer.config.joint_attention_dim, transformer.inner_dim
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.5

    clip_dim = encoder.config.projection_dim
    state = {"ip_adapter_proj_model.proj.weight": rand(cross * 4, clip_dim),
             "ip_adapter_proj_model.proj.bias": rand(cross * 4),
             "ip_adapter_proj_model.norm.weight": torch.ones(cross),
             "ip_adapter_proj_model.norm.bias": torch.zeros(cross)}
    for block in range(transformer.config.num_layers):
        for kv in "kv":
            prefix = f"double_blocks.{block}.processor.ip_adapter_double_stream_{kv}_proj"
            state[f"{prefix}.weight"] = rand(hidden, cross)
            state[f"{prefix}.bias"] = rand(hidden)
    weights = path / "ip_adapter.safetensors"
    save_file(state, str(weights))
    return weights


def image_request(**kw):
    """A 2-step 32x32 still for these pipelines; keywords override any field."""
    from engine.base import ImageRequest

    base = dict(prompt="a lighthouse keeper", width=32, height=32, seed=3, params={"steps": 2},
                label="s01 keyframe")
    base.update(kw)
    return ImageRequest(**base)
