"""How a transfer reaches a remote end a client named (TES inputs and outputs): which addresses it may
connect to (``pulsar_lite.netpolicy``), which CA vouches for a TLS server, and TLS for ``ftp://``.

Galaxy's pull staging passes none (``remote=None``): its URLs are the Galaxy server's own job files API,
set by Galaxy's job configuration, and a client able to submit a Galaxy job can run a command on this
host anyway. A TES task's executors run with no network (``tes_container_network: none``): the daemon's
transfers are the one way a task reaches the network, so those are the ones checked.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import netpolicy

@dataclass(frozen=True)
class Remote:
    networks: netpolicy.AddressPolicy | None = None
    ca_bundle: str | None = None
    #: ``scheme``: as the URL says (``ftps://`` implicit TLS, ``ftp://`` none); ``try``: ``ftp://`` asks for
    #: TLS (AUTH TLS) and goes on without it when the server has none; ``required``: ``ftp://`` fails unless
    #: its login and data are encrypted (``tes_ftp_tls``)
    ftp_tls: str = "scheme"

    def apply(self, curl, url: str, pycurl) -> None:
        if self.networks is not None:
            netpolicy.guard(curl, self.networks, pycurl)
        if self.ca_bundle:
            curl.setopt(pycurl.CAINFO, self.ca_bundle)
        if url[:6].lower() == "ftp://" and self.ftp_tls != "scheme":
            curl.setopt(pycurl.USE_SSL, pycurl.USESSL_ALL if self.ftp_tls == "required" else pycurl.USESSL_TRY)

