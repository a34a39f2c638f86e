"""Exported skill-dynamics MLPs and their batched, allocation-free rollout.

Export format (``MLPWeights``): every layer is packed into two flat float32 arrays so that one
compiled kernel serves any depth and width (numba cannot take Python lists of arrays, and a tuple
of arrays would compile once per depth). ``layer_sizes = [ds + dz, H_1, ..., H_L, out_dim]``;
affine layer ``l`` (hidden layers first, the output layer last) has weight ``W_l (in, out)``
stored row-major at ``weights_flat[sum_{m<l} in_m * out_m :]`` and bias ``b_l (out,)`` at
``biases_flat[sum_{m<l} out_m :]``. ``make_mlp_weights`` builds it from per-layer arrays; for
``torch.nn.Linear`` pass ``linear.weight.T`` (torch stores ``(out, in)``). ``mlp_layers`` gives
the per-layer views back.

Forward pass for a state ``s (ds,)`` and command ``z (dz,)``::

    x = ([s, z] - in_mean) / in_std
    h = act(x @ W_1 + b_1) ... act(h @ W_L + b_L)        # act: tanh (fast_tanh) or relu
    y = h @ W_out + b_out                                 # (out_dim,)
    head 0 (mean):  u = y                                 # out_dim = ds
    head 1 (MoG):   u = sum_e softmax(y[:E])_e * y[E + e*ds : E + (e+1)*ds]   # out_dim = E*(1+ds)
    delta = u * out_std + out_mean
    s' = s + delta if residual else delta

Head 1 is the DADS skill-dynamics mixture-of-Gaussians mean: the logits layer and the means layer
of the torch module are concatenated column-wise into ``W_out`` (logits first, then component
means, component-major).
"""

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import get_num_threads, njit, prange

from kernels._activations import bias_activation

ACTIVATIONS = {"tanh": 0, "relu": 1}
HEADS = {"mean": 0, "mog": 1}


class MLPWeights(NamedTuple):
    """A packed skill-dynamics MLP (see the module docstring for the layout)."""

    layer_sizes: np.ndarray
    """(L + 2,) int64: ``[ds + dz, H_1, ..., H_L, out_dim]``."""
    weights_flat: np.ndarray
    """(P,) float32: every ``W_l (in, out)`` row-major, output layer last."""
    biases_flat: np.ndarray
    """(Q,) float32: every ``b_l (out,)``, output layer last."""
    in_mean: np.ndarray
    """(ds + dz,) float32: input normalisation mean for ``[s, z]``."""
    in_std: np.ndarray
    """(ds + dz,) float32, > 0: input normalisation scale."""
    out_mean: np.ndarray
    """(ds,) float32: output de-normalisation mean."""
    out_std: np.ndarray
    """(ds,) float32: output de-normalisation scale."""
    activation: int
    """0 = tanh, 1 = relu (all hidden layers)."""
    head: int
    """0 = plain mean, 1 = mixture-of-Gaussians mean (DADS)."""
    n_components: int
    """E, mixture components (1 for head 0)."""
    residual: bool
    """True: ``s' = s + delta``; False: ``s' = delta``."""
    state_dim: int
    """ds."""
    command_dim: int
    """dz."""


class RolloutWorkspace(NamedTuple):
    """Preallocated scratch for ``rollout`` (from ``make_rollout_workspace``); all float32."""

    inputs: np.ndarray
    """(K * (ds + dz),): normalised network inputs."""
    hidden_a: np.ndarray
    """(K * max(H),): hidden activations, even layers."""
    hidden_b: np.ndarray
    """(K * max(H),): hidden activations, odd layers."""
    outputs: np.ndarray
    """(K * out_dim,): raw network outputs."""
    n_blocks: int
    """Sample blocks run in parallel (one per numba thread); >= 1."""


def _as_code(value, table: dict, field: str) -> int:
    if isinstance(value, str):
        if value not in table:
            raise ValueError(f"MLPWeights.{field}: expected one of {sorted(table)}, got {value!r}")
        return table[value]
    code = int(value)
    if code not in table.values():
        raise ValueError(
            f"MLPWeights.{field}: expected a code in {sorted(table.values())} "
            f"({', '.join(f'{k}={v}' for k, v in table.items())}), got {value!r}"
        )
    return code


