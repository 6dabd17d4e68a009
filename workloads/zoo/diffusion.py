"""Stable Diffusion 1.5 denoiser and decoder (diffusers layout and weight names): the UNet
(UNet2DConditionModel, 859.52M) and the VAE decoder (AutoencoderKL post_quant_conv + decoder).

One UNet call is one denoising step at batch 1 (no classifier-free guidance doubling) on a
64x64x4 latent (512x512 image) conditioned on 77 CLIP tokens.
"""

from __future__ import annotations

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention


def view(x: Act, *shape: int) -> Act:
    """The same activation seen with another shape (a reshape costs no op)."""
    return Act(x.src, tuple(shape))


def resnet_block(b: GraphBuilder, x: Act, p: str, cout: int, temb: Act | None) -> Act:
    """diffusers ResnetBlock2D: GN+SiLU, conv3x3, (+ time embedding), GN+SiLU, conv3x3, skip."""
    cin, h, w = x.shape
    y = b.norm(x, f"{p}.norm1", "groupnorm", channel_axis=0, act="silu", groups=32)
    y = b.conv2d(y, f"{p}.conv1", cout, 3)
    if temb is not None:
        t = b.linear(temb, f"{p}.time_emb_proj", cout)
        y = b.add(f"{p}.temb_add", y, t)
    y = b.norm(y, f"{p}.norm2", "groupnorm", channel_axis=0, act="silu", groups=32)
    y = b.conv2d(y, f"{p}.conv2", cout, 3)
    if cin != cout:
        x = b.conv2d(x, f"{p}.conv_shortcut", cout, 1)
    return b.add(f"{p}.add", x, y)


def transformer_2d(b: GraphBuilder, x: Act, p: str, context: Act) -> Act:
    """diffusers Transformer2DModel (SD1.5): GN, 1x1 proj_in, self-attn, cross-attn, GEGLU FF,
    1x1 proj_out, residual."""
    c, h, w = x.shape
    spec = AttnSpec(8, c // 8, names=("to_q", "to_k", "to_v", "to_out.0"),
                    bias=(False, False, False, True))
    y = b.norm(x, f"{p}.norm", "groupnorm", channel_axis=0, groups=32)
    y = b.conv2d(y, f"{p}.proj_in", c, 1)
    t = view(y, h * w, c)
    q = f"{p}.transformer_blocks.0"
    z = attention(b, b.norm(t, f"{q}.norm1"), f"{q}.attn1", spec)
    t = b.add(f"{q}.attn1_add", t, z)
    z = attention(b, b.norm(t, f"{q}.norm2"), f"{q}.attn2", spec, kv_src=context)
    t = b.add(f"{q}.attn2_add", t, z)
    z = b.linear(b.norm(t, f"{q}.norm3"), f"{q}.ff.net.0.proj", 8 * c)
    z = b.elementwise(f"{q}.ff.geglu", "geglu", [z], (h * w, 4 * c))
    z = b.linear(z, f"{q}.ff.net.2", c)
    t = b.add(f"{q}.ff_add", t, z)
    y = b.conv2d(view(t, c, h, w), f"{p}.proj_out", c, 1)
    return b.add(f"{p}.add", x, y)


