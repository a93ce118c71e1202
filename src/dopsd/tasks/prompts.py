"""Prompts as token ids: a task's rendered prompts through a model's tokenizer, and which style a model reads."""

from __future__ import annotations

from collections.abc import Sequence

from dopsd.tasks.base import Example, Task

PROMPT_STYLES = ("instruct", "compact")


def default_prompt_style(lm) -> str:
    """The built-in character-level models read compact prompts; real LLMs read d1-style instructions."""
    return "compact" if lm.model.config.model_type == "dopsd_mdm" else "instruct"


def encode_prompts(lm, task: Task, examples: Sequence[Example], style: str | None = None,
                   reference: bool = False) -> list[list[int]]:
    """Token ids of each rendered prompt (``style`` None: the model's default; with ``reference``: the AR-style OPSD
    teacher's); a chat template already holds its special tokens, so none are added."""
    style = style or default_prompt_style(lm)
    templated = style == "instruct" and bool(getattr(lm.tokenizer, "chat_template", None))
    texts = [task.render_prompt(example, style=style, tokenizer=lm.tokenizer, reference=reference)
             for example in examples]
    return [lm.tokenizer(text, add_special_tokens=not templated)["input_ids"] for text in texts]
