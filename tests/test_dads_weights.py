"""Off-DADS importance weights by hand: the likelihood ratio of the stored action, clipped."""

from __future__ import annotations

import math

import pytest
import torch

from skill_library.dads.losses import dynamics_loss, importance_weights
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet

LOG_2PI = math.log(2 * math.pi)


def test_weight_is_the_current_over_the_behaviour_likelihood():
    log_prob = torch.tensor([-1.0, -0.5, -3.0, math.log(0.3)], dtype=torch.float64)
    behavior = torch.tensor([-1.0, -1.2, -1.0, math.log(0.6)], dtype=torch.float64)
    weights = importance_weights(log_prob, behavior, clip=10.0)
    expected = [
        1.0,  # same likelihood under both policies: exp(-1 - (-1)) = 1
        math.exp(0.7),  # the current policy likes the action more: exp(-0.5 + 1.2) = 2.0138
        math.exp(-2.0),  # and less: exp(-3 + 1) = 0.1353 (no lower clip)
        0.5,  # pi / pi_b = 0.3 / 0.6
    ]
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float64))


def test_weights_are_clipped_from_above():
    log_prob = torch.tensor([0.0, 0.0, 0.0])
    behavior = torch.tensor([-5.0, -math.log(4.0), -math.log(3.0)])
    weights = importance_weights(log_prob, behavior, clip=3.5)
    # exp(5) = 148.4 -> 3.5; exp(log 4) = 4 -> 3.5; exp(log 3) = 3 stays.
    torch.testing.assert_close(weights, torch.tensor([3.5, 3.5, 3.0]))


def test_a_huge_ratio_stays_finite_without_a_clip():
    # float32 exp overflows above ~88.7; the log-ratio 0 - (-1000) = 1000 is capped at 20 first.
    weights = importance_weights(torch.tensor([0.0]), torch.tensor([-1000.0]), clip=math.inf)
    assert torch.isfinite(weights).all()
    assert weights.item() == pytest.approx(math.exp(20.0), rel=1e-6)  # 4.85e8


def test_weights_reweight_the_dynamics_likelihood():
    """The weights enter the skill-dynamics NLL as a self-normalized average."""
    network = SkillDynamicsNet(DynamicsNetConfig(2, 2, hidden=(8,), num_experts=1))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()  # q(s' | s, z) = N(s' - s; 0, I), identity normalizers
    batch = {
        "dyn_obs": torch.zeros(2, 2),
        "dyn_next_obs": torch.tensor([[1.0, 0.0], [2.0, 0.0]]),
        "skills": torch.zeros(2, 2),
    }
    # log q = -0.5 |s' - s|^2 - log 2pi: -0.5 - log 2pi and -2 - log 2pi.
    # Weights exp(log 0.5 - log 0.25) = 2 and exp(log 0.1 - log 0.2) = 0.5.
    log_prob = torch.tensor([math.log(0.5), math.log(0.1)])
    behavior = torch.tensor([math.log(0.25), math.log(0.2)])
    batch["weights"] = importance_weights(log_prob, behavior, clip=10.0)
    loss, _ = dynamics_loss(network, batch)
    # -(2 (-0.5 - log 2pi) + 0.5 (-2 - log 2pi)) / (2 + 0.5) = (2 + 2.5 log 2pi) / 2.5
    assert loss.item() == pytest.approx(0.8 + LOG_2PI, rel=1e-6)
