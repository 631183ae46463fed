"""Command line: ``python -m workers relay | token | check-config``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

from .auth import APP_ROLES, make_dev_token
from .config import DEV_JWT_SECRET, Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _relay(args: argparse.Namespace) -> None:
    from aiohttp import web

    from .app import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for warning in settings.warnings():
        logging.getLogger("workers").warning(warning)
    port = args.port or settings.port
    app = create_app(settings)
    app.on_startup.append(_settle_garbage_collector)
    print(f"chat relay listening on http://{settings.host}:{port}", flush=True)
    web.run_app(
        app,
        host=settings.host,
        port=port,
        print=None,
        access_log=None,
        loop=_event_loop(),
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (faster socket I/O and scheduling), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a pinned dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _settle_garbage_collector(_app: object) -> None:
    """Full collections walk every object; with thousands of sockets they paused delivery
    for 70 to 166 ms. Objects made at start-up (modules, the app) go to the permanent
    generation; the young generation is collected every 10,000 allocations (a pause of a
    few milliseconds: 50,000 made each pause 30 ms) and full collections practically never
    run (measured under load: 35 to 47 ms each). Cycles that live long enough to reach the
    old generation are rare here; `scripts/soak` checks that memory stays flat."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 1_000)


def _token(args: argparse.Namespace) -> None:
    secret = os.environ.get("JWT_SECRET", "").strip()
    if not secret:
        secret = DEV_JWT_SECRET
        print("(JWT_SECRET unset: signed with the scripts/dev secret)", file=sys.stderr)
    print(
        make_dev_token(
            secret=secret,
            user_id=args.user,
            role=args.role,
            email=args.email,
            name=args.name,
            expires_in=args.expires_in,
        )
    )


def _check_config(_: argparse.Namespace) -> None:
    settings = _settings()
    print(f"configuration ok (port {settings.port}, storage {settings.storage_backend})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    sub = parser.add_subparsers(dest="command", required=True)

    relay = sub.add_parser("relay", help="serve the Socket.IO relay and the HTTP API")
    relay.add_argument("--port", type=int, default=None, help="overrides PORT")
    relay.set_defaults(func=_relay)

    token = sub.add_parser("token", help="print a development token signed with JWT_SECRET")
    token.add_argument("--user", required=True, help="the user's UUID (the token's sub)")
    token.add_argument("--role", default="client", choices=APP_ROLES, help="app_metadata.role")
    token.add_argument("--email", default=None)
    token.add_argument("--name", default=None, help="user_metadata.full_name")
    token.add_argument(
        "--expires-in", type=int, default=24 * 3600, help="lifetime in seconds (default 1 day)"
    )
    token.set_defaults(func=_token)

    check = sub.add_parser("check-config", help="validate the environment and exit")
    check.set_defaults(func=_check_config)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
