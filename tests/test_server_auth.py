"""The policy server on a robot's network (issue 18), on loopback: CURVE keys admit only the
authorized clients, ``init`` loads only the allow-listed skills by name, each client has its own
rate limit, and ``hrl serve`` refuses to expose the robot without keys before it binds anything."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from hrl_runtime.cli import main
from hrl_runtime.cli import runtime as runtime_cli
from hrl_runtime.errors import ConfigError
from hrl_runtime.serving import transport
from hrl_runtime.serving.client import HrlClient
from hrl_runtime.serving.config import ServerConfig
from hrl_runtime.serving.limits import TRANSPORT_FRAME_BYTES, ClientLimits
from hrl_runtime.serving.requests import MAX_FRAME_BYTES
from hrl_runtime.serving.server import PolicyServer

SHIPPED = Path(__file__).resolve().parents[1] / "skill_library" / "pretrained"
ALLOWED = ("scripted-reach", "dads-pointmass@1.0.0")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """A server key pair, two authorized clients (arm, flood) and an intruder's key pair."""
    root = tmp_path_factory.mktemp("keys")
    for directory, name in [
        ("server", "server"),
        ("authorized", "arm"),
        ("authorized", "flood"),
        ("intruder", "intruder"),
    ]:
        assert main(["keys", "generate", str(root / directory), "--name", name]) == 0
    return {
        "server_secret": root / "server" / "server.key_secret",
        "server_public": root / "server" / "server.key",
        "authorized": root / "authorized",
        "arm": root / "authorized" / "arm.key_secret",
        "flood": root / "authorized" / "flood.key_secret",
        "intruder": root / "intruder" / "intruder.key_secret",
    }


