"""Vision transformers: ViT-B/16 and Swin-T (torchvision), ViT-B/32 at 384x384 (the
google/vit-base-patch32-384 checkpoint, torchvision module names) and the SAM ViT-B image encoder
(segment-anything: windowed + global attention with decomposed relative positions, conv neck).
"""

from __future__ import annotations

import math

from workloads.model import Model
from workloads.zoo.layers import Act, GraphBuilder
from workloads.zoo.transformer import AttnSpec, attention, attention_core, mlp


def vit(name: str = "vit-b16", dtype: str = "fp16", image: int = 224, *, patch: int = 16,
        hidden: int = 768, layers: int = 12, heads: int = 12, ffn: int = 3072,
        classes: int = 1000, channels: int = 3) -> GraphBuilder:
    """A ViT image classifier (torchvision VisionTransformer layout; classes=0: no head)."""
    b = GraphBuilder(name, dtype)
    d, g = hidden, image // patch
    tokens = g * g + 1
    x = b.conv2d(Act(None, (channels, image, image)), "conv_proj", d, patch, patch, pad=0)
    cls = b.tensor("class_token", 1, 1, d)
    pos = b.tensor("encoder.pos_embedding", 1, tokens, d)
    x = b.op("embed", "add", [x], (tokens, d), tokens * d, [cls, pos])
    spec = AttnSpec(heads, d // heads, names=("", "", "", "out_proj"), fused="in_proj")
    for i in range(layers):
        p = f"encoder.layers.encoder_layer_{i}"
        y = b.norm(x, f"{p}.ln_1")
        y = attention(b, y, f"{p}.self_attention", spec)
        x = b.add(f"{p}.attn_add", x, y)
        y = b.norm(x, f"{p}.ln_2")
        y = mlp(b, y, f"{p}.mlp", ffn, "gelu", ("0", "3"))
        x = b.add(f"{p}.mlp_add", x, y)
    x = b.norm(x, "encoder.ln")
    if classes:
        x = b.op("cls_select", "slice", [x], (1, d), 0)
        b.linear(x, "heads.head", classes)
    return b


def vit_b16(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """ViT-B/16: 86,567,656 params (torchvision vit_b_16 model card)."""
    tokens = (image // 16) ** 2 + 1
    return vit("vit-b16", dtype, image, classes=classes).build(
        family="vision-transformer", published_params=86_567_656,
        source="Dosovitskiy et al. 2021, arXiv:2010.11929; torchvision vit_b_16 "
               "(86,567,656 params)",
        description=f"ViT-B/16, {image}x{image} image, {tokens} tokens")


def vit_b32_384(dtype: str = "fp16", image: int = 384, classes: int = 1000) -> Model:
    """ViT-B/32 at 384x384 (145 tokens): 88,297,192 params (HF google/vit-base-patch32-384)."""
    tokens = (image // 32) ** 2 + 1
    return vit("vit-b32-384", dtype, image, patch=32, classes=classes).build(
        family="vision-transformer", published_params=88_297_192,
        source="Dosovitskiy et al. 2021, arXiv:2010.11929; HF google/vit-base-patch32-384 "
               "config.json (patch 32, image 384, hidden 768, 12 layers, 12 heads, mlp 3072, "
               "1000 classes): 88,297,192 params computed from the config, equal to "
               "transformers' ViTForImageClassification and timm's vit_base_patch32_384 "
               "num_parameters() (the 353 MB fp32 checkpoint); torchvision vit_b_32 at 224 is "
               "the same model with a 50-token position table (88,224,232)",
        description=f"ViT-B/32, {image}x{image} image, {tokens} tokens")


def _window_attention(b: GraphBuilder, x: Act, p: str, heads: int, grid: int, window: int,
                      pos_weights: tuple, pos_flops_per_score: int, extra_flops: int = 0,
                      qkv: str = "qkv", proj: str = "proj") -> Act:
    """Attention within non-overlapping windows of a grid x grid token map (padded to fit)."""
    d = x.shape[-1]
    spec = AttnSpec(heads, d // heads, fused=qkv)
    padded = math.ceil(grid / window) * window
    windows, w_tokens = (padded // window) ** 2, window * window
    tokens = windows * w_tokens
    y = b.linear(x, f"{p}.{qkv}", 3 * d)
    q = Act(y.src, (tokens, d))
    scores = windows * heads * w_tokens * w_tokens
    o = attention_core(b, p, q, q, q, spec, q_len=w_tokens, kv_len=w_tokens, groups=windows,
                       extra_weights=pos_weights,
                       extra_flops=pos_flops_per_score * scores + extra_flops)
    if padded != grid:
        o = b.op(f"{p}.unpad", "slice", [o], (grid * grid, d), 0)
    return b.linear(o, f"{p}.{proj}", d)


def swin_t(dtype: str = "fp16", image: int = 224, classes: int = 1000) -> Model:
    """Swin-T: 28,288,354 params (torchvision swin_t model card)."""
    b = GraphBuilder("swin-t", dtype)
    window, c = 7, 96
    x = b.conv2d(Act(None, (3, image, image)), "features.0.0", c, 4, 4, pad=0)
    grid = x.shape[1]
    x = Act(x.src, (grid * grid, c))  # channels-last tokens (a view)
    x = b.norm(x, "features.0.2")
    stage = 1
    for depth, heads in zip((2, 2, 6, 2), (3, 6, 12, 24), strict=True):
        for i in range(depth):
            p = f"features.{stage}.{i}"
            table = b.tensor(f"{p}.attn.relative_position_bias_table", (2 * window - 1) ** 2,
                             heads)
            y = b.norm(x, f"{p}.norm1")
            y = _window_attention(b, y, f"{p}.attn", heads, grid, window, (table,), 1)
            x = b.add(f"{p}.attn_add", x, y)
            y = b.norm(x, f"{p}.norm2")
            y = mlp(b, y, f"{p}.mlp", 4 * c, "gelu", ("0", "3"))
            x = b.add(f"{p}.mlp_add", x, y)
        if stage < 7:
            p = f"features.{stage + 1}"
            grid //= 2
            x = Act(x.src, (grid * grid, 4 * c))  # 2x2 neighbours side by side (a view)
            x = b.norm(x, f"{p}.norm")
            x = b.linear(x, f"{p}.reduction", 2 * c, bias=False)
            c *= 2
        stage += 2
    x = b.norm(x, "norm")
    x = b.elementwise("avgpool", "avgpool", [x], (c,))
    b.linear(x, "head", classes)
    return b.build(family="vision-transformer", published_params=28_288_354,
                   source="Liu et al. 2021, arXiv:2103.14030; torchvision swin_t "
                          "(28,288,354 params)",
                   description=f"Swin-T, {image}x{image} image, window {window}")


def sam_vit_b_encoder(dtype: str = "fp16", image: int = 1024) -> Model:
    """SAM ViT-B image encoder: ~89.67M params (segment-anything sam_vit_b image_encoder)."""
    b = GraphBuilder("sam-vit-b-encoder", dtype)
    d, heads, hd, window = 768, 12, 64, 14
    grid = image // 16
    x = b.conv2d(Act(None, (3, image, image)), "patch_embed.proj", d, 16, 16, pad=0)
    pos = b.tensor("pos_embed", 1, 64, 64, d)
    x = b.op("pos_add", "add", [x], (grid * grid, d), grid * grid * d, [pos])
    for i in range(12):
        p = f"blocks.{i}"
        is_global = i in (2, 5, 8, 11)
        size = grid if is_global else window
        rel = (b.tensor(f"{p}.attn.rel_pos_h", 2 * size - 1, hd),
               b.tensor(f"{p}.attn.rel_pos_w", 2 * size - 1, hd))
        w = grid if is_global else window
        # decomposed rel-pos: q . R_h and q . R_w (2 * q * size * hd each), then a broadcast add
        windows = math.ceil(grid / w) ** 2
        rel_flops = windows * heads * (w * w) * 2 * (2 * size * hd)
        y = b.norm(x, f"{p}.norm1")
        y = _window_attention(b, y, f"{p}.attn", heads, grid, w, rel, 1, rel_flops)
        x = b.add(f"{p}.attn_add", x, y)
        y = b.norm(x, f"{p}.norm2")
        y = mlp(b, y, f"{p}.mlp", 4 * d, "gelu", ("lin1", "lin2"))
        x = b.add(f"{p}.mlp_add", x, y)
    x = Act(x.src, (d, grid, grid))  # token map back to channels-first (a view)
    x = b.conv2d(x, "neck.0", 256, 1, bias=False)
    x = b.norm(x, "neck.1", channel_axis=0)
    x = b.conv2d(x, "neck.2", 256, 3, bias=False)
    b.norm(x, "neck.3", channel_axis=0)
    return b.build(family="vision-transformer", published_params=89_670_912,
                   source="Kirillov et al. 2023, arXiv:2304.02643; segment-anything sam_vit_b "
                          "image encoder (~89.67M params)",
                   description=f"SAM ViT-B image encoder, {image}x{image} image, "
                               f"{grid}x{grid} tokens")
