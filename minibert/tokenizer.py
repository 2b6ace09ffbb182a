"""A thin wrapper on the `tokenizers` library: text in, padded (B, T) int64 arrays out, with word ids and offsets."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tokenizers import Encoding
from tokenizers import Tokenizer as _RustTokenizer
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors

from .config import POSITIONS_AFTER_PADDING
from .errors import CheckpointError, InputError
from .hub import resolve_model_dir

TextInput = Union[str, Sequence[str]]


class Batch(dict):
    """Tokenized texts: a dict of (B, T) int64 arrays `input_ids`, `attention_mask`, `token_type_ids`
    (so `model(**batch)` works), plus per-row access to where each token came from."""

    def __init__(self, encodings: List[Encoding], pad_id: int):
        B = len(encodings)
        T = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((B, T), pad_id, dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.int64)
        types = np.zeros((B, T), dtype=np.int64)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids, 1, e.type_ids
        super().__init__(input_ids=ids, attention_mask=mask, token_type_ids=types)
        self.encodings = encodings

    def tokens(self, i: int = 0) -> List[str]:
        """The word pieces of row i, special tokens included, without padding."""
        return list(self.encodings[i].tokens)

    def word_ids(self, i: int = 0) -> List[Optional[int]]:
        """For each token of row i, the index of the word it came from (None for special tokens)."""
        return list(self.encodings[i].word_ids)

    def sequence_ids(self, i: int = 0) -> List[Optional[int]]:
        """For each token of row i: 0 for the first text, 1 for the pair's second, None for special tokens."""
        return list(self.encodings[i].sequence_ids)

    def offsets(self, i: int = 0) -> List[Tuple[int, int]]:
        """For each token of row i, its (start, end) character span in its own text ((0, 0) for special tokens)."""
        return [tuple(o) for o in self.encodings[i].offsets]


