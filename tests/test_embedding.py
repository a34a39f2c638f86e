"""Skill embedding (Hausman et al. 2018): losses worked by hand, the package kind, a short run."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from hrl_runtime import PackageError
from hrl_runtime.registry import known_kinds, load_package
from skill_library.embedding.config import EmbeddingConfig
from skill_library.embedding.losses import (
    augmented_reward,
    critic_loss,
    embedding_actor_loss,
    embedding_repulsion,
    inference_loss,
)
from skill_library.embedding.networks import InferenceNet, TaskEmbedding

LOG_2PI = math.log(2 * math.pi)


# ------------------------------------------------------------------------------- losses


def test_augmented_reward_adds_the_clipped_inference_log_likelihood():
    rewards = augmented_reward(
        torch.tensor([-1.0, -0.5, 0.0]), torch.tensor([2.0, -20.0, -3.0]), 0.1, floor=-10.0
    )
    # -1 + 0.1 * 2; -0.5 + 0.1 * max(-20, -10); 0 + 0.1 * -3
    torch.testing.assert_close(rewards, torch.tensor([-0.8, -1.5, -0.3]))


def _inference_net(mean: list[float], log_std: list[float]) -> InferenceNet:
    """q(z | w) = N(mean, exp(log_std)^2) whatever the window (zero weights, fixed bias)."""
    net = InferenceNet(input_dim=3, latent_dim=2, hidden=())
    with torch.no_grad():
        net.net[0].weight.zero_()
        net.net[0].bias.copy_(torch.tensor(mean + log_std))
    return net


def test_inference_loss_is_the_gaussian_negative_log_likelihood():
    net = _inference_net([0.0, 1.0], [0.0, math.log(2.0)])
    batch = {"windows": torch.randn(2, 3), "latents": torch.tensor([[0.5, 1.0], [0.0, 3.0]])}
    loss, metrics = inference_loss(net, batch)
    # row 0: -0.25/2 - log 2pi/2 + (0 - log 2 - log 2pi/2); row 1: -log 2pi/2 + (-0.5 - log 2 - ..)
    row0 = -0.125 - 0.5 * LOG_2PI - math.log(2.0) - 0.5 * LOG_2PI
    row1 = -0.5 * LOG_2PI - 0.5 - math.log(2.0) - 0.5 * LOG_2PI
    assert loss.item() == pytest.approx(-(row0 + row1) / 2, abs=1e-6)
    assert metrics["inference_log_likelihood"] == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_embedding_entropy_and_bounds():
    embedding = TaskEmbedding(tasks=3, latent_dim=2, extent=1.0, max_std=0.5)
    with torch.no_grad():
        embedding.raw_log_std.copy_(torch.tensor([[math.log(0.25)] * 2, [5.0] * 2, [-9.0] * 2]))
        embedding.raw_mean.copy_(torch.tensor([[0.0, 0.0], [100.0, -100.0], [0.5, 0.0]]))
    entropy = embedding.entropy(torch.tensor([0, 1, 2]))
    # H = sum log sigma + dz/2 log(2 pi e); sigma clamped to [e^-5, 0.5]
    expected = [2 * math.log(s) + math.log(2 * math.pi * math.e) for s in (0.25, 0.5, math.exp(-5))]
    torch.testing.assert_close(entropy, torch.tensor(expected))
    means = embedding.means()
    torch.testing.assert_close(means[1], torch.tensor([1.0, -1.0]))  # extent * tanh(raw)
    assert means[2, 0].item() == pytest.approx(math.tanh(0.5))


def test_embedding_std_floor_keeps_each_task_a_neighbourhood():
    embedding = TaskEmbedding(tasks=2, latent_dim=2, extent=1.0, max_std=0.5, min_std=0.15)
    with torch.no_grad():
        embedding.raw_log_std.copy_(torch.tensor([[-9.0, math.log(0.3)], [5.0, -2.0]]))
    # sigma clamped to [0.15, 0.5]: e^-2 = 0.135 is below the floor
    torch.testing.assert_close(embedding.stds(), torch.tensor([[0.15, 0.3], [0.5, 0.15]]))
    entropy = embedding.entropy(torch.tensor([0]))
    expected = math.log(0.15) + math.log(0.3) + math.log(2 * math.pi * math.e)
    assert entropy.item() == pytest.approx(expected, abs=1e-6)


class _FixedPolicy(nn.Module):
    """pi(. | x) that always samples ``action`` with log-probability ``log_prob``."""

    def __init__(self, action: float, log_prob: float, gain: float = 0.0):
        super().__init__()
        self.action, self.log_prob, self.gain = action, log_prob, gain

    def sample(self, x, generator=None):
        batch = x.shape[0]
        # the action depends on the input through `gain` (so gradients can reach z)
        actions = torch.full((batch, 1), self.action) + self.gain * x[:, -1:]
        return actions, torch.full((batch,), self.log_prob)


class _SumCritic(nn.Module):
    """Q_1 = sum(x) + a, Q_2 = Q_1 + offset."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset

    def forward(self, x, actions):
        q1 = x.sum(-1) + actions.sum(-1)
        return q1, q1 + self.offset


