"""Tiny random-weight diffusers pipelines, built offline and saved with save_pretrained.

They have the real architectures (Wan transformer and VAE, T5 text encoder, CLIP vision
encoder, ...) at toy sizes, so the engines' normal loading code reads them exactly as it would
read downloaded weights; a generation at 64x64 takes well under a second on one thread. Nothing
is downloaded: the tokenizer is a word-level one built here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WORDS = ("a the lighthouse sea cliff keeper lamp storm boat night dawn walks runs camera pans "
         "left right zoom in out slowly quickly slow fast shot first second chained part "
         "independent blurry low quality").split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=64)


def tiny_t5(d_model: int = 32):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    config = UMT5Config(vocab_size=64, d_model=d_model, d_ff=37, d_kv=8, num_layers=2,
                        num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0)
    return UMT5EncoderModel(config)


def tiny_wan_vae(z_dim: int = 16):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=3, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def tiny_wan_transformer(in_channels: int = 16, seed: int = 0, image_dim: int | None = None,
                         vace: bool = False, head_dim: int = 12):
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    torch.manual_seed(seed)
    common = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=head_dim,
                  in_channels=in_channels, out_channels=16, text_dim=32, freq_dim=256,
                  ffn_dim=32, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                  rope_max_seq_len=32)
    if vace:
        return WanVACETransformer3DModel(**common, num_layers=3, vace_layers=[0, 2],
                                         vace_in_channels=96)
    return WanTransformer3DModel(**common, num_layers=2, image_dim=image_dim)


def _unipc():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   flow_shift=3.0)


def save_wan_t2v(path: Path, head_dim: int = 12) -> Path:
    """head_dim=16 gives 32-wide layers, which GGUF's Q8_0 blocks (32 values) can quantize."""
    from diffusers import WanPipeline

    pipe = WanPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=tiny_wan_vae(),
                       scheduler=_unipc(), transformer=tiny_wan_transformer(head_dim=head_dim))
    pipe.save_pretrained(path)
    return path


def save_wan22_i2v(path: Path, boundary_ratio: float = 0.875) -> Path:
    """Two experts (different seeds, so their outputs differ), no CLIP encoder, as Wan 2.2."""
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=tiny_wan_vae(),
        scheduler=_unipc(), transformer=tiny_wan_transformer(36, seed=0),
        transformer_2=tiny_wan_transformer(36, seed=1), image_encoder=None,
        image_processor=None, boundary_ratio=boundary_ratio)
    pipe.save_pretrained(path)
    return path


def save_wan_vace(path: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline

    pipe = WanVACEPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(),
                           vae=tiny_wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                           transformer=tiny_wan_transformer(vace=True))
    pipe.save_pretrained(path)
    return path


def save_wan_lora(path: Path, pipe_dir: Path, rank: int = 2, seed: int = 3) -> Path:
    """A LoRA for the tiny Wan transformer, in the diffusers LoRA file format."""
    from diffusers import WanPipeline, WanTransformer3DModel
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = WanTransformer3DModel.from_pretrained(pipe_dir / "transformer")
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, 0.5)
    state = get_peft_model_state_dict(transformer)
    path.mkdir(parents=True, exist_ok=True)
    WanPipeline.save_lora_weights(path, transformer_lora_layers=state)
    return path / "pytorch_lora_weights.safetensors"


def save_cogvideox(path: Path) -> Path:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4,
        time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=8, sample_height=8,
        sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226)
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
        norm_num_groups=2, temporal_compression_ratio=4)
    pipe = CogVideoXPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=vae,
                             transformer=transformer, scheduler=CogVideoXDDIMScheduler())
    pipe.save_pretrained(path)
    return path


def save_wan_v2v(path: Path) -> Path:
    from diffusers import WanVideoToVideoPipeline

    pipe = WanVideoToVideoPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(),
                                   vae=tiny_wan_vae(), scheduler=_unipc(),
                                   transformer=tiny_wan_transformer())
    pipe.save_pretrained(path)
    return path


def save_ltx(path: Path) -> Path:
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline
    from diffusers import LTXVideoTransformer3DModel

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1,
                                        patch_size_t=1, num_attention_heads=4,
                                        attention_head_dim=8, cross_attention_dim=32,
                                        num_layers=1, caption_channels=32)
    torch.manual_seed(0)
    # Encoder and decoder scale by the same factors (x4 in space and time), as the pipeline
    # assumes; the decoder defaults would scale one step more.
    vae = AutoencoderKLLTXVideo(latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8),
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False),
                                layers_per_block=(1, 1, 1, 1, 1),
                                decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=1,
                                patch_size_t=1, encoder_causal=True, decoder_causal=False)
    pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                       text_encoder=tiny_t5(), tokenizer=tiny_tokenizer(),
                       transformer=transformer)
    pipe.save_pretrained(path)
    return path


def save_svd(path: Path) -> Path:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from diffusers import StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=8,
        out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal",
                                          "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
        sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
        timestep_type="continuous", use_karras_sigmas=True)
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3,
                                       out_channels=3, latent_channels=4,
                                       down_block_types=["DownEncoderBlock2D"] * 2)
    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, intermediate_size=37, patch_size=32))  # SVD resizes to 224
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=scheduler,
                                        feature_extractor=CLIPImageProcessor(crop_size=32, size=32))
    pipe.save_pretrained(path)
    return path


def save_wan21_i2v(path: Path) -> Path:
    """Wan 2.1 I2V: one transformer that takes CLIP image embeddings (image_dim), as 2.1 does."""
    from diffusers import WanImageToVideoPipeline

    encoder, processor = tiny_clip_vision()
    pipe = WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(), vae=tiny_wan_vae(),
        scheduler=_unipc(), transformer=tiny_wan_transformer(36, seed=0, image_dim=16),
        image_encoder=encoder, image_processor=processor)
    pipe.save_pretrained(path)
    return path


def tiny_clip_vision(image_size: int = 32):
    """A CLIP vision encoder and its processor at toy size (Wan 2.1 I2V, Wan Animate)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2,
        image_size=image_size, intermediate_size=24, patch_size=8))
    return encoder, CLIPImageProcessor(crop_size=image_size, size=image_size)


def save_wan_animate(path: Path, face_size: int = 16) -> Path:
    """Wan 2.2 Animate: the Animate transformer (motion encoder for face crops of `face_size`,
    face adapter, CLIP image embeddings of the reference) at toy size, with the Wan VAE, UMT5
    and CLIP parts as Wan 2.1 I2V has them."""
    from diffusers import WanAnimatePipeline, WanAnimateTransformer3DModel

    torch.manual_seed(0)
    transformer = WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
        latent_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", image_dim=16,
        rope_max_seq_len=32, motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16},
        motion_encoder_size=face_size, motion_style_dim=8, motion_dim=4,
        motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
        inject_face_latents_blocks=2, motion_encoder_batch_size=4)
    encoder, processor = tiny_clip_vision()
    pipe = WanAnimatePipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_t5(),
                              vae=tiny_wan_vae(), scheduler=_unipc(), image_processor=processor,
                              image_encoder=encoder, transformer=transformer)
    pipe.save_pretrained(path)
    return path


def tiny_request(**kw):
    """A 2-step, 9-frame, 64x64 request for these pipelines; keywords override any field."""
    from engine.base import GenerationRequest

    base = dict(prompt="a lighthouse", width=64, height=64, num_frames=9, fps=16, seed=3,
                params={"steps": 2})
    base.update(kw)
    return GenerationRequest(**base)


def random_image(seed: int) -> np.ndarray:
    """A 64x64 RGB noise picture (a start or end image for the tiny pipelines)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
