"""ACT: Action Chunking with Transformers (Zhao et al. 2023, arXiv:2304.13705).

Reads top to bottom: position embeddings, DETR-style transformer layers (positions are added to
queries and keys at every layer, never to values), the optional image encoder (a backbone from
act/backbone.py: ResNet-18 or a small CNN, plain torch), and the policy, which owns the CVAE encoder,
the main encoder/decoder, the loss and inference.

Shapes: B batch, K chunk_size, D hidden_dim, S state_dim, A action_dim, L latent_dim,
N cameras, T tokens. Inputs are already normalized (see act/normalize.py).

Differences from the published code, on purpose:
- the action head reads the LAST decoder layer (the original read the first, so its extra
  decoder layers were dead weight);
- image tokens also get a learned per-camera embedding (the original gave every camera the same
  2D positions, so tokens from different cameras were told apart by content only);
- the ResNet-18 is built in plain torch (act/backbone.py, torchvision's parameter names, frozen
  BatchNorm as in ACT) and starts from random weights: nothing is downloaded at run time, and
  ImageNet weights load from a file (act.backbone.load_backbone_weights). Without them its frozen
  BatchNorm is the identity; ``backbone="small"`` (GroupNorm) is the encoder meant to train from scratch.

Kept from the published design: the decoder's input is all zeros (positions come from the learned
queries), so the first decoder layer's self-attention averages identical values and its
in-projection (3 * hidden_dim**2 weights per attention block, 49k at hidden 128) learns only through
dropout on its attention weights. That layer computes the attention once for the batch
(Attention.over_zero_inputs), the same function for a fifth less of a training step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from act.backbone import RESNET18_CHANNELS, ResNet18Trunk, SmallCNN
from act.config import ACTConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# Position embeddings
# --------------------------------------------------------------------------------------------

def sinusoidal_embedding_1d(n_positions: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine table of "Attention is all you need": (n_positions, dim)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (T, 1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)  # (T, D/2)
    table[:, 1::2] = torch.cos(position * inv_freq)  # (T, D/2)
    return table


def sinusoidal_embedding_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """DETR's normalized 2D sine embedding of a feature map, flattened row-major: (H*W, dim).

    The first dim/2 channels encode the row, the last dim/2 the column; coordinates are scaled to
    (0, 2*pi] so the embedding does not depend on the image size.
    """
    half = dim // 2
    y = torch.arange(1, height + 1, dtype=torch.float32) / height * 2 * math.pi  # (H,)
    x = torch.arange(1, width + 1, dtype=torch.float32) / width * 2 * math.pi  # (W,)
    inv_freq = 10000.0 ** (-(torch.arange(half) // 2 * 2).float() / half)  # (D/2,)
    pos_y = y[:, None] * inv_freq  # (H, D/2)
    pos_x = x[:, None] * inv_freq  # (W, D/2)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)  # (H, D/2)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)  # (W, D/2)
    grid = torch.cat((pos_y[:, None, :].expand(height, width, half),
                      pos_x[None, :, :].expand(height, width, half)), dim=2)  # (H, W, D)
    return grid.reshape(height * width, dim)  # (H*W, D)


# --------------------------------------------------------------------------------------------
# Transformer layers (post-norm, as in DETR and ACT)
# --------------------------------------------------------------------------------------------

class DropoutMasks:
    """Where every dropout layer of one policy draws its masks: numpy's SFC64 generator, reseeded from
    torch's generator at each training forward pass (``reseed``), so a step's masks are still a function
    of ``torch.manual_seed`` and act-train's exact resume holds.

    The masks are Bernoulli(1 - p) scaled by 1 / (1 - p), as ``nn.Dropout``'s; only the random stream
    differs. torch draws them with a Mersenne Twister one number at a time (``bernoulli_``), which took
    18% of a training step of the default network on this project's 2-core CPUs; 32 raw bits per
    element from SFC64, compared with ``round(p * 2**32)``, take about a fifth of that time
    (BENCHMARKS.md, "Training step").
    """

    def __init__(self):
        self._rng = None

    def reseed(self) -> None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        self._rng = np.random.Generator(np.random.SFC64(seed))

    def noise(self, like: torch.Tensor, p: float) -> torch.Tensor:
        """A tensor like ``like`` with 0 where dropped and 1 / (1 - p) where kept."""
        if self._rng is None:
            self.reseed()
        n = like.numel()
        bits = self._rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]  # 32 random bits each
        # 1 = kept, as bytes: torch turns bytes into floats about 6x faster than it turns bools.
        keep = torch.from_numpy((bits >= np.uint32(round(p * 2**32))).view(np.uint8)).view(like.shape)
        return keep.to(like.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """``nn.Dropout`` with masks from the policy's DropoutMasks (same function, a faster random stream)."""

    def __init__(self, p: float, masks: DropoutMasks):
        super().__init__()
        self.p = p
        self.masks = masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self.masks.noise(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head attention, the function of ``nn.MultiheadAttention(batch_first=True)`` with the same
    parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj``: checkpoints load either way), written
    out for speed on a CPU: when queries and keys are the same tensor (self-attention, where both are
    ``x + pos``) they are projected in one matrix product, the heads are batched in one ``baddbmm`` with
    the mask as its bias, and dropout on the attention weights uses the policy's DropoutMasks. torch's
    module projected queries and keys separately, transposed to sequence-first and back, and checked its
    masks on every call.
    """

    def __init__(self, config: ACTConfig, masks: DropoutMasks):
        super().__init__()
        d = config.hidden_dim
        self.n_heads = config.n_heads
        self.head_dim = d // config.n_heads
        # Created and initialized in nn.MultiheadAttention's order, so a seed gives the same weights.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)
        self.dropout = Dropout(config.dropout, masks)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask_bias: torch.Tensor | None = None) -> torch.Tensor:
        """query (B, Tq, D), key and value (B, Tk, D); mask_bias (B, 1, Tk), -inf where a key is ignored.
        Returns (B, Tq, D)."""
        b, tq, d = query.shape
        tk = key.shape[1]
        w, bias = self.in_proj_weight, self.in_proj_bias
        if key is query:
            q, k = F.linear(query, w[:2 * d], bias[:2 * d]).split(d, dim=-1)  # (B, Tq, D) each
        else:
            q = F.linear(query, w[:d], bias[:d])  # (B, Tq, D)
            k = F.linear(key, w[d:2 * d], bias[d:2 * d])  # (B, Tk, D)
        v = F.linear(value, w[2 * d:], bias[2 * d:])  # (B, Tk, D)
        h, hd = self.n_heads, self.head_dim
        if tq == 1:
            return self._one_query(q, k, v, mask_bias)
        q = q.reshape(b, tq, h, hd).transpose(1, 2).reshape(b * h, tq, hd)  # (B*H, Tq, hd)
        k = k.reshape(b, tk, h, hd).transpose(1, 2).reshape(b * h, tk, hd)  # (B*H, Tk, hd)
        v = v.reshape(b, tk, h, hd).transpose(1, 2).reshape(b * h, tk, hd)  # (B*H, Tk, hd)
        scale = 1.0 / math.sqrt(hd)
        if mask_bias is None:
            scores = torch.bmm(q, k.transpose(1, 2)).mul_(scale)  # (B*H, Tq, Tk)
        else:
            bias_bh = mask_bias.repeat_interleave(h, dim=0)  # (B*H, 1, Tk)
            scores = torch.baddbmm(bias_bh, q, k.transpose(1, 2), alpha=scale)  # (B*H, Tq, Tk)
        weights = self.dropout(torch.softmax(scores, dim=-1))  # (B*H, Tq, Tk)
        out = torch.bmm(weights, v)  # (B*H, Tq, hd)
        out = out.reshape(b, h, tq, hd).transpose(1, 2).reshape(b, tq, d)  # (B, Tq, D)
        return self.out_proj(out)

    def _one_query(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask_bias: torch.Tensor | None) -> torch.Tensor:
        """forward's attention for one query (the CVAE encoder's CLS token): q (B, 1, D), k and v
        (B, Tk, D) projected. Products and sums over the head dimension instead of batched matrix
        products of a single row, which a CPU runs several times slower. Returns (B, 1, D)."""
        b, tk, d = k.shape
        h, hd = self.n_heads, self.head_dim
        scores = (q.view(b, 1, h, hd) * k.view(b, tk, h, hd)).sum(-1).transpose(1, 2)  # (B, H, Tk)
        scores = scores * (1.0 / math.sqrt(hd))
        if mask_bias is not None:
            scores = scores + mask_bias  # (B, 1, Tk) broadcast over heads
        weights = self.dropout(torch.softmax(scores, dim=-1).reshape(b * h, 1, tk))  # as forward's
        out = (weights.view(b, h, tk).transpose(1, 2)[..., None] * v.view(b, tk, h, hd)).sum(1)  # (B, H, hd)
        return self.out_proj(out.reshape(b, 1, d))

    def over_zero_inputs(self, query: torch.Tensor, batch: int) -> torch.Tensor:
        """``forward(q, q, x)`` for ``batch`` samples whose x is all zeros, so that queries and keys are
        ``query`` (1, T, D) for every sample: the decoder's first self-attention. Returns (B, T, D).

        Every value is then the value bias b_v, so a query's output is the sum of its attention weights
        times b_v, through out_proj. The weights are computed once instead of per sample; only dropout
        on them (the same masks forward draws) differs between samples. The same function as forward,
        to float rounding, for about a fifth less of a training step at the default size (BENCHMARKS.md).
        """
        t, d = query.shape[1], query.shape[2]
        h, hd = self.n_heads, self.head_dim
        w, bias = self.in_proj_weight, self.in_proj_bias
        q, k = F.linear(query[0], w[:2 * d], bias[:2 * d]).split(d, dim=-1)  # (T, D) each
        q = q.reshape(t, h, hd).transpose(0, 1)  # (H, T, hd)
        k = k.reshape(t, h, hd).transpose(0, 1)  # (H, T, hd)
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(1.0 / math.sqrt(hd))  # (H, T, T)
        weights = torch.softmax(scores, dim=-1).expand(batch, h, t, t).reshape(batch * h, t, t)
        mass = self.dropout(weights).sum(-1).reshape(batch, h, t).transpose(1, 2)  # (B, T, H)
        # out_proj(mass * b_v): out_proj's columns of head h times b_v's head-h part, summed per head.
        per_head = (self.out_proj.weight.view(d, h, hd) * bias[2 * d:].view(1, h, hd)).sum(-1)  # (D, H)
        return F.linear(mass, per_head, self.out_proj.bias)  # (B, T, D)


def padding_bias(key_padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool, True = ignore -> (B, 1, T) additive bias: -inf where ignored, 0 elsewhere."""
    bias = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    return bias.masked_fill_(key_padding_mask, float("-inf"))[:, None, :]


