"""A thin wrapper on the `tokenizers` library: text in, padded (B, T) int64 arrays out, with word ids and offsets."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from tokenizers import AddedToken, Encoding
from tokenizers import Tokenizer as _RustTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from .config import POSITIONS_AFTER_PADDING
from .errors import CheckpointError, ConfigError, InputError, shown
from .hub import resolve_model_dir
from .io import read_json, read_json_object

TextInput = Union[str, Sequence[str]]

# tokenizer_config.json's special-token keys, with BERT's defaults, and those of RoBERTa's tokenizers (also
# XLM-R's, CamemBERT's and MPNet's, whose unknown token is BERT's [UNK]).
SPECIAL_TOKEN_KEYS = (("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"),
                      ("cls_token", "[CLS]"), ("mask_token", "[MASK]"))
ROBERTA_SPECIAL_TOKEN_KEYS = (("unk_token", "<unk>"), ("sep_token", "</s>"), ("pad_token", "<pad>"),
                              ("cls_token", "<s>"), ("mask_token", "<mask>"))
# The flags an AddedToken object in tokenizer_config.json may carry (all booleans).
ADDED_TOKEN_FLAGS = ("lstrip", "rstrip", "single_word", "normalized", "special")
# Longer than any model reads, and small enough for the Rust library's integer types.
MAX_LENGTH_LIMIT = 2**31 - 1
# Unicode's White_Space characters, which Rust's `trim_end` strips (Python's `str.rstrip()` also strips
# U+001C..U+001F, so it cannot be used: ids would differ from transformers').
WHITE_SPACE = "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                                0x202F, 0x205F, 0x3000]))
# transformers' clean_up_tokenization, in its order: decoded word pieces " ." become ".", and so on.
CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
# Any text: what the post-processor adds to it shows where the special tokens go.
PROBE_TEXT = "probe"


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
                 mask_token: str = "[MASK]", clean_up_tokenization_spaces: bool = False,
                 name_or_path: Optional[str] = None):
        # The file's own padding/truncation settings would fight ours (MiniLM's pads everything to 128).
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # truncation is a setting of the Rust object: one call at a time sets it
        self.model_max_length = model_max_length
        pad_id = tokenizer.token_to_id(pad_token)
        self.pad_token_id = 0 if pad_id is None else pad_id
        self.mask_token = mask_token
        self.mask_token_id = tokenizer.token_to_id(mask_token)  # None: the vocabulary has no mask token
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = name_or_path

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, revision: Optional[str] = None) -> "Tokenizer":
        """From a model folder or Hub id: its `tokenizer.json` (WordPiece, byte-level BPE or Unigram), else the
        legacy files `tokenizers` can build from alone: `vocab.json` + `merges.txt` (RoBERTa's byte-level BPE)
        or `vocab.txt` (WordPiece), with `tokenizer_config.json`'s settings."""
        folder = resolve_model_dir(name_or_path, revision=revision)
        settings = read_json_object(folder / "tokenizer_config.json", CheckpointError, missing={})
        config = read_json_object(folder / "config.json", CheckpointError, missing={})
        model_type = config.get("model_type")
        defaults = ROBERTA_SPECIAL_TOKEN_KEYS if model_type in POSITIONS_AFTER_PADDING else SPECIAL_TOKEN_KEYS
        special = special_tokens(settings, folder / "tokenizer_config.json", defaults)
        if (folder / "tokenizer.json").is_file():
            try:
                tokenizer = _RustTokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as e:  # the Rust library raises plain Exception on a bad file
                raise CheckpointError(f"{folder / 'tokenizer.json'}: cannot be read as a tokenizer ({e})") from None
            _ensure_cls_sep(tokenizer, special, folder / "tokenizer.json")
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            tokenizer = _byte_level_bpe(folder / "vocab.json", folder / "merges.txt", settings, special)
        elif (folder / "vocab.txt").is_file():
            tokenizer = _wordpiece_from_vocab(folder / "vocab.txt", settings, special, model_type == "mpnet")
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
        pad = config.get("pad_token_id", 1)
        if type(positions) is int and model_type in POSITIONS_AFTER_PADDING and type(pad) is int:
            positions -= pad + 1  # RoBERTa's 514 rows hold 512 tokens
        # Some files say model_max_length = 1e30 ("no limit"): the position table is the real limit.
        candidates = [v for v in (limit, positions) if type(v) is int and 0 < v < 10**9]
        clean_up = bool_setting(settings, "clean_up_tokenization_spaces", False, folder / "tokenizer_config.json")
        return cls(tokenizer, model_max_length=min(candidates, default=512), pad_token=special["pad_token"].content,
                   mask_token=special["mask_token"].content, clean_up_tokenization_spaces=clean_up,
                   name_or_path=str(name_or_path))

    @property
    def backend(self) -> _RustTokenizer:
        """The `tokenizers` library's Tokenizer underneath (padding and truncation off)."""
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @cached_property
    def id_limit(self) -> int:
        """One past the largest token id (more than vocab_size when a vocab.txt lists a token twice)."""
        return max(self.get_vocab().values(), default=-1) + 1

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
        if truncation and (not isinstance(limit, int) or isinstance(limit, bool)
                           or not 2 + 2 * (pairs is not None) <= limit <= MAX_LENGTH_LIMIT):
            raise InputError(f"max_length: expected an integer large enough for the special tokens (and at most "
                             f"{MAX_LENGTH_LIMIT}), got {shown(limit)}")
        inputs = texts if pairs is None else list(zip(texts, pairs))
        with self._lock:
            if truncation:
                self._tokenizer.enable_truncation(limit)
            else:
                self._tokenizer.no_truncation()
            with _rust_errors(self.name_or_path):
                encodings = self._tokenizer.encode_batch(inputs)
        return Batch(encodings, self.pad_token_id)

    def tokenize(self, text: str) -> List[str]:
        """The word pieces of one text, without special tokens."""
        if not isinstance(text, str):
            raise InputError(f"text: expected a string, got {type(text).__name__}")
        _check_encodable(text, "text[0]")
        with _rust_errors(self.name_or_path):
            return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True,
               clean_up_tokenization_spaces: Optional[bool] = None) -> str:
        """The text of a sequence of token ids (a list or 1-D array of ints, each a token of this tokenizer).

        `clean_up_tokenization_spaces` (default: tokenizer_config.json's, else False) removes the space before
        punctuation and contractions (" ." -> "."), as transformers does, except for BPE tokenizers (which keep
        their spaces: transformers skips it for them too)."""
        ids = _as_id_list(ids, self.id_limit)
        with _rust_errors(self.name_or_path):
            text = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces and type(self._tokenizer.model).__name__ != "BPE":
            for spaced, joined in CLEAN_UP:
                text = text.replace(spaced, joined)
        return text

    def __repr__(self) -> str:
        return f"Tokenizer({self.name_or_path!r}, vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"


