"""Who may send frames: loopback by default, CURVE keys for anything else.

A server that accepts frames from the network must not accept them from anyone.
Binding a non-loopback address therefore needs CURVE: the server's secret key
(clients must know its public key to even complete the handshake) and a folder
of authorised client public keys checked at the handshake (ZAP, see admission.py), so a
client with the server key but an unknown key gets nothing.

Key layout made by ``m2fp keys --dir DIR``::

    DIR/server.key, DIR/server.key_secret        the server's certificate
    DIR/clients/<name>.key(_secret)              one pair per client (give it to that OBS)
    DIR/authorized_clients/<name>.key            public halves the server accepts
"""
from __future__ import annotations

import ipaddress
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.utils import z85

from .errors import BadInput, M2fpError, MissingFile

log = logging.getLogger(__name__)


class ExposureError(M2fpError, RuntimeError):
    """Refusing to listen beyond this machine without keys."""


def is_local(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    scheme = address.split("://", 1)[0].lower()
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(address.replace("*", "0", 1) if address.startswith("tcp://*") else address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or "*": not provably loopback


def check_exposure(address: str, keys_dir: Path | None) -> None:
    if keys_dir is None and not is_local(address):
        raise ExposureError(
            f"refusing to bind {address} without authentication: anyone on the network could send frames. "
            "Make keys with `m2fp keys --dir KEYS` and start the server with `--curve-keys KEYS`, "
            "or bind tcp://127.0.0.1:PORT.")


@dataclass
class CurveKeys:
    server_public: bytes
    server_secret: bytes
    authorized_dir: Path

    @classmethod
    def load(cls, keys_dir: Path) -> "CurveKeys":
        secret_file = keys_dir / "server.key_secret"
        if not secret_file.is_file():
            raise MissingFile(f"{secret_file} is missing; make keys with `m2fp keys --dir {keys_dir}`")
        public, secret = zmq.auth.load_certificate(str(secret_file))
        if secret is None:
            raise BadInput(f"{secret_file} holds no secret key")
        authorized = keys_dir / "authorized_clients"
        if not authorized.is_dir() or not any(authorized.glob("*.key")):
            raise MissingFile(f"no authorised client keys in {authorized}; run `m2fp keys --dir {keys_dir} "
                                    "--client NAME` for each client")
        return cls(public, secret, authorized)


def generate_keys(keys_dir: Path, client: str = "obs") -> dict[str, Path]:
    """Create the server certificate (once) and one client pair; authorise the client."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "clients").mkdir(exist_ok=True)
    (keys_dir / "authorized_clients").mkdir(exist_ok=True)
    out: dict[str, Path] = {}
    if not (keys_dir / "server.key_secret").exists():
        zmq.auth.create_certificates(str(keys_dir), "server")
    out["server_public"] = keys_dir / "server.key"
    out["server_secret"] = keys_dir / "server.key_secret"
    pub, sec = zmq.auth.create_certificates(str(keys_dir / "clients"), client)
    out["client_public"], out["client_secret"] = Path(pub), Path(sec)
    shutil.copy(pub, keys_dir / "authorized_clients" / f"{client}.key")
    for p in (out["server_secret"], out["client_secret"]):
        p.chmod(0o600)
    return out


class CurveKeyCheck:
    """Admits only the authorised client keys: a check for :class:`admission.ZapDispatcher`.

    pyzmq's ThreadAuthenticator would do the same, but it takes the context's one ZAP endpoint,
    which the connection limit needs too (see admission.py)."""

    def __init__(self, authorized_dir: Path) -> None:
        self._keys = set(zmq.auth.load_certificates(str(authorized_dir)))
        log.info("CURVE on: %d authorised client key(s) in %s", len(self._keys), authorized_dir)

    def __call__(self, mechanism: bytes, credentials: list[bytes]) -> str | None:
        if mechanism != b"CURVE":
            return "CURVE required"
        if len(credentials) != 1 or len(credentials[0]) != 32:
            return "malformed CURVE credentials"
        if z85.encode(credentials[0]) not in self._keys:
            log.info("refused an unknown client key")
            return "unknown client key"
        return None


def load_client_keys(keys_dir: Path, client: str = "obs") -> dict[str, bytes]:
    """The dict ``MaskClient(curve=...)`` takes: server public key and this client's pair."""
    server_public, _ = zmq.auth.load_certificate(str(keys_dir / "server.key"))
    public, secret = zmq.auth.load_certificate(str(keys_dir / "clients" / f"{client}.key_secret"))
    if secret is None:
        raise BadInput(f"no secret key for client {client!r} in {keys_dir}")
    return {"server_public": server_public, "public": public, "secret": secret}
