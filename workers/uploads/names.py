"""File names from clients, made safe: a display name for ``metadata.file_name`` and an
ASCII storage key ``{session_id}/{user_id}/{unique id}-{safe name}``.

Clients send anything: ``../../etc/passwd``, ``C:\\evil.exe``, right-to-left overrides
that turn ``gnp.exe`` into ``exe.png`` on screen, NUL, zero-width characters, names
thousands of characters long, dot files. Both names lose path components, control and
format characters and leading dots, and are capped; the key keeps only ``[A-Za-z0-9._-]``
(Supabase Storage refuses many other characters in keys). Both end with an extension of
the detected type.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

MAX_DISPLAY_NAME = 200
MAX_KEY_NAME = 100
MAX_OBJECT_PATH = 512

_SEPARATORS = re.compile(r"[/\\]")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_REPEATS = re.compile(r"([._-])[._-]+")


def _visible(name: str) -> str:
    # NFKC first: it turns fullwidth solidus and friends into the real separators.
    name = unicodedata.normalize("NFKC", name)
    name = _SEPARATORS.split(name)[-1]
    # Categories C*: control (NUL...), format (RLO U+202E, zero-width...), surrogates,
    # private use, unassigned.
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    return " ".join(name.split()).lstrip(". ").rstrip(". ")


def _with_extension(name: str, extension: str, known: tuple[str, ...], limit: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() not in known:
        stem, ext = name, extension
    stem = stem[: limit - len(ext) - 1].rstrip(" .") or "file"
    return f"{stem}.{ext}"


def display_name(raw: str | None, *, extension: str, known: tuple[str, ...]) -> str:
    """What people see: Unicode kept, dangers removed, at most 200 characters."""
    return _with_extension(_visible(raw or ""), extension, known, MAX_DISPLAY_NAME)


def key_name(display: str, *, extension: str, known: tuple[str, ...]) -> str:
    """The storage key's last part: ASCII letters, digits, ``.``, ``_``, ``-``."""
    ascii_name = unicodedata.normalize("NFKD", display).encode("ascii", "ignore").decode()
    stem, dot, ext = ascii_name.rpartition(".")
    if not dot:
        stem, ext = ascii_name, ""
    stem, ext = _key_safe(stem) or "file", _key_safe(ext)
    return _with_extension(f"{stem}.{ext}" if ext else stem, extension, known, MAX_KEY_NAME)


def _key_safe(text: str) -> str:
    return _REPEATS.sub(r"\1", _KEY_UNSAFE.sub("_", text)).strip("._-")


def object_path(*, session_id: uuid.UUID, user_id: uuid.UUID, name: str) -> str:
    """A new, unique path: the id makes two uploads of the same name two objects."""
    return f"{session_id}/{user_id}/{uuid.uuid4().hex}-{name}"


def checked_object_path(raw: str) -> str | None:
    """A requested object path, or None when it could never name a chat file."""
    if not raw or len(raw) > MAX_OBJECT_PATH or "\x00" in raw or "\\" in raw:
        return None
    parts = raw.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        return None
    return raw


def download_name(info_name: str | None, path: str) -> str:
    """The name to offer in Content-Disposition: the uploader's, else the key's."""
    if info_name:
        return info_name
    last = path.rsplit("/", 1)[-1]
    prefix, dash, rest = last.partition("-")
    return rest if dash and len(prefix) == 32 and rest else last
