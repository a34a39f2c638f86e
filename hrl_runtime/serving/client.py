"""The reference client of :mod:`hrl_runtime.serving.server`, and an external plant loop that uses
it.

The client needs only numpy and pyzmq (no torch): it is what a robot-side Python process runs.
``python -m hrl_runtime.serving.client --env hrl/PointArena-v0 --goals "1.5,1.0"`` runs a MuJoCo
plant at 100 Hz through a server started with ``hrl serve``, and prints one JSON object; against
a server with keys add ``--keys CLIENT.key_secret --server-key SERVER.key``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError, HrlError


class ServerError(HrlError):
    """The server answered with an error.

    Attributes:
        code: the error code (see :mod:`hrl_runtime.serving.server`).
        reply: the whole reply; ``reply.get("action")`` is the safe action for observation
            errors of ``get_action``.
    """

    def __init__(self, reply: dict[str, Any]):
        self.reply = reply
        error = reply.get("error", {})
        self.code = error.get("code", "unknown")
        super().__init__(f"{reply.get('call')}: {self.code}: {error.get('message', '')}")


class HrlClient:
    """A blocking REQ client with a receive timeout (the socket is rebuilt after a timeout).

    Args:
        address: the server endpoint, e.g. ``tcp://127.0.0.1:5555``.
        timeout_s: how long to wait for each reply.
        setup_timeout_s: how long to wait for the reply to ``init`` (loads the skill and builds
            the planner) and ``reset`` (waits for the first plan), which take seconds on a busy
            machine.
        keys: this client's ``NAME.key_secret`` (``hrl keys generate``) for a server with CURVE;
            its public key must be in the server's authorized directory.
        server_key: the server's public ``NAME.key`` (needed with ``keys``).

    Raises:
        ConfigError: only one of ``keys`` and ``server_key``, or an unusable key file.
    """

    def __init__(
        self,
        address: str = "tcp://127.0.0.1:5555",
        timeout_s: float = 5.0,
        setup_timeout_s: float = 60.0,
        keys: str | Path | None = None,
        server_key: str | Path | None = None,
    ):
        import zmq

        from hrl_runtime.serving import auth

        if (keys is None) != (server_key is None):
            raise ConfigError(
                "--keys and --server-key go together: this client's NAME.key_secret and the "
                "server's public NAME.key"
            )
        self._curve = None
        if keys is not None:
            public, secret = auth.load_secret_key(keys, "--keys")
            self._curve = (public, secret, auth.load_public_key(server_key, "--server-key"))
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.setup_timeout_ms = int(setup_timeout_s * 1000)
        self._zmq = zmq
        self._context = zmq.Context.instance()
        self._socket = None
        self._connect()

    def _connect(self) -> None:
        zmq = self._zmq
        if self._socket is not None:
            self._socket.close(0)
        self._socket = self._context.socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        if self._curve is not None:
            public, secret, server = self._curve
            self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
            self._socket.curve_serverkey = server
        self._socket.connect(self.address)

    def request(self, message: dict[str, Any], payload: np.ndarray | None = None) -> dict[str, Any]:
        """Sends one request; returns the reply (``ok`` true or false), never raises on errors
        the server reports.

        Args:
            message: the JSON object (``call`` and fields).
            payload: optional ``(do,)`` observation sent as raw little-endian float64.

        Raises:
            TimeoutError: no reply within the timeout (the setup timeout for init and reset).
        """
        frames = [json.dumps(message).encode()]
        if payload is not None:
            frames.append(np.ascontiguousarray(payload, dtype="<f8").tobytes())
        setup = message.get("call") in ("init", "reset")
        return self.request_frames(frames, self.setup_timeout_ms if setup else self.timeout_ms)

    def request_frames(self, frames: list[bytes], timeout_ms: int | None = None) -> dict[str, Any]:
        """Sends raw frames (for tests of malformed input); returns the decoded reply.

        Args:
            frames: the message.
            timeout_ms: how long to wait for the reply (default: the client's timeout).
        """
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        self._socket.setsockopt(self._zmq.RCVTIMEO, timeout_ms)
        self._socket.send_multipart(frames)
        try:
            reply = self._socket.recv()
        except self._zmq.Again:
            self._connect()
            raise TimeoutError(f"no reply from {self.address} within {timeout_ms} ms") from None
        return json.loads(reply)

    def _call(self, message: dict[str, Any], payload: np.ndarray | None = None) -> dict[str, Any]:
        reply = self.request(message, payload)
        if not reply.get("ok"):
            raise ServerError(reply)
        return reply

    def init(self, **fields: Any) -> dict[str, Any]:
        """Loads a skill and a high level on the server (see the server's schema)."""
        return self._call({"call": "init", **_jsonable(fields)})

    def reset(self, obs: np.ndarray, goals: np.ndarray | None = None) -> dict[str, Any]:
        """Starts an episode from ``obs: (do,)`` (optionally with new ``goals: (N, 2)``)."""
        message: dict[str, Any] = {"call": "reset", "obs": np.asarray(obs, float).tolist()}
        if goals is not None:
            message["goals"] = np.asarray(goals, float).tolist()
        return self._call(message)

    def set_state(self, obs: np.ndarray) -> dict[str, Any]:
        """Hands the planner a newer observation ``(do,)`` without asking for an action."""
        return self._call({"call": "set_state", "obs": np.asarray(obs, float).tolist()})

    def get_action(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The action ``(da,)`` for ``obs: (do,)`` (sent as a binary payload) and the reply.

        Raises:
            ServerError: the server refused; ``error.reply["action"]`` is the safe action when
                the observation was at fault.
        """
        reply = self._call({"call": "get_action"}, np.asarray(obs, np.float64))
        return np.asarray(reply["action"], np.float64), reply

    def status(self) -> dict[str, Any]:
        return self._call({"call": "status"})

    def shutdown(self) -> dict[str, Any]:
        return self._call({"call": "shutdown"})

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}


def run_plant(
    address: str,
    *,
    env_id: str,
    goals: np.ndarray,
    seconds: float,
    rate_hz: float = 100.0,
    skill: str | None = None,
    planner: str | None = None,
    radius: float = 0.5,
    seed: int = 0,
    mppi: dict[str, Any] | None = None,
    keys: str | None = None,
    server_key: str | None = None,
    max_plan_age_s: float | None = None,
) -> dict[str, Any]:
    """A MuJoCo plant stepping at ``rate_hz`` with actions from the server, until every goal is
    reached or ``seconds`` pass.

    Returns:
        ``steps``, ``reached`` (all goals), ``final_xy``, ``min_distance`` to the last goal,
        ``late_ticks`` (ticks that started a period or more late), ``round_trip_ms`` (p50, p99,
        max) and the server's final ``status``.
    """
    import envs

    client = HrlClient(address, keys=keys, server_key=server_key)
    env = envs.make_env(env_id, max_episode_steps=int(seconds * rate_hz) + 10)
    xy = envs.xy_indices(env)
    optional = {"skill": skill, "planner": planner, "mppi": mppi, "max_plan_age_s": max_plan_age_s}
    fields = {"goals": goals, "radius": radius, "seed": seed}
    client.init(**fields, **{key: value for key, value in optional.items() if value})
    obs, _ = env.reset(seed=seed)
    client.reset(obs)
    period = 1.0 / rate_hz
    round_trips: list[float] = []
    late = steps = 0
    min_distance = float("inf")
    reply: dict[str, Any] = {}
    scheduled = time.perf_counter()
    end = scheduled + seconds
    while time.perf_counter() < end:
        now = time.perf_counter()
        if now < scheduled:
            time.sleep(scheduled - now)
        elif now - scheduled >= period:
            late += 1
            scheduled += ((now - scheduled) // period) * period
        scheduled += period
        sent = time.perf_counter()
        action, reply = client.get_action(obs)
        round_trips.append(time.perf_counter() - sent)
        obs, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        steps += 1
        min_distance = min(min_distance, float(np.linalg.norm(obs[list(xy)] - goals[-1])))
        if reply["done"] or terminated or truncated:
            break
    status = client.status()
    client.close()
    env.close()
    trips = np.asarray(round_trips) * 1e3
    return {
        "steps": steps,
        "seconds": steps * period,
        "reached": bool(status["goals"]) and all(g["reached"] for g in status["goals"]),
        "final_xy": obs[list(xy)].astype(float).tolist(),
        "min_distance": min_distance,
        "late_ticks": late,
        "round_trip_ms": {
            "p50": float(np.percentile(trips, 50)),
            "p99": float(np.percentile(trips, 99)),
            "max": float(trips.max()),
        },
        "last_status": reply.get("status"),
        "status": status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a MuJoCo plant driven through `hrl serve`")
    parser.add_argument("--address", default="tcp://127.0.0.1:5555")
    parser.add_argument("--env", default="hrl/PointArena-v0")
    parser.add_argument("--goals", default="1.5,1.0", help='"x,y;x,y"')
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--skill")
    parser.add_argument("--planner")
    parser.add_argument("--mppi", help="MPPIConfig fields as JSON")
    parser.add_argument(
        "--max-plan-age", type=float, help="seconds a plan may age before it is a fault"
    )
    parser.add_argument("--keys", help="this client's NAME.key_secret (a server with keys)")
    parser.add_argument("--server-key", help="the server's public NAME.key")
    args = parser.parse_args(argv)
    goals = np.asarray([[float(v) for v in g.split(",")] for g in args.goals.split(";")])
    try:
        report = _run_plant_from(args, goals)
    except HrlError as error:  # a bad key file or a refusal: one line, status 2
        print(f"hrl client: error: {error}", file=sys.stderr)
        return 2
    except TimeoutError as error:  # with CURVE, a rejected key looks exactly like this
        print(
            f"hrl client: error: {error}; is the server running, and with keys: is this "
            "client's public key in its --authorized directory and --server-key its key?",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(report))
    return 0 if report["reached"] else 1


def _run_plant_from(args: argparse.Namespace, goals: np.ndarray) -> dict[str, Any]:
    return run_plant(
        args.address,
        env_id=args.env,
        goals=goals,
        seconds=args.seconds,
        rate_hz=args.rate,
        skill=args.skill,
        planner=args.planner,
        mppi=json.loads(args.mppi) if args.mppi else None,
        keys=args.keys,
        server_key=args.server_key,
        max_plan_age_s=args.max_plan_age,
    )


if __name__ == "__main__":
    sys.exit(main())
