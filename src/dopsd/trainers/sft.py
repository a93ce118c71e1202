"""Masked-diffusion SFT (LLaDA's objective): the baseline, and how the bundled base models are made.

Each response (the task's reference completion, padded with EOS to ``gen_length`` as LLaDA pads) is masked token by
token with probability t ~ U(eps, 1), drawn per example; the loss is the cross-entropy on the masked tokens weighted
by 1/t, summed over the response and divided by its length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dopsd.config import ConfigError
from dopsd.errors import DopsdError
from dopsd.evaluation import default_prompt_style, encode_prompts
from dopsd.sampling import SamplerConfig
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import TrainingConfig


@dataclass
class SFTConfig(TrainingConfig):
    """Masked-diffusion SFT on (prompt, reference completion) pairs.

    Args:
        gen_length: Response length: completions are padded with EOS to it (and evaluated at it).
        block_length: Block length of evaluation sampling.
        batch_size: Examples per process per update.
        min_mask_ratio: Lower end eps of the masking ratio t ~ U(eps, 1).
    """

    output_dir: str = "runs/sft"
    learning_rate: float = 1e-4
    gen_length: int = 256
    block_length: int = 32
    batch_size: int = 16
    min_mask_ratio: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        SamplerConfig(gen_length=self.gen_length, block_length=self.block_length)  # the settings evaluation samples with
        if self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "must be at least 1")
        if not 0.0 < self.min_mask_ratio < 1.0:
            raise ConfigError("min_mask_ratio", self.min_mask_ratio, "must be in (0, 1)")


class SFTTrainer(Trainer):
    """``SFTTrainer(model, tokenizer, task, SFTConfig(...)).train()``."""

    config_class = SFTConfig
    progress_keys = ("loss", "eval_accuracy")

    def __init__(self, model=None, tokenizer=None, task=None, config: SFTConfig | None = None):
        super().__init__(model, tokenizer, task, config)
        seed = self.config.seed * 7919 + self.accelerator.process_index
        self.mask_generator = torch.Generator(device=self.accelerator.device).manual_seed(seed)

    def encode_batch(self, examples) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Left-padded prompts followed by EOS-padded responses; returns ids, attention mask, prompt width."""
        lm, config = self.base_lm, self.config
        style = config.prompt_style or default_prompt_style(lm)
        prompts = encode_prompts(lm, self.task, examples, style)
        responses = []
        for example in examples:
            response = lm.tokenizer(self.task.reference_completion(example, style), add_special_tokens=False)["input_ids"]
            if len(response) >= config.gen_length:
                raise DopsdError(f"example {example.index}: its {len(response)}-token completion does not fit "
                                 f"gen_length={config.gen_length} with an EOS")
            responses.append(response + [lm.tokens.eos] * (config.gen_length - len(response)))
        responses = torch.tensor(responses, device=self.accelerator.device)
        return left_pad_with_responses(prompts, responses, lm.tokens.pad)

    def compute_update(self) -> dict:
        config = self.config
        ids, attention, width = self.encode_batch(self.next_examples(config.batch_size))
        response = ids[:, width:]
        device = ids.device
        ratio = config.min_mask_ratio + (1 - config.min_mask_ratio) * torch.rand(
            (ids.shape[0], 1), generator=self.mask_generator, device=device)
        masked = torch.rand(response.shape, generator=self.mask_generator, device=device) < ratio
        noisy = ids.clone()
        noisy[:, width:] = torch.where(masked, torch.full_like(response, self.base_lm.tokens.mask), response)
        positions = width + torch.arange(config.gen_length, device=device)
        logits = self.lm.logits_at(noisy, positions, attention)
        cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), response, reduction="none")
        loss = ((cross_entropy * masked / ratio).sum(1) / config.gen_length).mean()
        self.accelerator.backward(loss)
        return {"loss": float(loss.detach()), "mask_ratio": float(masked.float().mean())}

    def method_state(self) -> dict:
        return {"mask_generator": self.mask_generator.get_state()}

    def load_method_state(self, state: dict) -> None:
        self.mask_generator.set_state(state["mask_generator"])
