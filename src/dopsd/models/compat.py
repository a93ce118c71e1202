"""Load-time compatibility fixes for remote-code diffusion LMs written for transformers 4 (LLaDA's, Dream's).

dopsd requires transformers 5; the Hub code of LLaDA (written for 4.38) and Dream (4.46) does not run under it
unedited. Instead of asking for old transformers, the loader applies these fixes, each keyed on the problem it
detects (a missing attribute, a signature, a bad buffer), never on a model's name, and only to classes defined in
remote code (``transformers_modules.*``):

``post_init``
    A model whose ``__init__`` never calls ``post_init()`` (LLaDA) lacks ``all_tied_weights_keys`` and the other
    properties transformers 5 reads while loading; it is called once construction finishes.
``tie_weights``
    An override without ``missing_keys`` / ``**kwargs`` (LLaDA) is called with them; they are dropped.
``tied_weights_list``
    ``_tied_weights_keys`` given as a list (Dream) instead of a ``{target: source}`` mapping: each listed weight is
    tied to the input embeddings, what transformers 4 did with the list.
``rope_default``
    ``ROPE_INIT_FUNCTIONS["default"]`` no longer exists (Dream: ``KeyError: 'default'``); remote modules that use the
    table get a copy with the plain RoPE frequencies under that key.
``generation_validate``
    A ``GenerationConfig`` subclass whose ``validate`` takes no ``**kwargs`` (Dream's, called with ``strict=`` when
    loading and saving) ignores the keywords it does not name.
``use_cache``
    transformers 5 drops ``use_cache`` from configs that pass it as a plain keyword (LLaDA's), and the model's
    forward reads it; a config without it gets ``use_cache = False`` (diffusion LMs do not cache).
``loss_kwargs``
    ``LossKwargs`` is gone from ``transformers.utils`` (SDAR's code imports it to annotate ``**kwargs``); a remote
    module whose import fails on it gets an empty ``TypedDict`` of that name (see :func:`import_remote_class`).
``fuse_cross_entropy``
    A remote config asking for a fused linear cross-entropy (SDAR's ``fuse_cross_entropy``) makes the forward return
    ``logits=None`` in training mode, expecting a loss its own trainer patches in; dopsd computes its losses from the
    logits, so the flag is turned off.
``attention_type``
    transformers 5's decoder layers no longer carry ``attention_type`` (the layer types moved to
    ``config.layer_types``); remote code subclassing a library model that reads it from each layer (dllm's A2D
    models) gets it set from the config on every layer that lacks it.
``inv_freq``
    transformers 5 builds models on the meta device and materialises non-persistent buffers with ``torch.empty``,
    relying on ``_init_weights`` to fill them; remote ``_init_weights`` methods (Dream's) do not, so RoPE reads
    uninitialised memory (junk or NaN logits). Every ``inv_freq`` buffer is recomputed from the config after loading.

After loading, :func:`check_rotary_tables` and :func:`check_finite_logits` stop with one line when a rotary table is
not what the config implies or the logits of a tiny input are not finite.
"""

from __future__ import annotations

import functools
import inspect
import sys

import torch
from transformers import GenerationConfig, PreTrainedModel

from dopsd.errors import DopsdError

REMOTE_PREFIX = "transformers_modules."
_MARK = "__dopsd_fix__"


# ----- class-level fixes, before from_pretrained ----------------------------------------------------------------
def patch_remote_code(model_class: type) -> list[str]:
    """Applies the class-level fixes to the remote-code package ``model_class`` comes from; returns what it fixed.

    Idempotent: a class already fixed is left alone (its fixes are listed again).
    """
    if not model_class.__module__.startswith(REMOTE_PREFIX):
        return []
    package = model_class.__module__.rsplit(".", 1)[0] + "."
    modules = [module for name, module in list(sys.modules.items()) if name.startswith(package) and module]
    fixes: set[str] = set()
    for module in modules:
        fixes.update(_patch_rope_table(module))
        for value in list(vars(module).values()):
            if not isinstance(value, type) or value.__module__ != module.__name__:
                continue
            if issubclass(value, PreTrainedModel):
                fixes.update(_patch_model_class(value))
            elif issubclass(value, GenerationConfig):
                fixes.update(_patch_generation_config(value))
    return sorted(fixes)


def _marked(function, fix: str):
    setattr(function, _MARK, fix)
    return function


def _already(cls: type, attribute: str) -> str | None:
    return getattr(cls.__dict__.get(attribute), _MARK, None)


