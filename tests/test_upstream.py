"""The relay starts only on the python-socketio, python-engineio and aiohttp versions its
adaptations were read from."""

from __future__ import annotations

from importlib import metadata

import pytest

from workers.relay import upstream


def test_the_installed_versions_are_the_ones_read() -> None:
    upstream.check()
    for name, version in upstream.READ.items():
        assert metadata.version(name) == version


def test_another_version_is_refused_with_a_clear_message() -> None:
    versions = dict(upstream.READ, **{"python-engineio": "4.16.0"})
    with pytest.raises(upstream.UpstreamMismatch, match=r"python-engineio 4\.16\.0 .*4\.15\.1"):
        upstream.check(versions)


def test_the_pins_in_pyproject_match() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for name, version in upstream.READ.items():
        assert f'"{name}=={version}"' in text


def test_the_overridden_upstream_methods_are_the_ones_read() -> None:
    """An upgrade that changes one of them shows the diff here: re-read it, adapt the relay,
    then refresh tests/upstream/."""
    import difflib
    import importlib
    import inspect
    from pathlib import Path

    folder = Path(__file__).resolve().parent / "upstream"
    changed = []
    for name in upstream.OVERRIDDEN:
        module_name, class_name, method = name.rsplit(".", 2)
        cls = getattr(importlib.import_module(module_name), class_name)
        now = inspect.getsource(getattr(cls, method))
        read = (folder / f"{name}.py.txt").read_text()
        if now != read:
            changed.append(
                "".join(
                    difflib.unified_diff(
                        read.splitlines(True), now.splitlines(True), name, "installed"
                    )
                )
            )
    assert changed == [], "\n".join(changed)
    assert sorted(p.name.removesuffix(".py.txt") for p in folder.glob("*.py.txt")) == sorted(
        upstream.OVERRIDDEN
    )


def test_every_upstream_method_the_relay_replaces_is_listed() -> None:
    """A method defined by one of the relay's subclasses of python-socketio or
    python-engineio classes, with the same name as one of theirs, is an override: it must
    be in upstream.OVERRIDDEN (and so compared with its source as read)."""
    import inspect

    from workers.relay.upstream import connection, manager, packets, redis_queue, server, transport

    ours = [
        connection._Sink,
        connection.HandedOverResponse,
        packets._CheckedPacket,
        packets._GuardedSocket,
        packets.PacketGuardServer,
        server.GuardedServer,
        transport.PlainWebSocket,
        redis_queue.ResilientRedisManager,
        manager.DirectEmitManager,
        manager.ChatRedisManager,
    ]
    unlisted = []
    for cls in ours:
        for name, value in vars(cls).items():
            if not callable(value) or name in ("__init__", "__init_subclass__"):
                continue
            for base in cls.__mro__[1:]:
                if not base.__module__.startswith(("socketio", "engineio", "aiohttp")):
                    continue
                if name in vars(base):
                    # aiohttp's compiled websocket reader is built from reader_py's source
                    module = base.__module__.replace(
                        "._websocket.reader_c", "._websocket.reader_py"
                    )
                    qualified = f"{module}.{base.__qualname__}.{name}"
                    if qualified not in upstream.OVERRIDDEN:
                        unlisted.append(f"{cls.__qualname__}.{name} overrides {qualified}")
                    break
    assert unlisted == []
    assert inspect.getmodule(upstream.check) is upstream
