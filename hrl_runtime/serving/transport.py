"""The policy server's socket: a ZeroMQ ROUTER bound to one interface, with CURVE when it has
keys.

ROUTER rather than REP because the server must tell clients apart (each has its own rate limit);
REQ clients cannot see the difference. Every message arrives with its envelope (the routing id
ZeroMQ gives the connection, then the empty delimiter REQ adds), and the reply goes back with the
same envelope. A ROUTER never blocks on a send: a reply to a client that went away, or that does
not read its replies, is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hrl_runtime.serving import auth
from hrl_runtime.serving.limits import TRANSPORT_FRAME_BYTES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One request as the socket delivered it."""

    envelope: list[bytes]
    """The frames to send back in front of the reply (routing id, then REQ's empty delimiter)."""
    client: bytes
    """Who sent it: the z85 CURVE public key when authenticated, else the connection's
    routing id."""
    frames: list[bytes]
    """The request's own frames."""


class RouterTransport:
    """Binds a ROUTER socket to ``tcp://host:port`` (``port`` 0: a free one).

    Args:
        host: interface to bind.
        port: TCP port, or 0.
        secret_key_file: the server's ``.key_secret`` file; with it the socket is a CURVE server
            (and ``authorized_keys_dir`` is required).
        authorized_keys_dir: directory of the client public keys (``*.key``) to admit.

    Raises:
        ConfigError: a key file or the authorized directory is unusable (checked before binding).
    """

    def __init__(
        self,
        host: str,
        port: int,
        secret_key_file: str | Path | None = None,
        authorized_keys_dir: str | Path | None = None,
    ):
        import zmq

        self._zmq = zmq
        self.authenticated = secret_key_file is not None
        keys = authorized = None
        if self.authenticated:
            keys = auth.load_secret_key(secret_key_file, "--keys")
            authorized = auth.authorized_keys(authorized_keys_dir)
        self._context = zmq.Context()  # its own: one ZAP handler per context
        self._authenticator = None
        if authorized is not None:
            self._authenticator = auth.start_authenticator(self._context, authorized)
        self.socket = self._context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_FRAME_BYTES)
        if keys is not None:
            self.socket.curve_publickey, self.socket.curve_secretkey = keys
            self.socket.curve_server = True
        try:
            if port == 0:
                port = self.socket.bind_to_random_port(f"tcp://{host}")
            else:
                self.socket.bind(f"tcp://{host}:{port}")
        except zmq.ZMQError:
            self.close()
            raise
        self.address = f"tcp://{host}:{port}"
        self.server_public_key = None if keys is None else keys[0]
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN)

    def poll(self, timeout_ms: int) -> bool:
        """Whether a request is waiting, after at most ``timeout_ms``."""
        return bool(self._poller.poll(timeout_ms))

    def receive(self) -> Incoming:
        """The waiting request (call after :meth:`poll` said one is there)."""
        parts = self.socket.recv_multipart(copy=False)
        split = 2 if len(parts) >= 2 and len(parts[1]) == 0 else 1
        client = parts[0].bytes
        if self.authenticated:
            try:
                client = parts[0].get("User-Id").encode()
            except self._zmq.ZMQError:  # no ZAP user id: keep the connection's routing id
                logger.warning("a CURVE message came without a user id; limiting its connection")
        return Incoming(
            envelope=[part.bytes for part in parts[:split]],
            client=client,
            frames=[part.bytes for part in parts[split:]],
        )

    def send(self, envelope: list[bytes], reply: bytes) -> None:
        """Sends ``reply`` behind ``envelope``; never blocks (ZeroMQ drops it if it cannot go)."""
        try:
            self.socket.send_multipart([*envelope, reply], flags=self._zmq.NOBLOCK)
        except self._zmq.Again:
            logger.warning("dropped a reply: the client does not read its replies")

    def close(self) -> None:
        """Closes the socket, stops the authenticator and ends the context."""
        self.socket.close(0)
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        self._context.term()
