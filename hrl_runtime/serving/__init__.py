"""Serving skills to an external control loop: the ZeroMQ policy server and its reference client."""

from hrl_runtime.serving.client import HrlClient, ServerError
from hrl_runtime.serving.server import PolicyServer, ServerConfig

__all__ = ["HrlClient", "PolicyServer", "ServerConfig", "ServerError"]