class FeedForward(nn.Module):
    def __init__(self, config: ACTConfig, masks: DropoutMasks):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_dim, config.feedforward_dim)
        self.fc2 = nn.Linear(config.feedforward_dim, config.hidden_dim)
        self.dropout = Dropout(config.dropout, masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))  # (B, T, D)


class EncoderLayer(nn.Module):
    def __init__(self, config: ACTConfig, masks: DropoutMasks):
        super().__init__()
        d, p = config.hidden_dim, config.dropout
        self.self_attn = Attention(config, masks)
        self.feed_forward = FeedForward(config, masks)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = Dropout(p, masks)
        self.dropout2 = Dropout(p, masks)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask_bias: torch.Tensor | None = None,
                first_only: bool = False) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); with ``first_only``, only the first token's output (B, 1, D), which
        reads every token but skips the others' queries, feed-forward and norms."""
        keys = x + pos  # (B, T, D), queries and keys
        if first_only:
            attn = self.self_attn(keys[:, :1], keys, x, mask_bias)  # (B, 1, D)
            x = x[:, :1]
        else:
            attn = self.self_attn(keys, keys, x, mask_bias)  # (B, T, D)
        x = self.norm1(x + self.dropout1(attn))
        x = self.norm2(x + self.dropout2(self.feed_forward(x)))
        return x


