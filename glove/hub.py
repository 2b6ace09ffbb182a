"""GloVe tables on the Hugging Face Hub, fetched with ``huggingface_hub`` (imported only when needed).

Two layouts are known:

- ``fse/glove-wiki-gigaword-100`` (and ``-50``/``-200``/``-300``, ``fse/glove-twitter-*``...): the gensim-data
  tables as gensim saved them, ``<name>.model`` plus ``<name>.model.vectors.npy``;
- ``stanfordnlp/glove``: the original Stanford zips (``glove.6B.zip``, ``glove.42B.300d.zip``,
  ``glove.840B.300d.zip``, ``glove.twitter.27B.zip``); ``glove.6B.zip`` defaults to its 100d member.

Downloads go through ``hf_hub_download``, so the usual cache (``HF_HOME``, ``HF_HUB_CACHE``) and offline mode
(``HF_HUB_OFFLINE=1``) apply.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlparse

from .errors import HubError

STANFORD_REPO = "stanfordnlp/glove"
_DEFAULT_MEMBERS = {"glove.6B.zip": "glove.6B.100d.txt"}
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FILE_SUFFIXES = (".txt", ".gz", ".zip", ".model", ".npy", ".bz2", ".xz")


@dataclass(frozen=True)
class HubFiles:
    """Local paths of a fetched source: the file to read, and the zip member or the gensim vectors file."""

    repo_id: str
    path: Path
    member: str | None
    label: str


def is_hub_name(source: str) -> bool:
    """``org/name`` (optionally ``hf://org/name``) that does not look like a relative file path."""
    name = source.removeprefix("hf://")
    return bool(_REPO_ID.fullmatch(name)) and not name.lower().endswith(_FILE_SUFFIXES)


def fetch(source: str, *, filename: str | None = None, member: str | None = None, revision: str | None = None) -> HubFiles:
    """Download (or find in the cache) the files of a Hub table."""
    repo_id = source.removeprefix("hf://")
    if filename is None:
        if repo_id == STANFORD_REPO:
            filename = "glove.6B.zip"
        elif repo_id.startswith("fse/"):
            filename = repo_id.split("/", 1)[1] + ".model"
        else:
            raise HubError(
                f"{repo_id}: no such local file or folder, and as a Hugging Face Hub name its layout is unknown: "
                f"pass filename=... (a GloVe .txt/.txt.gz/.zip or a gensim .model), or use "
                f"fse/glove-wiki-gigaword-100 or {STANFORD_REPO}"
            )
    if filename.endswith(".model") and member is not None:
        raise HubError(f"{repo_id}/{filename} is a gensim model: member=... only applies to zips")
    files = [filename, filename + ".vectors.npy"] if filename.endswith(".model") else [filename]
    command = " ".join(["hf download", repo_id, *files, *(["--revision", revision] if revision else [])])
    path = _download(repo_id, filename, revision, command)
    for other in files[1:]:
        _download(repo_id, other, revision, command)
    if filename.endswith(".zip"):
        member = member or _DEFAULT_MEMBERS.get(filename)
    label = Path(member or filename).name
    return HubFiles(repo_id, path, member, label)


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether a TCP connection to the Hub (or the HTTPS proxy) opens within `timeout` seconds.

    huggingface_hub retries an unreachable Hub for ~25 s before giving up; this answers in at most `timeout`,
    DNS included (run in a thread because name resolution has no timeout of its own).
    """
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))  # the proxy, if any, connects
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    result: List[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(result and result[0])


def go_offline_if_unreachable() -> Optional[str]:
    """Turn on huggingface_hub's offline mode (cache only) when the Hub is out of reach, so that a cached table
    still loads and a missing one fails at once instead of after ~25 s of retries. Returns why the Hub is not used
    ("HF_HUB_OFFLINE is set", "huggingface.co cannot be reached"), or None when it is."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if hub_reachable():
        return None
    os.environ["HF_HUB_OFFLINE"] = "1"
    if "huggingface_hub" in sys.modules:  # already imported: it read the variable at import time
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True
    return f"{urlparse(os.environ.get('HF_ENDPOINT', 'https://huggingface.co')).hostname} cannot be reached"


def _download(repo_id: str, filename: str, revision: str | None, command: str) -> Path:
    """The local path of one file of a Hub table; ``command`` is the ``hf download`` line that fetches the table."""
    try:
        import huggingface_hub
        from huggingface_hub import constants, errors
    except ImportError:
        raise HubError(f"loading {repo_id} from the Hub needs huggingface_hub: pip install huggingface-hub") from None
    unreachable = go_offline_if_unreachable()
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision))
    except errors.LocalEntryNotFoundError:
        cache = constants.HF_HUB_CACHE
        why = ("offline mode is on (HF_HUB_OFFLINE=1)" if unreachable == "HF_HUB_OFFLINE is set"
               else unreachable or "the Hub could not be reached")
        raise HubError(
            f"{repo_id}/{filename} is not in the Hugging Face cache {cache} and {why}: fetch it once with network "
            f"access (`{command}`), or point HF_HUB_CACHE/HF_HOME at a cache that holds it"
        ) from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such repository on the Hugging Face Hub (or it is private)") from None
    except errors.RevisionNotFoundError:
        raise HubError(f"{repo_id}: no revision {revision!r}") from None
    except errors.EntryNotFoundError:
        raise HubError(f"{repo_id}: no file {filename!r} in the repository") from None
    except (errors.HfHubHTTPError, OSError) as e:
        raise HubError(f"{repo_id}/{filename}: download failed: {e}") from None