class Tokenizer:
    """A checkpoint's own tokenizer (WordPiece, byte-level BPE or Unigram), through the `tokenizers` library."""

    def __init__(self, tokenizer: _RustTokenizer, *, model_max_length: int = 512, pad_token: str = "[PAD]",
                 name_or_path: Optional[str] = None):
        # The file's own padding/truncation settings would fight ours (MiniLM's pads everything to 128).
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # truncation is a setting of the Rust object: one call at a time sets it
        self.model_max_length = model_max_length
        pad_id = tokenizer.token_to_id(pad_token)
        self.pad_token_id = 0 if pad_id is None else pad_id
        self.name_or_path = name_or_path

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: Optional[str] = None) -> "Tokenizer":
        """From a model folder or Hub id: its `tokenizer.json` (WordPiece, byte-level BPE or Unigram), else the
        legacy files `tokenizers` can build from alone: `vocab.json` + `merges.txt` (RoBERTa's byte-level BPE)
        or `vocab.txt` (WordPiece), with `tokenizer_config.json`'s settings."""
        folder = resolve_model_dir(name_or_path, revision=revision)
        settings = _read_json(folder / "tokenizer_config.json")
        config = _read_json(folder / "config.json")
        if (folder / "tokenizer.json").is_file():
            try:
                tokenizer = _RustTokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as e:  # the Rust library raises plain Exception on a bad file
                raise CheckpointError(f"{folder / 'tokenizer.json'}: cannot be read as a tokenizer ({e})") from None
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            tokenizer = _byte_level_bpe(folder / "vocab.json", folder / "merges.txt", settings)
        elif (folder / "vocab.txt").is_file():
            tokenizer = _wordpiece_from_vocab(folder / "vocab.txt", settings, config.get("model_type"))
        else:
            sentencepiece = sorted(p.name for p in folder.glob("*.model"))
            if sentencepiece:
                raise CheckpointError(
                    f"{folder / sentencepiece[0]}: a SentencePiece model, which minibert does not read (the "
                    "`tokenizers` library needs the converted tokenizer.json). Get the repo's tokenizer.json, or "
                    "write one where transformers is installed: "
                    "`AutoTokenizer.from_pretrained(folder).save_pretrained(folder)`")
            raise CheckpointError(f"{folder}: no tokenizer.json, vocab.json + merges.txt, or vocab.txt; "
                                  "a tokenizer needs one of them")
        limit = settings.get("model_max_length")
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int) and config.get("model_type") in POSITIONS_AFTER_PADDING:
            pad = config.get("pad_token_id", 1)
            positions -= (pad if isinstance(pad, int) else 1) + 1  # RoBERTa's 514 rows hold 512 tokens
        # Some files say model_max_length = 1e30 ("no limit"): the position table is the real limit.
        candidates = [v for v in (limit, positions) if isinstance(v, int) and 0 < v < 10**9]
        pad_token = _token_setting(settings, "pad_token")
        return cls(tokenizer, model_max_length=min(candidates, default=512),
                   pad_token=pad_token if pad_token is not None else "[PAD]", name_or_path=str(name_or_path))

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> Dict[str, int]:
        """Every token (word pieces and special tokens) with its id."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def __call__(self, text: TextInput, text_pair: Optional[TextInput] = None, *, max_length: Optional[int] = None,
                 truncation: bool = True) -> Batch:
        """Tokenize one text, a list of texts, or (with `text_pair`) sentence pairs; pads to the longest row.

        With `truncation` (the default) each row is cut to `max_length` tokens (default: the model's limit),
        special tokens included; a pair is cut longest-first.
        """
        texts = as_text_list(text, "text")
        pairs = None if text_pair is None else as_text_list(text_pair, "text_pair")
        if pairs is not None and len(pairs) != len(texts):
            raise InputError(f"text_pair: {len(pairs)} texts for {len(texts)} in text; expected one pair per text")
        limit = self.model_max_length if max_length is None else max_length
        if truncation and (not isinstance(limit, int) or limit < 2 + 2 * (pairs is not None)):
            raise InputError(f"max_length: expected an integer large enough for the special tokens, got {limit!r}")
        inputs = texts if pairs is None else list(zip(texts, pairs))
        with self._lock:
            if truncation:
                self._tokenizer.enable_truncation(limit)
            else:
                self._tokenizer.no_truncation()
            encodings = self._tokenizer.encode_batch(inputs)
        return Batch(encodings, self.pad_token_id)

    def tokenize(self, text: str) -> List[str]:
        """The word pieces of one text, without special tokens."""
        return self._tokenizer.encode(as_text_list(text, "text")[0], add_special_tokens=False).tokens

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name_or_path!r}, vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"


def as_text_list(value: TextInput, name: str) -> List[str]:
    if isinstance(value, str):
        return [value]
    if value is None or isinstance(value, (bytes, dict)) or not hasattr(value, "__iter__"):
        raise InputError(f"{name}: expected a string or a list of strings, got {type(value).__name__}")
    texts = list(value)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{name}[{i}]: expected a string, got {type(t).__name__}")
    return texts


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return d


def _token_setting(settings: dict, key: str) -> Optional[str]:
    """A special token of tokenizer_config.json: a string, or transformers' AddedToken form {"content": ...}."""
    value = settings.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_tokens(settings: dict, defaults: Dict[str, str]) -> Dict[str, str]:
    return {key: _token_setting(settings, key) or default for key, default in defaults.items()}


def _wordpiece_from_vocab(vocab_path: Path, settings: dict, model_type: Optional[str] = None) -> _RustTokenizer:
    """A WordPiece tokenizer built from a `vocab.txt` (one word piece per line, its id the line number) and the
    `tokenizer_config.json` settings, as `transformers` builds BERT's (and MPNet's, which joins a pair with two
    separators: <s> A </s></s> B </s>)."""
    try:
        lines = vocab_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{vocab_path}: not UTF-8 text ({e})") from None
    vocab = {}
    for i, token in enumerate(lines):
        vocab.setdefault(token, i)
    mpnet = model_type == "mpnet"
    special = _special_tokens(settings, {"unk_token": "[UNK]", "sep_token": "</s>" if mpnet else "[SEP]",
                                         "pad_token": "<pad>" if mpnet else "[PAD]",
                                         "cls_token": "<s>" if mpnet else "[CLS]", "mask_token": "<mask>" if mpnet else "[MASK]"})
    for key in ("unk_token", "sep_token", "cls_token"):
        if special[key] not in vocab:
            raise CheckpointError(f"{vocab_path}: has no {special[key]!r} ({key}); the tokenizer needs it")
    cls_token, sep_token = special["cls_token"], special["sep_token"]
    tokenizer = _RustTokenizer(models.WordPiece(vocab, unk_token=special["unk_token"], max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=settings.get("tokenize_chinese_chars", True) is not False,
        strip_accents=settings.get("strip_accents"), lowercase=settings.get("do_lower_case", True) is not False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pair = (f"{cls_token}:0 $A:0 {sep_token}:0 {sep_token}:0 $B:0 {sep_token}:0" if mpnet
            else f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0", pair=pair,
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens([t for t in special.values() if t in vocab])
    return tokenizer


def _byte_level_bpe(vocab_path: Path, merges_path: Path, settings: dict) -> _RustTokenizer:
    """RoBERTa's byte-level BPE from its legacy `vocab.json` + `merges.txt`, as `transformers` builds it: bytes
    mapped to printable characters, "Ġ" marking a leading space, <s> A </s></s> B </s> for a pair."""
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").split("\n")
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{vocab_path.parent}: vocab.json / merges.txt unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
        raise CheckpointError(f"{vocab_path}: expected a JSON object of token -> integer id")
    merges = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or (number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise CheckpointError(f"{merges_path}:{number}: expected two tokens separated by a space, got {line!r:.80}")
        merges.append((pair[0], pair[1]))
    special = _special_tokens(settings, {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                                         "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                                         "mask_token": "<mask>"})
    for key in ("cls_token", "sep_token"):
        if special[key] not in vocab:
            raise CheckpointError(f"{vocab_path}: has no {special[key]!r} ({key}); the tokenizer needs it")
    prefix_space = settings.get("add_prefix_space", False) is True
    tokenizer = _RustTokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(  # (sep, cls, ...): the keyword names vary by release
        (special["sep_token"], vocab[special["sep_token"]]), (special["cls_token"], vocab[special["cls_token"]]),
        True, prefix_space)
    tokenizer.add_special_tokens([AddedToken(t, lstrip=key == "mask_token", special=True)
                                  for key, t in special.items() if t in vocab])
    return tokenizer