class Encoder(nn.Module):
    def __init__(self, config: ACTConfig, n_layers: int, masks: DropoutMasks):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config, masks) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                first_only: bool = False) -> torch.Tensor:
        """(B, T, D) -> (B, T, D), or the first token's output (B, 1, D) with ``first_only`` (what the
        CVAE encoder reads: its last layer then computes that token alone, the same numbers)."""
        mask_bias = None if key_padding_mask is None else padding_bias(key_padding_mask, x.dtype)  # (B, 1, T)
        for i, layer in enumerate(self.layers):
            x = layer(x, pos, mask_bias, first_only=first_only and i == len(self.layers) - 1)
        return x


class DecoderLayer(nn.Module):
    def __init__(self, config: ACTConfig, masks: DropoutMasks):
        super().__init__()
        d, p = config.hidden_dim, config.dropout
        self.self_attn = Attention(config, masks)
        self.cross_attn = Attention(config, masks)
        self.feed_forward = FeedForward(config, masks)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout1 = Dropout(p, masks)
        self.dropout2 = Dropout(p, masks)
        self.dropout3 = Dropout(p, masks)

    def forward(self, x: torch.Tensor | None, query_pos: torch.Tensor,
                memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        """x (B, K, D), or None for the decoder's input of zeros (its first layer), whose
        self-attention is the same for every sample up to dropout (Attention.over_zero_inputs)."""
        if x is None:
            x = self.norm1(self.dropout1(self.self_attn.over_zero_inputs(query_pos, memory.shape[0])))
        else:
            q = x + query_pos  # (B, K, D), queries and keys
            x = self.norm1(x + self.dropout1(self.self_attn(q, q, x)))  # (B, K, D)
        attn = self.cross_attn(x + query_pos, memory + memory_pos, memory)
        x = self.norm2(x + self.dropout2(attn))  # (B, K, D)
        x = self.norm3(x + self.dropout3(self.feed_forward(x)))  # (B, K, D)
        return x


class Decoder(nn.Module):
    def __init__(self, config: ACTConfig, masks: DropoutMasks):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config, masks) for _ in range(config.n_decoder_layers))
        self.norm = nn.LayerNorm(config.hidden_dim)

    def forward(self, query_pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        """The decoder's input is all zeros (the first layer takes it as None): query_pos (1, K, D),
        memory (B, T, D) -> (B, K, D)."""
        x = None
        for layer in self.layers:
            x = layer(x, query_pos, memory, memory_pos)  # (B, K, D)
        return self.norm(x)  # the last layer's output, (B, K, D)


# --------------------------------------------------------------------------------------------
# Image encoder (optional: only built when the config names cameras)
# --------------------------------------------------------------------------------------------

class VisionDependencyError(ImportError):
    """Kept for code that catches it: the image path no longer needs torchvision and never raises it."""


def resnet18_trunk() -> nn.Module:
    """ResNet-18 without its pooling and classifier, random weights, frozen BatchNorm, no torchvision:
    (B, 3, H, W) -> (B, 512, H/32, W/32) (act.backbone.ResNet18Trunk)."""
    return ResNet18Trunk()


def image_backbone(name: str) -> tuple[nn.Module, int]:
    """The backbone ACTConfig.backbone names and its output channels."""
    if name == "small":
        backbone = SmallCNN()
        return backbone, backbone.out_channels
    if name == "resnet18":
        return resnet18_trunk(), RESNET18_CHANNELS
    raise ValueError(f"backbone={name!r}: must be resnet18 or small")


class ImageEncoder(nn.Module):
    """One backbone shared by all cameras; each feature map becomes tokens via a 1x1 conv."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.backbone, channels = image_backbone(config.backbone)
        # Channels-last: oneDNN's convolutions run without layout conversions (small CNN, batch 64, two 96x96
        # cameras on one CPU thread: a training step 733 -> 626 ms; benchmarks/vision_step.py).
        self.backbone.to(memory_format=torch.channels_last)
        self.proj = nn.Conv2d(channels, config.hidden_dim, kernel_size=1)
        self.camera_embed = nn.Embedding(len(config.camera_names), config.hidden_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, N, 3, H, W) in [0, 1] -> tokens (B, N*h*w, D) and their positions (1, N*h*w, D)."""
        b, n = images.shape[:2]
        x = (images.flatten(0, 1) - self.mean) / self.std  # (B*N, 3, H, W)
        x = self.proj(self.backbone(x.contiguous(memory_format=torch.channels_last)))  # (B*N, D, h, w)
        d, h, w = x.shape[1:]
        tokens = x.flatten(2).transpose(1, 2).reshape(b, n * h * w, d)  # (B, N*h*w, D)
        grid = sinusoidal_embedding_2d(h, w, d).to(x)  # (h*w, D)
        pos = grid[None] + self.camera_embed.weight[:, None, :]  # (N, h*w, D)
        return tokens, pos.reshape(1, n * h * w, d)  # (B, N*h*w, D), (1, N*h*w, D)


# --------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------

class ACTPolicy(nn.Module):
    """ACT as a CVAE: training encodes the true chunk into a latent z; inference uses z = 0. With
    ``config.vae`` off there is no CVAE encoder and z = 0 in training as well.

    forward(batch) -> (loss, loss_dict) for training; predict_chunk(state, images) for control.
    """

    def __init__(self, config: ACTConfig):
        super().__init__()
        config.validate()
        self.config = config
        d, k = config.hidden_dim, config.chunk_size
        self.dropout_masks = DropoutMasks()  # shared by every dropout layer below

        # CVAE encoder over [CLS, state, a_1..a_K] -> (mu, logvar); training only, and only with config.vae.
        if config.vae:
            self.vae_cls = nn.Parameter(torch.zeros(1, 1, d))
            self.vae_state_proj = nn.Linear(config.state_dim, d)
            self.vae_action_proj = nn.Linear(config.action_dim, d)
            self.vae_encoder = Encoder(config, config.n_vae_encoder_layers, self.dropout_masks)
            self.vae_latent_head = nn.Linear(d, 2 * config.latent_dim)
            self.register_buffer("vae_pos", sinusoidal_embedding_1d(2 + k, d)[None], persistent=False)

        # Main encoder over [z, state, image tokens].
        self.latent_proj = nn.Linear(config.latent_dim, d)
        self.state_proj = nn.Linear(config.state_dim, d)
        self.token_pos = nn.Parameter(torch.zeros(1, 2, d))  # learned positions of z and state
        self.images = ImageEncoder(config) if config.camera_names else None
        self.encoder = Encoder(config, config.n_encoder_layers, self.dropout_masks)

        # Decoder: one learned query position per chunk step, reading the encoder's memory.
        self.query_pos = nn.Parameter(torch.zeros(1, k, d))
        self.decoder = Decoder(config, self.dropout_masks)
        self.action_head = nn.Linear(d, config.action_dim)

        self._init_weights()

    def _init_weights(self) -> None:
        # N(0, 1) as the published code's nn.Embedding tables. The decoder's input is all zeros, so
        # the chunk steps differ only through query_pos: at std 0.02 every step of a chunk came out
        # the same for hundreds of steps (pick-place-v3, 45 demos, step 300: val L1 0.405 at std
        # 0.02 against 0.250 at std 1).
        if self.config.vae:
            nn.init.normal_(self.vae_cls, std=1.0)
        nn.init.normal_(self.token_pos, std=1.0)
        nn.init.normal_(self.query_pos, std=1.0)
        encoders = (self.vae_encoder, self.encoder) if self.config.vae else (self.encoder,)
        for module in (*encoders, self.decoder):  # DETR's init
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    # ---- the two halves of the CVAE ----

    def encode_latent(self, state: torch.Tensor, action: torch.Tensor,
                      action_pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | state, chunk): mu and logvar, each (B, L). Padded steps are masked out."""
        if not self.config.vae:
            raise RuntimeError("this policy was built with vae=False: it has no CVAE encoder, and its z is 0")
        b = state.shape[0]
        tokens = torch.cat((
            self.vae_cls.expand(b, -1, -1),  # (B, 1, D)
            self.vae_state_proj(state)[:, None],  # (B, 1, D)
            self.vae_action_proj(action),  # (B, K, D)
        ), dim=1)  # (B, 2+K, D)
        always_seen = torch.zeros(b, 2, dtype=torch.bool, device=state.device)
        key_padding_mask = torch.cat((always_seen, action_pad), dim=1)  # (B, 2+K), True = ignore
        cls = self.vae_encoder(tokens, self.vae_pos, key_padding_mask, first_only=True)  # (B, 1, D)
        mu, logvar = self.vae_latent_head(cls[:, 0]).chunk(2, dim=-1)  # (B, L), (B, L)
        return mu, logvar

    def decode(self, state: torch.Tensor, latent: torch.Tensor,
               images: torch.Tensor | None = None) -> torch.Tensor:
        """The policy proper: (state, z, images) -> normalized action chunk (B, K, A)."""
        tokens = torch.stack((self.latent_proj(latent), self.state_proj(state)), dim=1)  # (B, 2, D)
        pos = self.token_pos  # (1, 2, D)
        if self.images is not None:
            image_tokens, image_pos = self.images(images)  # (B, N*h*w, D), (1, N*h*w, D)
            tokens = torch.cat((tokens, image_tokens), dim=1)  # (B, T, D)
            pos = torch.cat((pos, image_pos), dim=1)  # (1, T, D)
        memory = self.encoder(tokens, pos)  # (B, T, D)
        out = self.decoder(self.query_pos, memory, pos)  # (B, K, D), from an input of zeros
        return self.action_head(out)  # (B, K, A)

    # ---- training ----

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a batch of normalized tensors:
        state (B, S), action (B, K, A), action_pad (B, K) bool True past the episode end (and where
        a correction episode's policy drove), images (B, N, 3, H, W) in [0, 1] when the config names
        cameras, optionally weight (B,) the loss weight of each sample.

        loss = L1 over valid steps and action dims + kl_weight * KL (summed over latent dims,
        averaged over the batch; with ``config.vae`` off, z = 0 and the loss is the L1 alone). With
        "weight" the L1 is a weighted mean, sum(w * |err| * valid) / sum(w * valid * A); without it (or
        with all weights 1) it is the plain mean, bit for bit. The KL stays an unweighted batch mean. z is
        sampled in train mode and is the posterior mean in eval mode, so a validation loss is deterministic.
        """
        state, action, action_pad = batch["state"], batch["action"], batch["action_pad"]
        images = batch.get("images")
        self._check_inputs(state, images)
        b, k, a = state.shape[0], self.config.chunk_size, self.config.action_dim
        if action.shape != (b, k, a):
            raise ValueError(f"batch['action'] has shape {tuple(action.shape)}, expected "
                             f"(B, chunk_size, action_dim) = {(b, k, a)}")
        if action_pad.shape != (b, k) or action_pad.dtype != torch.bool:
            raise ValueError(f"batch['action_pad'] must be a bool tensor of shape {(b, k)}, got "
                             f"{action_pad.dtype} {tuple(action_pad.shape)}")
        weight = batch.get("weight")
        if weight is not None and (weight.shape != (b,) or not weight.is_floating_point()):
            raise ValueError(f"batch['weight'] must be a float tensor of shape {(b,)}, got "
                             f"{weight.dtype} {tuple(weight.shape)}")

        if self.training:
            self.dropout_masks.reseed()  # this pass's masks, from torch's generator
        if self.config.vae:
            mu, logvar = self.encode_latent(state, action, action_pad)  # (B, L), (B, L)
            if self.training:
                latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # (B, L)
            else:
                latent = mu
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
        else:  # the latent inference uses, in training too, and nothing for the KL to pull
            latent = torch.zeros(b, self.config.latent_dim, device=state.device, dtype=state.dtype)
            kl = torch.zeros((), device=state.device, dtype=state.dtype)
        pred = self.decode(state, latent, images)  # (B, K, A)

        valid = (~action_pad).unsqueeze(-1).to(pred.dtype)  # (B, K, 1)
        abs_err = (pred - action).abs() * valid  # (B, K, A)
        if weight is None:
            l1 = abs_err.sum() / (valid.sum() * a).clamp(min=1.0)
        else:
            # Multiplying by a weight of 1 is exact and the sums run over the same shapes, so all-ones
            # weights give the plain mean bit for bit; the clamp only guards a batch with no label.
            w = weight.to(pred.dtype).view(b, 1, 1)
            l1 = (abs_err * w).sum() / ((valid * w).sum() * a).clamp(min=1e-12)
        loss = l1 + self.config.kl_weight * kl
        return loss, {"l1": l1.item(), "kl": kl.item(), "loss": loss.item()}

    def optimizer_param_groups(self) -> list[dict]:
        """AdamW groups: the image backbone at lr_backbone, everything else at lr."""
        backbone = [p for p in self.images.backbone.parameters()] if self.images is not None else []
        backbone_ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if id(p) not in backbone_ids]
        groups = [{"params": rest, "lr": self.config.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.lr_backbone})
        return groups

    def make_optimizer(self) -> torch.optim.AdamW:
        # fused: one kernel over every parameter; torch's default on a CPU loops over them one at a time
        # (7% of a training step of the default network).
        return torch.optim.AdamW(self.optimizer_param_groups(), lr=self.config.lr,
                                 weight_decay=self.config.weight_decay, fused=True)

    # ---- inference ----

    @torch.no_grad()
    def predict_chunk(self, state: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """Normalized action chunk (B, K, A) for normalized state (B, S), with z = 0.

        Runs in eval mode (no dropout) and restores training mode afterwards if the policy was in it.
        A policy already in eval mode is left alone: switching modes walks every module, which cost
        about a tenth of a rollout's time when it ran on every query.
        """
        self._check_inputs(state, images)
        was_training = self.training
        if was_training:
            self.eval()
        try:
            latent = torch.zeros(state.shape[0], self.config.latent_dim,
                                 device=state.device, dtype=state.dtype)  # (B, L)
            return self.decode(state, latent, images)  # (B, K, A)
        finally:
            if was_training:
                self.train()

    def _check_inputs(self, state: torch.Tensor, images: torch.Tensor | None) -> None:
        c = self.config
        if state.dim() != 2 or state.shape[1] != c.state_dim:
            raise ValueError(f"state has shape {tuple(state.shape)}, expected (B, state_dim) with "
                             f"state_dim={c.state_dim}")
        if not c.camera_names:
            if images is not None:
                raise ValueError("images were given but config.camera_names is empty; set "
                                 "camera_names to use them")
            return
        expected = (state.shape[0], len(c.camera_names), 3, *c.image_size)
        if images is None:
            raise ValueError(f"config.camera_names={c.camera_names} needs images of shape "
                             f"(B, N, 3, H, W) = {expected}")
        if tuple(images.shape) != expected:
            raise ValueError(f"images have shape {tuple(images.shape)}, expected (B, N, 3, H, W) = "
                             f"{expected} for camera_names={c.camera_names}, "
                             f"image_size={c.image_size}")
