"""Autoregressive (causal) LMs as OPDLM's teacher: loading one, checking it shares the student's tokenizer, and
greedy left-to-right decoding.

The teacher is wrapped in a :class:`DiffusionLM` that keeps causal attention and no logit shift, so ``logits_at``
projects only the positions asked for; it borrows the student's special ids (a causal LM has no mask token).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from dopsd.errors import DopsdError
from dopsd.models.adapter import DiffusionLM, SpecialTokens
from dopsd.models.convert import diffusion_settings
from dopsd.models.loading import parse_dtype


def is_causal_config(config) -> bool:
    """A causal LM that has not been converted into a diffusion LM."""
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not diffusion_settings(config)


def load_causal_lm(path: str | Path, *, dtype="auto", gguf_file: str | None = None, role: str = "teacher",
                   trust_remote_code: bool = False):
    """``(model, tokenizer)`` of a causal LM in eval mode; anything else (a diffusion LM, a converted model, a
    folder that is no model) is one :class:`DopsdError` naming ``role``.

    ``trust_remote_code`` is always passed on as given (never ``None``), so transformers never asks "Do you wish to
    run the custom code? [y/N]": without it, a folder that ships its code is refused in one line that says so."""
    path = str(path)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    trust = {"trust_remote_code": bool(trust_remote_code)}
    if not trust_remote_code and _ships_code(path):
        raise DopsdError(f"the {role} {path!r} ships its own code: pass --trust-remote-code to run it")
    try:
        config = AutoConfig.from_pretrained(path, **trust, **extra)
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load the {role} from {path!r}: {str(error).splitlines()[0]}") from error
    if not is_causal_config(config):
        kind = "a dopsd-converted diffusion LM" if diffusion_settings(config) else f"a {config.model_type!r} model"
        raise DopsdError(f"the {role} {path!r} is {kind}, not an autoregressive (causal) LM: give the original "
                         "causal LM")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=parse_dtype(dtype), **trust, **extra)
        tokenizer = AutoTokenizer.from_pretrained(path, **trust, **extra)
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load the {role} from {path!r}: {str(error).splitlines()[0]}") from error
    return model.eval(), tokenizer


def _ships_code(path: str) -> bool:
    """Whether a local model folder's config.json names code of its own (``auto_map``) for a model type transformers
    does not have (a library type with a leftover ``auto_map`` loads without the code)."""
    import json

    config = Path(path) / "config.json"
    try:
        declared = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(declared, dict) or not declared.get("auto_map"):
        return False
    return declared.get("model_type") not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def check_same_tokenizer(student_tokenizer, teacher_tokenizer, mask_id: int) -> None:
    """The student's vocabulary must be the teacher's plus, at most, the mask token conversion added (a teacher whose
    vocabulary already holds that token at the same id, as SDAR-style students' causal twins may, matches too)."""
    student = {token: index for token, index in student_tokenizer.get_vocab().items() if index != mask_id}
    teacher = {token: index for token, index in teacher_tokenizer.get_vocab().items()
               if not (index == mask_id and student_tokenizer.convert_ids_to_tokens(mask_id) == token)}
    if student != teacher:
        differing = sorted(set(student.items()) ^ set(teacher.items()), key=lambda item: item[1])[:3]
        raise DopsdError(f"the teacher's tokenizer differs from the student's ({len(teacher)} vs {len(student)} "
                         f"tokens besides the mask; e.g. {differing}): the teacher must be the causal LM the student "
                         "was converted from")


def causal_view(model, tokenizer, tokens: SpecialTokens) -> DiffusionLM:
    """The causal LM behind the :class:`DiffusionLM` interface: causal attention, logits not shifted."""
    return DiffusionLM(model, tokenizer, tokens=tokens, shift_logits=False, bidirectional_mask=False,
                       handles_padding=True)


@torch.no_grad()
def greedy_decode(lm: DiffusionLM, prompts: list[list[int]], gen_length: int, batch_size: int = 64) -> torch.Tensor:
    """(prompts, gen_length) greedy left-to-right continuations of a causal LM, each padded with EOS after its first
    stop token. Left-padded batches, positions counted from each row's first real token; no cache (short lengths)."""
    tokens, rows = lm.tokens, []
    stop = torch.tensor(tokens.stop, device=lm.device)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), tokens.pad, dtype=torch.long, device=lm.device)
        attention = torch.zeros_like(ids)
        for row, prompt in enumerate(chunk):
            ids[row, width - len(prompt):] = torch.as_tensor(prompt, device=lm.device)
            attention[row, width - len(prompt):] = 1
        done = torch.zeros(len(chunk), dtype=torch.bool, device=lm.device)
        for _ in range(gen_length):
            last = torch.tensor([ids.shape[1] - 1], device=lm.device)
            logits = lm.logits_at(ids, last, attention)[:, 0]
            if tokens.mask < logits.shape[-1]:
                logits[:, tokens.mask] = -torch.inf
            chosen = torch.where(done, torch.full_like(done, tokens.eos, dtype=torch.long), logits.argmax(-1))
            done |= torch.isin(chosen, stop)
            ids = torch.cat([ids, chosen[:, None]], dim=1)
            attention = torch.cat([attention, torch.ones_like(chosen[:, None])], dim=1)
        rows.append(ids[:, width:])
    return torch.cat(rows).cpu()
