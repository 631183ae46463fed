"""What a file is, from its bytes, never from its name or declared type.

Allowed (the original service's list, the bucket's MIME types): audio WAV, MP3, Ogg, WebM; images
JPEG, PNG, GIF, WebP; PDF; text (valid UTF-8 without NUL). Ogg and WebM are containers
for video too: their tracks decide. Anything else is reported with the best name the
``filetype`` package (magic numbers) has for it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import filetype

from . import audio, images
from .ebml import EBML_MAGIC

HEAD = 256 * 1024  # enough for any header we parse (WebM tracks come within a few kB)
_TEXT_CHUNK = 256 * 1024

# mime -> (message type, canonical extension, extensions a name may already carry)
ALLOWED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "audio/wav": ("audio", "wav", ("wav", "wave")),
    "audio/mpeg": ("audio", "mp3", ("mp3", "mpga", "mp2")),
    "audio/ogg": ("audio", "ogg", ("ogg", "oga", "opus", "spx")),
    "audio/webm": ("audio", "webm", ("webm", "weba")),
    "image/jpeg": ("image", "jpg", ("jpg", "jpeg", "jpe", "jfif")),
    "image/png": ("image", "png", ("png",)),
    "image/gif": ("image", "gif", ("gif",)),
    "image/webp": ("image", "webp", ("webp",)),
    "application/pdf": ("file", "pdf", ("pdf",)),
    "text/plain": ("file", "txt", ("txt", "text", "log", "md", "csv")),
}


@dataclass(frozen=True, slots=True)
class Detected:
    mime: str
    details: dict[str, int] = field(default_factory=dict)
    # False for a magic-number guess: it names the type, it does not vouch for the file.
    validated: bool = True

    @property
    def allowed(self) -> bool:
        return self.validated and self.mime in ALLOWED

    @property
    def message_type(self) -> str:
        return ALLOWED[self.mime][0]

    @property
    def extension(self) -> str:
        return ALLOWED[self.mime][1]

    @property
    def extensions(self) -> tuple[str, ...]:
        return ALLOWED[self.mime][2]


def detect(path: Path) -> Detected:
    """Blocking (reads the file): run it in a thread."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEAD)
        return _detect(f, head, size)


def _detect(f: BinaryIO, head: bytes, size: int) -> Detected:
    if head.startswith(b"%PDF-"):
        return Detected("application/pdf")
    if head.startswith(images.PNG_SIGNATURE):
        return _image("image/png", images.png_size(head))
    if head.startswith(b"\xff\xd8\xff"):
        return _image("image/jpeg", images.jpeg_size(f))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _image("image/gif", images.gif_size(head))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _image("image/webp", images.webp_size(head))
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _audio("audio/wav", audio.wav_duration_ms(f, size))
    if head.startswith(b"OggS"):
        return _ogg(f, head, size)
    if head.startswith(EBML_MAGIC):
        return _matroska(head)
    start = audio.mp3_start(f, head, size)
    if start is not None:
        return _audio("audio/mpeg", audio.mp3_duration_ms(f, start, size))
    if size > 0 and _is_text(f):
        return Detected("text/plain")
    guess = filetype.guess_mime(head[:8192]) if head else None
    return Detected(guess or "application/octet-stream", validated=False)


def _image(mime: str, size: tuple[int, int] | None) -> Detected:
    if size is None or min(size) <= 0:
        return Detected(mime)
    return Detected(mime, {"width": size[0], "height": size[1]})


def _audio(mime: str, duration_ms: int | None) -> Detected:
    return Detected(mime, {} if duration_ms is None else {"duration_ms": duration_ms})


def _ogg(f: BinaryIO, head: bytes, size: int) -> Detected:
    streams = audio.ogg_streams(head)
    if any(s.kind == "video" for s in streams):
        return Detected("video/ogg")
    tracks = [s for s in streams if s.kind == "audio"]
    if not tracks:
        return Detected("application/ogg")
    return _audio("audio/ogg", audio.ogg_duration_ms(f, size, tracks[0]))


def _matroska(head: bytes) -> Detected:
    info = audio.webm_info(head)
    container = "webm" if info is not None and info.doctype == "webm" else "x-matroska"
    if info is None or info.has_video or not info.has_audio:
        return Detected(f"video/{container}")
    if container != "webm":
        return Detected("audio/x-matroska")
    return _audio("audio/webm", info.duration_ms)


def _is_text(f: BinaryIO) -> bool:
    """Valid UTF-8 throughout, and no NUL."""
    f.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        while chunk := f.read(_TEXT_CHUNK):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
