"""Character-level tokenizer for the built-in model family.

The synthetic tasks (Sudoku strings, Countdown expressions, short arithmetic) are spelled in printable ASCII, so one
token per character keeps the vocabulary under 100 entries and makes every completion trivially readable.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
MASK_TOKEN = "<mask>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, MASK_TOKEN, UNK_TOKEN)
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"


def build_char_tokenizer(characters: str = CHARACTERS, *, with_mask: bool = True) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` with ids 0-3 for pad, eos, mask, unk and one id per character after them.

    ``with_mask=False`` leaves the mask token out, as an autoregressive model's tokenizer would.
    """
    if len(set(characters)) != len(characters):
        raise ValueError("characters must not repeat")
    specials = SPECIAL_TOKENS if with_mask else tuple(t for t in SPECIAL_TOKENS if t != MASK_TOKEN)
    vocab = {token: i for i, token in enumerate(specials)}
    for char in characters:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        mask_token=MASK_TOKEN if with_mask else None,
        unk_token=UNK_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
