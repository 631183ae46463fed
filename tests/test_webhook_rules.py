"""Webhook settings and delivery rules without a network: the variables (named on error),
the retry schedule, and how each receiver answer is treated."""

from __future__ import annotations

import base64
import itertools

import pytest

from workers.config import Settings, SettingsError
from workers.webhooks.sender import classify, retry_delay, webhook_id

BASE = {"JWT_SECRET": "x" * 40}
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_webhooks_are_off_by_default_with_the_issue_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.webhook_url is None
    assert settings.notify_delay == 30.0
    assert settings.webhook_include_content is False
    assert settings.webhook_timeout == 10.0
    assert (settings.webhook_retry_base, settings.webhook_retry_cap) == (5.0, 3600.0)
    assert settings.webhook_retry_window == 86_400.0


def test_webhook_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "WEBHOOK_URL": "https://platform.example.com/hooks/chat",
            "WEBHOOK_SECRET": SECRET,
            "NOTIFY_DELAY": "5",
            "WEBHOOK_INCLUDE_CONTENT": "true",
        }
    )
    assert settings.webhook_url == "https://platform.example.com/hooks/chat"
    assert settings.webhook_secret == SECRET
    assert settings.notify_delay == 5.0
    assert settings.webhook_include_content is True


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WEBHOOK_URL": "https://example.com/h"}, "WEBHOOK_SECRET"),  # no secret
        ({"WEBHOOK_URL": "ftp://example.com/h", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL"),
        ({"WEBHOOK_URL": "https://example.com/h", "WEBHOOK_SECRET": "hunter2"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"short").decode()}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_SECRET": "whsec_not base64!"}, "WEBHOOK_SECRET"),
        ({"NOTIFY_DELAY": "-1"}, "NOTIFY_DELAY"),
        ({"NOTIFY_DELAY": "soon"}, "NOTIFY_DELAY"),
        ({"WEBHOOK_INCLUDE_CONTENT": "maybe"}, "WEBHOOK_INCLUDE_CONTENT"),
        ({"WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT"),
        ({"WEBHOOK_TIMEOUT": "600"}, "WEBHOOK_TIMEOUT"),
        ({"WEBHOOK_RETRY_WINDOW": "0"}, "WEBHOOK_RETRY_WINDOW"),
    ],
)
def test_bad_webhook_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        Settings.from_env({**BASE, **env})


def test_retry_schedule_doubles_with_jitter_up_to_the_cap() -> None:
    low = [retry_delay(n, base=5, cap=3600, rng=lambda: 0.0) for n in range(1, 14)]
    high = [retry_delay(n, base=5, cap=3600, rng=lambda: 1.0) for n in range(1, 14)]
    assert high[:6] == [5, 10, 20, 40, 80, 160]
    assert low[:3] == [2.5, 5, 10]  # equal jitter: at least half the nominal delay
    assert high[-1] == 3600 and low[-1] == 1800  # capped at an hour
    assert all(a <= b for a, b in itertools.pairwise(high))


def test_retry_after_is_honoured_within_the_cap() -> None:
    assert retry_delay(1, base=5, cap=3600, retry_after=120, rng=lambda: 0.0) == 120
    assert retry_delay(1, base=5, cap=60, retry_after=99_999, rng=lambda: 0.0) == 60


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (500, "retry", None),
        (503, "retry", None),
        (429, "retry", None),
        (408, "retry", None),
        (410, "dead", "gone"),
        (404, "dead", "rejected"),
        (401, "dead", "rejected"),
        (301, "dead", "rejected"),  # redirects are not followed
    ],
)
def test_answers_are_retried_or_dead_lettered(status: int, outcome: str, reason: str) -> None:
    attempt = classify(status, "body", "7")
    assert (attempt.outcome, attempt.dead_reason) == (outcome, reason)
    assert attempt.error is not None and attempt.error.startswith(f"HTTP {status}")


def test_webhook_id_is_stable_for_a_row() -> None:
    row = "91f8a573-9641-47d6-a086-b4736f4e7eb6"
    assert webhook_id(row) == webhook_id(row) == "msg_91f8a573964147d6a086b4736f4e7eb6"
