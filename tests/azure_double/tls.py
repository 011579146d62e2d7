"""A test certificate authority (trustme) and a server certificate for 127.0.0.1 / localhost.

Made once per process: every double shares the same CA file, so startup costs no key generation."""
from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_cached: dict = {}


def tls_material() -> tuple[str, ssl.SSLContext]:
    """(path of the CA bundle PEM, a server-side SSLContext)."""
    with _lock:
        if not _cached:
            import trustme

            ca = trustme.CA(organization_name="aitk-nb Azure test double")
            cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
            folder = Path(tempfile.mkdtemp(prefix="azure-double-ca-"))
            atexit.register(shutil.rmtree, folder, True)
            ca_path = folder / "ca.pem"
            ca.cert_pem.write_to_path(str(ca_path))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            _cached["ca"] = str(ca_path)
            _cached["ctx"] = ctx
        return _cached["ca"], _cached["ctx"]
