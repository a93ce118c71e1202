"""Masked-diffusion SFT (LLaDA's objective): the baseline, and how the bundled base models are made.

Each response (the task's reference completion, padded with EOS to ``gen_length`` as LLaDA pads) is masked token by
token with probability t ~ U(eps, 1), drawn per example; the loss is the cross-entropy on the masked tokens weighted
by 1/t, summed over the response and divided by its length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dopsd.config import option
from dopsd.errors import DopsdError
from dopsd.sampling.padding import group_by_length, left_pad_with_responses
from dopsd.tasks import default_prompt_style, encode_prompts
from dopsd.trainers.base import Trainer
from dopsd.trainers.config import TrainingConfig, check, check_at_least_one
from dopsd.trainers.salts import SFT_MASKING_SALT


@dataclass
class SFTConfig(TrainingConfig):
    """Masked-diffusion SFT on (prompt, reference completion) pairs; completions are padded with EOS to
    ``gen_length`` (and evaluated at it)."""

    output_dir: str = "runs/sft"
    learning_rate: float = option(1e-4, "AdamW learning rate (1e-4: what trains the bundled models from scratch)",
                                  "optimization")
    batch_size: int = option(16, "examples per process per update", "method")
    min_mask_ratio: float = option(1e-3, "lower end eps of the masking ratio t ~ U(eps, 1)", "method")

    def __post_init__(self):
        super().__post_init__()
        check_at_least_one(self, "batch_size")
        check(0.0 < self.min_mask_ratio < 1.0, "min_mask_ratio", self.min_mask_ratio, "must be in (0, 1)")


class SFTTrainer(Trainer):
    """``SFTTrainer(model=..., task=..., config=SFTConfig(...)).train()``."""

    config_class = SFTConfig
    progress_keys = ("loss", "eval_accuracy")

    def __init__(self, *, model=None, tokenizer=None, task=None, config: SFTConfig | None = None):
        super().__init__(model=model, tokenizer=tokenizer, task=task, config=config)
        self.mask_generator = self.generator(SFT_MASKING_SALT)

    def encode_prompts(self, examples) -> list[list[int]]:
        return encode_prompts(self.base_lm, self.task, examples, self.config.prompt_style)

    def check_data(self) -> None:
        """Every reference completion must fit gen_length with an EOS: refused before anything is written."""
        super().check_data()
        for example in self.train_examples:
            self.response_ids(example)

    def response_ids(self, example) -> list[int]:
        """The reference completion's token ids; one error line when it has none or does not fit gen_length."""
        lm, config = self.base_lm, self.config
        style = config.prompt_style or default_prompt_style(lm)
        try:
            completion = self.task.reference_completion(example, style)
        except (KeyError, ValueError) as error:
            raise DopsdError(f"example {example.index}: no reference completion ({error})") from error
        response = lm.tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(response) >= config.gen_length:
            raise DopsdError(f"example {example.index}: its {len(response)}-token completion does not fit "
                             f"gen_length={config.gen_length} with an EOS: raise --gen-length")
        return response

    def encode_responses(self, examples) -> torch.Tensor:
        """(batch, gen_length) reference completions, each padded with EOS to ``gen_length`` as LLaDA pads."""
        lm, config = self.base_lm, self.config
        responses = [self.response_ids(example) for example in examples]
        return torch.tensor([response + [lm.tokens.eos] * (config.gen_length - len(response))
                             for response in responses], device=self.accelerator.device)

    def compute_update(self) -> dict:
        examples = self.next_examples(self.config.batch_size)
        return masked_diffusion_backward(self, self.encode_prompts(examples), self.encode_responses(examples),
                                         self.mask_generator, self.config.min_mask_ratio)


def masked_diffusion_backward(trainer: Trainer, prompts: list[list[int]], responses: torch.Tensor,
                              generator: torch.Generator, min_mask_ratio: float) -> dict:
    """LLaDA's objective on (prompt, response) pairs, backward included: each response token masked with
    probability t ~ U(eps, 1) drawn per example, the cross-entropy of the masked tokens weighted by 1/t, summed over
    the response, divided by its length, averaged over the examples. One pass for the whole batch; a model that
    ignores the attention mask gets one pass per prompt length. On a block-attention model every masked block reads
    the clean blocks before it (BD3LM's objective, its clean/noisy layout in one pass): each block's noise is
    then an independent draw of the same ratio."""
    lm = trainer.base_lm
    count, gen_length = responses.shape
    device = responses.device
    ratio = min_mask_ratio + (1 - min_mask_ratio) * torch.rand((count, 1), generator=generator, device=device)
    masked = torch.rand(responses.shape, generator=generator, device=device) < ratio
    noisy = torch.where(masked, torch.full_like(responses, lm.tokens.mask), responses)
    groups = [list(range(count))] if lm.handles_padding else group_by_length(map(len, prompts))

    def loss_of(rows):
        ids, attention, width = left_pad_with_responses([prompts[i] for i in rows], noisy[rows], lm.tokens.pad)
        positions = width + torch.arange(gen_length, device=device)
        logits = trainer.lm.state_logits_at(ids, positions, attention, width, clean=responses[rows])
        cross_entropy = F.cross_entropy(logits.float().transpose(1, 2), responses[rows], reduction="none")
        per_example = (cross_entropy * masked[rows] / ratio[rows]).sum(1) / gen_length
        return per_example.sum() / count, None

    loss = sum(value for value, _ in trainer.backward_micro_batches(groups, loss_of))
    # tokens: the length of every sequence trained on (prompt + response), OPDLM's cost measure
    tokens = sum(map(len, prompts)) + responses.numel()
    return {"loss": loss, "mask_ratio": float(masked.float().mean()), "tokens": tokens}
