"""What the integration fixtures hand to tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass
class Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.port}/"


class _TLSCerts:
    """A trustme CA, a certificate for 127.0.0.1, and the CA as a PEM file."""

    def __init__(self) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self._ca_file = self.ca.cert_pem.tempfile()
        self.ca_file = self._ca_file.__enter__()

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def close(self) -> None:
        self._ca_file.__exit__(None, None, None)


TLS = _TLSCerts()
