"""Small real files, made in the test, for each type the upload worker accepts (and some
it must refuse). Durations and sizes are known by construction."""

from __future__ import annotations

import io
import struct
import wave
import zlib


# ---------------------------------------------------------------- audio
def wav(duration_ms: int, *, rate: int = 8000) -> bytes:
    """16-bit mono PCM silence of exactly this duration, written by the wave module."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * (rate * duration_ms // 1000))
    return out.getvalue()


MP3_FRAME_HEADER = b"\xff\xfb\x90\x00"  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
MP3_FRAME_LENGTH = 144 * 128_000 // 44_100  # 417 bytes
MP3_FRAME_MS = 1152 / 44.1


def mp3(frames: int, *, id3: bool = False) -> bytes:
    """Constant-bit-rate MPEG audio frames, with or without an ID3v2 tag before them."""
    body = (MP3_FRAME_HEADER + b"\x00" * (MP3_FRAME_LENGTH - 4)) * frames
    if not id3:
        return body
    frame = b"TIT2" + struct.pack(">I", 6) + b"\x00\x00" + b"\x03Test"
    tag = frame + b"\x00" * 20  # padding
    size = len(tag)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + tag + body


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packet: bytes, *, granule: int, seq: int, flags: int, serial: int = 7) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = (
        b"OggS\x00"
        + bytes([flags])
        + struct.pack("<qIII", granule, serial, seq, 0)
        + bytes([len(segments)])
        + bytes(segments)
    )
    page = header + packet
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_opus(duration_ms: int, *, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    granule = pre_skip + duration_ms * 48
    return (
        _ogg_page(head, granule=0, seq=0, flags=0x02)
        + _ogg_page(tags, granule=0, seq=1, flags=0)
        + _ogg_page(b"\xfc" + b"\x00" * 40, granule=granule, seq=2, flags=0x04)
    )


def ogg_theora() -> bytes:
    return _ogg_page(b"\x80theora" + b"\x03\x02\x01" + b"\x00" * 40, granule=0, seq=0, flags=2)


def _ebml(ident: int, payload: bytes) -> bytes:
    """An element: its id, an 8-byte size (marker 0x01), the payload."""
    ident_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return ident_bytes + b"\x01" + len(payload).to_bytes(7, "big") + payload


def webm(*, video: bool = False, duration_ms: float | None = 2500.0) -> bytes:
    """EBML header (DocType webm), then a Segment of unknown size as MediaRecorder writes
    it: Info (TimecodeScale, Duration), Tracks (one TrackEntry), a Cluster."""
    header = _ebml(0x1A45DFA3, _ebml(0x4286, b"\x01") + _ebml(0x4282, b"webm"))
    info = _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big"))
    if duration_ms is not None:
        info += _ebml(0x4489, struct.pack(">d", duration_ms))
    track_type, codec = (1, b"V_VP8") if video else (2, b"A_OPUS")
    entry = _ebml(0xD7, b"\x01") + _ebml(0x83, bytes([track_type])) + _ebml(0x86, codec)
    segment_body = (
        _ebml(0x1549A966, info)
        + _ebml(0x1654AE6B, _ebml(0xAE, entry))
        + _ebml(0x1F43B675, _ebml(0xE7, b"\x00") + b"\xa3\x84\x81\x00\x00\x80")
    )
    unknown_size = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    return header + b"\x18\x53\x80\x67" + unknown_size + segment_body


# ---------------------------------------------------------------- images
def png(width: int, height: int) -> bytes:
    """A real, decodable grayscale PNG, written by hand with zlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0, a comment, a baseline SOF0 with the size, EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    com = b"made in a test"

    def segment(marker: int, data: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data

    return b"\xff\xd8" + segment(0xE0, app0) + segment(0xFE, com) + segment(0xC0, sof) + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\x00\x00\x00\x00;"


def webp(width: int, height: int) -> bytes:
    bits = (width - 1) | (height - 1) << 14 | 1 << 28  # alpha hint, version 0
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# ---------------------------------------------------------------- documents and others
def pdf() -> bytes:
    """A minimal one-page PDF with a valid cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def text() -> bytes:
    return "Notes from the reading ✨\nLine two: ünïcödé, 日本語.\n".encode()


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 100


def pe() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 50 + b"PE\x00\x00" + b"\x00" * 64
