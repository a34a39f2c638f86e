"""SPiRL: losses by hand, the skill model end to end, the shipped policy, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skill_library.spirl.losses import (
    gaussian_kl,
    skill_model_loss,
    spirl_temperature_loss,
    squashed_sample,
)
from skill_library.spirl.networks import SkillModel, SkillModelConfig


def test_gaussian_kl_by_hand():
    zero, one = torch.zeros(1, 1), torch.ones(1, 1)
    assert gaussian_kl(zero, zero, zero, zero).item() == pytest.approx(0.0)
    assert gaussian_kl(one, zero, zero, zero).item() == pytest.approx(0.5)
    # KL(N(0, e^-2) || N(0, 1)) = log(1 / e^-1) + e^-2 / 2 - 1/2
    expected = 1.0 + math.exp(-2.0) / 2 - 0.5
    assert gaussian_kl(zero, -one, zero, zero).item() == pytest.approx(expected)
    two_dims = gaussian_kl(
        torch.ones(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2)
    )
    assert two_dims.item() == pytest.approx(1.0)  # summed over dimensions


def zeroed_model(closed_loop=True):
    model = SkillModel(
        4, 2, SkillModelConfig(horizon=3, latent_dim=2, hidden=(8,), closed_loop=closed_loop)
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return model


@pytest.mark.parametrize("closed_loop", [True, False])
def test_skill_model_loss_by_hand(closed_loop):
    # Zero networks: decoder outputs tanh(0) = 0, posterior and prior are both N(0, I).
    model = zeroed_model(closed_loop)
    actions = torch.tensor([[[0.5, -0.5], [1.0, 0.0], [0.0, 0.0]]])
    states = torch.zeros(1, 3, 4)
    loss, metrics = skill_model_loss(model, {"actions": actions, "states": states}, beta=0.1)
    assert metrics["reconstruction"] == pytest.approx(0.5 * (0.25 + 0.25 + 1.0))
    assert metrics["kl_to_unit_gaussian"] == pytest.approx(0.0)
    assert metrics["prior_loss"] == pytest.approx(0.0)
    assert loss.item() == pytest.approx(0.75)


def test_prior_is_trained_on_the_stop_gradient_posterior():
    torch.manual_seed(0)
    model = SkillModel(4, 2, SkillModelConfig(horizon=3, latent_dim=2, hidden=(8,)))
    batch = {"actions": torch.rand(5, 3, 2) * 2 - 1, "states": torch.randn(5, 3, 4)}

    def encoder_grad():
        model.zero_grad()
        skill_model_loss(model, batch, beta=0.0, generator=torch.Generator().manual_seed(1))[
            0
        ].backward()
        return [p.grad.clone() for p in model.encoder.parameters()]

    before = encoder_grad()
    with torch.no_grad():
        for parameter in model.prior.parameters():
            parameter.add_(1.0)  # a different prior must not change the encoder's gradient
    after = encoder_grad()
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)
    assert any(p.grad.abs().sum() > 0 for p in model.prior.parameters())


def test_temperature_grows_while_the_divergence_exceeds_its_target():
    log_alpha = torch.tensor(0.0, requires_grad=True)
    loss, _ = spirl_temperature_loss(log_alpha, torch.tensor([8.0, 6.0]), target=5.0)
    loss.backward()
    assert log_alpha.grad.item() < 0  # gradient descent raises alpha
    log_alpha.grad = None
    spirl_temperature_loss(log_alpha, torch.tensor([1.0]), target=5.0)[0].backward()
    assert log_alpha.grad.item() > 0


def test_squashed_sample_log_prob_is_the_change_of_variables():
    class Fixed(torch.nn.Module):
        def forward(self, obs):
            return torch.full((len(obs), 1), 0.3), torch.full((len(obs), 1), math.log(0.7))

    bound = 2.0
    z, log_prob = squashed_sample(Fixed(), torch.zeros(2000, 1), bound)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(0.3, 0.7),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(0.0, bound)],
    )
    inside = z.abs().squeeze(-1) < bound * 0.999  # away from float saturation at the bounds
    torch.testing.assert_close(
        log_prob[inside], reference.log_prob(z[inside]).squeeze(-1), atol=1e-3, rtol=1e-4
    )


def test_skill_training_end_to_end(tmp_path):
    import envs
    from hrl_runtime.registry import load_package
    from skill_library.spirl.skill import SPiRLSkill
    from skill_library.spirl.train import SkillTrainingConfig, train_skill_model

    dataset = envs.collect_dataset(envs.CollectConfig(episodes=40, seed=5), progress=False)
    config = SkillTrainingConfig(
        model=SkillModelConfig(horizon=10, latent_dim=4, hidden=(64, 64)), updates=400, seed=1
    )
    path = train_skill_model(
        dataset, config, tmp_path / "skills", name="tiny-spirl", progress=False
    )
    skill = load_package(path)
    assert isinstance(skill, SPiRLSkill) and skill.prior is not None and skill.hold_steps == 100
    history = (path / "skill.json").read_text()
    assert "val_reconstruction" in history
    _, actions, _ = dataset.action_sequences(10)
    trivial = 0.5 * float((actions**2).sum((1, 2)).mean())  # the error of predicting zeros
    first, last = _reconstruction(path)
    assert last < first and last < 0.5 * trivial, (first, last, trivial)
    obs = np.zeros(4, np.float32)
    z = skill.prior.sample(obs, 3, np.random.default_rng(0))
    assert z.shape == (3, 4) and np.all(np.isfinite(skill.prior.log_prob(obs, z)))
    action = skill.act(obs, z[0])
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def _reconstruction(path):
    from skill_library.checkpoint import load_checkpoint

    history = load_checkpoint(path / "checkpoint")["history"]
    return history[0]["val_reconstruction"], history[-1]["val_reconstruction"]


def test_shipped_policy_reaches_the_far_goal(capsys):
    import json

    from hrl_runtime.cli import main

    status = main(
        ["eval", "--policy", "spirl-maze-far", "--env", "hrl/PointMazeFar-v0", "--episodes", "5",
         "--seed", "4242", "--json", "--sync"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["episodes"] == 5
    assert report["success_rate"] >= 0.8
    assert set(report) >= {"episodes", "success_rate", "mean_return"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--policy", "spirl-maze-far", "--env", "hrl/PointArena-v0", "--skill",
          "dads-pointmass"], "drives skill 'spirl-maze"),
        (["eval", "--policy", "dads-pointmass", "--env", "hrl/PointMazeFar-v0"],
         "not a high-level policy"),
        (["eval", "--policy", "spirl-maze-far", "--env", "Ant-v5"], "observations of shape"),
    ],
)  # fmt: skip
def test_mismatched_policy_skill_env_are_refused(capsys, argv, message):
    from hrl_runtime.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_dataset_is_refused_by_the_cli(capsys, tmp_path):
    from hrl_runtime.cli import main

    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    status = main(["train", "spirl-skills", "--dataset", str(bad), "--out", str(tmp_path / "o")])
    assert status == 2
    assert "bad.h5" in capsys.readouterr().err
