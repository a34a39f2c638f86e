"""A ZeroMQ server that lets a control loop in another process (or language) use hrl skills.

Transport: a ROUTER socket (:mod:`.transport`; REQ clients see a REP server), bound to loopback by
default (``tcp://127.0.0.1:5555``). Every request gets exactly one reply, so a REQ client keeps
its lockstep whatever it sends.

Access (:mod:`.auth`, :mod:`.access`, :mod:`.limits`): with ``secret_key_file`` and
``authorized_keys_dir`` the socket is a ZeroMQ CURVE server that admits only the authorized
client keys (a client with another key fails the handshake and gets nothing). Binding anything but
loopback without keys is refused unless ``insecure``, and off loopback the operator must name the
skills ``init`` may load (``skills``). Each client (its public key, else its connection) has a
token bucket of ``client_rate_hz`` requests a second.

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
                                                                        faults, ``safe_stop``,
                                                                        ``access`` (limits)
``shutdown``   -                                                        (the server stops)
=============  =======================================================  ==========================

Every reply is one JSON frame ``{"ok": true, "call": ..., ...}`` or
``{"ok": false, "call": ..., "error": {"code": ..., "message": ...}}`` whose message is one line
naming the field, what is wrong and the fix (values echoed shortened). Error codes:

- ``too_large``: a frame of more than ``MAX_FRAME_BYTES`` (1 MiB), refused before it is decoded;
- ``malformed``: not UTF-8 JSON, not an object, nested deeper than ``MAX_DEPTH`` (8), wrong frames;
- ``unknown_call``;
- ``bad_field``: a field of the wrong type or value: a string, bool or nested array in ``obs``,
  an integer beyond float64, a number beyond ``MAX_MAGNITUDE`` (1e6, in ``obs`` too), a goal
  outside the arena (the skill's observation bounds at ``xy_indices``), a radius <= 0, an
  unknown ``mppi`` setting;
- ``bad_size``: an ``obs`` of the wrong length;
- ``non_finite``: NaN or inf in ``obs``, ``goals`` or a number field;
- ``not_initialized`` (a call before ``init``), ``not_started`` (``get_action`` before ``reset``);
- ``init_failed``: the skill or planner could not be loaded (unknown, tampered, pickled,
  incompatible);
- ``forbidden``: ``init`` named a directory path, or a skill or version outside the allow-list;
- ``rate_limited``: the client sent more than its rate allows (its call was not run);
- ``internal``: a bug (logged with its traceback; the server keeps serving).

Every error reply to ``get_action`` carries the safe ``action`` to send (the stop action before
``reset``; afterwards the fallback, and the refusal counts as a fault toward the safe stop), so a
robot never waits for an action; only before ``init`` (no action space yet) and for a frame that
cannot be decoded (the call is unknown) is there none. ``status`` values of ``get_action``:
``ok``, ``fault`` (fallback action), ``waiting`` (no plan yet: safe action),
``no_plan``/``stale_plan`` (fallback), ``safe_stop`` (latched: the stop action until ``reset``).

Timing: ``status`` reports ``control_latency_ms`` (p50, p99, max) and ``deadline_misses`` of
``get_action`` from the moment the poll reported the request's frame (before it is read or
parsed) to the moment its reply was handed to the socket. The planner runs in its own thread:
``get_action`` only reads its latest plan and never waits for an optimization, and ``reset`` with
new goals keeps the planner thread running (``reset`` alone waits, up to 10 s, for the episode's
first plan; its ``plan_ready`` says whether one came).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import numpy as np

from hrl_runtime.serving import auth, requests
from hrl_runtime.serving.access import SkillAllowList
from hrl_runtime.serving.config import ServerConfig
from hrl_runtime.serving.limits import ClientLimits
from hrl_runtime.serving.requests import CALLS, CONTROL_CALLS, RequestError, parse_frames
from hrl_runtime.serving.session import Session
from hrl_runtime.serving.transport import RouterTransport

logger = logging.getLogger(__name__)

__all__ = ["CALLS", "PROTOCOL_VERSION", "PolicyServer", "RequestError", "ServerConfig"]

PROTOCOL_VERSION = 1


class PolicyServer:
    """Serves one skill session at a time over a ZeroMQ ROUTER socket.

    Args:
        config: address, keys, allow-list, limits and defaults.

    Attributes:
        address: the bound endpoint, e.g. ``tcp://127.0.0.1:5555``.

    Raises:
        ConfigError: see :meth:`ServerConfig.validate`; an unusable key file or authorized
            directory; a ``skills`` entry that is a path or not on the search path.
    """

    def __init__(self, config: ServerConfig | None = None):
        self.config = config or ServerConfig()
        self.config.validate()
        if self.config.secret_key_file is None and not auth.is_loopback(self.config.host):
            logger.warning(
                "serving %s WITHOUT authentication (--insecure): anyone who reaches this port "
                "can command the robot",
                self.config.host,
            )
        self.skills = SkillAllowList(self.config.skills, self.config.skill)
        self.limits = ClientLimits(self.config.client_rate_hz, self.config.client_burst)
        self._transport = RouterTransport(
            self.config.host,
            self.config.port,
            self.config.secret_key_file,
            self.config.authorized_keys_dir,
        )
        self.address = self._transport.address
        self.session: Session | None = None
        self._open_tick: tuple[Session, bool] | None = None
        self.running = False
        self.requests = 0
        self.errors = 0

    # --- transport -------------------------------------------------------------------------------
    def serve_forever(self, poll_ms: int = 100) -> None:
        """Answers requests until ``shutdown`` arrives or :attr:`running` is set False.

        Every frame gets one reply, whatever it holds. The clock of a request starts when the
        poll reports its frame, before it is read, and stops after the reply is sent.
        """
        transport = self._transport
        self.running = True
        interval = sys.getswitchinterval()
        sys.setswitchinterval(self.config.switch_interval_s)
        try:
            while self.running:
                if not transport.poll(poll_ms):
                    continue
                received = time.perf_counter()
                incoming = transport.receive()
                reply = self.reply(incoming.frames, received, incoming.client)
                transport.send(incoming.envelope, encode_reply(reply))
                self.finish_tick(received)
        finally:
            sys.setswitchinterval(interval)

    def close(self) -> None:
        """Ends the session and closes the socket."""
        self.running = False
        if self.session is not None:
            self.session.close()
            self.session = None
        self._transport.close()

    # --- requests --------------------------------------------------------------------------------
    def handle(self, frames: list[bytes], received: float | None = None) -> dict[str, Any]:
        """Turns one request (its frames) into one reply and closes its control tick; never
        raises (:meth:`serve_forever` does the same around sending the reply).

        Args:
            frames: the message's frames.
            received: ``time.perf_counter()`` when the frame arrived (default: now); the latency
                ``status`` reports counts from here.
        """
        received = time.perf_counter() if received is None else received
        reply = self.reply(frames, received)
        self.finish_tick(received)
        return reply

    def reply(
        self, frames: list[bytes], received: float, client: bytes | None = None
    ) -> dict[str, Any]:
        """The reply to one request; never raises. A control request leaves its tick open until
        :meth:`finish_tick` (after the reply is sent).

        Args:
            frames: the request's frames.
            received: ``time.perf_counter()`` at the frame's receipt.
            client: who sent it (its rate limit applies); None: no limit (in-process calls).
        """
        self.requests += 1
        call = None
        if client is not None and not self.limits.allow(client, received):
            return self._refusal(
                requests.peek_call(frames),
                "rate_limited",
                f"more than {self.limits.rate_hz:g} requests/s (burst {self.limits.burst:g}) "
                "from this client; slow down (the call was not run)",
                None,
            )
        try:
            request, payload = parse_frames(frames)
            call = request["call"]
            reply = getattr(self, f"_call_{call}")(request, payload, received)
            return {"ok": True, "call": call, **reply}
        except RequestError as error:
            call = call or error.call
            return self._refusal(call, error.code, str(error), error.action)
        except Exception as error:  # a bug must not take the robot's server down
            logger.exception("internal error handling %s", call)
            return self._refusal(call, "internal", f"{type(error).__name__}: {error}", None)

    def _refusal(
        self, call: str | None, code: str, message: str, action: np.ndarray | None
    ) -> dict[str, Any]:
        self.errors += 1
        message = requests.one_line(message)
        reply: dict[str, Any] = {
            "ok": False,
            "call": call,
            "error": {"code": code, "message": message},
        }
        if action is None and call in CONTROL_CALLS:
            action = self._safe_action(code, message)
        if action is not None:
            reply["action"] = np.asarray(action, np.float64).tolist()
        return reply

    def _safe_action(self, code: str, message: str) -> np.ndarray | None:
        """The action to send with a refused control request: the stop action before ``reset``,
        else the fallback (or the latched stop action) of a tick that counts as a fault."""
        session = self.session
        if session is None:
            return None  # before init there is no action space
        safety = session.loop.safety
        if not session.started:
            return safety.stop_action
        try:
            path = session.loop.path
            path.plant_fault(path.step_count, "bad_request", f"{code}: {message}")
            self._open_tick = (session, False)
        except Exception:  # the refusal must still go out
            logger.exception("could not count a refused request as a fault")
        return safety.stop_action if safety.stopped else safety.fallback_action()

    def finish_tick(self, received: float) -> None:
        """Closes the control tick of the last reply: records its latency from ``received``
        (the frame's receipt) to now and counts a deadline miss when it exceeds the period."""
        if self._open_tick is None:
            return
        (session, tick_open), self._open_tick = self._open_tick, None
        latency = time.perf_counter() - received
        missed = latency > self.config.control_period_s
        session.deadline_misses += missed
        if tick_open:
            session.loop.end_tick(missed)
        if len(session.latencies) < 100_000:
            session.latencies.append(latency)

    def _session(self) -> Session:
        if self.session is None:
            raise RequestError("not_initialized", "call 'init' first")
        return self.session

    def _observation(
        self, request: dict[str, Any], payload: np.ndarray | None, required: bool = True
    ) -> np.ndarray | None:
        """The observation ``(do,)`` of a request, of the skill's size (NaN and inf pass: the
        caller refuses them after counting the fault)."""
        session = self._session()
        if payload is not None:
            if "obs" in request:
                raise RequestError("malformed", "give 'obs' in JSON or as a payload, not both")
            obs = payload
        elif "obs" in request:
            obs = requests.numbers(request["obs"], "obs")
        elif required:
            raise RequestError("bad_field", "field 'obs' is required; send the observation")
        else:
            return None
        if obs.shape != (session.observation_dim,):
            raise RequestError(
                "bad_size",
                f"'obs' has {obs.size} values, the skill {session.skill_ref!r} reads "
                f"{session.observation_dim}; send {session.observation_dim} numbers",
            )
        return obs

    # --- calls ---------------------------------------------------------------------------------
    def _call_init(self, request, payload, received) -> dict[str, Any]:
        session = Session(request, self.config, self.skills)
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
        obs = requests.within_magnitude(self._observation(request, payload), "obs")
        if "goals" in request:
            session.set_goals(requests.goals(request["goals"]))
        session.loop.reset(obs.astype(np.float32))
        session.started = True
        session.last_obs = obs
        session.latencies.clear()
        session.deadline_misses = 0
        worker = session.loop.worker
        return {"step": 0, "plan_ready": worker is None or worker.plan is not None}

    def _call_set_state(self, request, payload, received) -> dict[str, Any]:
        session = self._session()
        obs = requests.within_magnitude(self._observation(request, payload), "obs")
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
        finite = bool(np.isfinite(obs).all())
        if finite:
            requests.within_magnitude(obs, "obs")  # refused as a bad request, with the fallback
        action = self._tick(session, obs.astype(np.float32), received)
        if not finite:
            raise RequestError(
                "non_finite", "'obs' has NaN or inf; sent the fallback action", action
            )
        sequence = session.high_level
        return {
            "action": action.tolist(),
            "step": loop.step_count - 1,
            "status": loop.last_status,
            "goal_index": int(getattr(sequence, "index", 0)),
            "done": loop.done,
            "plan_age_ms": None if np.isnan(loop.plan_age_s) else loop.plan_age_s * 1e3,
        }

    def _tick(self, session: Session, obs: np.ndarray, received: float) -> np.ndarray:
        """One control tick; :meth:`finish_tick` closes it once the reply is out."""
        action = np.asarray(session.loop.tick(obs, received), np.float64)
        self._open_tick = (session, True)
        return action

    def _call_status(self, request, payload, received) -> dict[str, Any]:
        from hrl_runtime.loop import latency_summary_ms

        if self.session is None:
            return {
                "initialized": False,
                "requests": self.requests,
                "errors": self.errors,
                "access": self._access(),
            }
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
            "access": self._access(),
        }

    def _access(self) -> dict[str, Any]:
        """Who may connect, what ``init`` may load and the per-client limits."""
        return {
            "authenticated": self._transport.authenticated,
            "skills": self.skills.refs(),
            "limits": self.limits.to_json(),
        }

    def _call_shutdown(self, request, payload, received) -> dict[str, Any]:
        self.running = False
        return {}


def encode_reply(reply: dict[str, Any]) -> bytes:
    """``reply`` as one UTF-8 JSON frame; an unencodable reply becomes an ``internal`` error."""
    try:
        return json.dumps(reply, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        logger.exception("could not encode the reply to %s", reply.get("call"))
        message = requests.one_line(f"the reply could not be encoded: {error}")
        refusal = {"ok": False, "call": reply.get("call"), "error": {"code": "internal"}}
        refusal["error"]["message"] = message
        if "action" in reply:
            refusal["action"] = reply["action"]
        return json.dumps(refusal).encode()
