"""Who may talk to the policy server: ZeroMQ CURVE keys (pyzmq's :mod:`zmq.auth`) and the rule that
only loopback may go without them.

A key pair is two files written by :func:`generate_keys` (``hrl keys generate DIR``):
``NAME.key`` holds the public key (hand it out: clients need the server's, the server needs each
client's in its directory of authorized keys) and ``NAME.key_secret`` holds both keys (mode 0600;
it never leaves the machine it was made for). The server runs a
:class:`zmq.auth.thread.ThreadAuthenticator` that admits exactly the public keys found in its
authorized directory when it starts; a client with another key fails the CURVE handshake and never
gets a reply.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from pathlib import Path
from typing import Any

from hrl_runtime.errors import ConfigError

logger = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
LOOPBACK_NAMES = ("localhost",)

EXPOSED_WITHOUT_KEYS = (
    "--host {host} is not loopback and the server has no keys: anyone on the network could "
    "command the robot; make keys with `hrl keys generate DIR` and pass "
    "--keys DIR/server.key_secret --authorized CLIENT_KEYS_DIR, or pass --insecure to serve "
    "without authentication anyway"
)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # an interface name or a host name: assume it is reachable from outside
        return False


def exposure_problem(host: str, secured: bool, insecure: bool) -> str | None:
    """The one-line refusal for serving ``host`` without keys, or None when that is allowed.

    Args:
        host: the interface to bind.
        secured: whether the server has a key pair and authorized client keys.
        insecure: the operator's explicit ``--insecure``.
    """
    if secured or insecure or is_loopback(host):
        return None
    return EXPOSED_WITHOUT_KEYS.format(host=host)


def generate_keys(
    directory: str | Path, name: str = "server", force: bool = False
) -> tuple[Path, Path]:
    """Writes a CURVE key pair ``DIR/NAME.key`` (public) and ``DIR/NAME.key_secret`` (mode 0600).

    Args:
        directory: where to write (created if missing, mode 0700).
        name: the files' stem, e.g. ``server`` or ``robot-arm-client``.
        force: replace existing files of that name.

    Returns:
        The paths of the public and the secret file.

    Raises:
        ConfigError: a bad name, an existing key pair without ``force``, or an unwritable place.
    """
    import zmq.auth

    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", os.sep)):
        raise ConfigError(f"--name {name!r} must be a plain file stem such as 'server' or 'arm'")
    directory = Path(directory).expanduser()
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    existing = [str(path) for path in (public, secret) if path.exists()]
    if existing and not force:
        raise ConfigError(
            f"{' and '.join(existing)} already exist; pass --force to replace the key pair "
            "(clients and servers holding the old public key must get the new one)"
        )
    mask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path in (public, secret):
            path.unlink(missing_ok=True)
        zmq.auth.create_certificates(directory, name)
    except OSError as error:
        raise ConfigError(f"cannot write keys in {directory}: {error.strerror}") from None
    finally:
        os.umask(mask)
    secret.chmod(0o600)
    public.chmod(0o644)
    return public, secret


def load_secret_key(path: str | Path, option: str = "--keys") -> tuple[bytes, bytes]:
    """The (public, secret) keys of a ``.key_secret`` file.

    Raises:
        ConfigError: the file is missing, unreadable or holds no secret key.
    """
    public, secret = _load(path, option)
    if secret is None:
        raise ConfigError(
            f"{option} {path} holds no secret key; pass the NAME{SECRET_SUFFIX} file that "
            "`hrl keys generate` wrote, not NAME.key"
        )
    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s is readable by other users; run chmod 600 on it", path)
    return public, secret


def load_public_key(path: str | Path, option: str = "--server-key") -> bytes:
    """The public key of a ``.key`` (or ``.key_secret``) file.

    Raises:
        ConfigError: the file is missing, unreadable or holds no key.
    """
    return _load(path, option)[0]


def _load(path: str | Path, option: str) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(Path(path).expanduser())
    except OSError as error:
        raise ConfigError(f"{option} {path}: {error.strerror or error}") from None
    except ValueError as error:  # no public key in the file
        raise ConfigError(f"{option} {path} is not a key file ({error})") from None
    return public, secret


def authorized_keys(directory: str | Path) -> Path:
    """``directory`` if it holds at least one public key file (``*.key``).

    Raises:
        ConfigError: it is missing or holds no ``*.key`` file.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ConfigError(
            f"--authorized {directory} is not a directory; put the clients' NAME.key files in one"
        )
    if not any(directory.glob(f"*{PUBLIC_SUFFIX}")):
        raise ConfigError(
            f"--authorized {directory} holds no *{PUBLIC_SUFFIX} file, so no client could connect; "
            "copy each client's public NAME.key there"
        )
    return directory


def start_authenticator(context: Any, directory: Path) -> Any:
    """A running :class:`~zmq.auth.thread.ThreadAuthenticator` on ``context`` that admits the
    public keys in ``directory`` (read once, now) for every CURVE socket of the context."""
    from zmq.auth.thread import ThreadAuthenticator

    authenticator = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(directory))
    admitted = sum(len(keys) for keys in authenticator.certs.values())
    logger.info("admitting %d client key(s) from %s", admitted, directory)
    return authenticator
