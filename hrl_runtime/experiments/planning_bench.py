"""Planning-latency benchmark: this project's MPPI beside pytorch_mppi, a plain torch loop and
the float32 GEMM floor, on the same skill-dynamics network.

Reference workload W1: K=1024 samples, T=10 held commands, dynamics MLP 6 -> 256 -> 256 -> 4
(tanh, residual update, state ds=4, command dz=2, input/output normalization), quadratic goal
cost, one full iteration (sample, rollout, weight, update).

Every contender runs in its own process with its thread pools pinned (torch, OpenBLAS and numba
pools in one process slow each other down), and every contender's rollout is checked against a
float64 reference of the same network on the same commands, so nobody wins by computing less.
Run it with ``hrl bench``; ``python -m hrl_runtime.experiments.planning_bench --contender NAME``
is one worker.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONTENDERS = (
    "hrl_mppi",
    "pytorch_mppi",
    "pytorch_mppi_inference",
    "torch_loop",
    "gemm_floor_blas",
    "gemm_floor_blocks",
)
FLOORS = ("gemm_floor_blas", "gemm_floor_blocks")
SWEEP_K = (256, 512, 1024, 2048, 4096, 8192)
SWEEP_T = (5, 10, 20, 40)
ROLLOUT_TOLERANCE = 2e-3  # max |float32 - float64| over the rollout, in state units


@dataclass(frozen=True)
class Workload:
    """One planning problem size."""

    num_samples: int = 1024
    """K: sampled command sequences."""
    horizon: int = 10
    """T: held commands per sequence."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the dynamics MLP."""
    state_dim: int = 4
    """ds."""
    command_dim: int = 2
    """dz."""
    seed: int = 0
    """Seed of the network weights and of the sampling noise."""


def thread_env(contender: str, threads: int) -> dict[str, str]:
    """Environment pinning every thread pool for one contender's process.

    numba parallelizes over sample blocks with single-threaded BLAS inside (our planner and the
    block GEMM floor); torch uses its own intra-op pool; the BLAS GEMM floor gets OpenBLAS's
    pool. Each uses ``threads`` cores in all.
    """
    env = dict(os.environ)
    blas = "1" if contender in ("hrl_mppi", "gemm_floor_blocks") else str(threads)
    env.update(
        OMP_NUM_THREADS=str(threads) if contender.startswith(("pytorch", "torch")) else "1",
        OPENBLAS_NUM_THREADS=blas,
        MKL_NUM_THREADS=blas,
        NUMBA_NUM_THREADS=str(threads),
        HRL_BENCH_TORCH_THREADS=str(threads if contender.startswith(("pytorch", "torch")) else 1),
    )
    return env


# --- the shared network and its float64 reference ----------------------------------------------
def build_network(workload: Workload):
    """The seeded dynamics network (same weights in every process)."""
    import torch

    from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet

    generator = torch.Generator().manual_seed(workload.seed)
    torch.manual_seed(workload.seed)
    config = DynamicsNetConfig(
        state_dim=workload.state_dim,
        command_dim=workload.command_dim,
        hidden=workload.hidden,
        activation="tanh",
        num_experts=0,
        residual=True,
    )
    network = SkillDynamicsNet(config)
    inputs = torch.randn(4096, workload.state_dim + workload.command_dim, generator=generator)
    network.in_norm.fit(inputs * 2.0)
    network.out_norm.fit(torch.randn(4096, workload.state_dim, generator=generator) * 0.1)
    return network


def reference_rollout(exported: dict[str, Any], state0: np.ndarray, commands: np.ndarray):
    """Float64 numpy rollout of an exported MLP: ``(ds,), (K, T, dz) -> (K, T + 1, ds)``."""
    f64 = np.float64
    K, T, _ = commands.shape
    states = np.empty((K, T + 1, state0.size), f64)
    states[:, 0] = state0
    for t in range(T):
        x = (np.concatenate([states[:, t], commands[:, t]], -1) - exported["in_mean"]) / exported[
            "in_std"
        ]
        for weight, bias in zip(exported["hidden_weights"], exported["hidden_biases"], strict=True):
            x = np.tanh(x @ weight.astype(f64) + bias)
        y = x @ exported["out_weight"].astype(f64) + exported["out_bias"]
        states[:, t + 1] = states[:, t] + y * exported["out_std"] + exported["out_mean"]
    return states