@contextmanager
def _rust_errors(where: object) -> Iterator[None]:
    """Turn the Rust library's plain Exception into a CheckpointError. Arguments are checked before they reach it,
    so what fails there is the tokenizer's own file (a WordPiece whose unk_token is not in its vocabulary fails
    only on a text with an unknown word)."""
    try:
        yield
    except Exception as e:
        raise CheckpointError(f"{where}: the tokenizer's files are inconsistent: {str(e)[:200]}") from None


def as_text_list(value: TextInput, name: str) -> List[str]:
    if isinstance(value, str):
        _check_encodable(value, f"{name}[0]")
        return [value]
    if (value is None or isinstance(value, (bytes, dict)) or not hasattr(value, "__iter__")
            or (isinstance(value, np.ndarray) and value.ndim != 1)):
        raise InputError(f"{name}: expected a string or a list of strings, got {type(value).__name__} "
                         f"{shown(value)}")
    texts = list(value)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{name}[{i}]: expected a string, got {type(t).__name__}")
        _check_encodable(t, f"{name}[{i}]")
    return texts


def _check_encodable(text: str, where: str) -> None:
    """Refuse a string that is not valid Unicode (a lone surrogate such as "\\ud800", which Python strings can
    hold but UTF-8 cannot): the Rust tokenizer would fail with a TypeError."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{where}: character {e.start} is a lone surrogate ({text[e.start]!r}); expected text "
                         "that is valid Unicode") from None


def _as_id_list(ids: Sequence[int], limit: int) -> List[int]:
    """Token ids for decode: a list or 1-D array of integers from 0 to limit - 1 (bools refused)."""
    if ((isinstance(ids, np.ndarray) and ids.ndim != 1) or isinstance(ids, (str, bytes, dict))
            or not hasattr(ids, "__iter__")):
        raise InputError(f"ids: expected a list or 1-D array of token ids, got {shown(ids)}")
    out = []
    for i, value in enumerate(ids):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InputError(f"ids[{i}]: expected an integer token id, got {shown(value)}")
        if not 0 <= value < limit:
            raise InputError(f"ids[{i}]: {shown(value)} is not a token id of this tokenizer; expected 0 <= id < "
                             f"{limit}")
        out.append(int(value))
    return out


def _wordpiece_from_vocab(vocab_path: Path, settings: dict, special: Dict[str, AddedToken],
                          mpnet: bool = False) -> _RustTokenizer:
    """A WordPiece tokenizer built from a `vocab.txt` (one word piece per line, its id the line number) and the
    `tokenizer_config.json` settings, as `transformers` builds BERT's (and MPNet's, which joins a pair with two
    separators: <s> A </s></s> B </s>)."""
    try:
        vocab = read_vocab(vocab_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{vocab_path}: not UTF-8 text ({e})") from None
    config_path = vocab_path.with_name("tokenizer_config.json")
    for key in ("unk_token", "sep_token", "cls_token"):
        if special[key].content not in vocab:
            raise CheckpointError(f"{vocab_path}: has no {special[key].content!r} ({key}); the tokenizer needs it")
    tokenizer = _RustTokenizer(models.WordPiece(vocab, unk_token=special["unk_token"].content,
                                                max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=bool_setting(settings, "tokenize_chinese_chars", True, config_path),
        strip_accents=bool_setting(settings, "strip_accents", None, config_path),
        lowercase=bool_setting(settings, "do_lower_case", True, config_path))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = _bert_template(special["cls_token"].content, special["sep_token"].content, vocab, mpnet)
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens([t for t in special.values() if t.content in vocab])
    return tokenizer


def _byte_level_bpe(vocab_path: Path, merges_path: Path, settings: dict,
                    special: Dict[str, AddedToken]) -> _RustTokenizer:
    """RoBERTa's byte-level BPE from its legacy `vocab.json` + `merges.txt`, as `transformers` builds it: bytes
    mapped to printable characters, "Ġ" marking a leading space, <s> A </s></s> B </s> for a pair."""
    vocab = read_json(vocab_path, CheckpointError)
    try:
        lines = merges_path.read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{merges_path}: not UTF-8 text ({e})") from None
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
        raise CheckpointError(f"{vocab_path}: expected a JSON object of token -> integer id")
    merges = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or (number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise CheckpointError(f"{merges_path}:{number}: expected two tokens separated by a space, got {shown(line)}")
        merges.append((pair[0], pair[1]))
    cls_token, sep_token = special["cls_token"].content, special["sep_token"].content
    for key, token in (("cls_token", cls_token), ("sep_token", sep_token)):
        if token not in vocab:
            raise CheckpointError(f"{vocab_path}: has no {token!r} ({key}); the tokenizer needs it")
    prefix_space = bool_setting(settings, "add_prefix_space", False, vocab_path.with_name("tokenizer_config.json"))
    tokenizer = _RustTokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(  # (sep, cls, ...): the keyword names vary by release
        (sep_token, vocab[sep_token]), (cls_token, vocab[cls_token]), True, prefix_space)
    mask = special["mask_token"]
    if mask.content in vocab:  # RoBERTa's <mask> takes the space before it, as transformers sets it
        special = {**special, "mask_token": AddedToken(mask.content, lstrip=True, special=True, normalized=False)}
    tokenizer.add_special_tokens([t for t in special.values() if t.content in vocab])
    return tokenizer


def read_vocab(text: str) -> Dict[str, int]:
    """vocab.txt's tokens and ids exactly as transformers reads them (through the tokenizers library's
    `WordPiece.read_file`): lines end at "\\n" only (not at U+2028, U+0085 or a form feed, where `str.splitlines`
    would end them too, shifting every later id), each token is its line without trailing white space (so also
    without the "\\r" of a "\\r\\n"), its id the line number, and a token listed twice keeps its last id."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # after the last line ending: no line at all
    return {line.rstrip(WHITE_SPACE): i for i, line in enumerate(lines)}


