"""Per-client limits of the policy server, so that one client cannot starve the control path.

Each client has a token bucket of ``burst`` tokens, refilled at ``rate_hz`` a second; every
request takes one, and a request that finds the bucket empty is answered at once with
``rate_limited`` without running its call. A client is its CURVE public key when the server
authenticates (so reconnecting does not refill its bucket), else its connection's routing id.

Frames are bounded twice: a frame beyond :data:`~hrl_runtime.serving.requests.MAX_FRAME_BYTES`
is refused with ``too_large`` before it is decoded, and one beyond
:data:`TRANSPORT_FRAME_BYTES` is never read into memory (ZeroMQ's ``MAXMSGSIZE`` drops the
connection that sent it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from hrl_runtime.serving.requests import MAX_FRAME_BYTES

TRANSPORT_FRAME_BYTES = 4 * MAX_FRAME_BYTES
"""Largest frame ZeroMQ reads (``MAXMSGSIZE``); a peer that sends a larger one is disconnected."""
MAX_TRACKED_CLIENTS = 1024
"""Buckets kept; the least recently seen client's bucket goes first (it starts full again)."""


@dataclass
class TokenBucket:
    """``tokens`` left of ``burst``, as of ``updated`` (``time.perf_counter()`` seconds)."""

    tokens: float
    updated: float


class ClientLimits:
    """Token buckets per client identity.

    Args:
        rate_hz: requests a second each client may sustain (``inf``: no limit).
        burst: requests a client may send at once after a quiet spell (>= 1).
    """

    def __init__(self, rate_hz: float, burst: int):
        self.rate_hz = float(rate_hz)
        self.burst = float(burst)
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()
        self.limited = 0

    def allow(self, client: bytes, now: float) -> bool:
        """Takes one token from ``client``'s bucket at time ``now`` (seconds); False when empty."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.burst, now)
            if len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(now - bucket.updated, 0.0)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_hz)
            bucket.updated = now
        if bucket.tokens < 1.0:
            self.limited += 1
            return False
        bucket.tokens -= 1.0
        return True

    def to_json(self) -> dict[str, float | int]:
        """The limits as ``status`` reports them."""
        return {
            "requests_per_s": self.rate_hz,
            "burst": int(self.burst),
            "max_frame_bytes": MAX_FRAME_BYTES,
            "transport_frame_bytes": TRANSPORT_FRAME_BYTES,
            "rate_limited": self.limited,
            "clients_tracked": len(self._buckets),
        }