def _problem(workload: Workload):
    rng = np.random.default_rng(workload.seed + 1)
    state0 = rng.normal(size=workload.state_dim).astype(np.float32)
    goal = np.array([1.5, -1.0], np.float32)
    return state0, goal


# --- contenders: each returns (iteration callable, check callable) -----------------------------
def _ours(workload: Workload):
    from gymnasium.spaces import Box

    from hrl_runtime.skill import Skill
    from planners.mppi import LatentMPPI, MPPIConfig
    from skill_library.dynamics import LearnedDynamics

    class BenchSkill(Skill):
        kind = "benchmark"

        def act(self, obs, command):
            return command

        def package_config(self):
            return {}

        def package_tensors(self):
            return {}

        @classmethod
        def from_package(cls, package):
            raise NotImplementedError

    network = build_network(workload)
    ds, dz = workload.state_dim, workload.command_dim
    skill = BenchSkill(
        Box(-np.inf, np.inf, (ds,), np.float32),
        Box(-1.0, 1.0, (dz,), np.float32),
        Box(-1.0, 1.0, (dz,), np.float32),
        hold_steps=1,
        dynamics=LearnedDynamics(network, tuple(range(ds))),
    )
    config = MPPIConfig(
        num_samples=workload.num_samples,
        horizon=workload.horizon,
        temperature=1.0,
        noise_scale=0.5,
        step_weight=1.0,
        terminal_weight=1.0,
        squared_distance=True,
        backend="numba",
        seed=workload.seed,
    )
    planner = LatentMPPI(skill, config, goal_dims=(0, 1))
    state0, goal = _problem(workload)
    planner.reset(state0)
    planner.set_goal(goal)
    exported = network.export_mlp()

    def check() -> float:
        reference = reference_rollout(exported, state0, planner.commands)
        return float(np.max(np.abs(planner.states - reference)))

    return planner.optimize, check


def _pytorch_mppi(workload: Workload, inference: bool):
    import torch
    from pytorch_mppi import MPPI

    network = build_network(workload)
    state0, goal = _problem(workload)
    goal_t = torch.from_numpy(goal)
    recorded: list[torch.Tensor] = []

    def dynamics(state, action):
        return network(state, action)

    def running_cost(state, action):
        if recording[0]:
            recorded.append(state.detach().clone())
        return ((state[:, :2] - goal_t) ** 2).sum(-1)

    recording = [False]
    # As pytorch_mppi's README shows it.
    controller = MPPI(
        dynamics,
        running_cost,
        workload.state_dim,
        noise_sigma=torch.eye(workload.command_dim) * 0.25,
        num_samples=workload.num_samples,
        horizon=workload.horizon,
        lambda_=1.0,
        u_min=-torch.ones(workload.command_dim),
        u_max=torch.ones(workload.command_dim),
    )
    state = torch.from_numpy(state0)

    def iterate():
        if inference:
            with torch.inference_mode():
                controller.command(state)
        else:
            controller.command(state)

    exported = network.export_mlp()

    def check() -> float:
        recorded.clear()
        recording[0] = True
        iterate()
        recording[0] = False
        states = torch.stack(recorded, 1).numpy()
        commands = controller.perturbed_action.detach().numpy()
        reference = reference_rollout(exported, state0, commands)
        return float(np.max(np.abs(states - reference[:, 1:])))

    return iterate, check


def _torch_loop(workload: Workload):
    import torch

    network = build_network(workload)
    state0, goal = _problem(workload)
    K, T, ds, dz = workload.num_samples, workload.horizon, workload.state_dim, workload.command_dim
    generator = torch.Generator().manual_seed(workload.seed)
    mean = torch.zeros(T, dz)
    goal_t = torch.from_numpy(goal)
    state = torch.from_numpy(state0)
    last: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def iterate():
        noise = torch.randn(K, T, dz, generator=generator) * 0.5
        commands = (mean + noise).clamp_(-1.0, 1.0)
        states = torch.empty(K, T + 1, ds)
        states[:, 0] = state
        cost = torch.zeros(K)
        s = state.expand(K, ds)
        for t in range(T):
            s = network(s, commands[:, t])
            states[:, t + 1] = s
            cost += ((s[:, :2] - goal_t) ** 2).sum(-1)
        weights = torch.softmax(-(cost - cost.min()) / 1.0, 0)
        mean.copy_((weights[:, None, None] * commands).sum(0))
        last["states"], last["commands"] = states, commands

    exported = network.export_mlp()

    def check() -> float:
        iterate()
        reference = reference_rollout(exported, state0, last["commands"].numpy())
        return float(np.max(np.abs(last["states"].numpy() - reference)))

    return iterate, check


