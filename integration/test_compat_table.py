"""The generated table: one section per kind of client, one column per way of stopping a call."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from integration import compat_table

if TYPE_CHECKING:
    from pathlib import Path


def _row(label: str, how: str, latency: float | None, **extra: Any) -> dict[str, Any]:
    outer = {"cancel": "ThreadCancelled", "deadline": "ThreadTimeout"}.get(how, "nothing")
    row = {
        "label": label, "how": how, "imported": "before", "version": "1.0", "raised": outer,
        "outer": outer, "latency": latency, "after": "usable", "notes": "n", "passed": True,
    }  # fmt: skip
    return {**row, **extra}


def test_two_sections_and_a_column_per_route(tmp_path: Path) -> None:
    rows = [
        _row("psycopg", "cancel", 0.004, server_stopped=0.002),
        _row("psycopg", "deadline", 0.0005, server_stopped=0.001),
        _row("httpx", "cancel", 0.0002, section="net"),
        _row("httpx", "deadline", 0.003, section="net"),
        _row("httpx", "scope", 0.0001, section="net"),
        _row("smtplib", "cancel", None, section="net", passed=False, raised="nothing"),
    ]
    path = tmp_path / "compat-3.12.json"
    path.write_text(json.dumps({"python": "3.12", "rows": rows}))
    text = compat_table.build([str(path)])
    db, net = text.split("## Database and cache clients")[1].split("## Network clients")
    assert "| psycopg | 1.0 | 2/2 | before | yes, ≤ 4 ms | yes, < 1 ms | yes, ≤ 2 ms |" in db
    assert "httpx" not in db
    assert "| client | version | passed | imported | cancel | deadline | scope | after |" in net
    httpx = "| httpx | 1.0 | 3/3 | before | yes, < 1 ms | yes, ≤ 3 ms | yes, < 1 ms | usable |"
    assert httpx in net
    assert "| smtplib | 1.0 | 0/1 | before | no | — | — | usable |" in net
