"""A word-level tokenizer with open_clip's tokenizer call interface."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from fixlip_captum.scenes.captions import split_words

__all__ = ["SceneTokenizer"]


class SceneTokenizer:
    """Word-level tokenizer for the scenes-clip model.

    Text is lower-cased and split into words and commas
    (:func:`fixlip_captum.scenes.split_words`); every other character is dropped. Ids:

    - ``0`` padding (``pad_token_id``, as open_clip's ``SimpleTokenizer``),
    - ``1`` unknown word (``unk_token_id``),
    - ``2 .. 2 + len(vocab) - 1`` the vocabulary words in order,
    - ``vocab_size - 2`` start of text (``sot_token_id``),
    - ``vocab_size - 1`` end of text (``eot_token_id``), the largest id, so both open_clip's
      ``"eos"`` pooling (used by the model) and ``"argmax"`` pooling find it.

    Calling it matches open_clip's tokenizers: ``tok(texts, context_length=None)`` ->
    ``LongTensor [B, context_length]`` = ``[sot, words..., eot, 0, 0, ...]``. Too-long texts are
    truncated and still end with ``eot``.

    Args:
        vocab: The words, without special tokens, each a single :func:`split_words` unit.
        context_length: Default sequence length.
    """

    pad_token_id = 0
    unk_token_id = 1

    def __init__(self, vocab: Sequence[str], context_length: int = 32) -> None:
        vocab = list(vocab)
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab has duplicate words")
        for w in vocab:
            if split_words(w) != [w]:
                raise ValueError(f"vocab word {w!r} is not a single lower-case word or comma")
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {context_length}")
        self.vocab = vocab
        self.context_length = int(context_length)
        self.vocab_size = len(vocab) + 4
        self.sot_token_id = self.vocab_size - 2
        self.eot_token_id = self.vocab_size - 1
        self.encoder: dict[str, int] = {w: i + 2 for i, w in enumerate(vocab)}
        self.decoder: dict[int, str] = {i: w for w, i in self.encoder.items()}
        self.decoder.update(
            {
                self.pad_token_id: "<pad>",
                self.unk_token_id: "<unk>",
                self.sot_token_id: "<start_of_text>",
                self.eot_token_id: "<end_of_text>",
            }
        )
        self.all_special_ids = [
            self.pad_token_id,
            self.unk_token_id,
            self.sot_token_id,
            self.eot_token_id,
        ]

    @classmethod
    def from_file(cls, path: str | Path) -> SceneTokenizer:
        """Load from a JSON file ``{"vocab": [...], "context_length": int}``."""
        data = json.loads(Path(path).read_text())
        return cls(data["vocab"], data["context_length"])

    def save(self, path: str | Path) -> None:
        """Write the JSON read by :meth:`from_file`."""
        Path(path).write_text(
            json.dumps({"vocab": self.vocab, "context_length": self.context_length}, indent=1)
        )

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text`` without start/end tokens (unknown words -> ``unk_token_id``)."""
        return [self.encoder.get(w, self.unk_token_id) for w in split_words(text)]

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None
    ) -> torch.Tensor:
        """Tokenise.

        Args:
            texts: One caption or a list of captions.
            context_length: Output length (default :attr:`context_length`).

        Returns:
            ``[B, context_length]`` long tensor.
        """
        if isinstance(texts, str):
            texts = [texts]
        ctx = self.context_length if context_length is None else int(context_length)
        if ctx < 2:
            raise ValueError(f"context_length must be >= 2, got {ctx}")
        out = torch.zeros(len(texts), ctx, dtype=torch.long)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}")
            ids = [*[self.sot_token_id, *self.encode(text)][: ctx - 1], self.eot_token_id]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def convert_ids_to_tokens(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Word (or ``<special>`` name) per id, one string per id."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if int(i) not in self.decoder:
                raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
            out.append(self.decoder[int(i)])
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Words of ``ids`` joined by spaces, skipping padding, start and end tokens."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        skip = {self.pad_token_id, self.sot_token_id, self.eot_token_id}
        words = self.convert_ids_to_tokens([i for i in ids if int(i) not in skip])
        return " ".join(words).replace(" ,", ",")

    def __repr__(self) -> str:
        return (
            f"SceneTokenizer(vocab_size={self.vocab_size}, context_length={self.context_length}, "
            f"sot={self.sot_token_id}, eot={self.eot_token_id}, pad={self.pad_token_id})"
        )
