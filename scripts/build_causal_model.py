"""OPDLM's bundled teacher: a small LlamaForCausalLM trained autoregressively on a bundled task's training split.

Run through ``python scripts/build_base_models.py --causal [--task sudoku]``; writes ``<task>/causal/`` (model,
character tokenizer without a mask token, ``card.json`` with its held-out greedy accuracy).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from dopsd.bundled import bundled_data_path
from dopsd.models import build_char_tokenizer
from dopsd.models.adapter import SpecialTokens
from dopsd.models.causal import causal_view, greedy_decode
from dopsd.presets import TASK_PRESETS
from dopsd.sampling.padding import left_pad_with_responses
from dopsd.tasks import get_task, load_examples

CAUSAL_RECIPES = {
    "sudoku": dict(
        model=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=64),
        batch_size=64, learning_rate=2e-3, warmup_steps=100, max_updates=1500,
    ),
}


def tokens_of(tokenizer) -> SpecialTokens:
    # A causal LM has no mask token; the id after the vocabulary stands in (never produced, never fed).
    return SpecialTokens(mask=len(tokenizer), eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id,
                         stop=(tokenizer.eos_token_id,))


def encode(tokenizer, task, examples, gen_length: int):
    prompts = [tokenizer(task.compact_prompt(e), add_special_tokens=False)["input_ids"] for e in examples]
    responses = []
    for example in examples:
        ids = tokenizer(task.reference_completion(example, "compact"), add_special_tokens=False)["input_ids"]
        responses.append(ids + [tokenizer.eos_token_id] * (gen_length - len(ids)))
    return prompts, torch.tensor(responses)


def heldout_accuracy(model, tokenizer, task, examples, gen_length: int) -> float:
    lm = causal_view(model, tokenizer, tokens_of(tokenizer))
    prompts, _ = encode(tokenizer, task, examples, gen_length)
    model.eval()
    outputs = greedy_decode(lm, prompts, gen_length, batch_size=250)
    model.train()
    return sum(task.score(e, lm.decode(o)).correct for e, o in zip(examples, outputs)) / len(examples)


def build_causal(task_name: str, output: Path, max_updates: int | None = None) -> dict:
    recipe = CAUSAL_RECIPES[task_name]
    task, gen_length = get_task(task_name), TASK_PRESETS[task_name]["gen_length"]
    train = load_examples(task, bundled_data_path(task_name, "train"), "train")
    heldout = load_examples(task, bundled_data_path(task_name, "heldout"), "test")
    tokenizer = build_char_tokenizer(with_mask=False)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
                         **recipe["model"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["learning_rate"], weight_decay=0.0)
    updates, warmup = max_updates or recipe["max_updates"], recipe["warmup_steps"]
    # Linear warmup, then cosine decay to a tenth of the peak.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(step, updates) / updates))))
    order, rng, began, log = [], random.Random(0), time.perf_counter(), []
    for update in range(1, updates + 1):
        if len(order) < recipe["batch_size"]:
            fresh = list(range(len(train)))
            rng.shuffle(fresh)
            order += fresh
        batch = [train[i] for i in order[: recipe["batch_size"]]]
        del order[: recipe["batch_size"]]
        prompts, responses = encode(tokenizer, task, batch, gen_length)
        ids, attention, width = left_pad_with_responses(prompts, responses, tokenizer.pad_token_id)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
        loss = F.cross_entropy(logits[:, width - 1 : -1].transpose(1, 2), ids[:, width:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if update % 250 == 0 or update == updates:
            accuracy = heldout_accuracy(model, tokenizer, task, heldout[:200], gen_length)
            log.append({"update": update, "loss": float(loss), "heldout_200": accuracy,
                        "seconds": round(time.perf_counter() - began, 1)})
            print(json.dumps(log[-1]), flush=True)
    model.eval()
    accuracy = heldout_accuracy(model, tokenizer, task, heldout, gen_length)
    folder = output / task_name / "causal"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    card = {"task": task_name, "kind": "causal LM (LlamaForCausalLM), next-token cross-entropy", "updates": updates,
            "heldout_accuracy": accuracy, "n": len(heldout), "seconds": round(time.perf_counter() - began, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "log": log,
            "recipe": {k: v for k, v in recipe.items()}}
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
