"""A ZeroMQ server that lets a control loop in another process (or language) use hrl skills.

Transport: a REP socket, bound to loopback by default (``tcp://127.0.0.1:5555``). Every request
gets exactly one reply, so the server keeps REQ/REP lockstep whatever it is sent.

Message schema (version 1). A request is one frame holding a UTF-8 JSON object, optionally
followed by a second frame with the observation as raw little-endian float64 (then ``obs`` is
left out of the JSON). No pickle anywhere. ``obs`` is a flat array of ``do`` numbers.

=============  =======================================================  ==========================
call           request fields                                           reply fields (ok)
=============  =======================================================  ==========================
``init``       ``skill`` (NAME[@VERSION]; default ``--skill``),          ``skill``, ``planner``,
               ``planner`` (``mppi``/``sequence``), ``goals``            ``observation_dim``,
               ``[[x, y], ...]``, optional ``xy_indices`` ([0, 1]),      ``action_dim``,
               ``radius`` (0.5), ``steps_per_goal`` (1000), ``fallback``  ``action_low/high``,
               (hold/zero), ``safe_stop_after`` (10), ``max_plan_age_s``  ``hold_steps``,
               (0.25), ``seed`` (0), ``mppi`` {MPPIConfig fields}, ``obs``  ``control_period_s``
               (optional: reset at once)
``reset``      ``obs``; optional ``goals``                               ``step`` (0),
                                                                        ``plan_ready``
``set_state``  ``obs``: hands the planner a newer observation           ``step``
``get_action`` ``obs`` (optional: the last ``set_state`` one)            ``action``, ``step``,
                                                                        ``status``, ``goal_index``,
                                                                        ``done``, ``plan_age_ms``
``status``     -                                                        ``initialized``, timing,
                                                                        faults, ``safe_stop``
``shutdown``   -                                                        (the server stops)
=============  =======================================================  ==========================

Every reply is one JSON frame ``{"ok": true, "call": ..., ...}`` or
``{"ok": false, "call": ..., "error": {"code": ..., "message": ...}}``. Error codes:
``malformed`` (not a JSON object, bad frames), ``unknown_call``, ``bad_field`` (a field of the
wrong type or value), ``bad_size`` (an ``obs`` of the wrong length), ``non_finite`` (NaN or inf
in ``obs``), ``not_initialized`` (a call before ``init``), ``not_started`` (``get_action`` before
``reset``), ``init_failed`` (the skill or planner could not be loaded: unknown, tampered,
pickled, incompatible), ``internal``. ``get_action`` errors about the observation still carry
the safe ``action`` to send (and count as faults toward the safe stop), so a robot never waits
for an action. ``status`` values of ``get_action``: ``ok``, ``fault`` (fallback action),
``waiting`` (no plan yet: safe action), ``no_plan``/``stale_plan`` (fallback), ``safe_stop``
(latched: the stop action until ``reset``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hrl_runtime.errors import HrlError
from hrl_runtime.registry import load_skill

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
CALLS = ("init", "reset", "set_state", "get_action", "status", "shutdown")


@dataclass(frozen=True)
class ServerConfig:
    """Configuration of :class:`PolicyServer`."""

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default (pass 0.0.0.0 deliberately to expose it)."""
    port: int = 5555
    """TCP port; 0 picks a free one (see :attr:`PolicyServer.address`)."""
    skill: str | None = None
    """Skill used by ``init`` when the request names none."""
    planner: str = "mppi"
    """High level used by ``init`` when the request names none."""
    control_period_s: float = 0.01
    planner_threads: int | None = None
    """numba threads of each session's planner thread (None: one fewer than the cores)."""
    """The client's control period: a reply later than this counts as a deadline miss."""


class RequestError(Exception):
    """A request the server refuses; becomes an error reply."""

    def __init__(self, code: str, message: str, action: np.ndarray | None = None):
        super().__init__(message)
        self.code = code
        self.action = action


