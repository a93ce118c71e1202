"""Every reward and filter goes through the task's extraction: a hedge earns nothing."""

import pytest
import torch
from conftest import fixed_logits_lm

from dopsd.models import build_char_tokenizer
from dopsd.sampling import SamplerConfig, passk_rollout
from dopsd.tasks import get_task
from dopsd.tasks.base import Example
from dopsd.trainers.grpo_rewards import rollout_reward

HEDGED = "<reasoning>\n20 - 2 = 18\n</reasoning>\n<answer>\n\\boxed{19} or \\boxed{18}\n</answer>"
CORRECT = "<reasoning>\n20 - 2 = 18\n</reasoning>\n<answer>\n\\boxed{18}\n</answer>"


def test_a_hedge_earns_only_the_format_reward_under_grpo():
    task, example = get_task("gsm8k"), Example(0, "q", "18")
    assert rollout_reward(task, example, CORRECT, "instruct", 2.0) == 3.5  # 2 for the answer, 1.5 for the format
    assert rollout_reward(task, example, HEDGED, "instruct", 2.0) == 1.5  # no more than a wrong answer earns:
    assert rollout_reward(task, example, CORRECT.replace("{18}", "{19}"), "instruct", 2.0) == 1.5
    assert rollout_reward(task, example, "The answer is 19 or 18.", "compact", 2.0) == 0.0
    countdown = get_task("countdown")
    instance = Example(0, "30,100,93", "37", {"numbers": [30, 100, 93], "target": 37})
    assert countdown.reward(instance, "\\boxed{100-93+30}") == 1.0
    assert countdown.reward(instance, "\\boxed{100*93/30} or \\boxed{100-93+30}") == 0.0  # not even the 0.1


def spelled(text: str, prompt_width: int):
    """A mock LM whose greedy response spells ``text`` then EOS, whatever the prompt."""
    tokenizer = build_char_tokenizer()
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    table = torch.zeros(prompt_width + len(ids), len(tokenizer))
    for position, token in enumerate(ids):
        table[prompt_width + position, token] = 10.0
    lm = fixed_logits_lm(table, mask=tokenizer.mask_token_id, eos=tokenizer.eos_token_id)
    lm.tokenizer = tokenizer
    return lm, len(ids)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("completion", "score"), [(HEDGED, 0.0), (CORRECT, 1.0)])
def test_the_dopsd_filter_drops_a_hedged_rollout(completion, score):
    task, example = get_task("gsm8k"), Example(0, "q", "18")
    lm, length = spelled(completion, prompt_width=4)
    config = SamplerConfig(gen_length=length, block_length=length, steps=length)
    result = passk_rollout(lm, task, [example], [[5, 6, 7, 8]], first=config, resample=config, passk=2,
                           generator=torch.Generator().manual_seed(0))
    assert result.completions == [completion]
    assert result.scores == [score] and result.solved == [score == 1.0]
    assert result.rounds == [1 if score else 2]  # the hedge is resampled, never kept as solved
