"""Kernels against plain-numpy references (float64), hand-worked values and edge cases."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kernels
from kernels import (
    TANH_MAX_ABS_ERROR,
    bounds_cost,
    cem_update,
    gaussian_noise,
    goal_cost,
    make_mlp_weights,
    make_rollout_workspace,
    mlp_layers,
    mppi_update,
    mppi_weights,
    perturb,
    rollout,
    shift_plan,
    smooth_noise,
    smoothness_cost,
    tanh_inplace,
)

F32 = np.float32
FEW = settings(max_examples=50, deadline=None)
# Rollout vs the float64 reference (float32 GEMMs + fast_tanh): observed max abs error 6.4e-7
# (T=10, H=256, all heads/activations), so 1e-5 leaves a 15x margin.
ROLLOUT_RTOL = 1e-5
ROLLOUT_ATOL = 1e-5


# ---------------------------------------------------------------- plain-numpy references


def ref_rollout(state0, commands, layers, norms, activation, head, n_components, residual):
    """Float64 reference: per-step forward pass of the MLP spelled out in kernels/mlp.py."""
    in_mean, in_std, out_mean, out_std = (np.asarray(a, np.float64) for a in norms)
    layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
    n_samples, horizon, _ = commands.shape
    state_dim = state0.shape[0]
    states = np.empty((n_samples, horizon + 1, state_dim))
    states[:, 0] = state0
    act = np.tanh if activation == "tanh" else (lambda h: np.maximum(h, 0.0))
    for t in range(horizon):
        h = (np.concatenate([states[:, t], commands[:, t]], axis=1) - in_mean) / in_std
        for w, b in layers[:-1]:
            h = act(h @ w + b)
        y = h @ layers[-1][0] + layers[-1][1]
        if head == "mog":
            logits = y[:, :n_components]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            means = y[:, n_components:].reshape(n_samples, n_components, state_dim)
            y = np.einsum("ke,ked->kd", p, means)
        delta = y * out_std + out_mean
        states[:, t + 1] = states[:, t] + delta if residual else delta
    return states


def ref_goal_cost(states, goal, goal_dims, step_weight, terminal_weight, squared=True):
    d = ((states[:, 1:, goal_dims].astype(np.float64) - goal) ** 2).sum(axis=2)
    if not squared:
        d = np.sqrt(d)
    return step_weight * d[:, :-1].sum(axis=1) + terminal_weight * d[:, -1]


def ref_smoothness(commands, previous, weight):
    z = np.concatenate([np.broadcast_to(previous, commands[:, :1].shape), commands], axis=1)
    return weight * (np.diff(z.astype(np.float64), axis=1) ** 2).sum(axis=(1, 2))


def ref_bounds(commands, low, high, weight):
    c = commands.astype(np.float64)
    violation = np.maximum(low - c, 0.0) + np.maximum(c - high, 0.0)
    return weight * (violation**2).sum(axis=(1, 2))


def ref_mppi_weights(costs, temperature):
    c = np.asarray(costs, np.float64)
    finite = np.isfinite(c)
    w = np.zeros_like(c)
    if finite.any():
        w[finite] = np.exp(-(c[finite] - c[finite].min()) / temperature)
        w /= w.sum()
    return w


def ref_cem(commands, costs, n_elite, min_std):
    finite = np.flatnonzero(np.isfinite(costs))
    elite = finite[np.argsort(costs[finite], kind="stable")[:n_elite]]
    chosen = commands[elite].astype(np.float64)
    if len(elite) == 0:
        return elite, None, None
    return elite, chosen.mean(axis=0), np.maximum(chosen.std(axis=0), min_std)


def ref_smooth(noise, beta):
    out = noise.astype(np.float64)
    for t in range(1, noise.shape[1]):
        out[:, t] = beta * out[:, t - 1] + math.sqrt(1 - beta**2) * noise[:, t]
    return out


# ---------------------------------------------------------------- helpers


def random_network(rng, state_dim, command_dim, hidden, activation, head, n_components, residual):
    """Random per-layer float32 arrays (kept for the reference) and their packed export."""
    sizes = [state_dim + command_dim, *hidden]
    out_dim = state_dim if head == "mean" else n_components * (1 + state_dim)
    hidden_w = [
        (rng.standard_normal((a, b)) / np.sqrt(a)).astype(F32) for a, b in itertools.pairwise(sizes)
    ]
    hidden_b = [(0.1 * rng.standard_normal(b)).astype(F32) for b in sizes[1:]]
    out_w = (rng.standard_normal((sizes[-1], out_dim)) / np.sqrt(sizes[-1])).astype(F32)
    out_b = (0.1 * rng.standard_normal(out_dim)).astype(F32)
    norms = (
        (0.2 * rng.standard_normal(sizes[0])).astype(F32),
        rng.uniform(0.5, 2.0, sizes[0]).astype(F32),
        (0.05 * rng.standard_normal(state_dim)).astype(F32),
        rng.uniform(0.1, 0.3, state_dim).astype(F32),
    )
    network = make_mlp_weights(
        hidden_w,
        hidden_b,
        out_w,
        out_b,
        in_mean=norms[0],
        in_std=norms[1],
        out_mean=norms[2],
        out_std=norms[3],
        activation=activation,
        head=head,
        n_components=n_components,
        residual=residual,
    )
    return network, [*zip(hidden_w, hidden_b, strict=True), (out_w, out_b)], norms


# ---------------------------------------------------------------- fast tanh


def test_fast_tanh_error_bound_on_dense_grid():
    grid = np.concatenate(
        [
            np.linspace(-10.0, 10.0, 2_000_001, dtype=F32),
            np.array([-3e38, -1e10, -100.0, -8.0, -1e-30, 0.0, 1e-30, 8.0, 100.0, 1e10, 3e38], F32),
        ]
    )
    approx = grid.copy()
    tanh_inplace(approx)
    error = np.abs(approx.astype(np.float64) - np.tanh(grid.astype(np.float64)))
    assert error.max() < TANH_MAX_ABS_ERROR
    assert np.all(np.abs(approx) <= 1.0)


def test_fast_tanh_special_values():
    values = np.array([np.inf, -np.inf, np.nan, 0.0], F32)
    tanh_inplace(values)
    assert abs(values[0] - 1.0) < TANH_MAX_ABS_ERROR and abs(values[1] + 1.0) < TANH_MAX_ABS_ERROR
    assert np.isnan(values[2]) and values[3] == 0.0


# ---------------------------------------------------------------- MLP export and rollout


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("head", ["mean", "mog"])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("hidden", [(24,), (24, 16)])
def test_rollout_matches_float64_reference(activation, head, residual, hidden):
    rng = np.random.default_rng(hash((activation, head, residual, hidden)) % 2**32)
    n_samples, horizon, state_dim, command_dim = 37, 5, 3, 2
    n_components = 1 if head == "mean" else 3
    network, layers, norms = random_network(
        rng, state_dim, command_dim, hidden, activation, head, n_components, residual
    )
    state0 = rng.standard_normal(state_dim).astype(F32)
    commands = rng.uniform(-1, 1, (n_samples, horizon, command_dim)).astype(F32)
    states = np.full((n_samples, horizon + 1, state_dim), np.nan, F32)
    rollout(state0, commands, network, states, make_rollout_workspace(n_samples, network))
    expected = ref_rollout(
        state0, commands, layers, norms, activation, head, n_components, residual
    )
    np.testing.assert_allclose(states, expected, rtol=ROLLOUT_RTOL, atol=ROLLOUT_ATOL)


@pytest.mark.parametrize("hidden", [(), (8, 8, 8)])
def test_rollout_other_depths(hidden):
    rng = np.random.default_rng(len(hidden))
    network, layers, norms = random_network(rng, 2, 1, hidden, "tanh", "mean", 1, True)
    commands = rng.uniform(-1, 1, (9, 4, 1)).astype(F32)
    states = np.empty((9, 5, 2), F32)
    state0 = np.array([0.5, -0.5], F32)
    rollout(state0, commands, network, states, make_rollout_workspace(9, network))
    expected = ref_rollout(state0, commands, layers, norms, "tanh", "mean", 1, True)
    np.testing.assert_allclose(states, expected, rtol=ROLLOUT_RTOL, atol=ROLLOUT_ATOL)


@pytest.mark.parametrize("n_blocks", [1, 3, 64])
def test_rollout_independent_of_block_count(n_blocks):
    rng = np.random.default_rng(7)
    network, *_ = random_network(rng, 4, 2, (32, 32), "tanh", "mog", 2, True)
    commands = rng.uniform(-1, 1, (50, 6, 2)).astype(F32)
    state0 = np.zeros(4, F32)
    reference = np.empty((50, 7, 4), F32)
    rollout(state0, commands, network, reference, make_rollout_workspace(50, network, 2))
    states = np.empty_like(reference)
    rollout(state0, commands, network, states, make_rollout_workspace(50, network, n_blocks))
    np.testing.assert_allclose(states, reference, rtol=1e-6, atol=1e-6)


def test_rollout_hand_worked_linear_model():
    # No hidden layer, identity normalisation: s' = s + z for ds = dz = 2.
    network = make_mlp_weights(
        [],
        [],
        np.vstack([np.zeros((2, 2)), np.eye(2)]).astype(F32),
        np.zeros(2, F32),
        in_mean=np.zeros(4, F32),
        in_std=np.ones(4, F32),
        out_mean=np.zeros(2, F32),
        out_std=np.ones(2, F32),
    )
    commands = np.array([[[1.0, 0.0], [0.0, 2.0]]], F32)
    states = np.empty((1, 3, 2), F32)
    rollout(
        np.array([1.0, 1.0], F32), commands, network, states, make_rollout_workspace(1, network)
    )
    np.testing.assert_array_equal(states[0], [[1, 1], [2, 1], [2, 3]])


def test_mlp_layers_round_trip():
    rng = np.random.default_rng(3)
    network, layers, _ = random_network(rng, 3, 2, (5, 6), "relu", "mog", 2, False)
    for (w, b), (w_ref, b_ref) in zip(mlp_layers(network), layers, strict=True):
        np.testing.assert_array_equal(w, w_ref)
        np.testing.assert_array_equal(b, b_ref)
    assert network.state_dim == 3 and network.command_dim == 2
    assert list(network.layer_sizes) == [5, 5, 6, 2 * (1 + 3)]


def _weights_kwargs(**overrides):
    kwargs = {
        "hidden_weights": [np.zeros((3, 4), F32)],
        "hidden_biases": [np.zeros(4, F32)],
        "out_weight": np.zeros((4, 2), F32),
        "out_bias": np.zeros(2, F32),
        "in_mean": np.zeros(3, F32),
        "in_std": np.ones(3, F32),
        "out_mean": np.zeros(2, F32),
        "out_std": np.ones(2, F32),
    }
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"out_weight": np.zeros((4, 2))}, TypeError, "out_weight: expected dtype float32"),
        ({"out_weight": np.zeros((4, 3), F32)}, ValueError, r"out_weight: expected shape \(4, 2\)"),
        ({"hidden_weights": [np.zeros((2, 4), F32)]}, ValueError, r"hidden_weights\[0\]"),
        ({"hidden_biases": []}, ValueError, "one bias per layer"),
        ({"in_std": np.zeros(3, F32)}, ValueError, "in_std: every entry must be > 0"),
        ({"activation": "gelu"}, ValueError, "activation"),
        ({"head": 2}, ValueError, "head"),
        ({"head": "mog", "n_components": 1}, ValueError, "out_weight"),
        ({"out_bias": np.array([0.0, np.nan], F32)}, ValueError, "out_bias: contains NaN"),
    ],
)
def test_make_mlp_weights_rejects_bad_inputs(overrides, error, match):
    with pytest.raises(error, match=match):
        make_mlp_weights(**_weights_kwargs(**overrides))


def test_make_mlp_weights_accepts_transposed_torch_layout():
    w = np.arange(12, dtype=F32).reshape(4, 3).T  # like torch's linear.weight.T (F-order)
    network = make_mlp_weights(**_weights_kwargs(hidden_weights=[w]))
    np.testing.assert_array_equal(mlp_layers(network)[0][0], w)


def test_rollout_rejects_bad_shapes():
    network = make_mlp_weights(**_weights_kwargs())
    workspace = make_rollout_workspace(4, network)
    state0 = np.zeros(2, F32)
    commands = np.zeros((4, 3, 1), F32)
    with pytest.raises(ValueError, match="states_out"):
        rollout(state0, commands, network, np.zeros((4, 3, 2), F32), workspace)
    with pytest.raises(ValueError, match="workspace too small"):
        rollout(state0, np.zeros((8, 3, 1), F32), network, np.zeros((8, 4, 2), F32), workspace)
    with pytest.raises(ValueError, match="dz"):
        rollout(state0, np.zeros((4, 3, 2), F32), network, np.zeros((4, 4, 2), F32), workspace)


# ---------------------------------------------------------------- noise


def test_gaussian_noise_same_seed_same_noise():
    sigma = np.array([0.5, 2.0], F32)
    a = np.empty((64, 5, 2), F32)
    b = np.empty_like(a)
    gaussian_noise(np.random.default_rng(11), sigma, a)
    gaussian_noise(np.random.default_rng(11), sigma, b)
    np.testing.assert_array_equal(a, b)
    gaussian_noise(11, sigma, b)
    np.testing.assert_array_equal(a, b)
    expected = np.random.default_rng(11).standard_normal(a.shape, dtype=F32) * sigma
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    gaussian_noise(12, sigma, b)
    assert not np.array_equal(a, b)


def test_gaussian_noise_scale():
    noise = np.empty((20000, 4, 2), F32)
    gaussian_noise(0, np.array([0.1, 3.0], F32), noise)
    np.testing.assert_allclose(noise.std(axis=(0, 1)), [0.1, 3.0], rtol=0.02)


def test_gaussian_noise_rejects_bad_buffers():
    with pytest.raises(TypeError, match="float32"):
        gaussian_noise(0, np.ones(2, F32), np.empty((3, 4, 2)))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(0, np.ones(3, F32), np.empty((3, 4, 2), F32))


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 1.0])
def test_smooth_noise_matches_reference(beta):
    noise = np.random.default_rng(1).standard_normal((16, 7, 2)).astype(F32)
    expected = ref_smooth(noise, beta)
    smooth_noise(noise, beta)
    np.testing.assert_allclose(noise, expected, rtol=1e-5, atol=1e-6)


def test_smooth_noise_keeps_unit_variance_and_correlates():
    noise = np.empty((40000, 10, 2), F32)
    gaussian_noise(5, np.ones(2, F32), noise)
    smooth_noise(noise, 0.8)
    np.testing.assert_allclose(noise.var(axis=0), 1.0, atol=0.05)
    lag1 = np.mean(noise[:, 1:] * noise[:, :-1])
    assert lag1 == pytest.approx(0.8, abs=0.02)


def test_smooth_noise_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        smooth_noise(np.zeros((1, 2, 1), F32), 1.5)


# ---------------------------------------------------------------- costs


@pytest.mark.parametrize("squared", [True, False])
def test_goal_cost_matches_reference(squared):
    rng = np.random.default_rng(2)
    states = rng.standard_normal((13, 6, 4)).astype(F32)
    goal = np.array([1.0, -2.0], F32)
    dims = np.array([3, 1], np.int64)
    out = np.full(13, np.nan, F32)
    goal_cost(states, goal, dims, 0.5, 10.0, out, squared)
    np.testing.assert_allclose(out, ref_goal_cost(states, goal, dims, 0.5, 10.0, squared), 1e-5)


def test_goal_cost_hand_worked():
    # s_0 ignored; s_1 at distance^2 4 (step), s_2 at distance^2 1 (terminal).
    states = np.array([[[9.0, 9.0], [2.0, 0.0], [1.0, 0.0]]], F32)
    out = np.empty(1, F32)
    goal_cost(states, np.zeros(1, F32), np.zeros(1, np.int64), 0.5, 3.0, out)
    assert out[0] == pytest.approx(0.5 * 4 + 3.0 * 1)
    goal_cost(states, np.zeros(1, F32), np.zeros(1, np.int64), 0.5, 3.0, out, False)
    assert out[0] == pytest.approx(0.5 * 2 + 3.0 * 1)


def test_regularisers_accumulate_and_match_reference():
    rng = np.random.default_rng(4)
    commands = rng.uniform(-2, 2, (11, 5, 3)).astype(F32)
    previous = rng.standard_normal(3).astype(F32)
    low = np.full(3, -1.0, F32)
    high = np.array([1.0, 0.5, 1.5], F32)
    out = np.ones(11, F32)
    smoothness_cost(commands, previous, 0.3, out)
    np.testing.assert_allclose(out, 1.0 + ref_smoothness(commands, previous, 0.3), rtol=1e-5)
    out[:] = 2.0
    bounds_cost(commands, low, high, 4.0, out)
    np.testing.assert_allclose(out, 2.0 + ref_bounds(commands, low, high, 4.0), rtol=1e-5)
    inside = np.zeros((2, 5, 3), F32)
    zero = np.zeros(2, F32)
    bounds_cost(inside, low, high, 4.0, zero)
    assert np.all(zero == 0.0)


# ---------------------------------------------------------------- MPPI


def test_mppi_weights_hand_worked():
    weights = np.empty(3, F32)
    assert mppi_weights(np.array([0.0, 1.0, np.nan], F32), 1.0, weights) == 2
    np.testing.assert_allclose(weights, [1 / (1 + math.e**-1), math.e**-1 / (1 + math.e**-1), 0])


BIG = float(F32(1e30))
special_costs = st.one_of(
    st.floats(-BIG, BIG, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, BIG, -BIG, 0.0]),
)


@FEW
@given(
    costs=hnp.arrays(F32, st.integers(1, 40), elements=special_costs),
    temperature=st.floats(1e-3, 1e3),
)
def test_mppi_weights_are_a_safe_softmax(costs, temperature):
    weights = np.full(costs.shape, np.nan, F32)
    n_usable = mppi_weights(costs, temperature, weights)
    finite = np.isfinite(costs)
    assert n_usable == finite.sum()
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    assert np.all(weights[~finite] == 0)
    if n_usable:
        assert weights.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(weights, ref_mppi_weights(costs, temperature), atol=1e-6)
    else:
        assert np.all(weights == 0)


@FEW
@given(n=st.integers(1, 50), cost=st.sampled_from([0.0, -5.0, 1e30, -1e30, 3.5]))
def test_mppi_weights_equal_costs_are_uniform(n, cost):
    weights = np.empty(n, F32)
    assert mppi_weights(np.full(n, cost, F32), 0.1, weights) == n
    np.testing.assert_allclose(weights, 1.0 / n, rtol=1e-6)


def test_mppi_weights_rejects_bad_temperature():
    for temperature in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="temperature"):
            mppi_weights(np.zeros(3, F32), temperature, np.empty(3, F32))


@FEW
@given(
    costs=hnp.arrays(F32, st.just(16), elements=special_costs),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.1, 1.0, 100.0]),
)
def test_mppi_update_finite_in_bounds_and_matches_reference(costs, seed, scale):
    rng = np.random.default_rng(seed)
    horizon, command_dim = 4, 2
    mean = rng.uniform(-1, 1, (horizon, command_dim)).astype(F32)
    noise = (scale * rng.standard_normal((16, horizon, command_dim))).astype(F32)
    noise[~np.isfinite(costs)] = np.nan  # infeasible samples' noise must not leak in
    low = np.array([-1.0, -0.5], F32)
    high = np.array([1.0, 0.25], F32)
    weights = np.empty(16, F32)
    mppi_weights(costs, 1.0, weights)
    out = np.empty_like(mean)
    mppi_update(mean, noise, weights, low, high, out)
    assert np.all(np.isfinite(out)) and np.all(out >= low) and np.all(out <= high)
    live = weights > 0
    expected = mean + np.einsum("k,ktd->td", weights[live], noise[live].astype(np.float64))
    np.testing.assert_allclose(out, np.clip(expected, low, high), rtol=1e-5, atol=1e-5)
    mppi_update(mean, noise, weights, low, high, mean)  # in place gives the same plan
    np.testing.assert_array_equal(mean, out)


def test_mppi_update_zero_weights_keeps_mean():
    mean = np.array([[0.3], [2.0]], F32)
    out = np.empty_like(mean)
    mppi_update(
        mean, np.ones((5, 2, 1), F32), np.zeros(5, F32), -np.ones(1, F32), np.ones(1, F32), out
    )
    np.testing.assert_array_equal(out, np.array([[0.3], [1.0]], F32))


def test_perturb_matches_reference():
    rng = np.random.default_rng(8)
    mean = rng.standard_normal((5, 2)).astype(F32)
    noise = rng.standard_normal((9, 5, 2)).astype(F32)
    low = np.array([-0.5, -1.0], F32)
    high = np.array([0.5, 1.0], F32)
    commands = np.empty_like(noise)
    perturb(mean, noise, low, high, commands)
    np.testing.assert_array_equal(commands, np.clip(mean + noise, low, high))


def test_shift_plan():
    plan = np.arange(6, dtype=F32).reshape(3, 2)
    shift_plan(plan, np.array([-1.0, -2.0], F32))
    np.testing.assert_array_equal(plan, [[2, 3], [4, 5], [-1, -2]])


# ---------------------------------------------------------------- CEM


@FEW
@given(
    costs=hnp.arrays(F32, st.integers(1, 30), elements=special_costs),
    n_elite=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_cem_update_matches_reference_and_skips_infeasible(costs, n_elite, seed):
    rng = np.random.default_rng(seed)
    commands = rng.standard_normal((costs.shape[0], 3, 2)).astype(F32)
    commands[~np.isfinite(costs)] = 1e6  # would show up in mean/std if ever chosen
    mean = np.full((3, 2), 7.0, F32)
    std = np.full((3, 2), 7.0, F32)
    n_used = cem_update(commands, costs, n_elite, mean, std, 0.05)
    elite, expected_mean, expected_std = ref_cem(commands, costs, n_elite, 0.05)
    assert n_used == len(elite) == min(n_elite, np.isfinite(costs).sum())
    if n_used == 0:
        assert np.all(mean == 7.0) and np.all(std == 7.0)
    else:
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(std, expected_std, rtol=1e-4, atol=1e-5)
        assert np.all(np.abs(mean) < 100)


def test_cem_update_hand_worked():
    commands = np.array([[[0.0]], [[2.0]], [[4.0]], [[100.0]]], F32)
    costs = np.array([3.0, 1.0, 2.0, np.nan], F32)
    mean = np.empty((1, 1), F32)
    std = np.empty((1, 1), F32)
    assert cem_update(commands, costs, 2, mean, std, 0.0) == 2
    assert mean[0, 0] == pytest.approx(3.0) and std[0, 0] == pytest.approx(1.0)
    assert cem_update(commands, costs, 1, mean, std, 0.5) == 1
    assert mean[0, 0] == pytest.approx(2.0) and std[0, 0] == pytest.approx(0.5)


# ---------------------------------------------------------------- together


def test_mppi_drives_linear_model_to_goal():
    """Full MPPI loop on s' = s + z: the goal cost of the plan decreases and gets small."""
    network = make_mlp_weights(
        [],
        [],
        np.vstack([np.zeros((2, 2)), np.eye(2)]).astype(F32),
        np.zeros(2, F32),
        in_mean=np.zeros(4, F32),
        in_std=np.ones(4, F32),
        out_mean=np.zeros(2, F32),
        out_std=np.full(2, 0.1, F32),
    )
    n_samples, horizon = 256, 8
    rng = np.random.default_rng(0)
    goal = np.array([0.5, -0.3], F32)
    dims = np.arange(2, dtype=np.int64)
    low, high = np.full(2, -1.0, F32), np.full(2, 1.0, F32)
    state0 = np.zeros(2, F32)
    mean = np.zeros((horizon, 2), F32)
    noise = np.empty((n_samples, horizon, 2), F32)
    commands = np.empty_like(noise)
    states = np.empty((n_samples, horizon + 1, 2), F32)
    costs = np.empty(n_samples, F32)
    weights = np.empty(n_samples, F32)
    workspace = make_rollout_workspace(n_samples, network)

    def plan_cost():
        nominal_states = np.empty((1, horizon + 1, 2), F32)
        rollout(state0, mean[None], network, nominal_states, make_rollout_workspace(1, network))
        out = np.empty(1, F32)
        goal_cost(nominal_states, goal, dims, 0.0, 1.0, out)
        return out[0]

    history = [plan_cost()]
    for _ in range(15):
        gaussian_noise(rng, np.full(2, 0.5, F32), noise)
        smooth_noise(noise, 0.5)
        perturb(mean, noise, low, high, commands)
        rollout(state0, commands, network, states, workspace)
        goal_cost(states, goal, dims, 0.0, 1.0, costs)
        smoothness_cost(commands, np.zeros(2, F32), 1e-5, costs)
        assert mppi_weights(costs, 0.01, weights) == n_samples
        mppi_update(mean, noise, weights, low, high, mean)
        history.append(plan_cost())
    # Sampling noise leaves a floor (~0.01 here: terminal error ~0.1 with sigma 0.5, lambda 0.01).
    assert max(history[-5:]) < 0.05 * history[0]


def test_warmup_runs():
    kernels.warmup()