def _batch() -> dict[str, torch.Tensor]:
    return {
        "obs": torch.tensor([[1.0], [2.0]]),
        "next_obs": torch.tensor([[0.5], [0.0]]),
        "actions": torch.tensor([[0.1], [0.2]]),
        "latents": torch.tensor([[0.0], [1.0]]),
        "tasks": torch.tensor([0, 1]),
        "task_one_hot": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "dones": torch.tensor([0.0, 1.0]),
    }


def test_critic_loss_worked_by_hand():
    batch = _batch()
    policy = _FixedPolicy(action=0.3, log_prob=-1.0)
    # target critic: Q'_1 = s' + z + onehot sum (1) + a' = [0.5+0+1+0.3, 0+1+1+0.3] = [1.8, 2.3]
    # Q'_2 = Q'_1 - 0.5 -> the min is Q'_2 = [1.3, 1.8]; soft value = min + alpha = + 0.2
    # y = r + gamma (1 - d) V = [1 + 0.9 * 1.5, 2 + 0] = [2.35, 2.0]
    # Q_1(s, a) = s + z + 1 + a = [2.1, 4.2]; Q_2 = Q_1 + 1 = [3.1, 5.2]
    loss, _ = critic_loss(
        _SumCritic(1.0),
        _SumCritic(-0.5),
        policy,
        batch,
        torch.tensor([1.0, 2.0]),
        torch.tensor(0.2),
        0.9,
    )
    q1, q2, y = np.array([2.1, 4.2]), np.array([3.1, 5.2]), np.array([2.35, 2.0])
    expected = 0.5 * np.mean((q1 - y) ** 2) + 0.5 * np.mean((q2 - y) ** 2)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_embedding_actor_loss_worked_by_hand_and_reaches_the_embedding():
    batch = _batch()
    embedding = TaskEmbedding(tasks=2, latent_dim=1, extent=2.0, max_std=0.5)
    with torch.no_grad():
        embedding.raw_mean.copy_(torch.tensor([[0.0], [math.atanh(0.5)]]))  # means 0 and 1
        embedding.raw_log_std.fill_(-20.0)  # sigma = e^-5: z is the mean to 1e-2
    policy = _FixedPolicy(action=0.3, log_prob=-2.0, gain=1.0)  # a = 0.3 + z
    alpha, weight = torch.tensor(0.1), 0.5
    loss, log_prob, metrics = embedding_actor_loss(
        policy, _SumCritic(1.0), embedding, batch, alpha, weight
    )
    # min Q = s + z + 1 + (0.3 + z) = [2.3, 5.3]; alpha log pi = -0.2
    # H[p(z|t)] = -5 + log(2 pi e) / 2 per task
    entropy = -5.0 + 0.5 * math.log(2 * math.pi * math.e)
    expected = np.mean([-0.2 - 2.3, -0.2 - 5.3]) - weight * entropy
    assert loss.item() == pytest.approx(expected, abs=0.05)
    assert metrics["embedding_entropy"] == pytest.approx(entropy, abs=1e-5)
    assert torch.all(log_prob == -2.0)
    loss.backward()
    # d loss / d mean_t = -2 / B per task through Q's z and a's z: the gradient reaches p(z|t)
    assert embedding.raw_mean.grad is not None and torch.all(embedding.raw_mean.grad < 0)