def _check_array(name: str, array, shape: tuple) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"MLPWeights.{name}: expected a numpy float32 array, got {type(array).__name__} "
            "(convert torch tensors with .detach().cpu().numpy())"
        )
    if array.dtype != np.float32:
        raise TypeError(
            f"MLPWeights.{name}: expected dtype float32, got {array.dtype} "
            "(use .astype(np.float32))"
        )
    if array.shape != shape:
        raise ValueError(f"MLPWeights.{name}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"MLPWeights.{name}: contains NaN or inf")
    return array


def make_mlp_weights(
    hidden_weights: Sequence[np.ndarray],
    hidden_biases: Sequence[np.ndarray],
    out_weight: np.ndarray,
    out_bias: np.ndarray,
    *,
    in_mean: np.ndarray,
    in_std: np.ndarray,
    out_mean: np.ndarray,
    out_std: np.ndarray,
    activation: str | int = "tanh",
    head: str | int = "mean",
    n_components: int = 1,
    residual: bool = True,
) -> MLPWeights:
    """Validate per-layer arrays and pack them into an ``MLPWeights``.

    Args:
        hidden_weights: L >= 0 arrays ``W_i (in_i, H_i)`` float32, ``in_0 = ds + dz``,
            ``in_i = H_{i-1}``. Any memory layout (they are copied), e.g. ``linear.weight.T``.
        hidden_biases: L arrays ``b_i (H_i,)`` float32.
        out_weight: ``(H_L, out_dim)`` float32 (``(ds + dz, out_dim)`` when L = 0).
        out_bias: ``(out_dim,)`` float32.
        in_mean: ``(ds + dz,)`` float32 input mean for ``[s, z]``.
        in_std: ``(ds + dz,)`` float32 input scale, all > 0.
        out_mean: ``(ds,)`` float32 output mean; its length defines ds.
        out_std: ``(ds,)`` float32 output scale.
        activation: "tanh"/0 or "relu"/1, for every hidden layer.
        head: "mean"/0 (out_dim = ds) or "mog"/1 (out_dim = E * (1 + ds)).
        n_components: E, the number of mixture components (must be 1 for head "mean").
        residual: predict the state change (True) or the next state (False).

    Returns:
        The packed ``MLPWeights``.

    Raises:
        TypeError: an array is not a float32 numpy array.
        ValueError: a shape, code or value is inconsistent (the message names the field).
    """
    if len(hidden_weights) != len(hidden_biases):
        raise ValueError(
            f"MLPWeights: got {len(hidden_weights)} hidden weights but "
            f"{len(hidden_biases)} hidden biases; pass one bias per layer"
        )
    activation_code = _as_code(activation, ACTIVATIONS, "activation")
    head_code = _as_code(head, HEADS, "head")
    if not isinstance(out_mean, np.ndarray) or out_mean.ndim != 1:
        raise ValueError("MLPWeights.out_mean: expected a 1-D float32 array of length ds")
    if not isinstance(in_mean, np.ndarray) or in_mean.ndim != 1:
        raise ValueError("MLPWeights.in_mean: expected a 1-D float32 array of length ds + dz")
    state_dim = out_mean.shape[0]
    input_dim = in_mean.shape[0]
    if state_dim < 1 or input_dim <= state_dim:
        raise ValueError(
            f"MLPWeights: in_mean has length {input_dim} and out_mean length {state_dim}; "
            "expected len(in_mean) = ds + dz with ds >= 1 and dz >= 1"
        )
    n_components = int(n_components)
    if head_code == HEADS["mean"]:
        if n_components != 1:
            raise ValueError(
                f"MLPWeights.n_components: must be 1 for head 'mean', got {n_components}"
            )
        out_dim = state_dim
    else:
        if n_components < 1:
            raise ValueError(f"MLPWeights.n_components: must be >= 1, got {n_components}")
        out_dim = n_components * (1 + state_dim)

    _check_array("in_mean", in_mean, (input_dim,))
    _check_array("in_std", in_std, (input_dim,))
    _check_array("out_mean", out_mean, (state_dim,))
    _check_array("out_std", out_std, (state_dim,))
    if np.any(in_std <= 0):
        raise ValueError(f"MLPWeights.in_std: every entry must be > 0, got {in_std}")

    sizes = [input_dim]
    for i, (weight, bias) in enumerate(zip(hidden_weights, hidden_biases, strict=True)):
        if not isinstance(weight, np.ndarray) or weight.ndim != 2:
            raise ValueError(f"MLPWeights.hidden_weights[{i}]: expected a 2-D (in, out) array")
        _check_array(f"hidden_weights[{i}]", weight, (sizes[-1], weight.shape[1]))
        _check_array(f"hidden_biases[{i}]", bias, (weight.shape[1],))
        sizes.append(weight.shape[1])
    _check_array("out_weight", out_weight, (sizes[-1], out_dim))
    _check_array("out_bias", out_bias, (out_dim,))
    sizes.append(out_dim)

    layers = [*zip(hidden_weights, hidden_biases, strict=True), (out_weight, out_bias)]
    return MLPWeights(
        layer_sizes=np.asarray(sizes, dtype=np.int64),
        weights_flat=np.concatenate([w.ravel(order="C") for w, _ in layers]).astype(np.float32),
        biases_flat=np.concatenate([b.ravel() for _, b in layers]).astype(np.float32),
        in_mean=np.ascontiguousarray(in_mean),
        in_std=np.ascontiguousarray(in_std),
        out_mean=np.ascontiguousarray(out_mean),
        out_std=np.ascontiguousarray(out_std),
        activation=activation_code,
        head=head_code,
        n_components=n_components,
        residual=bool(residual),
        state_dim=int(state_dim),
        command_dim=int(input_dim - state_dim),
    )


def mlp_layers(weights: MLPWeights) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-layer ``(W (in, out), b (out,))`` views into the packed arrays, output layer last."""
    layers = []
    w_offset = b_offset = 0
    sizes = weights.layer_sizes
    for n_in, n_out in itertools.pairwise(sizes.tolist()):
        w = weights.weights_flat[w_offset : w_offset + n_in * n_out].reshape(n_in, n_out)
        layers.append((w, weights.biases_flat[b_offset : b_offset + n_out]))
        w_offset += n_in * n_out
        b_offset += n_out
    return layers


def make_rollout_workspace(
    n_samples: int, weights: MLPWeights, n_blocks: int | None = None
) -> RolloutWorkspace:
    """Allocate the scratch buffers ``rollout`` needs for ``n_samples`` (K) samples.

    Args:
        n_samples: K, the largest batch the workspace will serve.
        weights: the network the workspace is for.
        n_blocks: sample blocks rolled out in parallel; default ``numba.get_num_threads()``
            (stored here rather than read in the kernel so that the kernel can be cached).
    """
    if n_blocks is None:
        n_blocks = get_num_threads()
    if int(n_blocks) < 1:
        raise ValueError(f"make_rollout_workspace: n_blocks must be >= 1, got {n_blocks}")
    sizes = weights.layer_sizes
    widest_hidden = int(sizes[1:-1].max()) if sizes.shape[0] > 2 else 0
    return RolloutWorkspace(
        inputs=np.zeros(n_samples * int(sizes[0]), dtype=np.float32),
        hidden_a=np.zeros(n_samples * widest_hidden, dtype=np.float32),
        hidden_b=np.zeros(n_samples * widest_hidden, dtype=np.float32),
        outputs=np.zeros(n_samples * int(sizes[-1]), dtype=np.float32),
        n_blocks=int(n_blocks),
    )


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _rollout_rows(row_start, row_stop, commands, weights, states_out, workspace):
    """Roll samples ``row_start:row_stop`` forward over the whole horizon (one thread)."""
    n_rows = row_stop - row_start
    horizon = commands.shape[1]
    state_dim = weights.state_dim
    command_dim = weights.command_dim
    sizes = weights.layer_sizes
    n_affine = sizes.shape[0] - 1
    input_dim = sizes[0]
    out_dim = sizes[n_affine]
    in_mean = weights.in_mean
    in_std = weights.in_std
    out_mean = weights.out_mean
    out_std = weights.out_std
    n_components = weights.n_components

    inputs = workspace.inputs[row_start * input_dim : row_stop * input_dim]
    inputs = inputs.reshape((n_rows, input_dim))
    outputs = workspace.outputs[row_start * out_dim : row_stop * out_dim]
    outputs = outputs.reshape((n_rows, out_dim))

    for t in range(horizon):
        for i in range(n_rows):
            k = row_start + i
            for j in range(state_dim):
                inputs[i, j] = (states_out[k, t, j] - in_mean[j]) / in_std[j]
            for j in range(command_dim):
                c = state_dim + j
                inputs[i, c] = (commands[k, t, j] - in_mean[c]) / in_std[c]

        layer_in = inputs
        w_offset = 0
        b_offset = 0
        for layer in range(n_affine - 1):
            n_in = sizes[layer]
            n_out = sizes[layer + 1]
            w = weights.weights_flat[w_offset : w_offset + n_in * n_out].reshape((n_in, n_out))
            scratch = workspace.hidden_a if layer % 2 == 0 else workspace.hidden_b
            hidden = scratch[row_start * n_out : row_stop * n_out].reshape((n_rows, n_out))
            np.dot(layer_in, w, hidden)
            bias = weights.biases_flat[b_offset : b_offset + n_out]
            bias_activation(hidden, bias, weights.activation)
            layer_in = hidden
            w_offset += n_in * n_out
            b_offset += n_out
        n_in = sizes[n_affine - 1]
        w = weights.weights_flat[w_offset : w_offset + n_in * out_dim].reshape((n_in, out_dim))
        np.dot(layer_in, w, outputs)
        out_bias = weights.biases_flat[b_offset : b_offset + out_dim]

        for i in range(n_rows):
            k = row_start + i
            y = outputs[i]
            for j in range(out_dim):
                y[j] += out_bias[j]
            if weights.head == 1:
                # Mixture mean: softmax over the E logits (max-shifted), stored back in place.
                top = y[0]
                for e in range(1, n_components):
                    top = max(top, y[e])
                total = 0.0
                for e in range(n_components):
                    y[e] = np.exp(y[e] - top)
                    total += y[e]
                for e in range(n_components):
                    y[e] /= total
                for j in range(state_dim):
                    mixed = 0.0
                    for e in range(n_components):
                        mixed += y[e] * y[n_components + e * state_dim + j]
                    delta = mixed * out_std[j] + out_mean[j]
                    base = states_out[k, t, j] if weights.residual else 0.0
                    states_out[k, t + 1, j] = base + delta
            else:
                for j in range(state_dim):
                    delta = y[j] * out_std[j] + out_mean[j]
                    base = states_out[k, t, j] if weights.residual else 0.0
                    states_out[k, t + 1, j] = base + delta


@njit(cache=True, nogil=True, parallel=True)
def rollout(state0, commands, weights, states_out, workspace):
    """Roll the skill-dynamics MLP forward for K command sequences from one start state.

    Samples are split into ``workspace.n_blocks`` contiguous blocks run in parallel; each
    block runs the whole horizon with single-threaded BLAS GEMMs on its own rows of the
    workspace (set OPENBLAS_NUM_THREADS=1). Allocates nothing.

    Args:
        state0: (ds,) float32 start state.
        commands: (K, T, dz) float32 commands, held for one model step each.
        weights: ``MLPWeights`` from ``make_mlp_weights``.
        states_out: (K, T + 1, ds) float32, overwritten: ``[:, 0] = state0``,
            ``[:, t + 1] = f(states_out[:, t], commands[:, t])``.
        workspace: ``RolloutWorkspace`` from ``make_rollout_workspace(>= K, weights)``.

    Raises:
        ValueError: shapes disagree with ``weights`` or the workspace is too small.
    """
    n_samples, horizon, command_dim = commands.shape
    state_dim = weights.state_dim
    sizes = weights.layer_sizes
    if state0.shape[0] != state_dim:
        raise ValueError("rollout: state0 must have shape (ds,) = (weights.state_dim,)")
    if command_dim != weights.command_dim:
        raise ValueError("rollout: commands must have shape (K, T, dz), dz = weights.command_dim")
    if (
        states_out.shape[0] != n_samples
        or states_out.shape[1] != horizon + 1
        or states_out.shape[2] != state_dim
    ):
        raise ValueError("rollout: states_out must have shape (K, T + 1, ds)")
    widest_hidden = 0
    for layer in range(1, sizes.shape[0] - 1):
        widest_hidden = max(widest_hidden, sizes[layer])
    if (
        workspace.inputs.shape[0] < n_samples * sizes[0]
        or workspace.hidden_a.shape[0] < n_samples * widest_hidden
        or workspace.hidden_b.shape[0] < n_samples * widest_hidden
        or workspace.outputs.shape[0] < n_samples * sizes[sizes.shape[0] - 1]
    ):
        raise ValueError("rollout: workspace too small; use make_rollout_workspace(K, weights)")

    for k in range(n_samples):
        for j in range(state_dim):
            states_out[k, 0, j] = state0[j]
    n_blocks = min(workspace.n_blocks, n_samples)
    for block in prange(n_blocks):
        _rollout_rows(
            block * n_samples // n_blocks,
            (block + 1) * n_samples // n_blocks,
            commands,
            weights,
            states_out,
            workspace,
        )