def _block_gemms(buffers, weights, horizon: int, n_blocks: int) -> None:
    """The W1 GEMMs with the samples split into ``n_blocks`` parallel blocks (numba prange),
    each on single-threaded BLAS: the layout our rollout kernel uses, without anything else."""
    from numba import njit, prange

    global _BLOCK_GEMMS
    if _BLOCK_GEMMS is None:

        @njit(parallel=True, nogil=True, cache=True)
        def block_gemms(x, w1, w2, w3, h1, h2, out, horizon, n_blocks):
            samples = x.shape[0]
            for block in prange(n_blocks):
                lo, hi = block * samples // n_blocks, (block + 1) * samples // n_blocks
                for _ in range(horizon):
                    np.dot(x[lo:hi], w1, h1[lo:hi])
                    np.dot(h1[lo:hi], w2, h2[lo:hi])
                    np.dot(h2[lo:hi], w3, out[lo:hi])

        _BLOCK_GEMMS = block_gemms
    _BLOCK_GEMMS(*buffers[:1], *weights, *buffers[1:], horizon, n_blocks)


_BLOCK_GEMMS = None


def _gemm_floor(workload: Workload, blocks: bool):
    network = build_network(workload)
    exported = network.export_mlp()
    K, T = workload.num_samples, workload.horizon
    layers = [*zip(exported["hidden_weights"], exported["hidden_biases"], strict=True)]
    layers.append((exported["out_weight"], exported["out_bias"]))
    weights = [np.ascontiguousarray(w, np.float32) for w, _ in layers]
    buffers = [np.ones((K, weights[0].shape[0]), np.float32)]
    buffers += [np.empty((K, w.shape[1]), np.float32) for w in weights]

    def iterate():
        for _ in range(T):
            for index, weight in enumerate(weights):
                np.dot(buffers[index], weight, out=buffers[index + 1])

    if blocks:
        if len(weights) != 3:
            raise ValueError("the block GEMM floor is written for two hidden layers")
        from numba import get_num_threads

        n_blocks = get_num_threads()

        def iterate():
            _block_gemms(buffers, weights, T, n_blocks)

    return iterate, lambda: None  # the floor computes no rollout to check


def _setup(contender: str, workload: Workload):
    if contender == "hrl_mppi":
        return _ours(workload)
    if contender in ("pytorch_mppi", "pytorch_mppi_inference"):
        return _pytorch_mppi(workload, inference=contender.endswith("inference"))
    if contender == "torch_loop":
        return _torch_loop(workload)
    if contender in FLOORS:
        return _gemm_floor(workload, blocks=contender == "gemm_floor_blocks")
    raise ValueError(f"unknown contender {contender!r}; choose one of {CONTENDERS}")


def time_iterations(iterate, repeats: int, warmup: int) -> np.ndarray:
    """Milliseconds of ``repeats`` calls after ``warmup`` calls, garbage collector paused."""
    for _ in range(warmup):
        iterate()
    times = np.empty(repeats)
    gc.collect()
    gc.disable()
    try:
        for index in range(repeats):
            start = time.perf_counter_ns()
            iterate()
            times[index] = (time.perf_counter_ns() - start) / 1e6
    finally:
        gc.enable()
    return times


def worker(contender: str, workload: Workload, repeats: int, warmup: int) -> dict[str, Any]:
    """Runs one contender in this process; returns its timings and rollout check."""
    import torch

    torch.set_num_threads(int(os.environ.get("HRL_BENCH_TORCH_THREADS", "1")))
    iterate, check = _setup(contender, workload)
    times = time_iterations(iterate, repeats, warmup)
    error = check()
    return {
        "contender": contender,
        "workload": asdict(workload),
        "times_ms": times.tolist(),
        "rollout_max_abs_error": error,
        "rollout_check": "n/a" if error is None else bool(error <= ROLLOUT_TOLERANCE),
        "threads": {
            key: os.environ.get(key)
            for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
        }
        | {"torch": torch.get_num_threads()},
    }