def _field(request: dict[str, Any], name: str, kind: type | tuple, default: Any = ...) -> Any:
    if name not in request:
        if default is ...:
            raise RequestError("bad_field", f"field {name!r} is required")
        return default
    value = request[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RequestError("bad_field", f"field {name!r} must be {names}, got {value!r}")
    return value


def _goals(value: Any) -> np.ndarray:
    try:
        goals = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        goals = np.empty(0)
    if goals.ndim != 2 or goals.shape[1] != 2 or len(goals) == 0:
        raise RequestError("bad_field", f"field 'goals' must be [[x, y], ...], got {value!r}")
    if not np.isfinite(goals).all():
        raise RequestError("non_finite", "field 'goals' has NaN or inf")
    return goals


class _Session:
    """What ``init`` builds: the skill, its high level and the async loop around them."""

    def __init__(self, request: dict[str, Any], config: ServerConfig):
        from dataclasses import replace

        from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
        from hrl_runtime.safety import SafetyConfig
        from planners import MPPIConfig, SequenceConfig, build_goal_follower

        skill_ref = _field(request, "skill", str, config.skill)
        if skill_ref is None:
            raise RequestError("bad_field", "field 'skill' is required (the server has no --skill)")
        planner = _field(request, "planner", str, config.planner)
        goals = _goals(_field(request, "goals", list))
        xy = _field(request, "xy_indices", list, [0, 1])
        if len(xy) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in xy):
            raise RequestError("bad_field", f"field 'xy_indices' must be two integers, got {xy!r}")
        radius = float(_field(request, "radius", (int, float), 0.5))
        steps_per_goal = _field(request, "steps_per_goal", int, 1000)
        seed = _field(request, "seed", int, 0)
        mppi_fields = _field(request, "mppi", dict, {})
        try:
            safety = SafetyConfig(
                fallback=_field(request, "fallback", str, "hold"),
                safe_stop_after=_field(request, "safe_stop_after", int, 10),
            )
            loop_config = AsyncLoopConfig(
                control_period_s=config.control_period_s,
                max_plan_age_s=float(_field(request, "max_plan_age_s", (int, float), 0.25)),
                safety=safety,
                control_rt_priority=None,  # the client's loop owns the timing
                gc_disable=False,
                planner_threads=config.planner_threads,
            )
            loop_config.validate()
            mppi = replace(MPPIConfig(seed=seed), **mppi_fields)
            if radius <= 0 or steps_per_goal < 1:
                raise ValueError("radius must be > 0 and steps_per_goal >= 1")
        except (ValueError, TypeError) as error:
            raise RequestError("bad_field", str(error)) from None
        try:
            skill = load_skill(skill_ref)
            if max(xy) >= skill.observation_space.shape[0] or min(xy) < 0:
                raise RequestError("bad_field", f"xy_indices {xy} out of range for the skill")
            self.sequence_config = SequenceConfig(radius, steps_per_goal)
            high_level = build_goal_follower(
                planner, skill, goals, tuple(xy), self.sequence_config, seed=seed, mppi=mppi
            )
        except (HrlError, ValueError) as error:
            raise RequestError("init_failed", f"{type(error).__name__}: {error}") from None
        self.skill, self.skill_ref, self.planner_name = skill, skill_ref, planner
        self.high_level, self.xy = high_level, tuple(xy)
        self.loop = AsyncControlLoop(skill, high_level, loop_config)
        self.observation_dim = int(np.prod(skill.observation_space.shape))
        self.started = False
        self.last_obs: np.ndarray | None = None
        self.latencies: list[float] = []
        self.deadline_misses = 0

    def close(self) -> None:
        self.loop.close()


