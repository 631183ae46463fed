"""The upload worker's pure rules, without a server: content sniffing, safe names, byte
ranges, Content-Disposition, URL signatures, and the new settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.api.downloads import Unsatisfiable, content_disposition, parse_range
from workers.config import Settings, SettingsError
from workers.errors import ApiError
from workers.storage.signing import UrlSigner
from workers.uploads import names, sniff
from workers.uploads.service import check_declared

from . import file_samples as fs


def _detect(tmp_path: Path, content: bytes) -> sniff.Detected:
    path = tmp_path / "sample"
    path.write_bytes(content)
    return sniff.detect(path)


def test_truncated_and_lying_headers_never_raise(tmp_path: Path) -> None:
    samples = [
        fs.wav(300),
        fs.mp3(3, id3=True),
        fs.ogg_opus(500),
        fs.webm(),
        fs.png(3, 3),
        fs.jpeg(4, 4),
        fs.gif(1, 1),
        fs.webp(2, 2),
    ]
    for sample in samples:
        for cut in range(0, len(sample), max(1, len(sample) // 40)):
            _detect(tmp_path, sample[:cut])  # whatever it says, it says it calmly
    liar = fs.wav(100)[:40] + b"\xff\xff\xff\xff"  # data chunk claims 4 GB
    assert _detect(tmp_path, liar).details.get("duration_ms", 0) < 10


def test_mp3_needs_two_chained_frames_and_webm_needs_an_audio_track(tmp_path: Path) -> None:
    one_header = fs.MP3_FRAME_HEADER + b"\x00" * 20  # a sync word and nothing after it
    assert not _detect(tmp_path, one_header).allowed
    assert _detect(tmp_path, fs.mp3(1)).mime == "audio/mpeg"  # one frame that ends the file
    no_duration = _detect(tmp_path, fs.webm(duration_ms=None))
    assert (no_duration.mime, no_duration.details) == ("audio/webm", {})
    assert _detect(tmp_path, fs.webm(video=True)).mime == "video/webm"
    assert _detect(tmp_path, b"a line\x00with NUL").mime != "text/plain"
    assert _detect(tmp_path, "\ufeffBOM and text".encode()).mime == "text/plain"


@pytest.mark.parametrize(
    ("declared", "detected", "ok"),
    [
        (None, "image/png", True),
        ("application/octet-stream", "audio/wav", True),
        ("audio/webm; codecs=opus", "audio/webm", True),
        ("IMAGE/JPEG", "image/jpeg", True),
        ("text/csv", "text/plain", True),
        ("application/pdf", "image/png", False),
        ("image/png", "text/plain", False),
        ("image/svg+xml", "text/plain", False),
        ("video/mp4", "audio/webm", False),
    ],
)
def test_declared_type_must_agree_with_the_content(
    declared: str | None, detected: str, ok: bool
) -> None:
    if ok:
        check_declared(sniff.Detected(detected), declared)
    else:
        with pytest.raises(ApiError) as err:
            check_declared(sniff.Detected(detected), declared)
        assert err.value.status == 415 and detected in err.value.message


def test_safe_names_keep_extensions_of_the_detected_type() -> None:
    png = {"extension": "png", "known": ("png",)}
    assert names.display_name("holiday", **png) == "holiday.png"
    assert names.display_name("holiday.PNG", **png) == "holiday.PNG"
    assert names.display_name("virus.exe", **png) == "virus.exe.png"
    assert names.key_name("Ünïcödé ph✨to.png", **png) == "Unicode_phto.png"
    assert names.key_name("日本語.png", **png) == "file.png"
    assert len(names.key_name("y" * 500 + ".png", **png)) == names.MAX_KEY_NAME
    assert names.checked_object_path("a/b/c") == "a/b/c"
    for bad in ("a/b", "a/../c", "a//c", "a/b/c\x00", "a\\b\\c", "/a/b/c", "a/b/c/"):
        assert names.checked_object_path(bad) is None, bad
    assert names.download_name(None, "s/u/" + "f" * 32 + "-note.txt") == "note.txt"


def test_byte_ranges() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=-30", 10) == (0, 9)
    assert parse_range("bytes=8-100", 10) == (8, 9)
    for ignored in (
        "bytes=1-2,4-5",
        "bytes=5-2",
        "bits=1-2",
        "bytes=-",
        "bytes=+1-2",
        "bytes=\u0661-\u0662",
    ):
        assert parse_range(ignored, 10) is None, ignored
    for unsatisfiable in ("bytes=10-", "bytes=10-12", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(unsatisfiable, 10)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-0", 0)


def test_content_disposition_is_safe_for_any_name() -> None:
    header = content_disposition("application/pdf", 'a"b\r\nSet-Cookie: x=1;\u202e.pdf')
    assert header.startswith('attachment; filename="a_bSet-Cookie_ x_1_.pdf"')
    assert "\r" not in header and "\n" not in header
    assert header.endswith("filename*=UTF-8''a%22bSet-Cookie%3A%20x%3D1%3B.pdf")
    assert content_disposition("audio/ogg", "voice.ogg").startswith("inline;")
    assert content_disposition("image/png", "").startswith('inline; filename="file"')


def test_signatures_cover_path_and_expiry() -> None:
    now = 1_800_000_000.0
    signer = UrlSigner(b"k" * 32, public_url="https://chat.example/", clock=lambda: now)
    url = signer.url("s/u/f.png", 60)
    assert url == (
        "https://chat.example/api/chat/files/s/u/f.png?expires=1800000060&signature="
        + signer.signature("s/u/f.png", 1_800_000_060)
    )
    signer.verify(
        "s/u/f.png", expires=1_800_000_060, signature=signer.signature("s/u/f.png", 1_800_000_060)
    )
    other = UrlSigner(b"j" * 32, clock=lambda: now)
    with pytest.raises(ApiError) as err:
        other.verify(
            "s/u/f.png",
            expires=1_800_000_060,
            signature=signer.signature("s/u/f.png", 1_800_000_060),
        )
    assert err.value.code == "invalid_signature"


def test_upload_settings_from_the_environment() -> None:
    base = {"JWT_SECRET": "s" * 40}
    settings = Settings.from_env(base)
    assert (settings.upload_max_bytes, settings.file_url_ttl) == (10 * 1024 * 1024, 900)
    assert settings.file_url_secret is None and settings.public_url is None
    custom = Settings.from_env(
        {
            **base,
            "UPLOAD_MAX_BYTES": "1024",
            "FILE_URL_TTL": "60",
            "FILE_URL_SECRET": "f" * 32,
            "PUBLIC_URL": "https://chat.example",
        }
    )
    assert (custom.upload_max_bytes, custom.file_url_ttl) == (1024, 60)
    assert custom.public_url == "https://chat.example"
    for name, value in [
        ("UPLOAD_MAX_BYTES", str(10 * 1024 * 1024 + 1)),
        ("FILE_URL_TTL", "1"),
        ("FILE_URL_SECRET", "short"),
        ("PUBLIC_URL", "ftp://x"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**base, name: value})
