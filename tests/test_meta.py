"""MAML meta-learned skill dynamics: the inner step against a hand-worked gradient step, the
meta-gradients against finite differences, the online adapter's hand-over, the package kind,
and a tiny meta-training run that checkpoints, resumes and packages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kernels
from skill_library.meta.config import AdaptationConfig, MetaConfig
from skill_library.meta.losses import Transitions, inner_adapt, maml_loss, prediction_loss
from skill_library.meta.networks import make_dynamics_net, parameters
from skill_library.meta.online import MLPGradient, OnlineAdapter
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet


def _tiny(hidden=(3,), state_dim=2, command_dim=1, seed=0, **kwargs) -> SkillDynamicsNet:
    torch.manual_seed(seed)
    if kwargs:
        config = DynamicsNetConfig(state_dim, command_dim, hidden, **kwargs)
        network = SkillDynamicsNet(config)
    else:
        network = make_dynamics_net(state_dim, command_dim, hidden)
    network = network.double()
    with torch.no_grad():  # normalizers away from the identity, so they are exercised too
        network.in_norm.mean.copy_(torch.tensor([0.3, -0.2, 0.1][: state_dim + command_dim]))
        network.in_norm.std.copy_(torch.tensor([1.5, 0.5, 2.0][: state_dim + command_dim]))
        network.out_norm.mean.copy_(torch.tensor([0.05, -0.1][:state_dim]))
        network.out_norm.std.copy_(torch.tensor([0.4, 0.8][:state_dim]))
    return network


def _batch(n: int, seed: int, state_dim=2, command_dim=1, leading=()) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(*leading, n, state_dim, generator=g, dtype=torch.float64)
    commands = torch.rand(*leading, n, command_dim, generator=g, dtype=torch.float64) * 2 - 1
    after = states + 0.3 * torch.randn(*leading, n, state_dim, generator=g, dtype=torch.float64)
    return Transitions(states, commands, after)


def _hand_step(network: SkillDynamicsNet, batch: Transitions, lr: float) -> dict[str, np.ndarray]:
    """One gradient step of L = 1/B sum ||y - t||^2 worked out by hand for a one-hidden-layer
    tanh MLP: y = tanh(x W1^T + b1) W2^T + b2, x and t normalized."""
    p = {k: v.detach().numpy() for k, v in network.state_dict().items()}
    s, z, s2 = (v.numpy() for v in batch)
    x = (np.concatenate([s, z], 1) - p["in_norm.mean"]) / p["in_norm.std"]
    t = (s2 - s - p["out_norm.mean"]) / p["out_norm.std"]
    w1, b1, w2, b2 = p["trunk.0.weight"], p["trunk.0.bias"], p["means.weight"], p["means.bias"]
    h = np.tanh(x @ w1.T + b1)
    r = h @ w2.T + b2 - t
    n = len(s)
    d_y = 2.0 * r / n  # dL/dy
    d_w2, d_b2 = d_y.T @ h, d_y.sum(0)
    d_a = (d_y @ w2) * (1 - h**2)  # through tanh
    d_w1, d_b1 = d_a.T @ x, d_a.sum(0)
    return {
        "trunk.0.weight": w1 - lr * d_w1,
        "trunk.0.bias": b1 - lr * d_b1,
        "means.weight": w2 - lr * d_w2,
        "means.bias": b2 - lr * d_b2,
    }


def test_inner_step_equals_a_hand_worked_gradient_step():
    network, batch, lr = _tiny(), _batch(5, 1), 0.3
    expected = _hand_step(network, batch, lr)
    adapted = inner_adapt(network, parameters(network), batch, lr, inner_steps=1)
    for name, value in expected.items():
        np.testing.assert_allclose(adapted[name].detach().numpy(), value, rtol=1e-10, atol=1e-12)


def test_online_adapter_step_equals_the_hand_worked_step_and_lands_in_the_kernel_network():
    network, lr, hold = _tiny(), 0.3, 2
    settings = AdaptationConfig(
        context=4, inner_steps=1, inner_lr=lr, min_context=4, backtracking=0
    )
    adapter = OnlineAdapter(network.export_mlp(), settings, hold_steps=hold)
    planner_net = kernels.make_mlp_weights(**network.export_mlp())
    weights_buffer = planner_net.weights_flat
    adapter.bind(planner_net)
    # Five transitions of two control steps each: the adapter uses the last four.
    g = np.random.default_rng(0)
    states = g.normal(size=(2 * 5 + 1, 2))
    commands = g.uniform(-1, 1, size=(5, 1))
    for step in range(11):
        command = commands[(step - 1) // hold] if step else np.zeros(1)
        adapter.observe(step, states[step], command)
    assert adapter.available() == 4
    assert adapter.adapt()
    batch = Transitions(
        torch.from_numpy(states[[2, 4, 6, 8]]),
        torch.from_numpy(commands[1:5]),
        torch.from_numpy(states[[4, 6, 8, 10]]),
    )
    expected = _hand_step(network, batch, lr)
    layers = kernels.mlp_layers(planner_net)
    assert planner_net.weights_flat is weights_buffer  # written in place
    np.testing.assert_allclose(layers[0][0], expected["trunk.0.weight"].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers[0][1], expected["trunk.0.bias"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers[1][0], expected["means.weight"].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers[1][1], expected["means.bias"], rtol=1e-5, atol=1e-6)
    report = adapter.report()
    assert report["adaptations"] == 1
    assert report["context_error"]["after"] < report["context_error"]["before"]
    adapter.reset()  # back to the meta-parameters
    np.testing.assert_allclose(
        planner_net.weights_flat, kernels.make_mlp_weights(**network.export_mlp()).weights_flat
    )
    # A step far too long raises the context loss: backtracking halves it or drops it.
    for backtracking, worse in ((0, True), (3, False)):
        greedy = AdaptationConfig(
            context=4, inner_lr=90.0, min_context=4, backtracking=backtracking
        )
        adapter = OnlineAdapter(network.export_mlp(), greedy, hold_steps=hold)
        adapter.bind(kernels.make_mlp_weights(**network.export_mlp()))
        for step in range(11):
            adapter.observe(step, states[step], commands[(step - 1) // hold] if step else [0.0])
        adapter.adapt()
        errors = adapter.report()["context_error"]
        assert (errors["after"] > errors["before"]) == worse


def _replan_every_step(settings: AdaptationConfig, steps: int, hold: int = 2, seed: int = 0):
    """An adapter bound to a tiny network, fed a linear system and adapting at every step."""
    network = _tiny()
    adapter = OnlineAdapter(network.export_mlp(), settings, hold_steps=hold)
    planner_net = kernels.make_mlp_weights(**network.export_mlp())
    adapter.bind(planner_net)
    g = np.random.default_rng(seed)
    state, command = np.zeros(2), np.zeros(1)
    for step in range(steps):
        adapter.observe(step, state, command)
        adapter.adapt()
        command = g.uniform(-1, 1, size=1)
        state = 0.9 * state + 0.2 * command[0]
    return adapter, planner_net, network


def test_heldout_error_is_scored_when_replanning_every_control_step():
    settings = AdaptationConfig(context=4, inner_lr=0.1, min_context=2)
    adapter, _, _ = _replan_every_step(settings, steps=40)
    report = adapter.report()
    # Once an adaptation is a hold old, every new (non-overlapping) transition is scored.
    assert 40 // 2 - 5 <= report["heldout_error"]["transitions"] <= 40 // 2
    assert np.isfinite(report["heldout_error"]["meta"])
    assert np.isfinite(report["heldout_error"]["adapted"])


def test_accumulated_adaptation_keeps_improving_and_resets_per_episode():
    """With ``accumulate`` every step starts where the last ended, so on one body the context
    error falls below what one step from the meta-parameters reaches."""
    common = dict(context=4, inner_lr=0.1, min_context=4, backtracking=0)
    plain, _, _ = _replan_every_step(AdaptationConfig(**common), steps=60)
    accumulated, planner_net, network = _replan_every_step(
        AdaptationConfig(**common, accumulate=True), steps=60
    )
    last = accumulated.adaptations - 1
    assert accumulated.context_after[last] < 0.5 * plain.context_after[plain.adaptations - 1]
    assert accumulated.report()["settings"]["accumulate"] is True
    accumulated.reset()  # a new episode: back to the meta-parameters
    np.testing.assert_array_equal(accumulated.theta_w, accumulated.meta_w)
    np.testing.assert_allclose(
        planner_net.weights_flat, kernels.make_mlp_weights(**network.export_mlp()).weights_flat
    )


@pytest.mark.parametrize("kind", ["mog", "relu"])
def test_hand_gradient_of_other_heads_matches_autograd(kind):
    if kind == "mog":
        network = _tiny((4, 3), num_experts=3, fixed_variance=True, activation="tanh")
    else:
        network = _tiny((4,), num_experts=0, activation="relu")
    batch = _batch(6, 2)
    params = parameters(network)
    loss = prediction_loss(network, params, batch)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    packed = kernels.make_mlp_weights(**network.float().export_mlp())
    network.double()
    gradient = MLPGradient(packed, 8)
    theta_w, theta_b = packed.weights_flat.astype(np.float64), packed.biases_flat.astype(np.float64)
    grad_w, grad_b = np.zeros_like(theta_w), np.zeros_like(theta_b)
    layers, grad_layers = gradient.layers(theta_w, theta_b), gradient.layers(grad_w, grad_b)
    n = gradient.set_batch(*(v.numpy() for v in batch))
    assert gradient.forward(layers, n) == pytest.approx(float(loss.detach()), rel=1e-5)
    gradient.backward(layers, grad_layers, n)
    np.testing.assert_allclose(grad_layers[0][0], grads["trunk.0.weight"].T, rtol=1e-4, atol=1e-6)
    if kind == "mog":
        out = torch.cat([grads["logits.weight"].T, grads["means.weight"].T], 1)
        np.testing.assert_allclose(grad_layers[-1][0], out, rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_allclose(
            grad_layers[-1][0], grads["means.weight"].T, rtol=1e-4, atol=1e-6
        )


def _finite_difference(function, params: dict[str, torch.Tensor], eps=1e-6):
    grads = {}
    for name, value in params.items():
        grad = torch.zeros_like(value)
        flat = grad.view(-1)
        for i in range(value.numel()):
            shifted = {k: v.clone() for k, v in params.items()}
            shifted[name].view(-1)[i] += eps
            up = float(function(shifted))
            shifted[name].view(-1)[i] -= 2 * eps
            down = float(function(shifted))
            flat[i] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(inner_steps):
    network = _tiny()
    context, query = _batch(4, 3, leading=(2,)), _batch(3, 4, leading=(2,))
    params = {k: v.detach().clone().requires_grad_(True) for k, v in parameters(network).items()}

    def meta_objective(p):  # body by body, without vmap: an independent reference
        losses = []
        for body in range(2):
            body_context = Transitions(*(f[body] for f in context))
            # (first_order only drops the graph: the value is the same)
            adapted = inner_adapt(network, p, body_context, 0.2, inner_steps, first_order=True)
            losses.append(prediction_loss(network, adapted, Transitions(*(f[body] for f in query))))
        return torch.stack(losses).mean()

    loss = maml_loss(network, params, context, query, 0.2, inner_steps)[0]
    analytic = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    numeric = _finite_difference(lambda p: meta_objective(p).detach(), params)
    for name in params:
        torch.testing.assert_close(analytic[name], numeric[name], rtol=1e-6, atol=1e-8)
    # ... and it differs from the first-order gradient (the second-order terms matter here).
    first = maml_loss(network, params, context, query, 0.2, inner_steps, first_order=True)[0]
    first_grads = torch.autograd.grad(first, list(params.values()))
    assert any(
        not torch.allclose(a, b, atol=1e-6)
        for a, b in zip(analytic.values(), first_grads, strict=True)
    )


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_parameters():
    network = _tiny()
    context, query = _batch(4, 5, leading=(2,)), _batch(3, 6, leading=(2,))
    params = {k: v.detach().clone().requires_grad_(True) for k, v in parameters(network).items()}
    loss, _ = maml_loss(network, params, context, query, 0.2, 1, first_order=True)
    analytic = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    # FOMAML: 1/N sum_i grad_phi L_query_i(phi) at phi = theta'_i (d theta'/d theta = I).
    numeric = {name: torch.zeros_like(value) for name, value in params.items()}
    for body in range(2):
        body_context = Transitions(*(f[body] for f in context))
        body_query = Transitions(*(f[body] for f in query))
        adapted = inner_adapt(network, params, body_context, 0.2, 1)
        adapted = {k: v.detach() for k, v in adapted.items()}
        fd = _finite_difference(
            lambda p, q=body_query: prediction_loss(network, p, q).detach(), adapted
        )
        for name in numeric:
            numeric[name] += fd[name] / 2
    for name in params:
        torch.testing.assert_close(analytic[name], numeric[name], rtol=1e-6, atol=1e-8)


def test_tiny_meta_training_checkpoints_resumes_and_packages(tmp_path):
    from hrl_runtime.registry import load_skill, verify_package
    from skill_library.meta.skill import MetaDADSSkill
    from skill_library.meta.train import MetaTrainer

    config = MetaConfig(
        steps=3,
        bodies=4,
        transitions_per_body=6,
        meta_batch=2,
        query=2,
        hidden=(8,),
        adaptation=AdaptationConfig(context=3, min_context=2),
        checkpoint_every=2,
        log_every=1,
    )
    out = tmp_path / "meta"
    path = MetaTrainer(config, out).train(progress=False, name="tiny-meta")
    manifest = json.loads((path / "skill.json").read_text())
    assert manifest["kind"] == "dads_meta"
    assert manifest["config"]["adaptation"]["context"] == 3
    assert manifest["metrics"]["updates"] == 3
    longer = MetaConfig(**{**config.__dict__, "steps": 5})
    trainer = MetaTrainer(longer, out)
    trainer.train(resume=True, progress=False, name="tiny-meta")
    assert trainer.updates == 5
    history = json.loads((path / "history.json").read_text())
    assert [round(h["step"]) for h in history] == [1, 2, 3, 4, 5]
    assert verify_package(path)["kind"] == "dads_meta"
    skill = load_skill(str(path))
    assert isinstance(skill, MetaDADSSkill)
    assert skill.dynamics.state_indices == (0, 1, 2, 3)
    adapter = skill.online_adapter()
    assert adapter.settings.context == 3
    assert skill.planner_settings("mppi") == {}  # none recommended: the planner's defaults


def test_recommended_mppi_settings_go_through_the_manifest_into_the_planner(tmp_path):
    from hrl_runtime.errors import PackageError
    from hrl_runtime.registry import load_skill, verify_package
    from planners import SequenceConfig, build_goal_follower
    from planners.mppi import MPPIConfig
    from skill_library.meta.train import MetaTrainer

    settings = {"temperature": 0.02, "squared_distance": True, "horizon": 12}
    config = MetaConfig(
        steps=1, bodies=2, transitions_per_body=4, meta_batch=2, query=2, hidden=(8,),
        adaptation=AdaptationConfig(context=2, min_context=2), mppi=settings,
    )  # fmt: skip
    path = MetaTrainer(config, tmp_path / "meta").train(progress=False, name="tiny-meta")
    manifest = json.loads((path / "skill.json").read_text())
    assert manifest["config"]["planner"] == {"mppi": settings}
    skill = load_skill(str(path))
    assert skill.planner_settings("mppi") == settings and skill.planner_settings("cem") == {}
    goals, sequence = np.array([[1.0, 1.0]]), SequenceConfig(0.5, 100)
    planner = build_goal_follower("mppi", skill, goals, (0, 1), sequence, seed=7).delegate
    assert planner.config == MPPIConfig(**settings, seed=7)
    assert planner.mean.shape[0] == 12  # the recommended horizon sized the plan
    given = MPPIConfig(num_samples=64, seed=3)  # settings a caller gives win
    planner = build_goal_follower("mppi", skill, goals, (0, 1), sequence, mppi=given).delegate
    assert planner.config == given
    plain = load_skill("dads-pointmass")
    assert plain.planner_settings("mppi") == {}
    planner = build_goal_follower("mppi", plain, goals, (0, 1), sequence, seed=7).delegate
    assert planner.config == MPPIConfig(seed=7)
    for bad, match in (({"seed": 3}, "cannot be recommended"), ({"horizon": 0}, "int in")):
        manifest["config"]["planner"]["mppi"] = bad
        (path / "skill.json").write_text(json.dumps(manifest))
        with pytest.raises(PackageError, match=match):
            verify_package(path)


def test_mppi_settings_parse_from_the_command_line_text():
    from hrl_runtime.errors import ConfigError
    from skill_library.planner_settings import parse_mppi_settings

    parsed = parse_mppi_settings("temperature=0.02, squared_distance=true,num_samples=512")
    assert parsed == {"temperature": 0.02, "squared_distance": True, "num_samples": 512}
    assert parse_mppi_settings("") == {}
    for text, match in (
        ("temperature", "NAME=VALUE"),
        ("backend=torch", "NAME=VALUE"),
        ("squared_distance=yes", "true or false"),
        ("num_samples=1.5", "not a int"),
        ("temperature=-1", r"float in"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_mppi_settings(text)


def test_the_shipped_meta_package_verifies_and_a_tampered_one_is_refused(tmp_path):
    import shutil

    from hrl_runtime.errors import PackageError
    from hrl_runtime.registry import SkillRegistry, load_skill, verify_package

    source = SkillRegistry().resolve("dads-pointmass-meta").path
    assert verify_package(source)["kind"] == "dads_meta"
    shipped = json.loads((source / "skill.json").read_text())["config"].get("planner", {})
    assert load_skill(str(source)).planner_settings("mppi") == shipped.get("mppi", {})
    for change in ("drop adaptation", "mixture head"):
        target = tmp_path / change.replace(" ", "-")
        shutil.copytree(source, target)
        manifest = json.loads((target / "skill.json").read_text())
        if change == "drop adaptation":
            del manifest["config"]["adaptation"]
        else:
            manifest["config"]["dynamics"]["network"]["num_experts"] = 4
        (target / "skill.json").write_text(json.dumps(manifest))
        with pytest.raises(PackageError, match=r"adaptation|num_experts|logits"):
            verify_package(target)


def test_follow_adapt_on_a_perturbed_body_reports_the_adaptation(capsys):
    from hrl_runtime.cli import main

    status = main(
        [
            "follow",
            "--skill",
            "dads-pointmass-meta",
            "--planner",
            "mppi",
            "--env",
            "hrl/PointArena-v0",
            "--goals",
            "2,2",
            "--max-steps",
            "150",
            "--perturb",
            "gain=0.4,mirror=x",
            "--adapt",
            "--sync",
            "--json",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert status == 0 and payload["perturbation"] == "gain=0.4,mirror=x"
    adaptation = payload["adaptation"]
    # 150 steps, replanning every 10: 15 optimizations, adapting once 4 transitions exist.
    assert 8 <= adaptation["adaptations"] <= 15 and adaptation["diverged"] == 0
    assert adaptation["settings"]["context"] == 16
    assert adaptation["adapt_ms"]["p50"] > 0
    assert adaptation["context_error"]["after"] < adaptation["context_error"]["before"]


def test_adapt_needs_the_mppi_planner(capsys):
    from hrl_runtime.cli import main

    status = main(
        ["follow", "--skill", "dads-pointmass", "--planner", "sequence", "--env",
         "hrl/PointArena-v0", "--goals", "1,1", "--adapt"]
    )  # fmt: skip
    assert status == 2 and "--planner mppi" in capsys.readouterr().err


def test_on_a_mirrored_body_adapting_reaches_the_goals_the_plain_skill_misses(capsys):
    from hrl_runtime.cli import main

    def reached(*skill: str) -> int:
        args = ["follow", "--skill", *skill, "--planner", "mppi", "--env", "hrl/PointArena-v0",
                "--perturb", "gain=0.4,mirror=x", "--random-goals", "4", "--seed", "5", "--sync",
                "--json"]  # fmt: skip
        assert main(args) == 0
        return sum(goal["reached"] for goal in json.loads(capsys.readouterr().out)["goals"])

    # The meta skill's plain twin (same policy, plain dynamics) plans with x the wrong way round.
    assert reached("dads-pointmass-meta", "--adapt") == 4
    assert reached("dads-pointmass-open") <= 2