def test_embedding_repulsion_worked_by_hand():
    # two means 0.5 apart (a 3-4-5 triangle), h = 0.5: k = exp(-0.25 / 0.5) = exp(-0.5)
    means = torch.tensor([[0.0, 0.0], [0.3, 0.4]], requires_grad=True)
    repulsion = embedding_repulsion(means, bandwidth=0.5)
    # R = 1/T (k_01 + k_10) = 1/2 * 2 exp(-0.5)
    assert repulsion.item() == pytest.approx(math.exp(-0.5), abs=1e-6)
    repulsion.backward()
    # dR/dmu_0 = 1/T * 2 * k * (mu_1 - mu_0) / h^2 = exp(-0.5) * (0.3, 0.4) / 0.25: descending
    # it moves mu_0 away from mu_1, and mu_1 the other way
    expected = math.exp(-0.5) * np.array([0.3, 0.4]) / 0.25
    np.testing.assert_allclose(means.grad[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(means.grad[1].numpy(), -expected, atol=1e-6)
    # one shared mean counts 1 per pair; means 10 h apart hardly repel
    assert embedding_repulsion(torch.zeros(3, 2), 0.5).item() == pytest.approx(2.0)
    far = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    assert embedding_repulsion(far, 0.5).item() < 1e-20


def test_the_actor_loss_adds_the_weighted_repulsion_and_it_reaches_the_means():
    batch = _batch()
    embedding = TaskEmbedding(tasks=2, latent_dim=1, extent=2.0, max_std=0.5)
    with torch.no_grad():
        embedding.raw_mean.copy_(torch.tensor([[0.0], [math.atanh(0.05)]]))  # means 0 and 0.1
        embedding.raw_log_std.fill_(-20.0)
    policy, critic, alpha = _FixedPolicy(0.3, -2.0, 1.0), _SumCritic(1.0), torch.tensor(0.1)
    plain, _, _ = embedding_actor_loss(
        policy, critic, embedding, batch, alpha, 0.5, torch.Generator().manual_seed(0)
    )
    loss, _, metrics = embedding_actor_loss(
        policy, critic, embedding, batch, alpha, 0.5, torch.Generator().manual_seed(0), 2.0, 0.25
    )
    # R = exp(-0.01 / 0.125) for means 0.1 apart, h = 0.25
    kernel = math.exp(-0.01 / (2 * 0.25**2))
    assert metrics["embedding_repulsion"] == pytest.approx(kernel, abs=1e-5)
    assert loss.item() - plain.item() == pytest.approx(2.0 * kernel, abs=1e-5)
    embedding.zero_grad()
    embedding_repulsion(embedding.all_means(), 0.25).backward()
    # the lower mean is pushed down, the upper one up
    assert embedding.raw_mean.grad[0, 0] > 0 > embedding.raw_mean.grad[1, 0]


# --------------------------------------------------------------------- a short training run


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    from skill_library.embedding.train import EmbeddingTrainer

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("embedding") / "embed-short"
    config = EmbeddingConfig(
        steps=1600,
        num_envs=4,
        episode_length=100,
        warmup_steps=400,
        updates_per_iteration=20,
        batch_size=64,
        dynamics_segments=400,
        dynamics_updates=300,
        checkpoint_every=1,
        seed=3,
    )
    trainer = EmbeddingTrainer(config, out, command="test")
    path = trainer.train(progress=False, name="embed-short")
    return config, path, trainer


def test_a_short_run_packages_a_loadable_embedding_skill(short_run):
    config, path, trainer = short_run
    skill = load_package(path)
    assert skill.kind == "embedding" and skill.name == "embed-short"
    assert skill.command_space.shape == (2,) and skill.hold_steps == config.hold_steps
    np.testing.assert_allclose(skill.embedding_means, trainer.embedding.means().numpy())
    assert np.all(np.abs(skill.embedding_means) <= config.networks.latent_extent)
    assert (path / "embedding.png").stat().st_size > 10_000
    metrics = json.loads((path / "skill.json").read_text())["metrics"]
    assert metrics["steps"] == 1600 and len(metrics["task_final_distances"]) == 8
    # the skill dynamics learned something: its held-out error is below the motion it predicts
    assert metrics["dynamics_test_error_m"] < 0.8 * metrics["dynamics_test_motion_m"]
    # the planner-side contract: the dynamics predicts the fingertip
    # the planner-side contract: the dynamics predicts the observation, fingertip x-y first
    assert skill.dynamics.state_indices[:2] == (0, 1)
    obs = np.zeros((3, 8), np.float32)
    obs[:, :2] = [[0.6, 0.6], [0.0, 0.8], [-0.5, 0.1]]
    states = skill.dynamics.state_of(obs)
    predicted = skill.dynamics.predict(states, np.zeros((3, 2), np.float32))
    assert predicted.shape == states.shape and np.all(np.isfinite(predicted))


def test_resume_continues_the_run(short_run, tmp_path):
    from skill_library.embedding.train import EmbeddingTrainer

    config, path, _ = short_run
    longer = replace(config, steps=2000)
    trainer = EmbeddingTrainer(longer, path, command="test")
    trainer.train(resume=True, progress=False, name="embed-short")
    assert trainer.iteration == 5 and trainer.steps_done == 2000
    other = replace(longer, inference_weight=0.5)
    with pytest.raises(Exception, match="inference_weight"):
        EmbeddingTrainer(other, path, command="test").train(resume=True, progress=False)


# ------------------------------------------------------------------------- the package kind


def test_the_kind_is_registered_by_entry_point():
    from skill_library.embedding import EmbeddingSkill

    assert known_kinds()["embedding"] is EmbeddingSkill


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("tasks", 5, ["weights.embedding.safetensors.tensors", "config implies"]),
        ("latent_dim", 3, ["config.skill.latent_dim", "spaces.command"]),
        ("command_bound", 9.0, ["config.skill.command_bound", "spaces.command"]),
        ("hold_steps", 0, ["config.skill.hold_steps"]),
        ("policy_hidden", [7], ["weights.policy.safetensors.tensors", "config implies"]),
    ],
)
def test_a_bad_config_is_refused_in_one_line(short_run, tmp_path, key, value, words):
    import json
    import shutil

    _, path, _ = short_run
    copy = tmp_path / "bad"
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("checkpoint", "tensorboard"))
    manifest = json.loads((copy / "skill.json").read_text())
    manifest["config"]["skill"][key] = value
    (copy / "skill.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError) as error:
        load_package(copy)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_the_trainer_refuses_more_tasks_than_the_env_has(tmp_path):
    from hrl_runtime.errors import ConfigError
    from skill_library.embedding.train import EmbeddingTrainer

    with pytest.raises(ConfigError, match="--tasks 17: hrl/ArmReach-v0 has 16 tasks"):
        EmbeddingTrainer(EmbeddingConfig(tasks=17), tmp_path / "x")
    with pytest.raises(ConfigError, match="window must be >= 1"):
        EmbeddingTrainer(EmbeddingConfig(window=0), tmp_path / "x")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "embedding", "--out", "{tmp}/o", "--tasks", "17"], "has 16 tasks"),
        (["train", "embedding", "--out", "{tmp}/o", "--env", "hrl/PointArena-v0"], "no tasks"),
        (["train", "embedding", "--out", "{tmp}/o", "--latent-dim", "0"], "argument --latent-dim"),
        (["train", "embedding", "--out", "{tmp}/o", "--env", "Nope-v0"], "unknown environment"),
        (
            ["train", "embedding-transfer", "--skill", "dads-pointmass", "--out", "{tmp}/t"],
            "needs an 'embedding' skill",
        ),
    ],
)
def test_bad_command_lines_are_one_line_errors(tmp_path, capsys, argv, words):
    from hrl_runtime.cli import main as hrl_main

    status = hrl_main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and words in error, error
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("method", ["embedding", "scratch"])
def test_a_tiny_transfer_run_evaluates_at_its_budget_points(method):
    from hrl_runtime import SkillRegistry
    from skill_library.embedding.transfer import TransferConfig, run_one

    torch.set_num_threads(1)
    skill = SkillRegistry().load("embed-arm")
    config = TransferConfig(steps=400, eval_every=200, eval_episodes=1, warmup=100)
    curve = run_one("sequence", method, 0, config, skill)
    assert [point["steps"] for point in curve] == [200.0, 400.0]
    assert all(0.0 <= point["success_rate"] <= 1.0 for point in curve)
    assert all(point["return"] in (0.0, 1.0, 2.0) for point in curve)  # sparse: A, then B