def sd15_unet(dtype: str = "fp16", latent: int = 64, text_tokens: int = 77) -> Model:
    """SD1.5 UNet2DConditionModel: 859,520,964 params (diffusers runwayml/stable-diffusion-v1-5)."""
    b = GraphBuilder("sd15-unet", dtype)
    chans = (320, 640, 1280, 1280)
    context = Act(None, (text_tokens, 768))
    temb = b.linear(Act(None, (1, 320)), "time_embedding.linear_1", 1280, act="silu")
    temb = b.linear(temb, "time_embedding.linear_2", 1280, act="silu")
    x = b.conv2d(Act(None, (4, latent, latent)), "conv_in", 320, 3)
    skips = [x]
    for i, c in enumerate(chans):
        p = f"down_blocks.{i}"
        for j in range(2):
            x = resnet_block(b, x, f"{p}.resnets.{j}", c, temb)
            if i < 3:
                x = transformer_2d(b, x, f"{p}.attentions.{j}", context)
            skips.append(x)
        if i < 3:
            x = b.conv2d(x, f"{p}.downsamplers.0.conv", c, 3, 2)
            skips.append(x)
    x = resnet_block(b, x, "mid_block.resnets.0", 1280, temb)
    x = transformer_2d(b, x, "mid_block.attentions.0", context)
    x = resnet_block(b, x, "mid_block.resnets.1", 1280, temb)
    for i, c in enumerate(reversed(chans)):
        p = f"up_blocks.{i}"
        for j in range(3):
            x = b.concat(f"{p}.resnets.{j}.cat", [x, skips.pop()])
            x = resnet_block(b, x, f"{p}.resnets.{j}", c, temb)
            if i > 0:
                x = transformer_2d(b, x, f"{p}.attentions.{j}", context)
        if i < 3:
            ch, h, w = x.shape
            x = b.elementwise(f"{p}.upsample", "upsample", [x], (ch, 2 * h, 2 * w))
            x = b.conv2d(x, f"{p}.upsamplers.0.conv", c, 3)
    x = b.norm(x, "conv_norm_out", "groupnorm", channel_axis=0, act="silu", groups=32)
    b.conv2d(x, "conv_out", 4, 3)
    return b.build(family="diffusion", published_params=859_520_964,
                   source="Rombach et al. 2022, arXiv:2112.10752; diffusers SD1.5 unet "
                          "(859,520,964 params)",
                   description=f"SD1.5 UNet, one denoising step on a {latent}x{latent}x4 latent")


def sd15_vae_decoder(dtype: str = "fp16", latent: int = 64) -> Model:
    """SD1.5 VAE decoder incl. post_quant_conv: ~49.49M params (diffusers AutoencoderKL)."""
    b = GraphBuilder("sd15-vae-decoder", dtype)
    x = b.conv2d(Act(None, (4, latent, latent)), "post_quant_conv", 4, 1)
    x = b.conv2d(x, "decoder.conv_in", 512, 3)
    x = resnet_block(b, x, "decoder.mid_block.resnets.0", 512, None)
    # single-head attention over the latent grid
    c, h, w = x.shape
    p = "decoder.mid_block.attentions.0"
    y = b.norm(x, f"{p}.group_norm", "groupnorm", channel_axis=0, groups=32)
    spec = AttnSpec(1, c, names=("to_q", "to_k", "to_v", "to_out.0"))
    y = attention(b, view(y, h * w, c), p, spec)
    x = b.add(f"{p}.add", x, view(y, c, h, w))
    x = resnet_block(b, x, "decoder.mid_block.resnets.1", 512, None)
    for i, ch in enumerate((512, 512, 256, 128)):
        for j in range(3):
            x = resnet_block(b, x, f"decoder.up_blocks.{i}.resnets.{j}", ch, None)
        if i < 3:
            c, h, w = x.shape
            x = b.elementwise(f"decoder.up_blocks.{i}.upsample", "upsample", [x], (c, 2 * h, 2 * w))
            x = b.conv2d(x, f"decoder.up_blocks.{i}.upsamplers.0.conv", ch, 3)
    x = b.norm(x, "decoder.conv_norm_out", "groupnorm", channel_axis=0, act="silu", groups=32)
    b.conv2d(x, "decoder.conv_out", 3, 3)
    return b.build(family="diffusion", published_params=49_490_199,
                   source="Rombach et al. 2022, arXiv:2112.10752; diffusers SD1.5 VAE decode "
                          "path (~49.49M: vae.decoder 49,490,179 + post_quant_conv 20)",
                   description=f"SD1.5 VAE decoder, {latent}x{latent}x4 latent -> "
                               f"{8 * latent}x{8 * latent} image")