def _bert_template(cls_token: str, sep_token: str, vocab: Dict[str, int],
                   mpnet: bool = False) -> processors.TemplateProcessing:
    """[CLS] A [SEP] (and [CLS] A [SEP] B [SEP] for a pair), as transformers' BertTokenizer adds them; MPNet's
    pair is <s> A </s></s> B </s>, all of segment 0."""
    pair = (f"{cls_token}:0 $A:0 {sep_token}:0 {sep_token}:0 $B:0 {sep_token}:0" if mpnet
            else f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1")
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0", pair=pair,
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])])


def special_tokens(settings: dict, path: Path, defaults=SPECIAL_TOKEN_KEYS) -> Dict[str, AddedToken]:
    """The special tokens of tokenizer_config.json by key, with the family's defaults for those not set (or null).

    Each is a string or, as many Hub files write it, an AddedToken object ({"content": "[UNK]", "lstrip": false,
    ...}), whose flags are kept."""
    return {key: _added_token(settings.get(key), default, key, path) for key, default in defaults}


def _added_token(value: object, default: str, key: str, path: Path) -> AddedToken:
    if value is None:
        return AddedToken(default, special=True, normalized=False)
    if isinstance(value, str):
        return AddedToken(value, special=True, normalized=False)
    if isinstance(value, dict) and isinstance(value.get("content"), str) and value["content"]:
        flags = {k: value[k] for k in ADDED_TOKEN_FLAGS if k in value}
        if all(isinstance(v, bool) for v in flags.values()):
            return AddedToken(value["content"], **{"special": True, "normalized": False, **flags})
    raise ConfigError(f"{path}: {key} is {shown(value)}; expected a token (a string) or an AddedToken object with a "
                      f"non-empty string 'content' and boolean flags ({', '.join(ADDED_TOKEN_FLAGS)})")


