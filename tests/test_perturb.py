"""Body perturbations: the model really changes, every reset restores it first, and bad values
are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from envs import make_env
from envs.perturb import (
    Perturbation,
    PerturbationDistribution,
    PerturbationError,
    PerturbedBody,
)
from hrl_runtime.cli import main


def _push(env, action, steps=30):
    """x-y after pushing with ``action`` from the arena centre."""
    obs, _ = env.reset(seed=0, options={"start_xy": (0.0, 0.0)})
    for _ in range(steps):
        obs, *_ = env.step(np.asarray(action, np.float32))
    return obs[:2]


def test_gain_and_mirror_change_the_motion_and_reset_restores_the_model():
    nominal_env = make_env("hrl/PointArena-v0")
    nominal = _push(nominal_env, (1.0, 1.0))
    body = PerturbedBody(make_env("hrl/PointArena-v0"), Perturbation(gain=0.5, mirror="x"))
    gear = body.model.actuator_gear[:, 0].copy()
    moved = _push(body, (1.0, 1.0))
    np.testing.assert_allclose(body.model.actuator_gear[:, 0], [-0.5 * gear[0], 0.5 * gear[1]])
    assert nominal[0] > 0.2 and moved[0] < -0.05  # x pushes the other way
    assert 0.05 < moved[1] < 0.8 * nominal[1]  # y moves the same way, more slowly
    moved_again = _push(body, (1.0, 1.0))  # a second reset does not compound the edit
    np.testing.assert_allclose(moved_again, moved, atol=1e-9)
    body.close()
    np.testing.assert_array_equal(body.model.actuator_gear[:, 0], gear)


def test_mass_scales_masses_and_inertia_and_each_episode_starts_from_the_nominal_model():
    env = make_env("hrl/PointArena-v0")
    mass, inertia = env.unwrapped.model.body_mass.copy(), env.unwrapped.model.body_inertia.copy()
    body = PerturbedBody(env, distribution=PerturbationDistribution(), seed=3)
    for _ in range(5):
        _, info = body.reset(seed=0)
        current = body.current
        assert info["perturbation"] == current.label()
        np.testing.assert_allclose(body.model.body_mass, mass * current.mass)
        np.testing.assert_allclose(body.model.body_inertia, inertia * current.mass)
        signs = [-1.0 if axis in current.mirror else 1.0 for axis in "xy"]
        np.testing.assert_allclose(
            body.model.actuator_gear[:, 0], 10.0 * current.gain * np.array(signs)
        )
    body.restore()
    np.testing.assert_array_equal(body.model.body_mass, mass)


def test_heavier_body_accelerates_more_slowly():
    light = _push(make_env("hrl/PointArena-v0"), (1.0, 0.0), steps=5)
    heavy = _push(
        PerturbedBody(make_env("hrl/PointArena-v0"), Perturbation(mass=4.0)), (1.0, 0.0), 5
    )
    assert heavy[0] < 0.6 * light[0]


def test_the_training_distribution_never_draws_the_held_out_gains():
    rng = np.random.default_rng(0)
    gains = [PerturbationDistribution().sample(rng).gain for _ in range(3000)]
    assert not any(0.35 < g < 0.45 for g in gains)
    assert min(gains) < 0.3 and max(gains) > 1.4


def test_ant_crippled_leg_zeroes_that_legs_actuators_only():
    body = PerturbedBody(make_env("Ant-v5"), Perturbation(leg=2))
    before = body.model.actuator_gear[:, 0].copy()
    body.reset(seed=0)
    import mujoco

    model = body.model
    for actuator in range(model.nu):
        joint = mujoco.mj_id2name(
            model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[actuator, 0]
        )
        expected = 0.0 if joint in ("hip_2", "ankle_2") else before[actuator]
        assert model.actuator_gear[actuator, 0] == expected
    body.close()
    np.testing.assert_array_equal(model.actuator_gear[:, 0], before)


@pytest.mark.parametrize(
    "text",
    ["gain=0", "gain=abc", "mirror=z", "leg=0", "leg=7", "speed=2", "gain", "gain=1,gain=2"],
)
def test_malformed_perturbations_are_refused(text):
    with pytest.raises(PerturbationError):
        Perturbation.parse(text)


def test_bodies_that_do_not_fit_the_env_are_refused():
    with pytest.raises(PerturbationError, match="hip_1"):
        PerturbedBody(make_env("hrl/PointArena-v0"), Perturbation(leg=1))
    with pytest.raises(PerturbationError, match="mirror"):
        PerturbedBody(make_env("Ant-v5"), Perturbation(mirror="x"))


@pytest.mark.parametrize("value", ["gain=-1", "mirror=q", "leg=2"])
def test_cli_refuses_a_bad_perturbation_in_one_line(value, capsys):
    status = main(
        [
            "follow",
            "--skill",
            "dads-pointmass",
            "--planner",
            "mppi",
            "--env",
            "hrl/PointArena-v0",
            "--goals",
            "1,1",
            "--perturb",
            value,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and err.startswith("hrl: error:")
