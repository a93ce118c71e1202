"""Dream-like generation utilities (present, as in Dream's remote code, but never used by dopsd).

``DreamGenerationConfig.validate`` takes no ``**kwargs`` (transformers 5 passes more), and the sampler builds the
4D boolean attention mask and shifts the logits by one, which is how Dream's own code drives the model.
"""

import torch
import torch.nn.functional as F
from transformers import __version__
from transformers.generation.configuration_utils import GenerationConfig


class DreamGenerationConfig(GenerationConfig):
    def __init__(self, **kwargs):
        self.temperature = kwargs.pop("temperature", 0.0)
        self.top_p = kwargs.pop("top_p", None)
        self.top_k = kwargs.pop("top_k", None)
        self.max_length = kwargs.pop("max_length", 20)
        self.max_new_tokens = kwargs.pop("max_new_tokens", None)
        self.eps = kwargs.pop("eps", 1e-3)
        self.steps = kwargs.pop("steps", 512)
        self.alg = kwargs.pop("alg", "origin")
        self.alg_temp = kwargs.pop("alg_temp", None)
        self.num_return_sequences = kwargs.pop("num_return_sequences", 1)
        self.return_dict_in_generate = kwargs.pop("return_dict_in_generate", False)
        self.output_history = kwargs.pop("output_history", False)
        self.mask_token_id = kwargs.pop("mask_token_id", None)
        self.pad_token_id = kwargs.pop("pad_token_id", None)
        self.bos_token_id = kwargs.pop("bos_token_id", None)
        self.eos_token_id = kwargs.pop("eos_token_id", None)
        self.generation_kwargs = kwargs.pop("generation_kwargs", {})
        self._from_model_config = kwargs.pop("_from_model_config", False)
        self._commit_hash = kwargs.pop("_commit_hash", None)
        self.transformers_version = kwargs.pop("transformers_version", __version__)
        if not self._from_model_config:
            for key, value in kwargs.items():
                setattr(self, key, value)
        self.validate(is_init=True)

    def validate(self, is_init=False):
        pass


class DreamGenerationMixin:
    @torch.no_grad()
    def diffusion_generate(self, inputs, attention_mask=None, max_new_tokens=16, steps=16, mask_token_id=None):
        """Greedy diffusion decoding, one confident position after another (Dream's "origin" order, simplified)."""
        mask_id = mask_token_id if mask_token_id is not None else self.generation_config.mask_token_id
        x = F.pad(inputs, (0, max_new_tokens), value=mask_id)
        if attention_mask is not None and bool((attention_mask == 0).any()):
            keys = F.pad(attention_mask, (0, max_new_tokens), value=1).bool()
            positions = (keys.long().cumsum(-1) - 1).clamp(min=0)
            full = torch.logical_and(keys[:, None, :, None], keys[:, None, None, :])
        else:
            positions, full = None, "full"
        per_step = max(1, max_new_tokens // steps)
        while bool((x == mask_id).any()):
            logits = self(x, full, positions).logits
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            confidence, tokens = logits.softmax(-1).max(-1)
            confidence = confidence.masked_fill(x != mask_id, -1.0)
            chosen = confidence.topk(per_step, dim=-1).indices
            still = (x == mask_id).gather(1, chosen)
            x.scatter_(1, chosen, torch.where(still, tokens.gather(1, chosen), x.gather(1, chosen)))
        return x
