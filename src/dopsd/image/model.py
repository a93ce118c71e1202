"""A small in-context image generator: one transformer over [time][prompt words][context patches][noisy patches].

It predicts the flow-matching velocity (noise minus image) of the noisy target image, conditioned on the prompt and,
optionally, on a clean reference image placed in the same sequence (the in-context ability D-OPSD's teacher uses).
Built from diffusers' parts (``ModelMixin`` + ``ConfigMixin`` for ``save_pretrained``/``from_pretrained``, its
timestep embedding and ``BasicTransformerBlock``); every token attends to every other one. A row without a context
image either omits the context tokens (``context=None``) or hides them from every query (``context_mask`` False):
the two are the same computation.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dopsd.image.data import PROMPT_LENGTH, SIZE, VOCAB


class InContextImageModel(ModelMixin, ConfigMixin):
    """Velocity model of an (in_channels, sample_size, sample_size) image given a prompt and an optional reference."""

    @register_to_config
    def __init__(self, sample_size: int = SIZE, patch_size: int = 2, in_channels: int = 1, vocab_size: int = len(VOCAB),
                 prompt_length: int = PROMPT_LENGTH, width: int = 64, depth: int = 4, heads: int = 4):
        super().__init__()
        if sample_size % patch_size or width % heads:
            raise ValueError("sample_size must be a multiple of patch_size and width of heads")
        self.patches = (sample_size // patch_size) ** 2
        patch_dim = in_channels * patch_size**2
        self.patch_in = nn.Linear(patch_dim, width)
        self.patch_position = nn.Parameter(torch.zeros(1, self.patches, width))
        self.segment = nn.Parameter(torch.zeros(2, width))  # [context image, noisy target]
        self.words = nn.Embedding(vocab_size, width)
        self.word_position = nn.Parameter(torch.zeros(1, prompt_length, width))
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, width)
        self.blocks = nn.ModuleList(
            BasicTransformerBlock(width, heads, width // heads, activation_fn="gelu", attention_bias=True)
            for _ in range(depth))
        self.norm_out = nn.LayerNorm(width)
        self.patch_out = nn.Linear(width, patch_dim)
        nn.init.normal_(self.patch_position, std=0.02)
        nn.init.normal_(self.word_position, std=0.02)
        nn.init.normal_(self.segment, std=0.02)
        nn.init.zeros_(self.patch_out.weight)
        nn.init.zeros_(self.patch_out.bias)

    # ----- patches -----
    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        b, c, h, w = images.shape
        x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        p, c, size = self.config.patch_size, self.config.in_channels, self.config.sample_size
        b, n = patches.shape[0], size // p
        x = patches.reshape(b, n, n, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, size, size)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, prompt_ids: torch.Tensor,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity of ``sample`` (B, C, H, W) at ``timestep`` (B,) in [0, 1000] (the scheduler's sigma x 1000).

        ``context``: clean reference images (B, C, H, W) or None (no context tokens at all); ``context_mask`` (B,)
        bool: which rows' references are seen (the others' context tokens are hidden from every query)."""
        batch = sample.shape[0]
        timestep = timestep.to(sample.device).reshape(-1).expand(batch)
        time = self.time_embed(self.time_proj(timestep).to(self.patch_in.weight.dtype))[:, None]
        target = self.patch_in(self.patchify(sample)) + self.patch_position + self.segment[1] + time
        parts = [time, self.words(prompt_ids) + self.word_position]
        bias = None
        if context is not None:
            parts.append(self.patch_in(self.patchify(context)) + self.patch_position + self.segment[0])
            if context_mask is not None:
                length = 1 + prompt_ids.shape[1] + 2 * self.patches
                bias = torch.zeros(batch, 1, length, dtype=target.dtype, device=target.device)
                start = 1 + prompt_ids.shape[1]
                hidden = (~context_mask.to(torch.bool))[:, None, None].expand(batch, 1, self.patches)
                bias[:, :, start:start + self.patches] = torch.where(hidden, float("-inf"), 0.0)
        hidden_states = torch.cat([*parts, target], dim=1)
        for block in self.blocks:
            hidden_states = block(hidden_states, attention_mask=bias)
        out = self.patch_out(self.norm_out(hidden_states[:, -self.patches:]))
        return self.unpatchify(out)


def create_image_model(seed: int = 0, **config) -> InContextImageModel:
    """A freshly initialised model, the same for the same seed and config."""
    torch.manual_seed(seed)
    return InContextImageModel(**config)


def load_image_model(path: str, device: str | torch.device = "cpu") -> InContextImageModel:
    from pathlib import Path

    from dopsd.errors import DopsdError

    if not (Path(path) / "config.json").is_file():
        raise DopsdError(f"no image model at {path}: expected a save_pretrained folder with config.json")
    model = InContextImageModel.from_pretrained(path)
    return model.to(device).eval()
