"""One signed HTTP attempt, and what follows from its answer.

Signed per Standard Webhooks with the ``standardwebhooks`` library: ``webhook-id`` (the
outbox row, the same on every attempt), ``webhook-timestamp`` (this attempt, in seconds)
and ``webhook-signature`` (``v1,`` + HMAC-SHA256 of ``id.timestamp.body`` with the
``whsec_`` secret). The URL comes from the environment only; redirects are not followed;
every attempt is bounded by a total timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

USER_AGENT = "chat-workers-webhooks/1"
_ERROR_BYTES = 300  # of a failed answer's body, kept in last_error


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt gave: ``outcome`` is ``delivered``, ``retry`` or ``dead``."""

    outcome: str
    result: str  # metric label: 2xx, 3xx, 4xx, 5xx, 410, 429, timeout, error
    status: int | None = None
    error: str | None = None
    dead_reason: str | None = None
    retry_after: float | None = None


def webhook_id(row_id: Any) -> str:
    """The stable ``webhook-id`` of an outbox row."""
    return "msg_" + str(row_id).replace("-", "")


def body_of(payload: Any) -> str:
    """The body bytes (as text): the same for the same stored payload on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class Sender:
    def __init__(self, *, url: str, secret: str, timeout: float) -> None:
        self._url = url
        self._signer = Webhook(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=16),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def headers(self, msg_id: str, body: str, *, now: dt.datetime | None = None) -> dict[str, str]:
        when = now or dt.datetime.now(dt.UTC)
        return {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": self._signer.sign(msg_id=msg_id, timestamp=when, data=body),
        }

    async def send(self, msg_id: str, payload: Any) -> Attempt:
        assert self._http is not None, "Sender.open() first"
        body = body_of(payload)
        try:
            async with self._http.post(
                self._url,
                data=body.encode(),
                headers=self.headers(msg_id, body),
                allow_redirects=False,
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return Attempt("delivered", "2xx", status)
                text = (await response.content.read(_ERROR_BYTES)).decode(errors="replace")
                return classify(status, text, response.headers.get("Retry-After"))
        except TimeoutError:
            return Attempt("retry", "timeout", error="timed out")
        except (aiohttp.ClientError, OSError) as exc:
            return Attempt("retry", "error", error=f"{type(exc).__name__}: {exc}"[:_ERROR_BYTES])


def classify(status: int, text: str, retry_after: str | None) -> Attempt:
    """Timeouts, 408, 429 and 5xx are retried; 410 stops (gone); any other answer (a
    redirect, another 4xx) will not change by itself: dead-lettered as rejected."""
    error = f"HTTP {status}: {text.strip()}"[:_ERROR_BYTES]
    if status == 410:
        return Attempt("dead", "410", status, error, dead_reason="gone")
    if status == 429 or status == 408 or status >= 500:
        label = "429" if status == 429 else f"{status // 100}xx"
        return Attempt("retry", label, status, error, retry_after=_seconds(retry_after))
    return Attempt("dead", f"{status // 100}xx", status, error, dead_reason="rejected")


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: ignored, the back-off applies
    return seconds if seconds >= 0 else None


def retry_delay(
    attempts: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential
    (base, 2 base, 4 base, ... at most ``cap``) with equal jitter (half fixed, half
    random), and never sooner than a ``Retry-After`` the receiver asked for (within cap)."""
    nominal = min(cap, base * 2 ** max(0, attempts - 1))
    delay = nominal / 2 + nominal / 2 * rng()
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
