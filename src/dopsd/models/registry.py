"""Registers the built-in family with the transformers Auto classes (done once, on ``import dopsd``)."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from dopsd.models.tiny import MaskedDiffusionConfig, MaskedDiffusionTransformer


def register_builtin_models() -> None:
    AutoConfig.register(MaskedDiffusionConfig.model_type, MaskedDiffusionConfig, exist_ok=True)
    AutoModel.register(MaskedDiffusionConfig, MaskedDiffusionTransformer, exist_ok=True)
    AutoModelForMaskedLM.register(MaskedDiffusionConfig, MaskedDiffusionTransformer, exist_ok=True)
