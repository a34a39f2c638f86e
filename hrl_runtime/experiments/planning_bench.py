"""Planning-latency benchmark: this project's MPPI beside pytorch_mppi, a plain torch loop and
the float32 GEMM floor, on the same skill-dynamics network.

Reference workload W1: K=1024 samples, T=10 held commands, dynamics MLP 6 -> 256 -> 256 -> 4
(tanh, residual update, state ds=4, command dz=2, input/output normalization), quadratic goal
cost, one full iteration (sample, rollout, weight, update).

Every contender runs in its own process with its thread pools pinned (torch, OpenBLAS and numba
pools in one process slow each other down), each on the same ``threads`` cores: numba's pool for
our planner, torch's intra-op pool (``torch.set_num_threads(threads)``) for the torch peers. The
torch peers are written as their own users write them (a plain ``nn.Sequential`` with the
normalization folded into its weights, pytorch_mppi's documented ``MPPI.command``); one more row
keeps pytorch_mppi on this project's ``SkillDynamicsNet`` module. Every contender's rollout is
checked against a float64 reference of the same network on the same commands, after and outside
the timed iterations, so nobody wins by computing less (the contenders and the reference live in
:mod:`hrl_runtime.experiments.planning_contenders`). Run it with ``hrl bench``;
``python -m hrl_runtime.experiments.planning_bench --contender NAME`` is one worker.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.experiments.planning_contenders import (
    CONTENDERS,
    DESCRIPTIONS,
    FLOORS,
    ROLLOUT_TOLERANCE,
    TORCH_PEERS,
    Workload,
    hrl_mppi_contender,
    setup_contender,
)

SWEEP_K = (256, 512, 1024, 2048, 4096, 8192)
SWEEP_T = (5, 10, 20, 40)


def thread_env(contender: str, threads: int) -> dict[str, str]:
    """Environment pinning every thread pool for one contender's process.

    numba parallelizes over sample blocks with single-threaded BLAS inside (our planner and the
    block GEMM floor); the torch peers get torch's intra-op pool (OpenMP, and
    ``torch.set_num_threads`` in :func:`worker`); the BLAS GEMM floor gets OpenBLAS's pool. Each
    uses ``threads`` cores in all.
    """
    env = dict(os.environ)
    blas = "1" if contender in ("hrl_mppi", "gemm_floor_blocks") else str(threads)
    env.update(
        OMP_NUM_THREADS=str(threads) if contender in TORCH_PEERS else "1",
        OPENBLAS_NUM_THREADS=blas,
        MKL_NUM_THREADS=blas,
        NUMBA_NUM_THREADS=str(threads),
    )
    return env


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


def worker(
    contender: str, workload: Workload, repeats: int, warmup: int, threads: int = 2
) -> dict[str, Any]:
    """Runs one contender in this process; returns its timings and rollout check.

    Args:
        contender: One of :data:`CONTENDERS`.
        workload: The problem size.
        repeats: Timed iterations.
        warmup: Untimed iterations before them.
        threads: torch's intra-op threads for the torch peers (the cores every contender gets);
            the other contenders keep torch at one thread (they use it only to build the net).

    Returns:
        The JSON-ready result: ``times_ms``, the rollout check (run after the timed iterations,
        on one more iteration of its own) and the thread pools in effect.
    """
    import torch

    torch.set_num_threads(threads if contender in TORCH_PEERS else 1)
    iterate, check = setup_contender(contender, workload)
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = time_iterations(iterate, repeats, warmup)
    after = resource.getrusage(resource.RUSAGE_SELF)
    calls = repeats + warmup
    error = check()  # outside the timed region
    return {
        "contender": contender,
        "description": DESCRIPTIONS[contender],
        "workload": asdict(workload),
        "times_ms": times.tolist(),
        "rollout_max_abs_error": error,
        "rollout_check": "n/a" if error is None else bool(error <= ROLLOUT_TOLERANCE),
        # Fresh memory the iteration touches costs page faults, served by the kernel: how much of
        # a peer's time is the operating system's, and why it swings with the machine's state.
        "page_faults_per_iteration": (after.ru_minflt - before.ru_minflt) / calls,
        "system_ms_per_iteration": (after.ru_stime - before.ru_stime) * 1e3 / calls,
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
            iterate, _ = hrl_mppi_contender(Workload(num_samples=samples, horizon=horizon))
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

    Args:
        runs: Side-by-side runs; each figure is the median over runs.
        repeats: Timed iterations per run (half, at least 20, for the slow pytorch_mppi rows).
        threads: Cores every contender may use (numba's pool for ours, torch's for the peers).
        sweep: Also time our planner over the K x T grid.
        out_dir: Where ``bench.json``, ``bench.md`` and ``bench.png`` go (None: nowhere).
        progress: Show a progress bar on stderr.

    Returns:
        One JSON-ready object: per contender median/p90/p99 (each the median over runs of that
        run's statistic) and what it runs, the speed-up ratios (``speedup_vs_<peer>`` for every
        torch peer), the GEMM-floor efficiency (fastest floor over our median), the 1/5/15-minute
        load averages when it started, the sweep and its linearity.
    """
    from tqdm import tqdm

    workload = Workload()
    per_contender: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    jobs = [(run, name) for run in range(runs) for name in CONTENDERS]
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    for _, name in tqdm(jobs, desc="contenders", disable=not progress, file=sys.stderr):
        count = repeats if not name.startswith("pytorch_mppi") else max(repeats // 2, 20)
        args = ["--contender", name, "--repeats", str(count), "--warmup", "10"]
        args += ["--threads", str(threads)]
        per_contender[name].append(_spawn(args, thread_env(name, threads), timeout=600))
    contenders = {name: combine_runs(results) for name, results in per_contender.items()}
    ours = contenders["hrl_mppi"]["median_ms"]
    report: dict[str, Any] = {
        "workload": asdict(workload),
        "machine": machine_info(threads),
        "runs": runs,
        "contenders": contenders,
        **{f"speedup_vs_{name}": contenders[name]["median_ms"] / ours for name in TORCH_PEERS},
        "gemm_floor_ms": min(contenders[name]["median_ms"] for name in FLOORS),
        "gemm_floor_efficiency": min(contenders[name]["median_ms"] for name in FLOORS) / ours,
        "p99_over_median": contenders["hrl_mppi"]["p99_ms"] / ours,
        "rollout_tolerance": ROLLOUT_TOLERANCE,
        # Other load skews the figures, the torch peers' most (their pools span every core).
        "load_average_at_start": load_at_start,
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


def combine_runs(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender's row from its workers' results (one per run): each statistic is the median
    over runs of that run's statistic; the rollout error is the largest over runs."""
    per_run = [summarize(np.asarray(r["times_ms"])) for r in results]
    errors = [r["rollout_max_abs_error"] for r in results]
    checked = errors[0] is not None
    return {
        **{key: float(np.median([run[key] for run in per_run])) for key in per_run[0]},
        "run_medians_ms": [run["median_ms"] for run in per_run],
        "page_faults_per_iteration": float(
            np.median([r.get("page_faults_per_iteration", np.nan) for r in results])
        ),
        "system_ms_per_iteration": float(
            np.median([r.get("system_ms_per_iteration", np.nan) for r in results])
        ),
        "iterations": int(sum(len(r["times_ms"]) for r in results)),
        "rollout_max_abs_error": float(max(errors)) if checked else None,
        "rollout_check": bool(max(errors) <= ROLLOUT_TOLERANCE)
        if checked
        else results[0]["rollout_check"],
        "threads": results[0]["threads"],
        "description": results[0]["description"],
    }


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
        "| contender | median ms | p90 ms | p99 ms | page faults / iter | kernel ms / iter "
        "| rollout max abs error vs float64 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["contenders"].items():
        error = row["rollout_max_abs_error"]
        lines.append(
            f"| {name} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row.get('page_faults_per_iteration', float('nan')):.0f} | "
            f"{row.get('system_ms_per_iteration', float('nan')):.1f} | "
            f"{'n/a (GEMMs only)' if error is None else f'{error:.1e}'} |"
        )
    lines += [
        "",
        f"speed-up vs pytorch_mppi {report['speedup_vs_pytorch_mppi']:.2f}x, "
        f"vs pytorch_mppi in inference mode {report['speedup_vs_pytorch_mppi_inference']:.2f}x, "
        f"vs plain torch loop {report['speedup_vs_torch_loop']:.2f}x; "
        f"GEMM-floor efficiency {report['gemm_floor_efficiency']:.2f}; "
        f"p99/median {report['p99_over_median']:.2f}",
        "",
        *(f"- {name}: {row.get('description', '')}" for name, row in report["contenders"].items()),
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
    load = report.get("load_average_at_start")
    header = [
        f"W1 planning latency on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['threads_per_contender']} threads per contender), median of "
        f"{report['runs']} runs" + (f", load average {load[0]:.2f} at start" if load else ""),
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
    else:
        sweep.set_axis_off()
        sweep.text(0.5, 0.5, "no K x T sweep (--no-sweep)", ha="center", va="center")
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
    parser.add_argument("--threads", type=int, default=2, help="torch threads of a torch peer")
    args = parser.parse_args(argv)
    if args.sweep:
        print(json.dumps(sweep_worker(args.repeats, args.budget_s)))
    else:
        result = worker(args.contender, Workload(), args.repeats, args.warmup, args.threads)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