def serve(config: ServerConfig):
    """Starts a server thread; returns the server and a function that stops it."""
    server = PolicyServer(config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_ms": 20}, daemon=True)
    thread.start()

    def stop():
        server.running = False
        thread.join(5)
        server.close()

    return server, stop


def secure_config(keys, **limits) -> ServerConfig:
    return ServerConfig(
        port=0,
        skills=ALLOWED,
        planner="sequence",
        secret_key_file=str(keys["server_secret"]),
        authorized_keys_dir=str(keys["authorized"]),
        **limits,
    )


def client(server, keys, name: str | None, **options) -> HrlClient:
    if name is None:
        return HrlClient(server.address, **options)
    return HrlClient(server.address, keys=keys[name], server_key=keys["server_public"], **options)


@pytest.fixture
def secure_server(keys):
    server, stop = serve(secure_config(keys))
    yield server
    stop()


def one_line_refusal(reply: dict, code: str) -> str:
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    message = reply["error"]["message"]
    assert message and "\n" not in message and len(message) <= 400
    return message


# --- keys ----------------------------------------------------------------------------------------
def test_keys_generate_writes_a_pair_with_a_private_secret_and_never_overwrites_it(
    tmp_path, capsys
):
    assert main(["keys", "generate", str(tmp_path), "--name", "arm", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    public, secret = Path(written["public"]), Path(written["secret"])
    assert (public.name, secret.name) == ("arm.key", "arm.key_secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" in secret.read_text() and "secret-key" not in public.read_text()
    before = secret.read_bytes()
    assert main(["keys", "generate", str(tmp_path), "--name", "arm"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--force" in error and "already exist" in error
    assert secret.read_bytes() == before
    assert main(["keys", "generate", str(tmp_path), "--name", "arm", "--force"]) == 0
    assert secret.read_bytes() != before and stat.S_IMODE(secret.stat().st_mode) == 0o600


# --- who may connect ------------------------------------------------------------------------------
def test_a_client_without_the_right_key_gets_no_reply_and_others_are_still_served(
    secure_server, keys
):
    for outsider in (
        client(secure_server, keys, "intruder", timeout_s=0.5, setup_timeout_s=0.5),
        client(secure_server, keys, None, timeout_s=0.5, setup_timeout_s=0.5),  # no keys at all
    ):
        with pytest.raises(TimeoutError):
            outsider.init(skill="scripted-reach", goals=[[1.0, 0.5]])
        with pytest.raises(TimeoutError):
            outsider.status()
        outsider.close()
    arm = client(secure_server, keys, "arm")
    status = arm.status()
    assert status["access"]["authenticated"] is True
    assert status["access"]["skills"] == ["scripted-reach@1.0.0", "dads-pointmass@1.0.0"]
    assert secure_server.requests == 1  # the outsiders' requests never reached the server
    arm.close()


def test_an_authorized_client_drives_a_plant_to_its_goal(secure_server, keys):
    command = [
        sys.executable,
        "-m",
        "hrl_runtime.serving.client",
        "--address",
        secure_server.address,
        "--keys",
        str(keys["arm"]),
        "--server-key",
        str(keys["server_public"]),
        "--skill",
        "scripted-reach",  # a plan per goal, no MPPI: this checks the access, not the planner
        "--planner",
        "sequence",
        "--goals",
        "1.5,1.0",
        "--seconds",
        "4",
    ]
    env = {**os.environ, "MUJOCO_GL": "disable", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    report = json.loads(done.stdout)
    assert report["reached"] and report["min_distance"] <= 0.5
    assert report["steps"] >= 50  # a 100 Hz loop for a while, not one call
    assert report["status"]["faults"] == {"total": 0}
    assert report["status"]["access"]["authenticated"] is True
    assert report["status"]["access"]["limits"]["rate_limited"] == 0


# --- what init may load ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "skill",
    [
        str(SHIPPED / "scripted-reach"),  # the allowed skill, by directory
        "./skill_library/pretrained/scripted-reach",
        "~/skills/scripted-reach",
        "am-maze",  # on the search path, not in the list
        "scripted-reach@9.9.9",  # an allowed name, another version
    ],
)
def test_init_with_a_path_or_a_skill_outside_the_allow_list_is_forbidden(
    secure_server, keys, skill
):
    arm = client(secure_server, keys, "arm")
    reply = arm.request({"call": "init", "skill": skill, "goals": [[1.0, 0.5]]})
    message = one_line_refusal(reply, "forbidden")
    assert reply["call"] == "init" and "scripted-reach@1.0.0" in message
    assert arm.status()["initialized"] is False  # nothing was loaded
    reply = arm.init(skill="scripted-reach@1.0.0", goals=[[1.0, 0.5]])
    assert reply["skill"] == "scripted-reach@1.0.0"
    arm.close()


def test_the_loopback_default_loads_names_but_never_a_directory():
    server = PolicyServer(ServerConfig(port=0, planner="sequence"))
    try:
        request = {"call": "init", "skill": str(SHIPPED / "scripted-reach"), "goals": [[1, 0]]}
        one_line_refusal(server.handle([json.dumps(request).encode()]), "forbidden")
        request["skill"] = "scripted-reach"
        assert server.handle([json.dumps(request).encode()])["ok"]
    finally:
        server.close()


def test_skills_outside_the_search_path_or_a_default_outside_the_list_refuse_to_start(keys):
    with pytest.raises(ConfigError, match="is a path"):
        PolicyServer(ServerConfig(port=0, skills=(str(SHIPPED / "scripted-reach"),)))
    with pytest.raises(ConfigError, match="no package 'nope'"):
        PolicyServer(ServerConfig(port=0, skills=("nope",)))
    with pytest.raises(ConfigError, match=r"am-maze.* is not in --skills"):
        PolicyServer(ServerConfig(port=0, skills=ALLOWED, skill="am-maze"))


# --- per-client limits ----------------------------------------------------------------------------
def test_a_token_bucket_allows_its_burst_then_its_rate():
    limits = ClientLimits(rate_hz=2.0, burst=3)
    assert [limits.allow(b"a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limits.allow(b"b", 0.0)  # another client has its own bucket
    assert not limits.allow(b"a", 0.25)  # half a token refilled
    assert limits.allow(b"a", 0.5) and not limits.allow(b"a", 0.5)  # one token at 2 per second
    assert limits.allow(b"a", 100.0) and limits.limited == 3
    assert limits.to_json()["burst"] == 3  # a quiet spell refills only up to the burst


def test_a_rate_limited_control_request_carries_the_safe_action():
    config = ServerConfig(port=0, skill="scripted-reach", planner="sequence", client_burst=3)
    server = PolicyServer(config)
    try:
        for request in ({"call": "init", "goals": [[1.0, 0.5]]}, {"call": "reset", "obs": [0] * 4}):
            assert server.reply([json.dumps(request).encode()], 0.0, b"robot")["ok"]
        obs = [json.dumps({"call": "get_action", "obs": [0, 0, 0, 0]}).encode()]
        served = server.reply(obs, 0.0, b"robot")
        assert served["ok"]
        reply = server.reply(obs, 0.0, b"robot")  # the fourth request at the same instant
        one_line_refusal(reply, "rate_limited")
        assert reply["call"] == "get_action"
        assert reply["action"] == served["action"]  # the fallback holds the last action
        assert server.handle([b'{"call": "status"}'])["access"]["limits"]["rate_limited"] == 1
    finally:
        server.close()


def test_a_flooding_client_is_limited_while_another_keeps_being_answered(keys):
    server, stop = serve(secure_config(keys, client_rate_hz=2.0, client_burst=40))
    flooding, first_limited = threading.Event(), threading.Event()
    counts = {"ok": 0, "rate_limited": 0}

    def flood():
        flooder = client(server, keys, "flood")
        while flooding.is_set():
            reply = flooder.request({"call": "status"})
            counts["ok" if reply["ok"] else reply["error"]["code"]] += 1
            if counts["rate_limited"]:
                first_limited.set()
        flooder.close()

    flooding.set()
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        assert first_limited.wait(30)
        arm = client(server, keys, "arm")
        arm.init(skill="scripted-reach", goals=[[1.0, 0.5]])
        arm.reset(np.zeros(4))
        limited_before = counts["rate_limited"]
        replies = [arm.get_action(np.zeros(4))[1] for _ in range(20)]
        limited_during = counts["rate_limited"] - limited_before
        status = arm.status()
    finally:
        flooding.clear()
        thread.join(10)
    try:
        assert all(reply["ok"] and reply["status"] == "ok" for reply in replies)
        assert [reply["step"] for reply in replies] == list(range(20))
        assert limited_during > 0  # the flood went on, refused, while the arm was served
        assert counts["ok"] <= 40 + 2 * 30  # the burst, then 2/s at most
        limits = status["access"]["limits"]
        assert limits["requests_per_s"] == 2.0 and limits["burst"] == 40
        assert limits["rate_limited"] >= limited_before + limited_during
        # The flooder is its key, not its connection: reconnecting starts no new bucket.
        again = client(server, keys, "flood")
        one_line_refusal(again.request({"call": "status"}), "rate_limited")
        again.close()
        arm.close()
    finally:
        stop()


def test_frames_too_large_are_refused_and_huge_ones_never_read(secure_server, keys):
    arm = client(secure_server, keys, "arm", timeout_s=1.0)
    reply = arm.request_frames([b"{" * (MAX_FRAME_BYTES + 1)])
    one_line_refusal(reply, "too_large")
    with pytest.raises(TimeoutError):  # beyond MAXMSGSIZE the connection is dropped unread
        arm.request_frames([b"{" * (TRANSPORT_FRAME_BYTES + 1)], timeout_ms=500)
    assert arm.status()["access"]["limits"]["max_frame_bytes"] == MAX_FRAME_BYTES
    arm.close()


# --- hrl serve refuses to expose the robot --------------------------------------------------------
def test_serve_on_all_interfaces_without_keys_refuses_before_binding(monkeypatch, capsys):
    def must_not_run(*args, **kwargs):
        raise AssertionError("hrl serve bound a socket or built a server before refusing")

    monkeypatch.setattr(runtime_cli, "PolicyServer", must_not_run)
    monkeypatch.setattr(transport, "RouterTransport", must_not_run)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert "--insecure" in lines[0] and "hrl keys generate" in lines[0]
    # With --insecure it goes on to the next rule: off loopback, name the skills.
    assert main(["serve", "--host", "0.0.0.0", "--insecure"]) == 2
    assert "--skills" in capsys.readouterr().err


def test_insecure_with_an_allow_list_is_accepted_and_keys_go_in_pairs(keys):
    ServerConfig(host="0.0.0.0", insecure=True, skills=ALLOWED).validate()
    with pytest.raises(ConfigError, match="--keys and --authorized go together"):
        ServerConfig(secret_key_file=str(keys["server_secret"])).validate()
    with pytest.raises(ConfigError, match="go together"):
        HrlClient("tcp://127.0.0.1:1", keys=keys["arm"])
    assert os.path.exists(keys["server_public"])
