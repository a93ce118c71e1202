"""One interface over "a masked diffusion LM": logits for whole sequences or for selected positions only.

Training needs logits at a handful of positions out of hundreds; projecting every position onto a 126k vocabulary
is what runs out of memory. :meth:`DiffusionLM.logits_at` gathers the last hidden states at the wanted positions
before the output head runs (a forward pre-hook on ``get_output_embeddings()``), so only those rows are projected.
The trick is checked once per model on a tiny input against the full logits; a model where it does not hold falls
back to full logits, with one warning.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import warnings
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from dopsd.errors import DopsdError
from dopsd.models.layout import FULL, AttentionLayout, layout_from_config

# Forms of the padding mask the padding probe tries, in order (see DiffusionLM's ``mask_form``); a block-attention
# model always gets a 4D mask (its block structure cannot be written in 2D).
MASK_FORMS = ("2d", "4d_bool")
BLOCK_MASK_FORMS = ("4d_bool", "4d_additive")

# Tokens that end an assistant turn in common chat formats, looked up by name in the tokenizer's vocabulary.
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|end|>")


def positions_from(keys: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each row's first real token (``keys``: 1 = real, 0 = left padding)."""
    return (keys.long().cumsum(-1) - 1).clamp(min=0)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = may attend) as the additive float mask of ``dtype`` (0 or its most negative value)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


