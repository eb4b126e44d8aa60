"""What the integration fixtures hand to tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"
