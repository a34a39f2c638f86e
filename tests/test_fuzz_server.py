"""Property-based fuzzing of the server's frames (issue 13): random bytes, random JSON of random
depth and types, and valid requests with one field mutated all go through
:meth:`PolicyServer.handle` in-process, and every reply keeps the invariant: it encodes as one
JSON frame; an error has a known code (never ``internal``) and a one-line message; a refused
``get_action`` carries a finite safe action whenever a session exists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrl_runtime.serving.requests import CALLS
from hrl_runtime.serving.server import PolicyServer, ServerConfig, encode_reply

CODES = {
    "forbidden",
    "too_large",
    "malformed",
    "unknown_call",
    "bad_field",
    "bad_size",
    "non_finite",
    "not_initialized",
    "not_started",
    "init_failed",
}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e300, -1e308, 1e6 + 1, 0.5, 1, 0])
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

VALID = {
    "init": {"call": "init", "goals": [[1.0, 0.5]], "radius": 0.5, "seed": 0},
    "reset": {"call": "reset", "obs": [0.0, 0.0, 0.0, 0.0], "goals": [[1.0, 0.5]]},
    "set_state": {"call": "set_state", "obs": [0.1, 0.0, 0.0, 0.0]},
    "get_action": {"call": "get_action", "obs": [0.1, 0.0, 0.0, 0.0]},
    "status": {"call": "status"},
}
FIELDS = [
    "call",
    "obs",
    "goals",
    "radius",
    "seed",
    "steps_per_goal",
    "xy_indices",
    "fallback",
    "safe_stop_after",
    "max_plan_age_s",
    "mppi",
    "planner",
    "skill",
]


@pytest.fixture(scope="module")
def server():
    server = PolicyServer(ServerConfig(port=0, skill="scripted-reach", planner="sequence"))
    assert server.handle([json.dumps(VALID["init"]).encode()])["ok"]
    assert server.handle([json.dumps(VALID["reset"]).encode()])["ok"]
    yield server
    server.close()


def assert_invariant(server: PolicyServer, frames: list[bytes]) -> dict:
    reply = server.handle(frames)
    json.loads(encode_reply(reply))  # one JSON frame, whatever the request held
    assert isinstance(reply["ok"], bool)
    assert reply["call"] is None or reply["call"] in CALLS
    if reply["ok"]:
        return reply
    assert reply["error"]["code"] in CODES, reply
    message = reply["error"]["message"]
    assert isinstance(message, str) and message and "\n" not in message and len(message) <= 400
    if reply["call"] == "get_action" and server.session is not None:
        action = np.asarray(reply["action"], np.float64)
        assert action.shape == (2,) and np.all(np.isfinite(action)), reply
    return reply


@FUZZ
@given(frames=st.lists(st.binary(max_size=64), min_size=0, max_size=3))
def test_random_bytes_get_an_error_reply(server, frames):
    assert_invariant(server, frames)


@FUZZ
@given(value=json_values, payload=st.none() | st.binary(max_size=48))
def test_random_json_gets_a_reply_that_keeps_the_invariant(server, value, payload):
    frames = [json.dumps(value).encode()] + ([] if payload is None else [payload])
    assert_invariant(server, frames)


@FUZZ
@given(
    call=st.sampled_from(sorted(VALID)),
    name=st.sampled_from(FIELDS),
    value=json_values,
    binary_obs=st.none() | st.lists(st.floats(width=64), min_size=0, max_size=6),
)
def test_valid_requests_with_a_mutated_field_keep_the_invariant(
    server, call, name, value, binary_obs
):
    if call == "init" and name in ("skill", "planner") and value in ("scripted-reach", "sequence"):
        return  # a valid re-init: covered elsewhere
    request = {**VALID[call], name: value}
    frames = [json.dumps(request).encode()]
    if binary_obs is not None and call in ("get_action", "set_state"):
        request.pop("obs", None)
        frames = [json.dumps(request).encode(), np.asarray(binary_obs, "<f8").tobytes()]
    assert_invariant(server, frames)
    if server.session is None or not server.session.started:  # keep later examples meaningful
        server.handle([json.dumps(VALID["init"]).encode()])
        server.handle([json.dumps(VALID["reset"]).encode()])


@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=5000),
    call=st.sampled_from(["get_action", "init", "reset"]),
)
def test_nesting_of_any_depth_keeps_the_invariant(server, depth, call):
    request = b'{"call": "' + call.encode() + b'", "obs": ' + b"[" * depth + b"]" * depth + b"}"
    reply = assert_invariant(server, [request])
    assert reply["ok"] is False
