"""Run storage that both the app and a job's machine can read: a path (shared disk), or an fsspec URL.

A job on a Ray cluster writes its run folder to ``<storage>/<run name>``; the app reads the metrics
and status from there while it runs and copies the adapter home when it ends. ``s3://``, ``gs://``
and friends need their fsspec backend installed (s3fs, gcsfs); ``file://`` works everywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def join(base: str | Path, *parts: str) -> str:
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def exists(location: str | Path) -> bool:
    if not is_url(location):
        return Path(location).exists()
    fs, path = _fs(str(location))
    return fs.exists(path)


def read_text(location: str | Path) -> str | None:
    """The file's text as written (a '\r' stays a '\r'), or None when it is not there (yet)."""
    try:
        if not is_url(location):
            data = Path(location).read_bytes()
        else:
            fs, path = _fs(str(location))
            with fs.open(path, "rb") as fh:
                data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return data.decode("utf-8", errors="replace")


def read_json(location: str | Path) -> dict | None:
    text = read_text(location)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # caught mid-write: the caller reads again next poll
        return None


def put(local: Path, location: str | Path) -> None:
    """Copy a local file or folder to ``location`` (replacing files of the same name)."""
    local = Path(local)
    if not is_url(location):
        dest = Path(location)
        if local.resolve() == dest.resolve():
            return
        if local.is_dir():
            shutil.copytree(local, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, dest)
        return
    fs, path = _fs(str(location))
    if local.is_dir():  # the trailing '/' copies the contents: a second put must not nest a copy inside
        fs.put(f"{local}/", path, recursive=True)
    else:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local), path)


def get(location: str | Path, local: Path) -> Path:
    """Copy a file or folder at ``location`` to the local path ``local``; returns ``local``."""
    local = Path(local)
    if not is_url(location):
        src = Path(location)
        if src.is_dir():
            shutil.copytree(src, local, dirs_exist_ok=True)
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, local)
        return local
    fs, path = _fs(str(location))
    if fs.isdir(path):
        fs.get(f"{path.rstrip('/')}/", str(local), recursive=True)
    else:
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(local))
    return local
