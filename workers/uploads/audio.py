"""Audio containers by hand: WAV and MP3 durations, Ogg and WebM tracks (audio or video)
and durations. Every parser is bounded and returns None rather than raising."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from . import ebml

_MAX_CHUNKS = 64
_TAIL = 64 * 1024


# ---------------------------------------------------------------- WAV
def wav_duration_ms(f: BinaryIO, size: int) -> int | None:
    """Data bytes over the byte rate of the ``fmt`` chunk (any encoding that declares one)."""
    f.seek(12)
    byte_rate = 0
    for _ in range(_MAX_CHUNKS):
        header = f.read(8)
        if len(header) < 8:
            return None
        chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
        if chunk_id == b"fmt ":
            fmt = f.read(min(chunk_size, 16))
            if len(fmt) < 12:
                return None
            byte_rate = int.from_bytes(fmt[8:12], "little")
            f.seek(chunk_size - len(fmt) + (chunk_size & 1), 1)
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            data = min(chunk_size, max(size - f.tell(), 0))  # streaming writers lie
            return round(data * 1000 / byte_rate)
        else:
            f.seek(chunk_size + (chunk_size & 1), 1)
    return None


# ---------------------------------------------------------------- MP3 (MPEG audio)
_BITRATES = {  # kbit/s by (MPEG-1?, layer bits)
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True, slots=True)
class Frame:
    length: int
    kbps: int
    rate: int
    samples: int
    mpeg1: bool
    mono: bool


def frame_at(buf: bytes, i: int) -> Frame | None:
    """The MPEG audio frame header at ``buf[i:]``, if it is a valid one."""
    h = buf[i : i + 4]
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3  # layer bits: 3 = I, 2 = II, 1 = III
    rate_index, bitrate_index = (h[2] >> 2) & 3, h[2] >> 4
    if version == 1 or layer == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    mpeg1 = version == 3
    kbps = _BITRATES[(mpeg1, layer if mpeg1 else (3 if layer == 3 else 2))][bitrate_index]
    rate = _RATES[version][rate_index]
    padding = (h[2] >> 1) & 1
    if layer == 3:
        samples, length = 384, (12 * kbps * 1000 // rate + padding) * 4
    else:
        samples = 1152 if layer == 2 or mpeg1 else 576
        length = samples // 8 * kbps * 1000 // rate + padding
    return Frame(length, kbps, rate, samples, mpeg1, (h[3] >> 6) == 3)


def mp3_start(f: BinaryIO, head: bytes, size: int) -> int | None:
    """Offset of the first audio frame: after an ID3v2 tag (then a little padding is
    allowed), else at 0. Two chained frame headers (or one that ends the file) are
    required, so random bytes are not taken for MP3."""
    start, window = 0, 1
    if head[:3] == b"ID3":
        if len(head) < 10 or head[3] not in (2, 3, 4) or any(b >= 0x80 for b in head[6:10]):
            return None
        tag = head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]  # syncsafe
        start, window = 10 + tag + (10 if head[5] & 0x10 else 0), 4096
    f.seek(start)
    buf = f.read(window + 8192)
    for i in range(min(window, len(buf))):
        frame = frame_at(buf, i)
        if frame is None:
            continue
        after = start + i + frame.length
        if after == size or frame_at(buf, i + frame.length) is not None:
            return start + i
    return None


def mp3_duration_ms(f: BinaryIO, start: int, size: int) -> int | None:
    """From the Xing/Info frame count when there is one, else as constant bit rate."""
    f.seek(start)
    buf = f.read(256)
    frame = frame_at(buf, 0)
    if frame is None:
        return None
    side = (17 if frame.mono else 32) if frame.mpeg1 else (9 if frame.mono else 17)
    tag = buf[4 + side : 4 + side + 12]
    if tag[:4] in (b"Xing", b"Info") and int.from_bytes(tag[4:8], "big") & 1:
        frames = int.from_bytes(tag[8:12], "big")
        return frames * frame.samples * 1000 // frame.rate
    f.seek(max(size - 128, 0))
    audio = size - start - (128 if f.read(3) == b"TAG" else 0)
    return max(audio, 0) * 8 // frame.kbps


# ---------------------------------------------------------------- Ogg
@dataclass(frozen=True, slots=True)
class Stream:
    kind: str  # audio | video | unknown
    serial: bytes
    rate: int = 0
    pre_skip: int = 0


def _ogg_codec(serial: bytes, packet: bytes) -> Stream | None:
    if packet.startswith(b"\x01vorbis") and len(packet) >= 16:
        return Stream("audio", serial, int.from_bytes(packet[12:16], "little"))
    if packet.startswith(b"OpusHead") and len(packet) >= 12:
        return Stream("audio", serial, 48000, int.from_bytes(packet[10:12], "little"))
    if packet.startswith(b"\x7fFLAC") and len(packet) >= 30:
        rate = packet[27] << 12 | packet[28] << 4 | packet[29] >> 4
        return Stream("audio", serial, rate)
    if packet.startswith(b"Speex   ") and len(packet) >= 40:
        return Stream("audio", serial, int.from_bytes(packet[36:40], "little"))
    if packet.startswith((b"\x80theora", b"\x80daala", b"BBCD")):
        return Stream("video", serial)
    if packet.startswith(b"fishead\x00"):  # Ogg Skeleton: an index, not a track
        return None
    return Stream("unknown", serial)


def ogg_streams(head: bytes) -> list[Stream]:
    """The logical streams, from the beginning-of-stream pages that open the file."""
    streams, i = [], 0
    while head[i : i + 4] == b"OggS" and i + 27 <= len(head):
        if not head[i + 5] & 0x02:  # beginning-of-stream pages all come first
            break
        segments = head[i + 26]
        body = i + 27 + segments
        length = sum(head[i + 27 : body])
        stream = _ogg_codec(head[i + 14 : i + 18], head[body : body + length])
        if stream is not None:
            streams.append(stream)
        i = body + length
    return streams


def ogg_duration_ms(f: BinaryIO, size: int, audio: Stream) -> int | None:
    """The last page's granule position of the audio stream, in its sample rate."""
    if not audio.rate:
        return None
    f.seek(max(size - _TAIL, 0))
    tail = f.read(_TAIL)
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at : at + 27]
        if len(page) == 27 and page[14:18] == audio.serial:
            granule = int.from_bytes(page[6:14], "little", signed=True)
            if granule >= 0:
                return max(granule - audio.pre_skip, 0) * 1000 // audio.rate
        at = tail.rfind(b"OggS", 0, at)
    return None


# ---------------------------------------------------------------- WebM / Matroska
def webm_info(head: bytes) -> ebml.Matroska | None:
    return ebml.parse(head)