def test_the_high_level_holds_each_z_and_updates_per_decision(monkeypatch):
    from hrl_runtime import SkillRegistry
    from skill_library.embedding import transfer

    torch.set_num_threads(1)
    skill = SkillRegistry().load("embed-arm")
    commands, updates = [], []
    monkeypatch.setattr(
        skill, "act", lambda obs, z: commands.append(np.array(z)) or np.zeros(2, np.float32)
    )
    monkeypatch.setattr(transfer.SACLearner, "update", lambda self, batch: updates.append(batch))
    config = transfer.TransferConfig(
        steps=400, eval_every=400, eval_episodes=1, warmup=100, high_level_hold=20
    )
    config = replace(config, high_level_updates=3)
    transfer.run_one("interpolate", "embedding", 0, config, skill)
    # 400 training steps + one 200-step evaluation episode (zero torques never touch the
    # target), in runs of 20 steps with one z each
    assert len(commands) == 600
    held = np.stack(commands).reshape(30, 20, 2)
    assert np.all(held == held[:, :1])
    # while learning, each decision draws a new z (the evaluation's arm stands still, and the
    # deterministic policy then repeats its z)
    assert np.all(np.abs(np.diff(held[:20, 0], axis=0)).sum(-1) > 0)
    # decisions ending at steps 100, 120, ..., 400 (16 after the warmup), 3 updates each
    # (the last from the 20 decisions stored: one transition per decision)
    assert len(updates) == 3 * 16 and len(updates[-1]["rewards"]) == 20


