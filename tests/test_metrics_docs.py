"""The metrics table of docs/operations.md names exactly what GET /metrics serves: a relay
with every part that adds metrics (webhooks on), built as `python -m workers relay` builds
it, is asked for its metric families."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import settings_for
from workers.app import create_app
from workers.keys import METRICS

ROOT = Path(__file__).resolve().parents[1]


def served() -> set[str]:
    app = create_app(
        settings_for(
            "postgresql://postgres@127.0.0.1:5432/unused",
            webhook_url="https://hooks.example.com/chat",
            webhook_secret="whsec_" + "A" * 32,
        )
    )
    names = set()
    for family in app[METRICS].registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def documented() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("### Metrics") :]
    rows = [line for line in section.splitlines() if line.startswith("| `chat_")]
    names = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names.update(re.findall(r"`(chat_[a-z0-9_]+)", first_cell))
    return names


def test_the_docs_name_every_metric_served_and_nothing_else() -> None:
    found, listed = served(), documented()
    assert len(found) > 25
    assert not found - listed, f"served, not in docs/operations.md: {sorted(found - listed)}"
    assert not listed - found, f"in docs/operations.md, not served: {sorted(listed - found)}"
