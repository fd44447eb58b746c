"""Lay out a local model folder as a Hugging Face Hub cache entry.

The layout is the hub library's documented cache format::

    <cache>/models--<org>--<name>/blobs/<sha256 of file>
    <cache>/models--<org>--<name>/snapshots/<commit sha>/<file> -> ../../blobs/<sha256>
    <cache>/models--<org>--<name>/refs/<revision>              (contains the commit sha)

With ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=<cache>``, ``snapshot_download`` then
resolves ``org/name`` exactly as it would after a real download. The demo and the
tests use this so that scans go through the real hub code, offline.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .sources import sha256_of


def commit_sha_for(folder: Path) -> str:
    """A deterministic 40-hex "commit" id derived from the folder's files and contents."""
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + sha256_of(p).encode() + b"\n")
    return h.hexdigest()


def place_in_cache(folder: str | Path, repo_id: str, cache_dir: str | Path, revision: str = "main") -> str:
    """Copy ``folder`` into the hub cache as ``repo_id`` at ``revision``; returns the commit sha."""
    folder, cache_dir = Path(folder), Path(cache_dir)
    org, _, name = repo_id.partition("/")
    repo = cache_dir / f"models--{org}--{name}"
    sha = commit_sha_for(folder)
    snap = repo / "snapshots" / sha
    for src in sorted(folder.rglob("*")):
        if not src.is_file():
            continue
        digest = sha256_of(src)
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snap / src.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(sha)
    return sha
