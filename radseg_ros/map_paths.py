"""Confine service-supplied file paths to the configured map directory."""

from __future__ import annotations

from pathlib import Path


class MapPathError(ValueError):
    """A path from a service request that is empty, malformed or outside the map directory."""


def resolve_map_path(map_directory: str | Path, requested: str) -> Path:
    """Resolve ``requested`` against ``map_directory`` and refuse anything that escapes it.

    Relative paths are taken inside the directory; absolute paths are accepted only when they lie in
    it. Symbolic links and ``..`` are resolved before the check, so neither can lead outside.
    """
    if not requested or not requested.strip():
        raise MapPathError("path is empty; give a file name inside the map directory, e.g. 'office.rsmap'")
    if "\x00" in requested:
        raise MapPathError("path contains a NUL byte")
    root = Path(map_directory).expanduser().resolve()
    candidate = Path(requested).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise MapPathError(f"'{requested}' is outside the map directory {root}; paths are confined to it")
    return resolved
