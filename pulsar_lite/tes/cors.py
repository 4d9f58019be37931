"""CORS on the TES routes (``tes_cors_origins``), for TES clients that run in a browser.

No origin listed (the default): no CORS header at all, and an ``OPTIONS`` request is a 405 as any other
method a route does not take. Origins listed: a request whose ``Origin`` is one of them (or any, with ``*``)
gets ``Access-Control-Allow-Origin`` on every answer, errors included, and a preflight ``OPTIONS`` on a TES
route is answered before authentication (a browser sends no credentials with it). No
``Access-Control-Allow-Credentials``: a browser client sends its token or Basic credentials in the
``Authorization`` header it sets itself, never the browser's own cookies or remembered logins.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigError

#: what a preflight may ask for
ALLOWED_HEADERS = "Authorization, Content-Type"
MAX_AGE = "600"


class Cors:
    def __init__(self, origins):
        self.any = False
        self.origins: set[str] = set()
        for origin in origins or []:
            origin = str(origin).strip()
            if origin == "*":
                self.any = True
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
                    or parts.query or parts.fragment:
                raise ConfigError(f"tes_cors_origins: {origin!r} is not an origin (scheme://host[:port], or *)")
            self.origins.add(f"{parts.scheme}://{parts.netloc}".lower())

    @property
    def enabled(self) -> bool:
        return self.any or bool(self.origins)

    def allowed(self, origin: str | None) -> bool:
        return bool(origin) and (self.any or origin.lower() in self.origins)

    def headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The headers every TES answer to a request from ``origin`` carries."""
        if not self.enabled:
            return []
        headers = [] if self.any else [("Vary", "Origin")]
        if self.allowed(origin):
            headers.append(("Access-Control-Allow-Origin", "*" if self.any else origin))
        return headers

    def preflight(self, origin: str | None, methods: tuple[str, ...]) -> list[tuple[str, str]]:
        """The headers of the answer to a preflight of a route taking ``methods``."""
        headers = [("Allow", ", ".join((*methods, "OPTIONS")))] + self.headers(origin)
        if self.allowed(origin):
            headers += [("Access-Control-Allow-Methods", ", ".join((*methods, "OPTIONS"))),
                        ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                        ("Access-Control-Max-Age", MAX_AGE)]
        return headers