def _patch_model_class(cls: type) -> list[str]:
    fixes = []
    if "__init__" in cls.__dict__:
        fix = _already(cls, "__init__") or _wrap_init(cls)
        fixes.append(fix)
    tie = cls.__dict__.get("tie_weights")
    if tie is not None:
        fix = _already(cls, "tie_weights")
        if fix is None and not _accepts(tie, "missing_keys"):
            fix = _wrap_tie_weights(cls, tie)
        if fix:
            fixes.append(fix)
    keys = cls.__dict__.get("_tied_weights_keys")
    if isinstance(keys, (list, tuple)) or _already(cls, "get_expanded_tied_weights_keys"):
        fixes.append(_already(cls, "get_expanded_tied_weights_keys") or _wrap_tied_keys(cls))
    return [fix for fix in fixes if fix != "post_init_checked"]


def _wrap_init(cls: type) -> str:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        # Only the class being built finishes construction (a subclass's __init__ may still be running ours).
        if type(self).__init__ is not __init__:
            return
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()
            self._dopsd_post_init_added = True
        listed = getattr(type(self), "_tied_weights_keys", None)
        if isinstance(listed, (list, tuple)):
            # transformers 5 also reads the attribute itself as a mapping (e.g. when saving).
            self._tied_weights_keys = _tied_mapping(self, listed)

    cls.__init__ = _marked(__init__, "post_init_checked")
    return "post_init_checked"


def _accepts(function, name: str) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _wrap_tie_weights(cls: type, original) -> str:
    @functools.wraps(original)
    def tie_weights(self, missing_keys=None, recompute_mapping=True, **kwargs):
        return original(self)

    cls.tie_weights = _marked(tie_weights, "tie_weights")
    return "tie_weights"


def _wrap_tied_keys(cls: type) -> str:
    original = PreTrainedModel.get_expanded_tied_weights_keys

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        listed = type(self)._tied_weights_keys
        if all_submodels or not isinstance(listed, (list, tuple)):
            return original(self, all_submodels=all_submodels)
        if not getattr(self.config, "tie_word_embeddings", False):
            return {}
        return _tied_mapping(self, listed)

    cls.get_expanded_tied_weights_keys = _marked(get_expanded_tied_weights_keys, "tied_weights_list")
    return "tied_weights_list"


def _tied_mapping(model: torch.nn.Module, listed) -> dict:
    """transformers 4's meaning of a list of tied weights: each is tied to the input embeddings."""
    source = _parameter_name(model, model.get_input_embeddings().weight)
    return {target: source for target in listed if target != source}


def _parameter_name(model: torch.nn.Module, parameter) -> str:
    for name, candidate in model.named_parameters(remove_duplicate=False):
        if candidate is parameter:
            return name
    raise DopsdError(f"{type(model).__name__}: cannot find its input embeddings among its parameters")


def _patch_generation_config(cls: type) -> list[str]:
    validate = cls.__dict__.get("validate")
    if validate is None:
        return []
    if _already(cls, "validate"):
        return ["generation_validate"]
    if _accepts(validate, "strict"):
        return []
    named = {p.name for p in inspect.signature(validate).parameters.values()}

    @functools.wraps(validate)
    def patched(self, *args, **kwargs):
        return validate(self, *args, **{k: v for k, v in kwargs.items() if k in named})

    cls.validate = _marked(patched, "generation_validate")
    return ["generation_validate"]


def default_rope_parameters(config, device=None, seq_len=None, **kwargs) -> tuple[torch.Tensor, float]:
    """Plain RoPE inverse frequencies (transformers 4's ``"default"`` entry): ``theta ** (-2i / dim)``."""
    base = kwargs.get("base") or _rope_theta(config)
    dim = kwargs.get("dim") or rotary_dim(config)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponents), 1.0


def _patch_rope_table(module) -> list[str]:
    table = getattr(module, "ROPE_INIT_FUNCTIONS", None)
    if not isinstance(table, dict):
        return []
    if "default" in table:
        return ["rope_default"] if getattr(table.get("default"), _MARK, None) else []
    module.ROPE_INIT_FUNCTIONS = {**table, "default": _marked(default_rope_parameters, "rope_default")}
    return ["rope_default"]


# ----- names transformers 5 removed, which remote modules import ------------------------------------------------------
def _loss_kwargs():
    import typing

    return typing.TypedDict("LossKwargs", {}, total=False)


