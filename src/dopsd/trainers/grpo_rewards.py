"""diffu-GRPO's rewards: the task's correctness reward, scaled per task, plus d1-style credit for
the ``<reasoning>``/``<answer>`` tags when the prompt asks for them.

d1's format regexes had no DOTALL, so multi-line reasoning never earned the structure credit; these do.
"""

from __future__ import annotations

import re

from dopsd.tasks import Example, Task

# d1 pays 2.0 for a correct GSM8K or MATH answer; Countdown (1 / 0.1 / 0) and Sudoku (cell score) keep their scale.
CORRECTNESS_SCALE = {"gsm8k": 2.0, "math500": 2.0}

LOOSE_FORMAT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)
STRICT_FORMAT = re.compile(r"\s*<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\s*", re.DOTALL)
TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
LOOSE_CREDIT, STRICT_CREDIT, TAG_CREDIT = 0.5, 0.5, 0.125  # d1's weights: at most 1.5 in all


def correctness_scale(task_name: str, override: float | None = None) -> float:
    """The factor on the task's reward: ``override`` when given, else 2.0 for GSM8K/MATH500 and 1.0 otherwise."""
    return override if override is not None else CORRECTNESS_SCALE.get(task_name, 1.0)


def format_reward(completion: str) -> float:
    """0.5 for reasoning-then-answer tags anywhere, 0.5 more when the completion is exactly that, one tag per line,
    and 0.125 for each of the four tags that appears exactly once."""
    reward = LOOSE_CREDIT if LOOSE_FORMAT.search(completion) else 0.0
    reward += STRICT_CREDIT if STRICT_FORMAT.fullmatch(completion) else 0.0
    reward += TAG_CREDIT * sum(completion.count(tag) == 1 for tag in TAGS)
    return reward


def rollout_reward(task: Task, example: Example, completion: str, style: str, scale: float) -> float:
    """What one sampled completion earns: ``scale * task.reward`` plus the format reward for ``instruct`` prompts
    (``compact`` prompts ask for a bare answer, so tags earn nothing there)."""
    reward = scale * task.reward(example, completion)
    return reward + format_reward(completion) if style == "instruct" else reward