class PolicyServer:
    """Serves one skill session at a time over a ZeroMQ REP socket.

    Args:
        config: address and defaults.

    Attributes:
        address: the bound endpoint, e.g. ``tcp://127.0.0.1:5555``.
    """

    def __init__(self, config: ServerConfig | None = None):
        import zmq

        self.config = config or ServerConfig()
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        if self.config.port == 0:
            port = self._socket.bind_to_random_port(f"tcp://{self.config.host}")
        else:
            port = self.config.port
            self._socket.bind(f"tcp://{self.config.host}:{port}")
        self.address = f"tcp://{self.config.host}:{port}"
        self.session: _Session | None = None
        self.running = False
        self.requests = 0
        self.errors = 0

    # --- transport -------------------------------------------------------------------------------
    def serve_forever(self, poll_ms: int = 100) -> None:
        """Answers requests until ``shutdown`` arrives or :attr:`running` is set False."""
        import zmq

        self.running = True
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while self.running:
            if not poller.poll(poll_ms):
                continue
            frames = self._socket.recv_multipart(copy=True)
            received = time.perf_counter()
            reply = self.handle(frames, received)
            self._socket.send(json.dumps(reply, allow_nan=False).encode())

    def close(self) -> None:
        """Ends the session and closes the socket."""
        self.running = False
        if self.session is not None:
            self.session.close()
            self.session = None
        self._socket.close(0)

    # --- requests --------------------------------------------------------------------------------
    def handle(self, frames: list[bytes], received: float | None = None) -> dict[str, Any]:
        """Turns one request (its frames) into one reply; never raises."""
        received = time.perf_counter() if received is None else received
        self.requests += 1
        call = None
        try:
            request, payload = self._parse(frames)
            call = request["call"]
            reply = getattr(self, f"_call_{call}")(request, payload, received)
            return {"ok": True, "call": call, **reply}
        except RequestError as error:
            self.errors += 1
            reply = {
                "ok": False,
                "call": call,
                "error": {"code": error.code, "message": str(error)},
            }
            if error.action is not None:
                reply["action"] = error.action.tolist()
            return reply
        except Exception as error:  # a bug must not take the robot's server down
            self.errors += 1
            logger.exception("internal error handling %s", call)
            message = f"{type(error).__name__}: {error}"
            return {"ok": False, "call": call, "error": {"code": "internal", "message": message}}

    def _parse(self, frames: list[bytes]) -> tuple[dict[str, Any], np.ndarray | None]:
        if not 1 <= len(frames) <= 2:
            raise RequestError("malformed", f"expected 1 or 2 frames, got {len(frames)}")
        try:
            request = json.loads(frames[0].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(
                "malformed", f"the first frame is not UTF-8 JSON ({error})"
            ) from None
        if not isinstance(request, dict):
            raise RequestError("malformed", "the request must be a JSON object with a 'call'")
        call = request.get("call")
        if call not in CALLS:
            raise RequestError("unknown_call", f"unknown call {call!r}; calls are {list(CALLS)}")
        payload = None
        if len(frames) == 2:
            if len(frames[1]) % 8:
                raise RequestError(
                    "bad_size", f"binary payload of {len(frames[1])} bytes is not float64[]"
                )
            payload = np.frombuffer(frames[1], dtype="<f8")
        return request, payload

    def _session(self) -> _Session:
        if self.session is None:
            raise RequestError("not_initialized", "call 'init' first")
        return self.session

    def _observation(
        self, request: dict[str, Any], payload: np.ndarray | None, required: bool = True
    ) -> np.ndarray | None:
        session = self._session()
        if payload is not None:
            if "obs" in request:
                raise RequestError("malformed", "give 'obs' in JSON or as a payload, not both")
            obs = payload
        elif "obs" in request:
            raw = request["obs"]
            ok = isinstance(raw, list) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in raw
            )
            if not ok:
                raise RequestError("bad_field", "field 'obs' must be a flat list of numbers")
            obs = np.asarray(raw, np.float64)
        elif required:
            raise RequestError("bad_field", "field 'obs' is required")
        else:
            return None
        if obs.shape != (session.observation_dim,):
            raise RequestError(
                "bad_size",
                f"'obs' has {obs.size} values, the skill {session.skill_ref!r} reads "
                f"{session.observation_dim}",
            )
        return obs

    # --- calls ---------------------------------------------------------------------------------
    def _call_init(self, request, payload, received) -> dict[str, Any]:
        session = _Session(request, self.config)
        if self.session is not None:
            self.session.close()
        self.session = session
        space = session.loop.action_space
        reply = {
            "protocol": PROTOCOL_VERSION,
            "skill": f"{session.skill.name}@{session.skill.version}",
            "planner": session.planner_name,
            "observation_dim": session.observation_dim,
            "action_dim": int(np.prod(space.shape)),
            "action_low": np.asarray(space.low, np.float64).tolist(),
            "action_high": np.asarray(space.high, np.float64).tolist(),
            "hold_steps": session.skill.hold_steps,
            "control_period_s": self.config.control_period_s,
        }
        if "obs" in request or payload is not None:
            reply.update(self._call_reset(request, payload, received))
        return reply

    def _call_reset(self, request, payload, received) -> dict[str, Any]:
        session = self._session()
        obs = self._observation(request, payload)
        if not np.isfinite(obs).all():
            raise RequestError("non_finite", "'obs' has NaN or inf; reset needs a finite one")
        if "goals" in request:
            goals = _goals(request["goals"])
            from planners import GoalSequence

            wrapper = session.high_level
            if not isinstance(wrapper, GoalSequence):
                raise RequestError("bad_field", "this session's high level does not take goals")
            # A fresh goal sequence around the same planner (the loop is rebuilt around it).
            delegate = session.loop.planner
            session.loop.close()
            session.high_level = GoalSequence(
                goals, session.xy, session.sequence_config, delegate=delegate
            )
            from hrl_runtime.async_loop import AsyncControlLoop

            session.loop = AsyncControlLoop(session.skill, session.high_level, session.loop.config)
        session.loop.reset(obs.astype(np.float32))
        session.started = True
        session.last_obs = obs
        session.latencies.clear()
        session.deadline_misses = 0
        worker = session.loop.worker
        return {"step": 0, "plan_ready": worker is None or worker.plan is not None}

    def _call_set_state(self, request, payload, received) -> dict[str, Any]:
        session = self._session()
        obs = self._observation(request, payload)
        if not np.isfinite(obs).all():
            raise RequestError("non_finite", "'obs' has NaN or inf")
        session.last_obs = obs
        if session.started and session.loop.worker is not None:
            session.loop.worker.post_observation(
                obs.astype(np.float32), session.loop.step_count, received
            )
        return {"step": session.loop.step_count}

    def _call_get_action(self, request, payload, received) -> dict[str, Any]:
        session = self._session()
        if not session.started:
            raise RequestError("not_started", "call 'reset' with the first observation first")
        loop = session.loop
        try:
            obs = self._observation(request, payload, required=False)
        except RequestError as error:
            if error.code != "bad_size":
                raise
            # Count it like any bad observation and hand back the safe action.
            error.action = self._tick(session, np.full(1, np.nan), received)
            raise
        if obs is None:
            obs = session.last_obs
        action = self._tick(session, obs.astype(np.float32), received)
        if not np.isfinite(obs).all():
            raise RequestError("non_finite", "'obs' has NaN or inf; sent the fallback", action)
        sequence = session.high_level
        return {
            "action": action.tolist(),
            "step": loop.step_count - 1,
            "status": loop.last_status,
            "goal_index": int(getattr(sequence, "index", 0)),
            "done": loop.done,
            "plan_age_ms": None if np.isnan(loop.plan_age_s) else loop.plan_age_s * 1e3,
        }

    def _tick(self, session: _Session, obs: np.ndarray, received: float) -> np.ndarray:
        loop = session.loop
        action = np.asarray(loop.tick(obs, received), np.float64)
        latency = time.perf_counter() - received
        missed = latency > self.config.control_period_s
        session.deadline_misses += missed
        loop.end_tick(missed)
        if len(session.latencies) < 100_000:
            session.latencies.append(latency)
        return action

    def _call_status(self, request, payload, received) -> dict[str, Any]:
        from hrl_runtime.loop import latency_summary_ms

        if self.session is None:
            return {"initialized": False, "requests": self.requests, "errors": self.errors}
        session = self.session
        loop = session.loop
        worker = loop.worker
        stop = loop.safety.safe_stop
        summary = getattr(session.high_level, "summary", None)
        return {
            "initialized": True,
            "started": session.started,
            "skill": session.skill_ref,
            "planner": session.planner_name,
            "step": loop.step_count,
            "status": loop.last_status,
            "done": loop.done if session.started else False,
            "safe_stop": None if stop is None else stop.to_json(),
            "faults": loop.safety.faults(),
            "deadline_misses": session.deadline_misses,
            "control_latency_ms": latency_summary_ms(np.asarray(session.latencies)),
            "planner_rate_hz": worker.rate_hz() if worker is not None else None,
            "planner_latency_ms": latency_summary_ms(worker.latencies.recent())
            if worker is not None
            else None,
            "planner_faults": dict(worker.faults) if worker is not None else {},
            "goals": summary()["goals"] if summary is not None and session.started else [],
            "requests": self.requests,
            "errors": self.errors,
        }

    def _call_shutdown(self, request, payload, received) -> dict[str, Any]:
        self.running = False
        return {}