# (module, name) -> (fix, factory of a stand-in)
REMOVED_NAMES = {("transformers.utils", "LossKwargs"): ("loss_kwargs", _loss_kwargs)}


def import_remote_class(reference: str, path: str) -> tuple[type, list[str]]:
    """``get_class_from_dynamic_module(reference, path)``, restoring the names of :data:`REMOVED_NAMES` that the
    remote module fails to import (``ImportError: cannot import name ...``); returns the class and the fixes."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    restored: set[tuple[str, str]] = set()
    while True:
        try:
            model_class = get_class_from_dynamic_module(reference, path)
            break
        except ImportError as error:
            key = (getattr(error, "name", None), _missing_name(error))
            if key not in REMOVED_NAMES or key in restored:
                raise
            module = sys.modules[key[0]]
            fix, factory = REMOVED_NAMES[key]
            setattr(module, key[1], _marked(factory(), fix))
            restored.add(key)
    module = sys.modules.get(model_class.__module__)
    # listed again when the module was imported (with the stand-in) by an earlier load
    known = {fix for fix, _ in REMOVED_NAMES.values()}
    fixes = {getattr(value, _MARK, None) for value in vars(module).values()} & known if module else set()
    return model_class, sorted(fixes)


def _missing_name(error: ImportError) -> str | None:
    message = str(error)
    if message.startswith("cannot import name '"):
        return message.split("'")[1]
    return None


# ----- config fixes ------------------------------------------------------------------------------------------------
def fix_config(config) -> list[str]:
    """Fills what transformers 5 dropped from a remote config and the model's code still reads; turns off a fused
    cross-entropy that would leave training passes without logits."""
    if not type(config).__module__.startswith(REMOTE_PREFIX):
        return []
    fixes = []
    if not hasattr(config, "use_cache"):
        config.use_cache = False
        fixes.append("use_cache")
    if getattr(config, "fuse_cross_entropy", False):
        config.fuse_cross_entropy = False
        fixes.append("fuse_cross_entropy")
    return fixes


# ----- instance fixes, after from_pretrained -------------------------------------------------------------------------
def set_layer_attention_types(model: torch.nn.Module) -> list[str]:
    """Gives every decoder layer of a remote-code model that reads ``decoder_layer.attention_type`` (dllm's A2D
    models, written for transformers 4.5x) the type ``config.layer_types`` states for it."""
    if not type(model).__module__.startswith(REMOTE_PREFIX):
        return []
    source = _remote_source(type(model))
    if ".attention_type" not in source:
        return []
    fixed = False
    for module in model.modules():
        config = getattr(module, "config", None)
        layers = getattr(module, "layers", None)
        types = getattr(config, "layer_types", None)
        if not isinstance(layers, torch.nn.ModuleList) or not isinstance(types, (list, tuple)):
            continue
        for layer, kind in zip(layers, types):
            if not hasattr(layer, "attention_type"):
                layer.attention_type = kind
                fixed = True
    return ["attention_type"] if fixed else []


def _remote_source(model_class: type) -> str:
    """The source of the remote modules ``model_class`` and its remote bases come from."""
    texts = []
    for cls in model_class.__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__.startswith(REMOTE_PREFIX):
            try:
                texts.append(inspect.getsource(module))
            except (OSError, TypeError):
                continue
    return "\n".join(dict.fromkeys(texts))


# ----- rotary tables -----------------------------------------------------------------------------------------------
def _rope_theta(config) -> float:
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    if theta is None:
        raise DopsdError(f"{type(config).__name__} defines no rope_theta: cannot check its rotary tables")
    return float(theta)


def rotary_dim(config) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    factor = getattr(config, "partial_rotary_factor", None)
    if factor is None:
        factor = (getattr(config, "rope_parameters", None) or {}).get("partial_rotary_factor", 1.0)
    return int(head_dim * factor)


def _rope_type(module, config) -> str:
    value = getattr(module, "rope_type", None)
    if value is None:
        parameters = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
        value = parameters.get("rope_type", parameters.get("type", "default"))
    return value or "default"


def expected_inv_freq(module: torch.nn.Module, config) -> torch.Tensor | None:
    """The ``inv_freq`` a rotary module should hold, in float32, or ``None`` when dopsd cannot tell."""
    device = module.inv_freq.device
    own_config = getattr(module, "config", None) or config
    init_fn = getattr(module, "rope_init_fn", None)  # remote code written for transformers 4 keeps it
    kwargs = getattr(module, "rope_kwargs", None) or {}
    if not callable(init_fn) and _rope_type(module, own_config) == "default":
        # transformers 5 models define their own; anything else gets the plain formula.
        init_fn = getattr(module, "compute_default_rope_parameters", None) or default_rope_parameters
        kwargs = {}
    if not callable(init_fn):
        return None
    try:
        inv_freq = init_fn(own_config, device, **kwargs)[0]
    except Exception:  # noqa: BLE001  (a RoPE variant this check cannot reproduce: nothing to compare with)
        return None
    if not isinstance(inv_freq, torch.Tensor) or inv_freq.shape != module.inv_freq.shape:
        return None
    return inv_freq.float()


def repair_rotary_tables(model: torch.nn.Module) -> list[str]:
    """Recomputes every ``inv_freq`` buffer that differs from what the config implies; returns the modules fixed."""
    repaired = []
    config = getattr(model, "config", None)
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module._buffers.get("inv_freq"), torch.Tensor):
                continue
            expected = expected_inv_freq(module, config)
            current = module.inv_freq
            if expected is None:
                continue
            if torch.equal(current.float(), expected):
                continue
            module.register_buffer("inv_freq", expected.to(current.dtype), persistent=False)
            if isinstance(getattr(module, "original_inv_freq", None), torch.Tensor):
                module.original_inv_freq = module.inv_freq
            repaired.append(name or type(module).__name__)
    return repaired


def check_rotary_tables(model: torch.nn.Module) -> None:
    """Stops with one line when an ``inv_freq`` buffer is not finite and positive, or not what the config implies."""
    config = getattr(model, "config", None)
    for name, module in model.named_modules():
        table = module._buffers.get("inv_freq")
        if not isinstance(table, torch.Tensor):
            continue
        where = f"{type(model).__name__}.{name}.inv_freq"
        if not bool(torch.isfinite(table).all()) or not bool((table > 0).all()):
            raise DopsdError(f"{where} holds non-finite or non-positive values: the model's RoPE is broken")
        expected = expected_inv_freq(module, config)
        if expected is None:
            continue
        tolerance = 1e-6 if table.dtype in (torch.float32, torch.float64) else 1e-2
        if not torch.allclose(table.float(), expected, rtol=tolerance, atol=0):
            theta = _rope_theta(getattr(module, "config", None) or config)
            raise DopsdError(f"{where} is not what the config implies (rope_theta {theta:g}, "
                             f"{2 * expected.numel()} rotary dimensions): the model's RoPE is broken")


def check_loaded_model(lm) -> None:
    """Both post-load checks; callers that load on the CPU and then move the model run this on the device."""
    check_rotary_tables(lm.model)
    check_finite_logits(lm)


@torch.no_grad()
def check_finite_logits(lm) -> None:
    """Runs a tiny input through the model; stops with one line when its forward fails (remote code broken in a
    way no fix covers: the exception named, not a traceback) or any logit is NaN or infinite."""
    tokens = lm.tokens
    ids = torch.tensor([[tokens.eos, tokens.mask, tokens.mask, tokens.eos]], device=lm.device)
    model = lm.model
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    training = model.training
    model.eval()
    try:
        logits = lm.logits(ids, response_start=1)
    except DopsdError:
        raise
    except Exception as error:  # noqa: BLE001  (anything the model's own code raises is the model's failure)
        raise DopsdError(forward_failure(name, model, error)) from error
    finally:
        model.train(training)
    if not bool(torch.isfinite(logits).all()):
        raise DopsdError(f"model {name!r} gives non-finite logits (NaN or inf) on a tiny input right after loading: "
                         "its weights or rotary tables did not load correctly")


def forward_failure(name: str, model, error: Exception) -> str:
    """One line for a model whose forward raises on dopsd's tiny probe input: the model, the exception, where."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    where = ""
    frame = error.__traceback__
    while frame is not None:  # the innermost frame of the model's own (remote or library) code
        module = frame.tb_frame.f_globals.get("__name__", "")
        if not module.startswith(("torch.", "dopsd.")):
            where = f" in {module.rsplit('.', 1)[-1]}.py line {frame.tb_lineno}"
        frame = frame.tb_next
    remote = " (its remote code)" if type(model).__module__.startswith(REMOTE_PREFIX) else ""
    return (f"model {name!r} fails in its own forward pass{remote} on a tiny input right after loading: "
            f"{type(error).__name__}: {message}{where}")
