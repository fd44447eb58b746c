"""Safety policy: what may be loaded, and a static look at what may not.

safetensors and JSON are loaded. Pickle-based files are never unpickled: their opcode
stream is read with ``pickletools.genops`` (which only parses, never executes) to list
the globals they would import, so a report can say whether a file would run code.
"""
from __future__ import annotations

import json
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CorruptFileError
from .findings import Finding
from .sources import Snapshot

DETECTOR_ID = "safety"
VERSION = "1"

# Imports that give a pickle code execution or system access when it is loaded.
DANGEROUS_MODULES = {"os", "posix", "nt", "subprocess", "sys", "runpy", "socket", "shutil", "pty",
                     "importlib", "webbrowser", "requests", "urllib", "http", "httplib", "code",
                     "commands", "ctypes", "marshal", "types", "pickle", "_pickle", "dill", "io", "_io",
                     "pathlib", "tempfile", "multiprocessing", "threading", "signal", "asyncio"}
DANGEROUS_BUILTINS = {"eval", "exec", "compile", "open", "getattr", "setattr", "__import__",
                      "globals", "locals", "breakpoint", "input", "delattr", "vars"}
MAX_PICKLE_BYTES = 64 << 20  # the opcode stream of a weights file is small; the tensors are elsewhere
MAX_SAFETENSORS_HEADER = 100 << 20


@dataclass
class PickleLook:
    globals: list[str]
    dangerous: list[str]
    error: str | None = None


def pickle_globals(data: bytes) -> PickleLook:
    """The module.name globals a pickle stream would import, without executing it."""
    found: list[str] = []
    strings: list[str] = []  # recent string pushes, for STACK_GLOBAL (protocol 4+)
    error = None
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING",
                           "BINSTRING", "SHORT_BINSTRING"):
                strings = (strings + [str(arg)])[-2:]
            elif op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                found.append(f"{module}.{name}")
            elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                found.append(f"{strings[0]}.{strings[1]}")
            elif op.name == "STOP":
                break
    except Exception as exc:  # malformed stream: report what was read so far
        error = f"opcode stream unreadable: {exc}"
    unique = sorted(set(found))
    return PickleLook(globals=unique, dangerous=[g for g in unique if _is_dangerous(g)], error=error)


def _is_dangerous(qualified: str) -> bool:
    module, _, name = qualified.rpartition(".")
    root = module.split(".")[0]
    if root in ("builtins", "__builtin__"):
        return name in DANGEROUS_BUILTINS
    return root in DANGEROUS_MODULES


def look_at_pickle_file(path: Path) -> PickleLook:
    """Torch zip checkpoints carry their pickle in */data.pkl; older files are one stream."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".pkl")]
            looks = [pickle_globals(zf.read(n)[:MAX_PICKLE_BYTES]) for n in names]
        merged = sorted({g for lk in looks for g in lk.globals})
        errors = [lk.error for lk in looks if lk.error]
        return PickleLook(globals=merged, dangerous=[g for g in merged if _is_dangerous(g)],
                          error=errors[0] if errors else None)
    with open(path, "rb") as f:
        return pickle_globals(f.read(MAX_PICKLE_BYTES))


def check_safetensors_header(path: Path) -> dict:
    """Parse and bounds-check a safetensors header; raise CorruptFileError naming the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFileError(f"corrupt safetensors file {path.name}: shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise CorruptFileError(f"corrupt safetensors file {path.name}: header length {n} exceeds the file")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFileError(f"corrupt safetensors file {path.name}: header is not JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"corrupt safetensors file {path.name}: header is not a JSON object")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise CorruptFileError(f"corrupt safetensors file {path.name}: tensor {name!r} lies outside the file")
    return header


def check_snapshot(snapshot: Snapshot) -> list[Finding]:
    """Findings about the files themselves. Raises CorruptFileError for a broken safetensors file."""
    findings: list[Finding] = []
    for rec in snapshot.files_of("safetensors"):
        path = snapshot.file(rec.path)
        if path is not None:
            check_safetensors_header(path)
    has_safetensors = bool(snapshot.files_of("safetensors"))
    for rec in snapshot.files_of("pickle"):
        findings.append(_pickle_finding(snapshot, rec, has_safetensors))
    if not findings:
        findings.append(Finding(rule_id="MSBD-S000", detector=DETECTOR_ID, detector_version=VERSION,
                                status="passed", severity="info", title="No pickle-based files",
                                message="All weight files are safetensors; nothing needed unpickling."))
    return findings


def _pickle_finding(snapshot: Snapshot, rec, has_safetensors: bool) -> Finding:
    path = snapshot.file(rec.path)
    look = look_at_pickle_file(path) if path is not None else None
    evidence = {"file": rec.path, "size": rec.size, "inspected": look is not None}
    if look is not None:
        evidence.update(globals=look.globals[:50], dangerous_globals=look.dangerous, parse_error=look.error)
    if look is not None and look.dangerous:
        return Finding(rule_id="MSBD-S002", detector=DETECTOR_ID, detector_version=VERSION,
                       status="failed", severity="critical", title="Pickle file would execute code",
                       message=f"{rec.path} imports {', '.join(look.dangerous[:5])} when unpickled; it was not loaded.",
                       evidence=evidence, location=rec.path)
    if has_safetensors:
        return Finding(rule_id="MSBD-S001", detector=DETECTOR_ID, detector_version=VERSION,
                       status="passed", severity="low", title="Pickle file present, not loaded",
                       message=f"{rec.path} is pickle-based and was not loaded; the safetensors weights were scanned instead.",
                       evidence=evidence, location=rec.path)
    return Finding(rule_id="MSBD-S003", detector=DETECTOR_ID, detector_version=VERSION,
                   status="failed", severity="medium", title="Pickle-only weights refused",
                   message=f"{rec.path} is pickle-based and there are no safetensors weights; modelscan-bd never unpickles untrusted files, so the model was not scanned.",
                   evidence=evidence, location=rec.path)