@contextlib.contextmanager
def head_sees_rows(model, source: torch.Tensor, expected: tuple[int, int] | None = None):
    """While inside, ``model``'s output head projects only the hidden states at ``source`` (batch, P) of each row:
    the logits come back as (batch, P, vocab). ``expected``: the (batch, length) the head must see, else
    :class:`_SelectionUnsupported` (a model whose head does not read the last hidden states)."""

    def gather_hidden(module, args):
        hidden = args[0]
        if expected is not None and tuple(hidden.shape[:2]) != expected:
            raise _SelectionUnsupported(f"output head saw hidden states of shape {tuple(hidden.shape)}")
        return (hidden.gather(1, source[..., None].expand(-1, -1, hidden.shape[-1])), *args[1:])

    handle = model.get_output_embeddings().register_forward_pre_hook(gather_hidden)
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the sampler and trainers need; none of them is ever a constant in dopsd.

    Attributes:
        mask: The mask token every response position starts as.
        eos: The end-of-sequence token, used to pad a finished response.
        pad: Left-padding token for batches of prompts of different lengths.
        stop: Every id that ends a response (EOS plus end-of-turn tokens); text is cut at the first one.
    """

    mask: int
    eos: int
    pad: int
    stop: tuple[int, ...]


def _first_id(value) -> int | None:
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def resolve_special_tokens(
    model: PreTrainedModel,
    tokenizer,
    *,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    stop_token_ids: tuple[int, ...] | None = None,
) -> SpecialTokens:
    """Special ids from, in order: the explicit option, the tokenizer, the model config (and generation config)."""
    config = model.config
    mask = next(
        (v for v in (mask_token_id, getattr(tokenizer, "mask_token_id", None), getattr(config, "mask_token_id", None))
         if v is not None),
        None,
    )
    if mask is None:
        name = getattr(config, "_name_or_path", "") or type(model).__name__
        raise DopsdError(
            f"model {name!r} has no mask token (neither its tokenizer nor its config defines one): pass its id with "
            "--mask-token-id, or turn an autoregressive model into a diffusion model with `dopsd convert`"
        )
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = next(
        (v for v in (eos_token_id, getattr(tokenizer, "eos_token_id", None), _first_id(config.eos_token_id),
                     _first_id(generation_eos)) if v is not None),
        None,
    )
    if eos is None:
        raise DopsdError("the model defines no EOS token: pass its id with --eos-token-id")
    pad = next(
        (v for v in (pad_token_id, getattr(tokenizer, "pad_token_id", None), getattr(config, "pad_token_id", None))
         if v is not None),
        eos,
    )
    if stop_token_ids is None:
        stop = {int(eos)}
        for value in (config.eos_token_id, generation_eos):
            if value is not None:
                stop.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        vocab = tokenizer.get_vocab() if tokenizer is not None else {}
        stop.update(vocab[name] for name in END_OF_TURN_TOKENS if name in vocab)
        stop_token_ids = tuple(sorted(stop))
    return SpecialTokens(mask=int(mask), eos=int(eos), pad=int(pad), stop=tuple(int(v) for v in stop_token_ids))


class DiffusionLM:
    """A Hugging Face masked diffusion LM plus what dopsd needs to drive it.

    Args:
        model: Any model whose forward takes ``input_ids`` (and ``attention_mask``) and returns ``.logits``.
        tokenizer: Its tokenizer (used for special ids and decoding); may be ``None`` when every id is given.
        tokens: Special ids; resolved from tokenizer and config when omitted.
        shift_logits: Logits at position i are read from position i-1, as Dream and converted AR models do.
        bidirectional_mask: Give the model a 4D additive mask with no causal part. Needed by autoregressive
            architectures converted with :func:`dopsd.models.convert.convert_causal_lm`, whose forward would otherwise
            build a causal mask. Same as ``mask_form="4d_additive"``.
        mask_form: How the padding mask reaches the model (see :data:`MASK_FORMS`): ``"2d"`` (the usual 0/1
            ``(batch, length)`` mask), ``"4d_bool"`` (``(batch, 1, length, length)``, True = may attend, as Dream's
            code wants) or ``"4d_additive"``. ``None`` lets the padding probe pick the first form that works.
        handles_padding: Whether a left-padded row computes what the unpadded row computes. ``None`` probes it once
            on a tiny input, trying each mask form; models whose remote code ignores the attention mask (LLaDA's)
            fail the probe, and the sampler then batches only prompts of equal length.
        layout: The attention layout (:class:`~dopsd.models.layout.AttentionLayout`): full, or block-causal with a
            block size. ``None`` reads it from the model's config (full when the config says nothing). A block model's
            forward passes need ``response_start`` (blocks are counted from the response's first token), and it gets
            its block-causal mask as a 4D mask.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer=None,
        *,
        tokens: SpecialTokens | None = None,
        shift_logits: bool = False,
        bidirectional_mask: bool = False,
        mask_form: str | None = None,
        handles_padding: bool | None = None,
        layout: AttentionLayout | None = None,
    ):
        self.model = model
        self.layout = layout or layout_from_config(getattr(model, "config", None)) or FULL
        self.tokenizer = tokenizer
        self.tokens = tokens or resolve_special_tokens(model, tokenizer)
        self.shift_logits = shift_logits
        self.bidirectional_mask = bidirectional_mask
        if bidirectional_mask:
            mask_form = "4d_additive"
        if mask_form is not None and mask_form not in MASK_FORMS + ("4d_additive",):
            raise ValueError(f"unknown mask form {mask_form!r}")
        if self.layout.is_block and mask_form == "2d":
            mask_form = None  # a block structure needs a 4D mask: the probe picks the 4D form this model takes
        # Results of one-off checks, shared with every with_runner() view (a shallow copy shares this dict).
        self._checks: dict = {}
        if mask_form is not None:
            self._checks["mask_form"] = mask_form
        if handles_padding is not None:
            self._checks["padding"] = handles_padding
            self._checks.setdefault("mask_form", self._mask_forms()[0])
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # see through PEFT wrappers
        self._accepts_position_ids = "position_ids" in inspect.signature(base.forward).parameters
        self.runner = model
        # Load-time compatibility fixes applied to this model's remote code (see dopsd.models.compat).
        self.compat_fixes: tuple[str, ...] = ()

    def _mask_forms(self) -> tuple[str, ...]:
        """The mask forms this model may take, in the order the padding probe tries them."""
        if self.layout.is_block:
            return ("4d_additive",) if self.bidirectional_mask else BLOCK_MASK_FORMS
        return MASK_FORMS

    def with_runner(self, runner) -> "DiffusionLM":
        """A view whose forward passes go through ``runner`` (e.g. the DDP/FSDP wrapper accelerate returns).

        Hooks and configuration still come from the unwrapped ``model``; checks already done are shared.
        """
        view = copy.copy(self)
        view.runner = runner
        return view

    def rewrap(self, model) -> "DiffusionLM":
        """The same settings around another model (a PEFT-wrapped or frozen copy of this one)."""
        view = DiffusionLM(model, self.tokenizer, tokens=self.tokens, shift_logits=self.shift_logits,
                           bidirectional_mask=self.bidirectional_mask, mask_form=self._checks.get("mask_form"),
                           handles_padding=self._checks.get("padding"), layout=self.layout)
        view.compat_fixes = self.compat_fixes
        return view

    @property
    def mask_form(self) -> str | None:
        """The mask form in use (``None`` until the padding probe has chosen one)."""
        return self._checks.get("mask_form")

    def check_token_ids(self) -> None:
        """Every special id must index the model's embedding table (checked when a model is loaded, so that a wrong
        --mask-token-id fails in one line; a causal teacher viewed through this class never sees the mask id)."""
        embeddings = self.model.get_input_embeddings() if hasattr(self.model, "get_input_embeddings") else None
        rows = getattr(embeddings, "num_embeddings", None)
        if rows is None:
            return
        for name, value in (("mask", self.tokens.mask), ("eos", self.tokens.eos), ("pad", self.tokens.pad)):
            if not 0 <= value < rows:
                raise DopsdError(f"{name} token id {value} is outside this model's vocabulary (ids 0-{rows - 1}): "
                                 f"check --{name}-token-id")

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the model is configured for (``None`` when its config does not say)."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "max_sequence_length", "n_positions", "n_ctx", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def check_fits(self, prompt_length: int, gen_length: int) -> None:
        """Refuses, before any work, a prompt plus response longer than the model's positions."""
        limit = self.max_positions
        if limit is not None and prompt_length + gen_length > limit:
            raise DopsdError(f"a prompt of {prompt_length} tokens plus a response of {gen_length} needs "
                             f"{prompt_length + gen_length} positions, more than this model's {limit}: use a shorter "
                             "prompt or gen_length")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def vocab_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[0]

    def _model_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      response_start: int | None = None) -> dict:
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None
        if self.layout.is_block:
            if response_start is None:
                raise ValueError("a block-attention model needs response_start (the column where the response starts)")
            allowed = self.layout.mask(attention_mask, input_ids.shape[1], response_start, input_ids.shape[0],
                                       input_ids.device)
            return self._four_d_inputs(input_ids, attention_mask, allowed)
        if attention_mask is not None and "mask_form" not in self._checks:
            self.handles_padding  # noqa: B018  (the probe picks the mask form this model understands)
        form = self._checks.get("mask_form", MASK_FORMS[0])
        inputs = {"input_ids": input_ids}
        if attention_mask is not None and self._accepts_position_ids:
            inputs["position_ids"] = positions_from(attention_mask)
        if form == "4d_additive":
            keys = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
            inputs["attention_mask"] = additive_mask(keys, self.dtype)[:, None, None, :]
        elif attention_mask is not None and form == "4d_bool":
            # Key mask repeated for every query row: padded rows attend to real tokens, so no row is all-masked.
            keys = attention_mask.bool()
            inputs["attention_mask"] = keys[:, None, None, :].expand(-1, 1, keys.shape[1], -1)
        elif attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        return inputs

    def _four_d_inputs(self, input_ids, attention_mask, allowed, position_ids=None) -> dict:
        """Inputs with a full (batch, 1, queries, keys) mask ``allowed`` (True = may attend) in this model's 4D form."""
        if "mask_form" not in self._checks:
            if self.bidirectional_mask:
                self._checks["mask_form"] = "4d_additive"
            else:
                self.handles_padding  # noqa: B018  (the probe picks the 4D form this model understands)
        if "block_causal" not in self._checks:
            self._checks["block_causal"] = None  # being checked: the check's own passes come through here
            try:
                with _quiet_probe(self.model), torch.no_grad():
                    self._checks["block_causal"] = self._probe_block_causal()
            except Exception:
                del self._checks["block_causal"]
                raise
        inputs = {"input_ids": input_ids}
        if position_ids is None and attention_mask is not None and self._accepts_position_ids:
            position_ids = positions_from(attention_mask)
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        four_d = additive_mask(allowed, self.dtype) if self._checks["mask_form"] == "4d_additive" else allowed
        inputs["attention_mask"] = four_d
        return inputs

    def _shift(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1) if self.shift_logits else logits

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               response_start: int | None = None) -> torch.Tensor:
        """Logits of shape (batch, length, vocab) at every position. ``response_start``: the column where the
        response starts, which a block-attention model counts its blocks from (ignored by full attention)."""
        return self._shift(self.runner(**self._model_inputs(input_ids, attention_mask, response_start)).logits)

    def logits_at(
        self, input_ids: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None = None,
        response_start: int | None = None,
    ) -> torch.Tensor:
        """Logits at ``positions`` only: (batch, P, vocab), equal to ``logits(...)`` gathered at those positions.

        ``positions`` is (P,) for the same positions in every row, or (batch, P) per row; repeats are allowed.
        """
        if positions.dim() == 1:
            positions = positions.expand(input_ids.shape[0], -1)
        source = (positions - 1).clamp(min=0) if self.shift_logits else positions
        return self._logits_from(self._model_inputs(input_ids, attention_mask, response_start), source)

    def state_logits_at(self, input_ids: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None,
                        response_start: int, clean: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at ``positions`` of partly masked states ``[prompt | state]`` (the response from
        ``response_start``), (batch, P, vocab).

        With a block-attention model and ``clean`` (batch, gen_length), the clean response whose blocks precede
        each state block: every response block of the state is computed as the sampler computes it while decoding
        that block (the clean blocks before it as context), all blocks in one forward of the layout ``[prompt | clean
        | state]`` (length prompt + 2 * gen_length, BD3LM's vectorised training layout). Equal to one pass per block
        in which the blocks before it are clean. Otherwise (full attention, or no ``clean``) this is
        :meth:`logits_at`."""
        if not (self.layout.is_block and clean is not None):
            return self.logits_at(input_ids, positions, attention_mask, response_start)
        if positions.dim() == 1:
            positions = positions.expand(input_ids.shape[0], -1)
        if not self._accepts_position_ids:
            raise DopsdError(f"{type(self.model).__name__} takes no position_ids, which the one-pass block layout "
                             "needs")
        batch, width = input_ids.shape[0], response_start
        gen_length = input_ids.shape[1] - width
        clean = clean.to(input_ids.device)
        ids = torch.cat([input_ids[:, :width], clean, input_ids[:, width:]], dim=1)
        keys = (torch.ones(batch, width + gen_length, dtype=torch.long, device=ids.device) if attention_mask is None
                else attention_mask[:, : width + gen_length])
        counted = positions_from(keys)
        position_ids = torch.cat([counted, counted[:, width:]], dim=1)
        allowed = self.layout.clean_noisy_mask(None if attention_mask is None else keys, width, gen_length, batch,
                                               ids.device)
        inputs = self._four_d_inputs(ids, keys, allowed, position_ids)
        source = positions + gen_length  # the state's copy of each response position
        if self.shift_logits:
            # A block's first position reads the hidden state before it: the clean block before (or the prompt).
            first = (positions - width) % self.layout.block_size == 0
            source = torch.where(first, positions - 1, source - 1)
        return self._logits_from(inputs, source)

    def _logits_from(self, inputs: dict, source: torch.Tensor) -> torch.Tensor:
        """Logits read from the hidden states at ``source`` (batch, P): only those rows are projected when the model
        allows it (checked once), else full logits gathered."""
        if "selection" not in self._checks:
            with _quiet_probe(self.model):
                self._checks["selection"] = self._check_selection(inputs)
        if not self._checks["selection"]:
            full = self.runner(**inputs).logits
            return full.gather(1, source[..., None].expand(-1, -1, full.shape[-1]))
        return self._projected_at(inputs, source)

    def _projected_at(self, inputs: dict, source) -> torch.Tensor:
        """Runs the model with the output head seeing only the hidden states at ``source``."""
        head = self.model.get_output_embeddings()
        if head is None or isinstance(head, torch.nn.Embedding):
            raise _SelectionUnsupported("the model exposes no separate output head module")
        with head_sees_rows(self.model, source, expected=tuple(inputs["input_ids"].shape)):
            logits = self.runner(**inputs).logits
        if tuple(logits.shape[:2]) != tuple(source.shape):
            raise _SelectionUnsupported(f"the model returned logits of shape {tuple(logits.shape)}")
        return logits

    @torch.no_grad()
    def _check_selection(self, inputs: dict) -> bool:
        """Compares selected-row logits with full logits on the first row's first few tokens of ``inputs``."""
        ids = inputs["input_ids"]
        length = min(ids.shape[1], 8)
        probe = {"input_ids": ids[:1, -length:]}
        if "position_ids" in inputs:
            probe["position_ids"] = inputs["position_ids"][:1, -length:]
        if "attention_mask" in inputs:
            mask = inputs["attention_mask"][:1]
            probe["attention_mask"] = mask[..., -length:, -length:] if mask.dim() == 4 else mask[:, -length:]
        source = torch.arange(length - 1, -1, -1, device=ids.device)[None]
        try:
            picked = self._projected_at(probe, source)
            full = self.runner(**probe).logits[:, source[0]]
            works = picked.shape == full.shape and torch.allclose(picked, full, **_tolerance(full))
            reason = "selected-position logits differ from full logits"
        except _SelectionUnsupported as error:
            works, reason = False, str(error)
        if not works:
            warnings.warn(
                f"{type(self.model).__name__}: cannot project selected positions only ({reason}); "
                "computing full logits and gathering, which needs more memory",
                stacklevel=4,
            )
        return works

    @property
    def handles_padding(self) -> bool:
        """Whether left padding leaves a row's logits unchanged (probed once when not given)."""
        if "padding" not in self._checks:
            with _quiet_probe(self.model):
                self._checks["padding"] = self._probe_padding()
        return self._checks["padding"]

    @torch.no_grad()
    def _probe_padding(self) -> bool:
        """Tries each mask form (or the one given) and keeps the first under which padding changes nothing."""
        tokens = self.tokens
        forms = [self._checks["mask_form"]] if "mask_form" in self._checks else list(self._mask_forms())
        row = torch.tensor([[tokens.eos, tokens.mask, tokens.eos, tokens.mask, tokens.mask]], device=self.device)
        # With shifted logits a row's first position reads the position before it (padding, when padded): it
        # predicts no token of any response, so it is left out of the comparison.
        start = 1 if self.shift_logits else 0
        padded = torch.cat([torch.full((1, 3), tokens.pad, device=self.device), row], dim=1)
        mask = torch.ones_like(padded)
        mask[:, :3] = 0
        alone = None
        for form in forms:
            self._checks["mask_form"] = form
            try:
                # A block model's unpadded row takes a (block-causal) mask too: in the form under test.
                if alone is None or self.layout.is_block:
                    alone = self.logits(row, response_start=row.shape[1])[:, start:]
                together = self.logits(padded, mask, response_start=padded.shape[1])[:, 3 + start :]
            except Exception:  # noqa: BLE001  (a model that rejects this form of mask)
                continue
            if together.shape == alone.shape and bool(torch.allclose(alone, together, **_tolerance(alone))):
                return True
        # No form makes padding harmless: the mask is then never needed (equal-length batches only).
        self._checks["mask_form"] = forms[0]
        return False

    def _probe_block_causal(self) -> bool:
        """A block model must honour the block mask: changing a later block leaves the earlier columns' logits
        unchanged. A model whose code ignores the attention mask (LLaDA's) would run full attention: refused."""
        tokens, size = self.tokens, self.layout.block_size
        row = torch.tensor([[tokens.eos] + [tokens.mask] * (2 * size)], device=self.device)
        changed = row.clone()
        changed[0, 1 + size:] = tokens.eos
        before, after = self.logits(row, response_start=1), self.logits(changed, response_start=1)
        if not torch.allclose(before[:, : 1 + size], after[:, : 1 + size], **_tolerance(before)):
            raise DopsdError(f"{type(self.model).__name__} ignores the attention mask, so it cannot run block "
                             f"attention (blocks of {size}): drop --block-size, or use a model whose code takes a 4D "
                             "attention mask")
        return True

    def decode(self, token_ids) -> str:
        """Text of a response: everything before the first stop token, special tokens dropped."""
        ids = [int(t) for t in token_ids]
        for index, token in enumerate(ids):
            if token in self.tokens.stop:
                ids = ids[:index]
                break
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class _SelectionUnsupported(RuntimeError):
    pass


@contextlib.contextmanager
def _quiet_probe(model):
    """Runs a check in eval mode (no dropout) and leaves the random number streams as they were, so a check
    neither fails on dropout noise nor shifts a seeded training run."""
    training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
            yield
    finally:
        model.train(training)


def _tolerance(reference: torch.Tensor) -> dict:
    scale = float(reference.abs().max()) or 1.0
    relative = 1e-4 if reference.dtype in (torch.float32, torch.float64) else 3e-2
    return {"rtol": relative, "atol": relative * scale}
