"""Source -> Snapshot: resolve what the user named into pinned local files.

Hub ids go through ``huggingface_hub`` (its cache, offline mode and token handling are
used as they are). The revision is resolved once to a commit SHA and everything is
fetched at that SHA, so a scan can always say exactly which bytes it looked at.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SourceError

# What a scan needs: configs, safetensors weights, tokenizer and scheduler files.
# Pickle-based weights are NOT fetched: they are never loaded (see safety.py).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.yaml", "*.yml", "*.md",
                  "tokenizer*", "*.tiktoken", "*.bpe"]

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
_FORMATS = {".safetensors": "safetensors", ".json": "json", ".txt": "text", ".md": "text",
            ".yaml": "text", ".yml": "text", ".model": "text", ".png": "image", ".jpg": "image",
            ".jpeg": "image"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return "pickle"
    return _FORMATS.get(suffix, "other")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class FileRecord:
    path: str  # relative to the snapshot root, POSIX separators
    size: int
    sha256: str | None
    format: str
    loaded: bool = False
    present: bool = True  # False: listed by the hub but deliberately not downloaded

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "format": self.format,
                "loaded": self.loaded}


@dataclass
class Snapshot:
    """Pinned local files of one model, and where they came from."""

    source: str
    kind: str  # "hub" | "local" | "module"
    path: Path | None
    repo_id: str | None = None
    revision: str | None = None
    sha: str | None = None
    files: list[FileRecord] = field(default_factory=list)

    def file(self, name: str) -> Path | None:
        """The local path of a present file, by its relative path."""
        for rec in self.files:
            if rec.path == name and rec.present and self.path is not None:
                return self.path / rec.path
        return None

    def files_of(self, fmt: str) -> list[FileRecord]:
        return [r for r in self.files if r.format == fmt]

    def mark_loaded(self, local_path: Path) -> None:
        if self.path is None:
            return
        # No resolve(): hub snapshots are symlinks into blobs/, and the record is the link's name.
        rel = Path(os.path.abspath(local_path)).relative_to(os.path.abspath(self.path)).as_posix()
        for rec in self.files:
            if rec.path == rel:
                rec.loaded = True

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "repo_id": self.repo_id,
                "revision": self.revision, "sha": self.sha,
                "path": str(self.path) if self.path else None,
                "files": [r.to_dict() for r in self.files]}


def parse_source(source: str) -> tuple[str, str | None, Path | None]:
    """Split a source string into (repo_id, revision, local_path); one of the two is set."""
    text = source.strip()
    if text.startswith("hf://"):
        text = text[len("hf://"):]
        return (*_split_revision(text), None)
    local = Path(os.path.expanduser(text))
    # A hub id has exactly one "/"; anything that exists or looks like a path is local.
    if local.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        return "", None, local
    return (*_split_revision(text), None)


def _split_revision(text: str) -> tuple[str, str | None]:
    repo_id, _, revision = text.partition("@")
    if not _REPO_ID.match(repo_id):
        raise SourceError(f"not a hub model id or local folder: {text!r} (expected org/name[@revision])")
    return repo_id, revision or None


def resolve(source: str, progress=lambda msg: None) -> Snapshot:
    """Resolve a source string into a Snapshot (downloads hub files into the hub cache)."""
    repo_id, revision, local = parse_source(source)
    if local is not None:
        return _local_snapshot(source, local)
    return _hub_snapshot(source, repo_id, revision, progress)


def _local_snapshot(source: str, path: Path) -> Snapshot:
    if not path.exists():
        raise SourceError(f"no such local model folder: {path}")
    root = path if path.is_dir() else path.parent
    only = None if path.is_dir() else {path.name}
    files = [_record(root, p) for p in sorted(root.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(root).parts
             and (only is None or p.name in only)]
    return Snapshot(source=source, kind="local", path=root.resolve(), files=files)


def _record(root: Path, p: Path) -> FileRecord:
    return FileRecord(path=p.relative_to(root).as_posix(), size=p.stat().st_size,
                      sha256=sha256_of(p), format=file_format(p))


def _hub_snapshot(source: str, repo_id: str, revision: str | None, progress) -> Snapshot:
    # Imported here: HF_HUB_OFFLINE / HF_HUB_CACHE are read at import time, and tests
    # set them first.
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub import errors as hf_errors

    try:  # the hub library's HTTP client: its connection errors are not OSErrors
        from httpx2 import HTTPError as ClientError
    except ImportError:
        ClientError = OSError

    revision = revision or "main"
    listed: dict[str, tuple[int, str | None]] = {}
    try:
        if constants.HF_HUB_OFFLINE:
            # Offline: the cache's refs/<revision> file pins the SHA.
            local = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS))
            sha = local.name
        else:
            progress(f"resolving {repo_id}@{revision}")
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
            sha = info.sha
            for s in info.siblings or []:
                lfs = getattr(s, "lfs", None)
                listed[s.rfilename] = (int(s.size or 0), getattr(lfs, "sha256", None) if lfs else None)
            progress(f"downloading {repo_id}@{sha[:12]}")
            local = Path(snapshot_download(repo_id, revision=sha, allow_patterns=ALLOW_PATTERNS))
    except hf_errors.RepositoryNotFoundError:
        raise SourceError(f"model not found on the hub: {repo_id} (or it is private/gated)") from None
    except hf_errors.RevisionNotFoundError:
        raise SourceError(f"revision not found: {repo_id}@{revision}") from None
    except hf_errors.LocalEntryNotFoundError:
        raise SourceError(f"not in the local hub cache and offline: {repo_id}@{revision}") from None
    except hf_errors.HFValidationError as exc:
        raise SourceError(f"invalid hub model id {repo_id!r}: {str(exc).splitlines()[0]}") from None
    except (hf_errors.HfHubHTTPError, OSError, ClientError) as exc:
        raise SourceError(f"could not fetch {repo_id}@{revision}: {_one_line(exc)}") from None

    if not re.fullmatch(r"[0-9a-f]{40}", sha or ""):
        raise SourceError(f"could not pin {repo_id}@{revision} to a commit SHA (got {sha!r})")
    files = [_record(local, p) for p in sorted(local.rglob("*")) if p.is_file()]
    present = {f.path for f in files}
    # Files the hub lists that we chose not to download (pickles) are still recorded.
    files += [FileRecord(path=name, size=size, sha256=lfs_sha, format=file_format(name), present=False)
              for name, (size, lfs_sha) in sorted(listed.items()) if name not in present]
    return Snapshot(source=source, kind="hub", path=local, repo_id=repo_id, revision=revision,
                    sha=sha, files=files)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
