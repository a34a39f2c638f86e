"""SPiRL's prior-regularized SAC losses by hand (Pertsch et al. 2020, Eq. 3, Algorithm 1 lines
9-12): the KL to the skill prior and its sign in the critic target, the actor and the temperature.

Every reparameterized draw is pinned to eps = +1 so each sample can be written down. The policy is
the constant Gaussian N(mu, sigma) with sigma = 0.5 and mu = ln 2 - 0.5, so the pre-squash sample
is u = mu + sigma * eps = ln 2, tanh(u) = (2 - 1/2) / (2 + 1/2) = 0.6, and with the bound 2 the
command is z = 1.2. Its log-density:

    log pi(z|s) = log N(u; mu, sigma) - log(bound (1 - tanh(u)^2))
                = (-eps^2 / 2 - ln 0.5 - ln(2 pi) / 2) - ln(2 * 0.64)
                = -0.5 + ln 2 - ln(2 pi) / 2 - ln 1.28

The prior is N(-0.8, 2), so log p(z|s) = -((1.2 + 0.8) / 2)^2 / 2 - ln 2 - ln(2 pi) / 2
= -0.5 - ln 2 - ln(2 pi) / 2, and the one-sample divergence is

    D = log pi - log p = 2 ln 2 - ln 1.28 = ln 3.125 = 1.1394
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skill_library.spirl.losses import (
    spirl_actor_loss,
    spirl_critic_loss,
    spirl_temperature_loss,
)

F64 = torch.float64
BOUND = 2.0
Z = 1.2
KL = math.log(3.125)  # D = 2 ln 2 - ln 1.28, worked out in the module docstring
LOG_PI = -0.5 + math.log(2.0) - 0.5 * math.log(2 * math.pi) - math.log(1.28)  # = -0.9727


class ConstantGaussian(nn.Module):
    """``obs (B, do) -> mean, log_std (B, 1)``, the same Gaussian for every observation: the
    interface of the policy and of the skill prior."""

    def __init__(self, mean: float, log_std: float):
        super().__init__()
        self.mean = nn.Parameter(torch.tensor([mean], dtype=F64))
        self.log_std = nn.Parameter(torch.tensor([log_std], dtype=F64))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = obs.shape[0]
        return self.mean.expand(batch, 1), self.log_std.expand(batch, 1)


class LinearTwinQ(nn.Module):
    """``Q_i(s, z) = w_i . [s, z]`` for a 1-D s and z, with the weights given."""

    def __init__(self, w1: tuple[float, float], w2: tuple[float, float]):
        super().__init__()
        self.q1 = nn.Linear(2, 1, bias=False, dtype=F64)
        self.q2 = nn.Linear(2, 1, bias=False, dtype=F64)
        with torch.no_grad():
            self.q1.weight.copy_(torch.tensor([w1], dtype=F64))
            self.q2.weight.copy_(torch.tensor([w2], dtype=F64))

    def forward(self, obs: torch.Tensor, commands: torch.Tensor):
        inputs = torch.cat([obs, commands], -1)
        return self.q1(inputs).squeeze(-1), self.q2(inputs).squeeze(-1)


@pytest.fixture(autouse=True)
def unit_noise(monkeypatch):
    """Every standard-normal draw in the losses is +1."""

    def ones(shape, generator=None, dtype=None):
        return torch.ones(shape, dtype=dtype)

    monkeypatch.setattr(torch, "randn", ones)


def policy() -> ConstantGaussian:
    return ConstantGaussian(math.log(2.0) - 0.5, math.log(0.5))


def prior() -> ConstantGaussian:
    return ConstantGaussian(-0.8, math.log(2.0))


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=F64).unsqueeze(-1)


def critic_batch() -> dict[str, torch.Tensor]:
    return {
        "obs": column(1.0, 0.0),
        "actions": column(0.5, -0.5),
        "rewards": torch.tensor([1.0, -1.0], dtype=F64),
        "dones": torch.tensor([0.0, 1.0], dtype=F64),
        "next_obs": column(0.5, 3.0),
    }


def critic_loss_by_hand(divergence: float) -> float:
    """Q_1(s, a) = s + a and Q_2(s, a) = a on the batch: (1.5, -0.5) and (0.5, -0.5). The target
    critic Q'_1 = s + z, Q'_2 = 2 z at z' = 1.2: row 0 min(0.5 + 1.2, 2.4) = 1.7; row 1 is done,
    its target is the reward -1. With alpha = 0.5, gamma = 0.9:
    target_0 = 1 + 0.9 (1.7 - 0.5 D)."""
    target_0, target_1 = 1.0 + 0.9 * (1.7 - 0.5 * divergence), -1.0
    q1_errors = (1.5 - target_0) ** 2 + (-0.5 - target_1) ** 2
    q2_errors = (0.5 - target_0) ** 2 + (-0.5 - target_1) ** 2
    return 0.5 * q1_errors / 2 + 0.5 * q2_errors / 2


def run_critic_loss(skill_prior: nn.Module | None) -> tuple[torch.Tensor, dict[str, float]]:
    return spirl_critic_loss(
        LinearTwinQ((1.0, 1.0), (0.0, 1.0)),
        LinearTwinQ((1.0, 1.0), (0.0, 2.0)),
        policy(),
        skill_prior,
        critic_batch(),
        torch.tensor(0.5, dtype=F64),
        discount=0.9,
        bound=BOUND,
    )


def test_critic_target_subtracts_alpha_times_the_kl_of_the_next_command():
    loss, metrics = run_critic_loss(prior())
    # target_0 = 1 + 0.9 (1.7 - 0.5 * 1.1394) = 2.01725;
    # loss = ((1.5 - 2.01725)^2 + 0.5^2 + (0.5 - 2.01725)^2 + 0.5^2) / 4 = 0.76740
    # (adding alpha D instead, target_0 = 3.04275, would give 2.33640).
    assert loss.item() == pytest.approx(critic_loss_by_hand(KL), rel=1e-9)
    assert loss.item() == pytest.approx(0.76740, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx((1.5 - 0.5) / 2)


def test_critic_target_without_prior_uses_the_entropy_term():
    loss, _ = run_critic_loss(None)
    # D = log pi(z'|s') = -0.9727: target_0 = 1 + 0.9 (1.7 + 0.5 * 0.9727) = 2.96769,
    # loss = ((1.5 - 2.96769)^2 + 0.5^2 + (0.5 - 2.96769)^2 + 0.5^2) / 4 = 2.18591
    assert loss.item() == pytest.approx(2.18591, abs=1e-5)
    assert loss.item() == pytest.approx(critic_loss_by_hand(LOG_PI), rel=1e-9)


def run_actor_loss(policy_net: nn.Module, skill_prior: nn.Module | None, alpha: float):
    # Q_1(s, z) = s + z, Q_2(s, z) = z at s = (1, -1), z = 1.2: min(2.2, 1.2) = 1.2 and
    # min(0.2, 1.2) = 0.2, so min_i Q_i averages to 0.7.
    return spirl_actor_loss(
        policy_net,
        LinearTwinQ((1.0, 1.0), (0.0, 1.0)),
        skill_prior,
        {"obs": column(1.0, -1.0)},
        torch.tensor(alpha, dtype=F64),
        BOUND,
    )


def test_actor_minimizes_alpha_kl_minus_q():
    skill_prior = prior()
    loss, divergence, metrics = run_actor_loss(policy(), skill_prior, alpha=0.5)
    # 0.5 * 1.1394 - 0.7 = -0.13028
    assert loss.item() == pytest.approx(0.5 * KL - 0.7, rel=1e-9)
    torch.testing.assert_close(divergence, torch.full((2,), KL, dtype=F64))
    assert not divergence.requires_grad
    assert metrics["divergence"] == pytest.approx(KL)
    loss.backward()
    assert skill_prior.mean.grad is None  # the prior is fixed downstream


def test_actor_without_prior_uses_log_pi():
    loss, divergence, _ = run_actor_loss(policy(), None, alpha=0.5)
    # 0.5 * (-0.9727) - 0.7 = -1.18633
    assert loss.item() == pytest.approx(0.5 * LOG_PI - 0.7, rel=1e-9)
    torch.testing.assert_close(divergence, torch.full((2,), LOG_PI, dtype=F64))


@pytest.mark.parametrize(
    ("alpha", "expected_gradient"),
    [(0.5, 0.5 * 1.84 - 1.28), (1.0, 1.84 - 1.28)],
)
def test_actor_gradient_trades_q_against_the_pull_of_the_prior(alpha, expected_gradient):
    """d loss / d mu = alpha dD/dmu - d min Q / dmu, with u = mu + sigma eps:
    log N(u; mu, sigma) does not depend on mu; -log(1 - tanh(u)^2) gives 2 tanh(u) = 1.2;
    -log p(z) gives (z + 0.8) / 2^2 * dz/du = 0.5 * 2 * 0.64 = 0.64; so dD/dmu = 1.84.
    Both minimal heads have dQ/dz = 1: d min Q / dmu = dz/du = 1.28.
    alpha = 0.5: -0.36 (mu rises, toward higher Q); alpha = 1: +0.56 (mu falls, toward the prior).
    """
    policy_net = policy()
    loss, _, _ = run_actor_loss(policy_net, prior(), alpha)
    loss.backward()
    assert policy_net.mean.grad.item() == pytest.approx(expected_gradient, rel=1e-9)


@pytest.mark.parametrize(
    ("divergence", "expected_loss"),
    [
        # mean(1.2 - (1.0, 2.0)) = -0.3, divergence above target: loss = 0.5 * -0.3
        ((1.0, 2.0), -0.15),
        # mean(1.2 - (0.5, 0.7)) = 0.6, divergence below target: loss = 0.5 * 0.6
        ((0.5, 0.7), 0.3),
    ],
)
def test_temperature_rises_above_the_target_divergence_and_falls_below(divergence, expected_loss):
    """Loss alpha (delta - D) on log alpha: its gradient is alpha * mean(delta - D), equal to the
    loss, so a descent step raises alpha exactly when the mean divergence exceeds delta = 1.2.
    (Algorithm 1 line 12 as printed, alpha (D - delta), would move alpha the other way.)"""
    log_alpha = torch.tensor(math.log(0.5), dtype=F64, requires_grad=True)
    loss, metrics = spirl_temperature_loss(log_alpha, torch.tensor(divergence, dtype=F64), 1.2)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-9)
    assert metrics["alpha"] == pytest.approx(0.5)
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(expected_loss, rel=1e-9)
    torch.optim.SGD([log_alpha], lr=0.1).step()
    rises = sum(divergence) / 2 > 1.2
    assert (log_alpha.item() > math.log(0.5)) == rises
