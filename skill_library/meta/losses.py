"""MAML losses over skill dynamics (pure functions of parameters and batches).

Finn et al. 2017 (survey, "MAML"): the inner step adapts the parameters to a task,
``theta'_i = theta - alpha * grad_theta L_Ti(f_theta)``, and the meta-objective scores the
adapted model, ``min_theta sum_i L_Ti(f_theta'_i)``, updated by
``theta <- theta - beta * grad_theta sum_i L_Ti(f_theta'_i)``. For dynamics (GrBAL, Nagabandi
et al. 2019, Alg. 1) a task is one body: the inner loss is on M past transitions, the outer on
the K transitions that follow.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from skill_library.meta.networks import predict
from skill_library.networks import SkillDynamicsNet


class Transitions(NamedTuple):
    """Skill transitions ``(s, z) -> s'``; every field ``(B, .)`` or, batched over bodies,
    ``(N, B, .)``."""

    states: torch.Tensor
    """``(..., ds)`` planning states at the start of a hold."""
    commands: torch.Tensor
    """``(..., dz)`` commands held (averaged over the hold)."""
    next_states: torch.Tensor
    """``(..., ds)`` planning states ``hold_steps`` control steps later."""


def prediction_loss(
    network: SkillDynamicsNet, params: dict[str, torch.Tensor], batch: Transitions
) -> torch.Tensor:
    """``L_T(f_theta) = 1/B sum_b ||(f_theta(s_b, z_b) - s'_b) / sigma||^2``: the squared
    one-step error in the network's normalized output units (``sigma = out_norm.std``).

    Returns:
        A scalar tensor.
    """
    predicted = predict(network, params, batch.states, batch.commands)
    error = (predicted - batch.next_states) / network.out_norm.std
    return (error**2).sum(-1).mean()


def inner_adapt(
    network: SkillDynamicsNet,
    params: dict[str, torch.Tensor],
    context: Transitions,
    inner_lr: float,
    inner_steps: int = 1,
    first_order: bool = False,
) -> dict[str, torch.Tensor]:
    """The inner loop: ``theta' = theta - alpha * grad_theta L_T(f_theta)`` (MAML Eq. 1),
    ``inner_steps`` times.

    Args:
        first_order: treat the gradient as a constant (first-order MAML: ``d theta'/d theta``
            is the identity); otherwise keep the graph for second derivatives.

    Returns:
        The adapted parameters, differentiable in ``params`` (unless first order).
    """
    adapted = dict(params)
    for _ in range(inner_steps):
        loss = prediction_loss(network, adapted, context)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=not first_order)
        adapted = {
            name: value - inner_lr * (grad.detach() if first_order else grad)
            for (name, value), grad in zip(adapted.items(), grads, strict=True)
        }
    return adapted


def _batched_loss(
    network: SkillDynamicsNet, params: dict[str, torch.Tensor], batch: Transitions
) -> torch.Tensor:
    """``(N,)`` per-body :func:`prediction_loss` with per-body parameters ``params[k]: (N, ...)``
    and ``batch`` fields ``(N, B, .)`` (``torch.func.vmap`` over ``functional_call``)."""

    def one(body_params, states, commands, next_states):
        return prediction_loss(network, body_params, Transitions(states, commands, next_states))

    return torch.func.vmap(one)(params, *batch)


def maml_loss(
    network: SkillDynamicsNet,
    params: dict[str, torch.Tensor],
    context: Transitions,
    query: Transitions,
    inner_lr: float,
    inner_steps: int = 1,
    first_order: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The meta-objective ``1/N sum_i L_Ti(f_theta'_i)`` over N bodies (MAML Eq. 2, GrBAL
    Eq. 3): adapt on each body's context (M past transitions), score on its query (K next).

    All N inner steps run at once: each body gets its own copy of theta (``expand``, so the
    copies' gradients flow back to theta), the per-body losses are summed, and the gradient
    with respect to the copies is every body's own inner gradient.

    Args:
        context: ``(N, M, .)`` transitions per body.
        query: ``(N, K, .)`` transitions per body.

    Returns:
        The loss (differentiable in ``params``) and metrics: the query loss before and after
        adapting, and the context loss before adapting.
    """
    bodies = context.states.shape[0]
    adapted = {name: value.expand(bodies, *value.shape) for name, value in params.items()}
    meta = adapted
    for _ in range(inner_steps):
        inner = _batched_loss(network, adapted, context).sum()
        grads = torch.autograd.grad(inner, list(adapted.values()), create_graph=not first_order)
        # MAML Eq. 1: theta'_i = theta - alpha * grad_theta L_Ti(f_theta), for every body i.
        adapted = {
            name: value - inner_lr * (grad.detach() if first_order else grad)
            for (name, value), grad in zip(adapted.items(), grads, strict=True)
        }
    loss = _batched_loss(network, adapted, query).mean()
    with torch.no_grad():
        metrics = {
            "query_loss_adapted": float(loss.detach()),
            "query_loss_meta": float(_batched_loss(network, meta, query).mean()),
            "context_loss_meta": float(_batched_loss(network, meta, context).mean()),
        }
    return loss, metrics
