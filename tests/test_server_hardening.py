"""The server part of issue 13, one test per case: every bad request gets one error reply with a
code and a one-line message naming the field, every refused ``get_action`` carries the safe
action, the latency ``status`` reports counts from the frame's receipt, and ``get_action`` never
waits for the planner."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import planners
from hrl_runtime import HighLevel
from hrl_runtime.serving.requests import MAX_FRAME_BYTES
from hrl_runtime.serving.server import PolicyServer, ServerConfig


def frames_of(message: dict | bytes, payload: bytes | None = None) -> list[bytes]:
    frames = [message if isinstance(message, bytes) else json.dumps(message).encode()]
    return frames if payload is None else [*frames, payload]


def refusal(reply: dict, code: str, names: str | None = None) -> str:
    """Asserts ``reply`` refuses with ``code`` in one line (naming ``names``); the message."""
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    message = reply["error"]["message"]
    assert message and "\n" not in message and len(message) <= 400, message
    if names is not None:
        assert names in message, message
    return message


def safe_action(reply: dict) -> np.ndarray:
    action = np.asarray(reply["action"], np.float64)
    assert action.shape == (2,) and np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1)
    return action


@pytest.fixture
def server():
    server = PolicyServer(ServerConfig(port=0, skill="scripted-reach", planner="sequence"))
    yield server
    server.close()


@pytest.fixture
def started(server):
    assert server.handle(frames_of({"call": "init", "goals": [[1.0, 0.5]]}))["ok"]
    assert server.handle(frames_of({"call": "reset", "obs": [0, 0, 0, 0]}))["ok"]
    return server


# --- the observation of get_action --------------------------------------------------------------
@pytest.mark.parametrize(
    "obs", [["x", 0, 0, 0], [[0.0], 0, 0, 0], [True, 0, 0, 0], "0,0,0,0", {"x": 0}]
)
def test_an_obs_of_strings_nested_lists_or_bools_is_refused_with_the_safe_action(started, obs):
    reply = started.handle(frames_of({"call": "get_action", "obs": obs}))
    refusal(reply, "bad_field", "'obs'")
    safe_action(reply)
    assert started.handle(frames_of({"call": "status"}))["faults"]["bad_request"] == 1


def test_a_400_digit_integer_is_a_bad_field_not_an_internal_error(started):
    digits = b"9" * 400
    reply = started.handle([b'{"call": "get_action", "obs": [' + digits + b", 0, 0, 0]}"])
    assert "400 characters" in refusal(reply, "bad_field", "'obs'")  # echoed shortened
    safe_action(reply)
    for name in (b"radius", b"steps_per_goal", b"seed", b"safe_stop_after", b"max_plan_age_s"):
        request = b'{"call": "init", "goals": [[1, 0]], "' + name + b'": ' + digits + b"}"
        refusal(started.handle([request]), "bad_field", name.decode())


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deeply_nested_json_is_malformed_not_internal(started, depth):
    request = b'{"call": "get_action", "obs": ' + b"[" * depth + b"]" * depth + b"}"
    reply = started.handle([request])
    refusal(reply, "malformed", "deeper than")
    if depth == 20:  # decoded: known to be a control request, so it carries the safe action
        safe_action(reply)


@pytest.mark.parametrize("value", [1e300, -1e7, 1e6 + 1])
def test_an_obs_beyond_the_magnitude_bound_is_refused_with_the_safe_action(started, value):
    for frames in (
        frames_of({"call": "get_action", "obs": [value, 0.0, 0.0, 0.0]}),
        frames_of({"call": "get_action"}, np.array([0.0, value, 0.0, 0.0], "<f8").tobytes()),
    ):
        reply = started.handle(frames)
        refusal(reply, "bad_field", "'obs'")
        safe_action(reply)
    for call in ("reset", "set_state"):
        reply = started.handle(frames_of({"call": call, "obs": [value, 0, 0, 0]}))
        refusal(reply, "bad_field", "'obs'")


def test_refused_get_actions_count_toward_the_safe_stop(started):
    for _ in range(10):  # safe_stop_after defaults to 10 consecutive faulty ticks
        reply = started.handle(frames_of({"call": "get_action", "obs": ["x", 0, 0, 0]}))
        safe_action(reply)
    status = started.handle(frames_of({"call": "status"}))
    assert status["safe_stop"] is not None and status["faults"]["bad_request"] == 10
    reply = started.handle(frames_of({"call": "get_action", "obs": [0, 0, 0, 0]}))
    assert reply["status"] == "safe_stop" and reply["action"] == [0.0, 0.0]


def test_get_action_before_reset_carries_the_stop_action(server):
    assert server.handle(frames_of({"call": "init", "goals": [[1.0, 0.5]]}))["ok"]
    reply = server.handle(frames_of({"call": "get_action", "obs": [0, 0, 0, 0]}))
    refusal(reply, "not_started", "reset")
    assert reply["action"] == [0.0, 0.0]


# --- goals and radius ----------------------------------------------------------------------------
def test_goals_outside_the_arena_are_refused_at_init_and_at_reset():
    # dads-pointmass declares its arena: x and y within ±5 m.
    server = PolicyServer(ServerConfig(port=0, skill="dads-pointmass", planner="mppi"))
    try:
        reply = server.handle(frames_of({"call": "init", "goals": [[1.0, 1.0], [9.0, 0.0]]}))
        refusal(reply, "bad_field", "'goals'[1] (9, 0) lies outside the arena x in [-5, 5]")
        mppi = {"num_samples": 32, "horizon": 3}
        reply = server.handle(frames_of({"call": "init", "goals": [[1.0, 1.0]], "mppi": mppi}))
        assert reply["ok"], reply
        reply = server.handle(frames_of({"call": "reset", "obs": [0] * 4, "goals": [[0, -6]]}))
        refusal(reply, "bad_field", "outside the arena")
    finally:
        server.close()


@pytest.mark.parametrize(
    ("goals", "code"),
    [
        (b"[[1e308, 0]]", "bad_field"),
        (b"[[NaN, 0]]", "non_finite"),
        (b"[[0, Infinity]]", "non_finite"),
        (b"[[1, 2, 3]]", "bad_field"),
        (b'[["1", 0]]', "bad_field"),
        (b"[]", "bad_field"),
    ],
)
def test_huge_nan_or_malformed_goals_are_refused_at_init_and_at_reset(started, goals, code):
    reply = started.handle([b'{"call": "init", "goals": ' + goals + b"}"])
    refusal(reply, code, "'goals'")
    request = b'{"call": "reset", "obs": [0, 0, 0, 0], "goals": ' + goals + b"}"
    refusal(started.handle([request]), code, "'goals'")


@pytest.mark.parametrize(
    ("radius", "code"),
    [
        (b"NaN", "non_finite"),
        (b"Infinity", "non_finite"),
        (b"0", "bad_field"),
        (b"-1", "bad_field"),
    ],
)
def test_a_nan_or_non_positive_radius_is_refused(server, radius, code):
    request = b'{"call": "init", "goals": [[1, 0]], "radius": ' + radius + b"}"
    message = refusal(server.handle([request]), code, "'radius'")
    assert "goal tolerance" in message  # and says what to send instead


def test_unknown_or_out_of_range_mppi_settings_are_refused(server):
    for mppi, names in [
        ({"num_samples": 10**9}, "mppi.num_samples"),
        ({"samples": 10}, "mppi.samples"),
        ({"temperature": "hot"}, "mppi.temperature"),
    ]:
        request = {"call": "init", "goals": [[1, 0]], "mppi": mppi}
        refusal(server.handle(frames_of(request)), "bad_field", names)


# --- frames --------------------------------------------------------------------------------------
def test_an_oversized_frame_is_refused_without_being_decoded(started):
    refusal(started.handle([b"{" * (MAX_FRAME_BYTES + 1)]), "too_large", "frame 0")
    payload = bytes(8 * (MAX_FRAME_BYTES // 8 + 1))
    reply = started.handle(frames_of({"call": "get_action"}, payload))
    refusal(reply, "too_large", "frame 1")
    assert started.handle(frames_of({"call": "status"}))["ok"]  # still serving


# --- latency and the planner ---------------------------------------------------------------------
def test_the_reported_latency_counts_from_the_frames_receipt(started):
    waited = 0.5  # the frame arrived half a second before the server read it
    reply = started.handle(
        frames_of({"call": "get_action", "obs": [0, 0, 0, 0]}), time.perf_counter() - waited
    )
    assert reply["ok"] and reply["status"] == "ok"
    status = started.handle(frames_of({"call": "status"}))
    assert status["control_latency_ms"]["count"] == 1
    assert status["control_latency_ms"]["max"] >= waited * 1e3
    assert status["deadline_misses"] == 1  # longer than the 10 ms period


class BlockingPlanner(HighLevel):
    """Plans once at once, then blocks every later optimization until ``release`` is set."""

    def __init__(self):
        self.goal = np.zeros(2)
        self.optimizations = 0
        self.busy = threading.Event()
        self.release = threading.Event()

    def set_goal(self, goal):
        self.goal = np.asarray(goal, np.float64)

    def set_state(self, obs):
        pass

    def optimize(self):
        self.optimizations += 1
        if self.optimizations > 1:
            self.busy.set()
            self.release.wait(30)
            self.busy.clear()

    def command(self, obs, t):
        return self.goal

    def nominal_plan(self):
        return self.goal[None, :].copy()


def test_get_action_returns_the_last_plan_while_the_planner_is_busy(server, monkeypatch):
    planner = BlockingPlanner()

    def follower(name, skill, goals, xy, config, seed=0, mppi=None):
        return planners.GoalSequence(goals, xy, config, delegate=planner)

    monkeypatch.setattr(planners, "build_goal_follower", follower)
    init = {"call": "init", "goals": [[1.0, 0.5]], "max_plan_age_s": 3600}
    assert server.handle(frames_of(init))["ok"]
    reply = server.handle(frames_of({"call": "reset", "obs": [0, 0, 0, 0]}))
    assert reply["ok"] and reply["plan_ready"]
    try:
        obs = {"call": "get_action", "obs": [0, 0, 0, 0]}
        first = server.handle(frames_of(obs))  # step 0: the reset observation, planned already
        assert first["ok"] and first["status"] == "ok"
        assert server.handle(frames_of(obs))["ok"]  # step 1: a new observation to plan from
        assert planner.busy.wait(30)  # the planner took it and is stuck
        for _ in range(3):
            reply = server.handle(frames_of(obs))
            assert reply["ok"] and reply["status"] == "ok", reply
            assert reply["action"] == first["action"]  # from the plan made before
        assert planner.busy.is_set() and not planner.release.is_set()  # it never finished
        reply = server.handle(frames_of({"call": "status"}))
        assert reply["ok"] and reply["control_latency_ms"]["count"] == 5
    finally:
        planner.release.set()