def bool_setting(settings: dict, key: str, default: Optional[bool], path: Path) -> Optional[bool]:
    """A true/false setting of tokenizer_config.json; null or absent gives the default."""
    value = settings.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: {key} is {shown(value)}; expected true, false or null")
    return value


def _special_mask(tokenizer: _RustTokenizer) -> List[int]:
    """Which tokens of an encoded probe text the post-processor added (1) and which came from the text (0)."""
    with _rust_errors("tokenizer"):
        return tokenizer.encode(PROBE_TEXT).special_tokens_mask


def check_cls_sep(tokenizer: "Tokenizer") -> None:
    """Refuse a tokenizer that does not put one special token before and one after each text ([CLS] ... [SEP]),
    where code that reads the model's first and last positions expects them."""
    _check_special_mask(tokenizer._tokenizer, tokenizer.name_or_path or "tokenizer")


def _check_special_mask(tokenizer: _RustTokenizer, where: object) -> None:
    """Raise a CheckpointError naming `where` unless a text comes out as [special] text... [special], each special
    token with its own id in the vocabulary (a post-processor states both, and could disagree)."""
    with _rust_errors(where):
        probe = tokenizer.encode(PROBE_TEXT)
    mask = probe.special_tokens_mask
    if len(mask) < 2 or mask[0] != 1 or mask[-1] != 1 or sum(mask) != 2:
        added = [t for t, m in zip(probe.tokens, mask) if m]
        raise CheckpointError(f"{where}: the tokenizer adds {shown(added)} to a text at positions "
                              f"{shown([i for i, m in enumerate(mask) if m])}; expected one special token first and "
                              "one last ([CLS] ... [SEP])")
    for i in (0, -1):
        token, given, own = probe.tokens[i], probe.ids[i], tokenizer.token_to_id(probe.tokens[i])
        if given != own:
            raise CheckpointError(f"{where}: the tokenizer adds {token!r} as id {given}, but its vocabulary has "
                                  f"{token!r} as id {own}; expected the same id")


def _ensure_cls_sep(tokenizer: _RustTokenizer, special: Dict[str, AddedToken], path: Path) -> None:
    """Make sure a tokenizer.json's tokenizer wraps each text in one special token on each side ([CLS] ... [SEP]):
    the model, the pooling and the encoder's windows all take the first and last positions for them.

    A file without a post-processor (`"post_processor": null`) adds none: we add BERT's, from the
    tokenizer_config.json tokens, as transformers' BertTokenizer does. Any other arrangement is refused."""
    tokenizer.no_padding()  # the file's own padding would add [PAD]s to the probe (Tokenizer turns it off anyway)
    tokenizer.no_truncation()
    if not any(_special_mask(tokenizer)):
        cls_token, sep_token = special["cls_token"].content, special["sep_token"].content
        vocab = {t: tokenizer.token_to_id(t) for t in (cls_token, sep_token)}
        missing = [t for t, i in vocab.items() if i is None]
        if missing:
            raise CheckpointError(f"{path}: adds no special tokens to a text (no post_processor) and has no "
                                  f"{missing[0]!r} to add; expected a BERT tokenizer with [CLS] and [SEP]")
        tokenizer.post_processor = _bert_template(cls_token, sep_token, vocab)
    _check_special_mask(tokenizer, path)
