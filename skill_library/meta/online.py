"""Online adaptation of skill dynamics in the planner thread (GrBAL, Nagabandi et al. 2019).

At every replanning the planner hands the adapter the planning state it plans from and the
command that ran since its previous plan; the adapter keeps the last steps in preallocated
rings, forms the last M skill transitions (windows of ``hold_steps`` control steps), takes
``inner_steps`` gradient steps of the normalized squared one-step error from the
meta-parameters (MAML Eq. 1: ``theta' = theta - alpha grad L(theta)``), and copies the result in
place into the weight arrays the numba rollout kernels read. The gradient of the small MLP is
worked out by hand in numpy over preallocated buffers: no torch, no autograd graph, and the
hand-over is two array copies.

The network is the packed kernel layout (:mod:`kernels.mlp`): hidden layers with tanh or relu,
then the output layer, a plain mean head or the DADS mixture-of-Gaussians mean, so the same
adapter fine-tunes a plain DADS skill's dynamics (comparison (b)) and a meta-learned one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from numba import njit

import kernels
from skill_library.meta.config import AdaptationConfig

logger = logging.getLogger(__name__)

MAX_WEIGHT = 1e4
"""An adapted weight beyond this (or NaN) counts as diverged: the meta-parameters are used."""
SNAPSHOTS = 4
"""Adapted parameter sets kept to score each one on the transition that completes after it."""


def _percentile_ms(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q) * 1e3) if values.size else None


@njit(cache=True, nogil=True)
def _gather(states, commands, last, hold, count, capacity, out_states, out_commands, out_next):
    """The ``count`` transitions ending at steps ``last, last - hold, ...`` from the rings
    ``states (R, ds)`` and ``commands (R, dz)`` (the command: its mean over the hold)."""
    for i in range(count):
        end = last - i * hold
        begin = end - hold
        out_states[i] = states[begin % capacity]
        out_next[i] = states[end % capacity]
        out_commands[i] = 0.0
        for step in range(begin, end):
            out_commands[i] += commands[step % capacity]
        out_commands[i] /= hold


@njit(cache=True, nogil=True)
def _mean_head_step(
    sizes, weights, biases, grad_w, grad_b, inputs, targets, n, tanh, lr, act, grad
):
    """One gradient step of the normalized squared error of a packed MLP with a plain mean
    head (``kernels.mlp`` layout, float64): ``theta -= lr * dL/dtheta``, in place.

    Args:
        sizes: ``(L + 2,)`` layer sizes.
        weights, biases: flat parameters, updated in place.
        grad_w, grad_b: flat gradient buffers (overwritten).
        inputs: ``(>= n, in)`` normalized inputs.
        targets: ``(>= n, ds)`` normalized targets.
        n: rows used.
        tanh: tanh hidden layers (else relu).
        lr: the step size; 0 computes only the loss (the gradient buffers are left as they
            were).
        act: ``(sum of n * H over every layer,)`` scratch of activations.
        grad: ``(n * max H,) * 2`` scratch of back-propagated gradients.

    Returns:
        The loss before the step.
    """
    n_affine = sizes.shape[0] - 1
    # Forward: act holds every layer's output (layer 0 = the inputs), n rows each.
    offsets = np.zeros(n_affine + 1, np.int64)
    offset = 0
    for layer in range(n_affine + 1):
        offsets[layer] = offset
        offset += n * sizes[layer]
    act[: n * sizes[0]] = inputs[:n].ravel()
    w_offset = 0
    b_offset = 0
    for layer in range(n_affine):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        x = act[offsets[layer] : offsets[layer] + n * n_in].reshape((n, n_in))
        y = act[offsets[layer + 1] : offsets[layer + 1] + n * n_out].reshape((n, n_out))
        w = weights[w_offset : w_offset + n_in * n_out].reshape((n_in, n_out))
        np.dot(x, w, y)
        for i in range(n):
            for j in range(n_out):
                v = y[i, j] + biases[b_offset + j]
                if layer < n_affine - 1:
                    v = np.tanh(v) if tanh else max(v, 0.0)
                y[i, j] = v
        w_offset += n_in * n_out
        b_offset += n_out
    # dL/dy = 2 (y - t) / n, L = 1/n sum ||y - t||^2.
    out_dim = sizes[n_affine]
    y = act[offsets[n_affine] : offsets[n_affine] + n * out_dim].reshape((n, out_dim))
    g = grad[: n * out_dim].reshape((n, out_dim))
    loss = 0.0
    for i in range(n):
        for j in range(out_dim):
            r = y[i, j] - targets[i, j]
            loss += r * r
            g[i, j] = 2.0 * r / n
    if lr == 0.0:  # only the loss (backtracking's checks): no backward pass
        return loss / n
    # Backward, output layer first.
    half = grad.shape[0] // 2
    use_second = True
    for layer in range(n_affine - 1, -1, -1):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        w_offset -= n_in * n_out
        b_offset -= n_out
        x = act[offsets[layer] : offsets[layer] + n * n_in].reshape((n, n_in))
        gw = grad_w[w_offset : w_offset + n_in * n_out].reshape((n_in, n_out))
        np.dot(x.T, g, gw)
        for j in range(n_out):
            total = 0.0
            for i in range(n):
                total += g[i, j]
            grad_b[b_offset + j] = total
        if layer > 0:
            start = half if use_second else 0
            below = grad[start : start + n * n_in].reshape((n, n_in))
            w = weights[w_offset : w_offset + n_in * n_out].reshape((n_in, n_out))
            np.dot(g, w.T, below)
            for i in range(n):
                for j in range(n_in):
                    h = x[i, j]
                    below[i, j] *= (1.0 - h * h) if tanh else (1.0 if h > 0.0 else 0.0)
            g = below
            use_second = not use_second
    # MAML Eq. 1 / GrBAL Alg. 2: theta' = theta - alpha * grad L(theta).
    for k in range(weights.shape[0]):
        weights[k] -= lr * grad_w[k]
    for k in range(biases.shape[0]):
        biases[k] -= lr * grad_b[k]
    return loss / n


class MLPGradient:
    """The normalized squared one-step error of a packed dynamics MLP and its gradient.

    ``L(theta) = 1/B sum_b ||u_b - t_b||^2`` with ``u`` the network's normalized output (the
    mixture mean for the MoG head) and ``t = (s' - s - out_mean) / out_std`` (residual), the
    loss :func:`skill_library.meta.losses.prediction_loss` computes with autograd.

    Args:
        weights: the packed network (:func:`kernels.make_mlp_weights`); its arrays are read.
        capacity: the largest batch B.
    """

    def __init__(self, weights: kernels.MLPWeights, capacity: int):
        self.weights = weights
        self.sizes = [int(v) for v in weights.layer_sizes]
        self.capacity = capacity
        self.tanh = weights.activation == kernels.mlp.ACTIVATIONS["tanh"]
        self.mog = weights.head == kernels.mlp.HEADS["mog"]
        self.components = int(weights.n_components)
        ds = weights.state_dim
        self.inputs = np.zeros((capacity, self.sizes[0]), np.float64)
        self.hidden = [np.zeros((capacity, n), np.float64) for n in self.sizes[1:-1]]
        self.outputs = np.zeros((capacity, self.sizes[-1]), np.float64)
        self.mean = np.zeros((capacity, ds), np.float64)
        self.targets = np.zeros((capacity, ds), np.float64)
        self.residual = np.zeros((capacity, ds), np.float64)
        self.grad_out = np.zeros((capacity, self.sizes[-1]), np.float64)
        self.grad_hidden = [np.zeros((capacity, n), np.float64) for n in self.sizes[1:-1]]

    def layers(self, weights_flat: np.ndarray, biases_flat: np.ndarray) -> list[tuple]:
        """Per-layer ``(W (in, out), b (out,))`` views into flat arrays of the packed layout."""
        return kernels.mlp_layers(
            self.weights._replace(weights_flat=weights_flat, biases_flat=biases_flat)
        )

    def set_batch(self, states: np.ndarray, commands: np.ndarray, next_states: np.ndarray) -> int:
        """Normalizes ``states (B, ds)``, ``commands (B, dz)`` and targets ``next_states
        (B, ds)`` into the buffers; returns B."""
        w = self.weights
        n, ds = len(states), w.state_dim
        self.inputs[:n, :ds] = states
        self.inputs[:n, ds:] = commands
        self.inputs[:n] -= w.in_mean
        self.inputs[:n] /= w.in_std
        np.subtract(next_states, states if w.residual else 0.0, out=self.targets[:n])
        self.targets[:n] -= w.out_mean
        self.targets[:n] /= w.out_std
        return n

    def forward(self, layers: list[tuple], n: int) -> float:
        """Runs the first ``n`` rows; returns the loss (the buffers keep what backward needs)."""
        x = self.inputs[:n]
        for (weight, bias), hidden in zip(layers[:-1], self.hidden, strict=True):
            h = hidden[:n]
            np.dot(x, weight, out=h)
            h += bias
            if self.tanh:
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0.0, out=h)
            x = h
        weight, bias = layers[-1]
        y = self.outputs[:n]
        np.dot(x, weight, out=y)
        y += bias
        u = self.mean[:n]
        if self.mog:
            e, ds = self.components, self.weights.state_dim
            logits = y[:, :e]
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=1, keepdims=True)  # y[:, :E] now holds the weights p
            means = y[:, e:].reshape(n, e, ds)
            np.einsum("be,bed->bd", logits, means, out=u)
        else:
            u[:] = y
        r = self.residual[:n]
        np.subtract(u, self.targets[:n], out=r)
        return float((r * r).sum() / n)

    def backward(self, layers: list[tuple], grad_layers: list[tuple], n: int) -> None:
        """Writes ``dL/dtheta`` into ``grad_layers`` after :meth:`forward` of the same rows."""
        g_y = self.grad_out[:n]
        g_u = self.residual[:n] * (2.0 / n)
        if self.mog:
            e, ds = self.components, self.weights.state_dim
            y = self.outputs[:n]
            p = y[:, :e]
            means = y[:, e:].reshape(n, e, ds)
            # u = sum_e p_e mu_e: du/dmu_e = p_e; du/dlogit_e = p_e (mu_e - u).
            for component in range(e):
                columns = slice(e + component * ds, e + (component + 1) * ds)
                np.multiply(p[:, component : component + 1], g_u, out=g_y[:, columns])
            spread = means - self.mean[:n, None, :]
            g_y[:, :e] = p * np.einsum("bed,bd->be", spread, g_u)
        else:
            g_y[:] = g_u
        grad = g_y
        inputs = [self.inputs[:n], *(h[:n] for h in self.hidden)]
        for layer in range(len(layers) - 1, -1, -1):
            weight = layers[layer][0]
            g_weight, g_bias = grad_layers[layer]
            np.dot(inputs[layer].T, grad, out=g_weight)
            np.sum(grad, axis=0, out=g_bias)
            if layer == 0:
                break
            below = self.grad_hidden[layer - 1][:n]
            np.dot(grad, weight.T, out=below)
            h = inputs[layer]
            if self.tanh:
                below *= 1.0 - h * h
            else:
                below *= h > 0.0
            grad = below


class OnlineAdapter:
    """Adapts a skill's dynamics at every replanning and hands the weights to the kernels.

    Lifecycle (driven by :class:`planners.LatentMPPI`): :meth:`bind` to the planner's packed
    network once; :meth:`reset` at every episode; at every replanning :meth:`observe` the
    planning state at control step ``step`` and the command that ran since the previous one,
    then :meth:`adapt`. Only the planner thread calls it.

    Args:
        exported: the dynamics as :meth:`~hrl_runtime.skill.SkillDynamics.export_mlp` gives it
            (the meta-parameters).
        settings: M, inner steps, inner learning rate.
        hold_steps: control steps per skill transition (the skill's).
    """

    def __init__(self, exported: dict[str, Any], settings: AdaptationConfig, hold_steps: int):
        settings.validate()
        self.settings = settings
        self.hold_steps = int(hold_steps)
        self.meta = kernels.make_mlp_weights(**exported)
        ds, dz = self.meta.state_dim, self.meta.command_dim
        self.gradient = MLPGradient(self.meta, settings.context)
        self.meta_w = self.meta.weights_flat.astype(np.float64)
        self.meta_b = self.meta.biases_flat.astype(np.float64)
        self.theta_w = self.meta_w.copy()
        self.theta_b = self.meta_b.copy()
        self.start_w = self.meta_w.copy()
        self.start_b = self.meta_b.copy()
        self.grad_w = np.zeros_like(self.meta_w)
        self.grad_b = np.zeros_like(self.meta_b)
        self._theta_layers = self.gradient.layers(self.theta_w, self.theta_b)
        self._meta_layers = self.gradient.layers(self.meta_w, self.meta_b)
        self._grad_layers = self.gradient.layers(self.grad_w, self.grad_b)
        # The plain mean head steps in one compiled call; the mixture head in numpy.
        self._compiled = not self.gradient.mog
        sizes = self.meta.layer_sizes
        self._act = np.zeros(int(sizes.sum()) * settings.context, np.float64)
        self._back = np.zeros(2 * int(sizes.max()) * settings.context, np.float64)
        # Per-control-step rings of planning states and the commands that ran.
        self.capacity = (settings.context + 2) * self.hold_steps + 64
        self.states = np.zeros((self.capacity, ds), np.float64)
        self.commands = np.zeros((self.capacity, dz), np.float64)
        self.batch_states = np.zeros((settings.context, ds), np.float64)
        self.batch_commands = np.zeros((settings.context, dz), np.float64)
        self.batch_next = np.zeros((settings.context, ds), np.float64)
        # Adapted parameters of recent adaptations, to score each on the transition that
        # completes after it (a held-out one-step error).
        self.snapshot_w = np.zeros((SNAPSHOTS, self.meta_w.size), np.float64)
        self.snapshot_b = np.zeros((SNAPSHOTS, self.meta_b.size), np.float64)
        self.snapshot_step = np.full(SNAPSHOTS, -1, np.int64)
        # Statistics (preallocated rings).
        self.times = np.full(100_000, np.nan)
        self.context_before = np.full(100_000, np.nan)
        self.context_after = np.full(100_000, np.nan)
        self.heldout_meta = np.full(100_000, np.nan)
        self.heldout_adapted = np.full(100_000, np.nan)
        self.adaptations = 0
        self.diverged = 0
        self.rejected = 0
        self.halved = 0
        self.heldout_count = 0
        self.network: kernels.MLPWeights | None = None
        self._first = -1
        self._last = -1
        self._scored = -(2**62)  # control step of the newest held-out transition scored
        self._warm_up()

    # --- set-up ----------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Compiles (or loads) the numba steps now, never in the planner's first adaptation."""
        self._gather(0, 0)
        if self._compiled:
            _mean_head_step(
                self.meta.layer_sizes,
                self.theta_w.copy(),
                self.theta_b.copy(),
                self.grad_w,
                self.grad_b,
                self.gradient.inputs,
                self.gradient.targets,
                1,
                self.gradient.tanh,
                0.0,
                self._act,
                self._back,
            )

    def bind(self, network: kernels.MLPWeights) -> None:
        """Writes into ``network``'s weight arrays from now on (the planner's kernel network).

        Raises:
            ValueError: the network has another architecture than the adapter's.
        """
        if not np.array_equal(network.layer_sizes, self.meta.layer_sizes) or (
            network.head != self.meta.head or network.activation != self.meta.activation
        ):
            raise ValueError(
                f"OnlineAdapter.bind: the planner's network has layers "
                f"{network.layer_sizes.tolist()}, the adapter's {self.meta.layer_sizes.tolist()}"
            )
        self.network = network
        self._hand_over(self.meta_w, self.meta_b)

    def reset(self) -> None:
        """Forgets the transitions (a new episode, maybe a new body) and restores the
        meta-parameters in the planner's network."""
        self._first = self._last = -1
        self._scored = -(2**62)
        self.snapshot_step[:] = -1
        self.theta_w[:] = self.meta_w
        self.theta_b[:] = self.meta_b
        if self.network is not None:
            self._hand_over(self.meta_w, self.meta_b)

    # --- per replanning --------------------------------------------------------------------
    def observe(self, step: int, state: np.ndarray, command: np.ndarray) -> None:
        """Records the planning state ``(ds,)`` at control step ``step`` and the command
        ``(dz,)`` that ran since the previous observation (states of skipped steps are
        interpolated)."""
        last, capacity = self._last, self.capacity
        if last < 0 or step <= last or step - last > capacity // 2:
            self._first = self._last = step  # a fresh history
            self.states[step % capacity] = state
            return
        start = self.states[last % capacity]
        gap = step - last
        for k in range(1, gap + 1):
            row = (last + k) % capacity
            self.states[row] = start + (state - start) * (k / gap)
            self.commands[(last + k - 1) % capacity] = command
        self._last = step
        self._first = max(self._first, step - capacity + 1)

    def available(self) -> int:
        """Whole skill transitions in the history (at most M are used)."""
        if self._last < 0:
            return 0
        return min(self.settings.context, (self._last - self._first) // self.hold_steps)

    def _gather(self, count: int, newest_end: int) -> None:
        """The ``count`` transitions ending at ``newest_end``, ``newest_end - h``, ... into the
        batch buffers (the command of a transition is the mean over its hold)."""
        _gather(
            self.states,
            self.commands,
            newest_end,
            self.hold_steps,
            count,
            self.capacity,
            self.batch_states,
            self.batch_commands,
            self.batch_next,
        )

    def adapt(self) -> bool:
        """Adapts from the last M transitions and hands the weights over (in place).

        Returns:
            True when it adapted; False while fewer than ``min_context`` transitions exist
            (the planner keeps the meta-parameters).
        """
        count = self.available()
        if count < self.settings.min_context:
            return False
        self._score_heldout()
        start = time.perf_counter()
        self._gather(count, self._last)
        n = self.gradient.set_batch(
            self.batch_states[:count], self.batch_commands[:count], self.batch_next[:count]
        )
        # GrBAL (Nagabandi et al. 2019, Alg. 2 line 6) adapts from theta* at every step; with
        # ``accumulate`` the step starts from the last adapted theta' instead, i.e. online
        # gradient descent on the sliding window initialized at theta* (the "continued
        # adaptation" of Nagabandi, Finn & Levine 2019, "Deep Online Learning via
        # Meta-Learning", Sec. 4): on one body the model keeps improving past one step.
        if not self.settings.accumulate:
            self.theta_w[:] = self.meta_w
            self.theta_b[:] = self.meta_b
        self.start_w[:] = self.theta_w
        self.start_b[:] = self.theta_b
        before = np.nan
        for _ in range(self.settings.inner_steps):
            loss = self._step(n, self.settings.inner_lr)
            before = loss if np.isnan(before) else before
        after = self._step(n, 0.0)
        for _ in range(self.settings.backtracking):
            if after <= before:
                break
            # The step raised the loss on the very transitions it fitted: halve it.
            self.halved += 1
            self.theta_w -= self.start_w
            self.theta_w *= 0.5
            self.theta_w += self.start_w
            self.theta_b -= self.start_b
            self.theta_b *= 0.5
            self.theta_b += self.start_b
            after = self._step(n, 0.0)
        if self.settings.backtracking and not after <= before:
            self.theta_w[:] = self.start_w
            self.theta_b[:] = self.start_b
            after = before
            self.rejected += 1
        largest = max(np.abs(self.theta_w).max(), np.abs(self.theta_b).max())
        if largest < MAX_WEIGHT:  # False for NaN too
            self._hand_over(self.theta_w, self.theta_b)
        else:  # a diverged step: keep planning with the meta-parameters
            self.theta_w[:] = self.meta_w
            self.theta_b[:] = self.meta_b
            self._hand_over(self.meta_w, self.meta_b)
            self.diverged += 1
        elapsed = time.perf_counter() - start
        index = self.adaptations % self.times.size
        self.times[index] = elapsed
        self.context_before[index] = before
        self.context_after[index] = after
        self.adaptations += 1
        # At most one snapshot per hold: replanning runs every control step or two, and the
        # held-out score needs an adaptation made a whole hold before the newest transition.
        if self._last >= self.snapshot_step.max() + self.hold_steps:
            slot = int(np.argmin(self.snapshot_step))  # the oldest
            self.snapshot_w[slot] = self.theta_w
            self.snapshot_b[slot] = self.theta_b
            self.snapshot_step[slot] = self._last
        return True

    def _step(self, n: int, lr: float) -> float:
        """The context loss at the current parameters, then ``theta -= lr * grad`` (lr 0:
        only the loss)."""
        if self._compiled:  # the whole step in one numba call
            return _mean_head_step(
                self.meta.layer_sizes,
                self.theta_w,
                self.theta_b,
                self.grad_w,
                self.grad_b,
                self.gradient.inputs,
                self.gradient.targets,
                n,
                self.gradient.tanh,
                lr,
                self._act,
                self._back,
            )
        loss = self.gradient.forward(self._theta_layers, n)
        if lr:
            self.gradient.backward(self._theta_layers, self._grad_layers, n)
            # MAML Eq. 1 / GrBAL Alg. 2 line 6: theta' = theta - alpha * grad L(theta).
            self.theta_w -= lr * self.grad_w
            self.theta_b -= lr * self.grad_b
        return loss

    def _hand_over(self, weights: np.ndarray, biases: np.ndarray) -> None:
        """Copies parameters into the planner's kernel arrays (float32, in place)."""
        self.network.weights_flat[:] = weights
        self.network.biases_flat[:] = biases

    def _score_heldout(self) -> None:
        """The newest transition's normalized error under the meta-parameters and under the
        newest adaptation made before that transition began (so it never saw it); once per
        hold, so the scored transitions do not overlap (and the planner thread pays for two
        small forward passes a hold, not at every replanning)."""
        if self._last < self._scored + self.hold_steps:
            return
        begin = self._last - self.hold_steps
        candidates = np.flatnonzero((self.snapshot_step >= 0) & (self.snapshot_step <= begin))
        if candidates.size == 0:
            return
        slot = candidates[np.argmax(self.snapshot_step[candidates])]
        self._gather(1, self._last)
        n = self.gradient.set_batch(
            self.batch_states[:1], self.batch_commands[:1], self.batch_next[:1]
        )
        layers = self.gradient.layers(self.snapshot_w[slot], self.snapshot_b[slot])
        index = self.heldout_count % self.heldout_meta.size
        self.heldout_adapted[index] = self.gradient.forward(layers, n)
        self.heldout_meta[index] = self.gradient.forward(self._meta_layers, n)
        self.heldout_count += 1
        self._scored = self._last

    # --- report ----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Adaptation time (ms, adaptation plus hand-over) and the one-step prediction error
        before and after adapting (normalized squared error, mean over adaptations)."""
        times = self.times[: min(self.adaptations, self.times.size)]
        held = min(self.heldout_count, self.heldout_meta.size)

        def mean(values: np.ndarray) -> float | None:
            finite = values[np.isfinite(values)]
            return float(finite.mean()) if finite.size else None

        return {
            "settings": {
                "context": self.settings.context,
                "inner_steps": self.settings.inner_steps,
                "inner_lr": self.settings.inner_lr,
                "accumulate": self.settings.accumulate,
                "backtracking": self.settings.backtracking,
            },
            "adaptations": self.adaptations,
            "diverged": self.diverged,
            "halved": self.halved,
            "rejected": self.rejected,
            "adapt_ms": {
                "p50": _percentile_ms(times, 50),
                "p99": _percentile_ms(times, 99),
                "max": float(times.max() * 1e3) if times.size else None,
            },
            "context_error": {
                "before": mean(self.context_before[: times.size]),
                "after": mean(self.context_after[: times.size]),
            },
            "heldout_error": {
                "meta": mean(self.heldout_meta[:held]),
                "adapted": mean(self.heldout_adapted[:held]),
                "transitions": held,
            },
            "error_units": "squared one-step error in output-normalized units",
        }