def sweep_worker(repeats: int, budget_s: float) -> list[dict[str, Any]]:
    """Times this project's planner over the K x T grid, in this process."""
    rows = []
    for horizon in SWEEP_T:
        for samples in SWEEP_K:
            iterate, _ = _ours(Workload(num_samples=samples, horizon=horizon))
            first = time_iterations(iterate, 1, 2)[0]
            count = int(np.clip(budget_s * 1e3 / max(first, 1e-3), 5, repeats))
            times = time_iterations(iterate, count, 1)
            rows.append(
                {
                    "K": samples,
                    "T": horizon,
                    "median_ms": float(np.median(times)),
                    "p99_ms": float(np.percentile(times, 99)),
                    "iterations": count,
                }
            )
    return rows


# --- the side-by-side driver -------------------------------------------------------------------
def _spawn(args: list[str], env: dict[str, str], timeout: float) -> Any:
    command = [sys.executable, "-m", "hrl_runtime.experiments.planning_bench", *args]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def summarize(times_ms: np.ndarray) -> dict[str, float]:
    """median, p90 and p99 in milliseconds."""
    return {
        "median_ms": float(np.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "p99_ms": float(np.percentile(times_ms, 99)),
    }


def linearity(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least-squares fit ``median = a + b * K * T`` over the sweep, and its R^2."""
    work = np.array([row["K"] * row["T"] for row in rows], np.float64)
    latency = np.array([row["median_ms"] for row in rows])
    slope, intercept = np.polyfit(work, latency, 1)
    predicted = intercept + slope * work
    r2 = 1.0 - np.sum((latency - predicted) ** 2) / np.sum((latency - latency.mean()) ** 2)
    return {"ns_per_sample_step": float(slope * 1e6), "intercept_ms": float(intercept), "r2": r2}


def run_benchmark(
    runs: int = 3,
    repeats: int = 200,
    threads: int = 2,
    sweep: bool = True,
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs every contender ``runs`` times side by side (each in its own process) and the sweep.

    Returns:
        One JSON-ready object: per contender median/p90/p99 (each the median over runs of that
        run's statistic), the speed-up ratios, the GEMM-floor efficiency (fastest floor over our
        median), the sweep and its linearity.
    """
    from tqdm import tqdm

    workload = Workload()
    per_contender: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    jobs = [(run, name) for run in range(runs) for name in CONTENDERS]
    started = time.perf_counter()
    for _, name in tqdm(jobs, desc="contenders", disable=not progress, file=sys.stderr):
        count = repeats if not name.startswith("pytorch_mppi") else max(repeats // 2, 20)
        args = ["--contender", name, "--repeats", str(count), "--warmup", "10"]
        per_contender[name].append(_spawn(args, thread_env(name, threads), timeout=600))
    contenders: dict[str, Any] = {}
    for name, results in per_contender.items():
        per_run = [summarize(np.asarray(r["times_ms"])) for r in results]
        errors = [r["rollout_max_abs_error"] for r in results]
        contenders[name] = {
            # Each statistic is the median over runs of that run's statistic.
            **{key: float(np.median([run[key] for run in per_run])) for key in per_run[0]},
            "run_medians_ms": [run["median_ms"] for run in per_run],
            "iterations": int(sum(len(r["times_ms"]) for r in results)),
            "rollout_max_abs_error": None if errors[0] is None else float(max(errors)),
            "rollout_check": results[0]["rollout_check"]
            if errors[0] is None
            else bool(max(errors) <= ROLLOUT_TOLERANCE),
            "threads": results[0]["threads"],
        }
    ours = contenders["hrl_mppi"]["median_ms"]
    report: dict[str, Any] = {
        "workload": asdict(workload),
        "machine": machine_info(threads),
        "runs": runs,
        "contenders": contenders,
        "speedup_vs_pytorch_mppi": contenders["pytorch_mppi"]["median_ms"] / ours,
        "speedup_vs_pytorch_mppi_inference": contenders["pytorch_mppi_inference"]["median_ms"]
        / ours,
        "speedup_vs_torch_loop": contenders["torch_loop"]["median_ms"] / ours,
        "gemm_floor_ms": min(contenders[name]["median_ms"] for name in FLOORS),
        "gemm_floor_efficiency": min(contenders[name]["median_ms"] for name in FLOORS) / ours,
        "p99_over_median": contenders["hrl_mppi"]["p99_ms"] / ours,
        "rollout_tolerance": ROLLOUT_TOLERANCE,
    }
    if sweep:
        rows = _spawn(["--sweep", "--repeats", "30"], thread_env("hrl_mppi", threads), timeout=900)
        report["sweep"] = rows
        report["sweep_linearity"] = linearity(rows)
    report["seconds"] = time.perf_counter() - started
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        report["table"] = str(write_table(report, out_dir / "bench.md"))
        report["plot"] = str(plot_benchmark(report, out_dir / "bench.png"))
    return report


def machine_info(threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    import numba
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads_per_contender": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
    }


def table_lines(report: dict[str, Any]) -> list[str]:
    """The side-by-side table as Markdown lines."""
    lines = [
        "| contender | median ms | p90 ms | p99 ms | rollout max abs error vs float64 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["contenders"].items():
        error = row["rollout_max_abs_error"]
        lines.append(
            f"| {name} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{'n/a (GEMMs only)' if error is None else f'{error:.1e}'} |"
        )
    lines += [
        "",
        f"speed-up vs pytorch_mppi {report['speedup_vs_pytorch_mppi']:.2f}x, "
        f"vs pytorch_mppi in inference mode {report['speedup_vs_pytorch_mppi_inference']:.2f}x, "
        f"vs plain torch loop {report['speedup_vs_torch_loop']:.2f}x; "
        f"GEMM-floor efficiency {report['gemm_floor_efficiency']:.2f}; "
        f"p99/median {report['p99_over_median']:.2f}",
    ]
    if "sweep" in report:
        fit = report["sweep_linearity"]
        lines += [
            "",
            "| K \\ T | " + " | ".join(str(t) for t in SWEEP_T) + " |",
            "|---|" + "---:|" * len(SWEEP_T),
        ]
        for samples in SWEEP_K:
            cells = [
                f"{row['median_ms']:.2f}"
                for horizon in SWEEP_T
                for row in report["sweep"]
                if row["K"] == samples and row["T"] == horizon
            ]
            lines.append(f"| {samples} | " + " | ".join(cells) + " |")
        lines.append(
            f"\nlinear fit: {fit['ns_per_sample_step']:.1f} ns per sample-step, "
            f"intercept {fit['intercept_ms']:.3f} ms, R^2 = {fit['r2']:.4f}"
        )
    return lines


def write_table(report: dict[str, Any], path: Path) -> Path:
    machine = report["machine"]
    header = [
        f"W1 planning latency on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['threads_per_contender']} threads per contender), median of "
        f"{report['runs']} runs",
        "",
    ]
    path.write_text("\n".join(header + table_lines(report)) + "\n")
    return path


def plot_benchmark(report: dict[str, Any], path: Path) -> Path:
    """Bar chart of the contenders and the K x T sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, sweep) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    names = list(report["contenders"])
    medians = [report["contenders"][n]["median_ms"] for n in names]
    p99 = [report["contenders"][n]["p99_ms"] for n in names]
    positions = np.arange(len(names))
    bars.bar(positions, medians, color=["tab:green"] + ["tab:gray"] * (len(names) - 1))
    bars.scatter(positions, p99, marker="_", s=300, color="k", label="p99")
    bars.set_xticks(positions, [n.replace("_", "\n") for n in names], fontsize=8)
    bars.set_ylabel("ms per MPPI iteration (W1)")
    bars.set_title("W1: K=1024, T=10, MLP 6-256-256-4")
    bars.legend()
    if "sweep" in report:
        for horizon in SWEEP_T:
            rows = [r for r in report["sweep"] if r["T"] == horizon]
            sweep.plot(
                [r["K"] * r["T"] for r in rows],
                [r["median_ms"] for r in rows],
                "o-",
                label=f"T={horizon}",
            )
        sweep.set_xscale("log")
        sweep.set_yscale("log")
        sweep.set_xlabel("K x T (sample-steps)")
        sweep.set_ylabel("median ms")
        sweep.set_title(f"hrl_mppi sweep, R^2 = {report['sweep_linearity']['r2']:.3f}")
        sweep.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one benchmark worker (see `hrl bench`)")
    parser.add_argument("--contender", choices=CONTENDERS)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.sweep:
        print(json.dumps(sweep_worker(args.repeats, args.budget_s)))
    else:
        print(json.dumps(worker(args.contender, Workload(), args.repeats, args.warmup)))


if __name__ == "__main__":
    main()