def test_the_high_level_commands_the_box_the_task_embeddings_occupy():
    from types import SimpleNamespace

    from skill_library.embedding.transfer import embedding_box

    skill = SimpleNamespace(
        config=SimpleNamespace(command_bound=1.5),
        embedding_means=np.array([[0.0, -1.0], [0.5, 1.0]], np.float32),
        embedding_stds=np.array([[0.1, 0.2], [0.2, 0.4]], np.float32),
    )
    center, half_range = embedding_box(skill)
    # x: [0 - 0.2, 0.5 + 0.4] = [-0.2, 0.9]; y: [-1.4, 1.8 -> 1.5 (the command bound)]
    np.testing.assert_allclose(center, [0.35, 0.05], atol=1e-6)
    np.testing.assert_allclose(half_range, [0.55, 1.45], atol=1e-6)


@pytest.mark.parametrize(
    ("planner", "words"),
    [
        ({"mppi": {"temperature": -1.0}}, ["config.planner.mppi", "temperature"]),
        ({"mppi": {"threads": 4}}, ["config.planner.mppi", "cannot be recommended"]),
        ({"cem": {}}, ["config.planner"]),
    ],
)
def test_recommended_planner_settings_load_and_bad_ones_are_refused(
    short_run, tmp_path, planner, words
):
    import json
    import shutil

    _, path, _ = short_run
    for name, entry in (
        ("good", {"mppi": {"iterations": 3, "temperature": 0.01}}),
        ("bad", planner),
    ):
        copy = tmp_path / name
        shutil.copytree(path, copy, ignore=shutil.ignore_patterns("checkpoint", "tensorboard"))
        manifest = json.loads((copy / "skill.json").read_text())
        manifest["config"]["planner"] = entry
        (copy / "skill.json").write_text(json.dumps(manifest))
    skill = load_package(tmp_path / "good")
    assert skill.planner_settings("mppi") == {"iterations": 3, "temperature": 0.01}
    assert skill.planner_settings("spirl") == {}
    assert skill.package_config()["planner"] == {"mppi": {"iterations": 3, "temperature": 0.01}}
    with pytest.raises(PackageError) as error:
        load_package(tmp_path / "bad")
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
