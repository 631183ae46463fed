"""Just enough EBML to tell a WebM (or Matroska) file's tracks and duration: the EBML
header's DocType, then Segment > Info (TimecodeScale, Duration) and Segment > Tracks >
TrackEntry > TrackType, stopping at the first Cluster. Works on the file's first bytes;
live recordings (MediaRecorder) have Segments of unknown size, which is allowed."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML, _DOCTYPE = 0x1A45DFA3, 0x4282
_SEGMENT, _INFO, _TRACKS, _CLUSTER = 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
_TIMECODE_SCALE, _DURATION = 0x2AD7B1, 0x4489
_TRACK_ENTRY, _TRACK_TYPE = 0xAE, 0x83
_VIDEO, _AUDIO = 1, 2
_MAX_ELEMENTS = 4096


@dataclass(slots=True)
class Matroska:
    doctype: str = ""
    track_types: list[int] = field(default_factory=list)
    duration_ms: int | None = None

    @property
    def has_video(self) -> bool:
        return _VIDEO in self.track_types

    @property
    def has_audio(self) -> bool:
        return _AUDIO in self.track_types


def _vint(buf: bytes, i: int, *, marker: bool) -> tuple[int, int, bool] | None:
    """(value, length, unknown size) of the variable-length integer at ``buf[i]``."""
    if i >= len(buf) or buf[i] == 0:
        return None
    length = 9 - buf[i].bit_length()
    if i + length > len(buf):
        return None
    value = buf[i] if marker else buf[i] & (0xFF >> length)
    for byte in buf[i + 1 : i + length]:
        value = value << 8 | byte
    unknown = not marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _elements(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(id, data start, data end) of the elements in ``buf[start:end]``."""
    i = start
    for _ in range(_MAX_ELEMENTS):
        if i >= min(end, len(buf)):
            return
        ident = _vint(buf, i, marker=True)
        if ident is None:
            return
        size = _vint(buf, i + ident[1], marker=False)
        if size is None:
            return
        data = i + ident[1] + size[1]
        stop = end if size[2] else min(data + size[0], end)
        yield ident[0], data, stop
        i = stop


def _uint(buf: bytes) -> int:
    return int.from_bytes(buf[:8], "big")


def parse(buf: bytes) -> Matroska | None:
    if not buf.startswith(EBML_MAGIC):
        return None
    info = Matroska()
    scale, duration = 1_000_000, None
    for ident, start, stop in _elements(buf, 0, len(buf)):
        if ident == _EBML:
            for child, c_start, c_stop in _elements(buf, start, stop):
                if child == _DOCTYPE:
                    info.doctype = buf[c_start:c_stop].rstrip(b"\x00").decode("ascii", "replace")
        elif ident == _SEGMENT:
            for child, c_start, c_stop in _elements(buf, start, stop):
                if child == _INFO:
                    for key, k_start, k_stop in _elements(buf, c_start, c_stop):
                        if key == _TIMECODE_SCALE:
                            scale = _uint(buf[k_start:k_stop]) or scale
                        elif key == _DURATION and k_stop - k_start in (4, 8):
                            fmt = ">f" if k_stop - k_start == 4 else ">d"
                            duration = struct.unpack(fmt, buf[k_start:k_stop])[0]
                elif child == _TRACKS:
                    for entry, e_start, e_stop in _elements(buf, c_start, c_stop):
                        if entry == _TRACK_ENTRY:
                            for key, k_start, k_stop in _elements(buf, e_start, e_stop):
                                if key == _TRACK_TYPE:
                                    info.track_types.append(_uint(buf[k_start:k_stop]))
                elif child == _CLUSTER:
                    break
            break
    if duration is not None and duration == duration and 0 <= duration < 1e15:
        ms = round(duration * scale / 1_000_000)
        info.duration_ms = ms if ms < 10**12 else None
    return info
