"""The Ray backend on a local Ray instance with 2 CPUs: a sweep gives the local backend's per-seed
rows and survives a killed worker; `hrl compare spirl` and `hrl compare am` give the same
results on either backend."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from test_sweep import (  # noqa: F401 (a fixture)
    kill_a_trial_when_one_finished,
    killed_local_sweep,
    processes,
)

from hrl_runtime.cli import main
from hrl_runtime.experiments.am_config import EvalConfig
from hrl_runtime.experiments.am_eval import run_variants
from hrl_runtime.experiments.backends import BackendConfig
from hrl_runtime.experiments.spirl_compare import run_comparison
from hrl_runtime.experiments.sweep import RESULTS_FILE

ray = pytest.importorskip(
    "ray", reason="Ray is not installed; `pip install -e '.[ray]'` (make test installs it)"
)

LOCAL = BackendConfig("local", jobs=2)
RAY = BackendConfig("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance with 2 CPUs for the module (the backend uses it and leaves it)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def ray_trial_processes() -> list[int]:
    """Ray workers running a trial (Ray titles a busy worker with its task's function)."""
    return processes(lambda parent, command: command.startswith("ray::run_trial"))


def _sweep(capsys, out, backend: str) -> dict:
    status = main(["sweep", "follow", "--skill", "dads-pointmass", "--planner", "mppi", "--env",
                   "hrl/PointArena-v0", "--random-goals", "1", "--max-steps", "40", "--seeds",
                   "1-3", "--backend", backend, "--retries", "2", "--out", str(out),
                   "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)  # exactly one JSON object


def test_ray_sweep_rows_equal_the_local_backend_and_survive_a_killed_worker(
    tmp_path,
    capsys,
    killed_local_sweep,  # noqa: F811 (the fixture imported above)
):
    results = tmp_path / RESULTS_FILE
    killed: list[int] = []
    killer = threading.Thread(
        target=kill_a_trial_when_one_finished, args=(results, killed, ray_trial_processes)
    )
    killer.start()
    status = main(["sweep", "follow", "--skill", "dads-pointmass", "--planner", "mppi", "--env",
                   "hrl/PointArena-v0", "--random-goals", "1", "--max-steps", "40", "--seeds",
                   "1-3", "--backend", "ray", "--retries", "2", "--out", str(tmp_path),
                   "--json"])  # fmt: skip
    captured = capsys.readouterr()
    killer.join()
    assert status == 0, captured.err
    on_ray = json.loads(captured.out)  # exactly one JSON object, whatever Ray printed
    assert killed, "no Ray worker was running a trial after the first trial finished"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["kwargs"]["seed"] for r in records) == [1, 2, 3]  # each once, none lost
    assert on_ray["backend"] == "ray" and on_ray["trials_run"] == 3

    on_local = killed_local_sweep[0]
    assert on_ray["rows"] == on_local["rows"]
    assert on_ray["success_rate"] == on_local["success_rate"]


def test_compare_am_gives_the_same_rows_on_either_backend(tmp_path):
    config = EvalConfig(goals_per_seed=1, max_steps=120, value_check=None)
    variants = {"shipped": ["am-maze"]}
    reports = {
        backend.backend: run_variants(
            variants, [5], config, tmp_path / backend.backend, progress=False, backend=backend
        )
        for backend in (LOCAL, RAY)
    }
    local, on_ray = reports["local"], reports["ray"]
    assert [(r["planner"], r["seed"]) for r in on_ray["rows"]] == [("chaining", 5), ("sequence", 5)]
    assert on_ray["rows"] == local["rows"] and on_ray["table"] == local["table"]
    assert len({row["mean_final_distance"] for row in on_ray["rows"]}) > 1


def test_compare_spirl_gives_the_same_curves_on_either_backend(tmp_path):
    reports = {
        backend.backend: run_comparison(
            "spirl-maze",
            "hrl/PointMazeFar-v0",
            60,
            [0],
            tmp_path / backend.backend,
            eval_every=60,
            methods=("spirl",),
            progress=False,
            backend=backend,
            eval_episodes=1,
        )
        for backend in (LOCAL, RAY)
    }
    local, on_ray = reports["local"], reports["ray"]
    curves = {name: (tmp_path / name / "curves.csv").read_text().splitlines() for name in reports}
    assert curves["ray"] == curves["local"] and len(curves["ray"]) == 1 + 2
    # NaN diagnostics (no update yet in so few steps) compare equal as JSON text
    assert json.dumps(on_ray["methods"]["spirl"]["final_success_rate_per_seed"]) == json.dumps(
        local["methods"]["spirl"]["final_success_rate_per_seed"]
    )


def test_env_batch_workers_as_ray_actors_step_like_worker_processes():
    from envs.batch import EnvBatch

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (4, 5, 2)).astype(np.float32)  # (steps, N, da)
    active = np.array([True, True, False, True, True])
    trajectories = {}
    for backend in ("processes", "ray"):
        batch = EnvBatch("hrl/PointArena-v0", 5, 30, workers=2, worker_backend=backend)
        try:
            steps = [batch.reset(list(range(10, 15)))]
            for action in actions:
                steps.extend(batch.step(action, active, repeat=2))
        finally:
            batch.close()
        trajectories[backend] = steps
    for on_ray, in_processes in zip(trajectories["ray"], trajectories["processes"], strict=True):
        np.testing.assert_array_equal(on_ray, in_processes)
    assert np.abs(trajectories["ray"][-4][2]).sum() == 0  # the inactive environment stayed put
    assert ray.is_initialized()  # the batch left the module's instance running


def test_a_dads_trainer_with_ray_env_workers_learns_what_it_learns_with_processes(tmp_path):
    """The trainers' environment workers as Ray actors: the same seed gives the same run."""
    from test_dads import small_config

    from skill_library.dads.train import DADSTrainer

    histories = {}
    for backend in ("processes", "ray"):
        config = small_config(
            steps=160, num_envs=4, env_workers=1, env_worker_backend=backend, checkpoint_every=1
        )
        trainer = DADSTrainer(config, tmp_path / backend)
        path = trainer.train(progress=False, name=f"tiny-{backend}")
        histories[backend] = json.loads((path / "history.json").read_text())
    assert len(histories["ray"]) == len(histories["processes"]) == 2
    for on_ray, in_processes in zip(histories["ray"], histories["processes"], strict=True):
        for key in ("displacement_spread", "dynamics_log_likelihood", "intrinsic_reward"):
            assert on_ray[key] == in_processes[key], key
    assert ray.is_initialized()


def test_sharded_collection_gives_the_same_dataset_on_either_backend(tmp_path):
    import envs

    datasets = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"{backend}.h5"
        assert main(["collect", "--episodes", "4", "--shards", "2", "--seed", "2", "--out",
                     str(out), "--backend", backend])  == 0  # fmt: skip
        datasets[backend] = envs.load_dataset(out)
    np.testing.assert_array_equal(datasets["ray"].observations, datasets["local"].observations)
    np.testing.assert_array_equal(datasets["ray"].actions, datasets["local"].actions)


def test_the_embedding_trainer_collects_the_same_with_ray_env_workers():
    """The embedding trainer's environment workers as Ray actors collect what one process does."""
    from skill_library.embedding.config import EmbeddingConfig
    from skill_library.embedding.train import EmbeddingTrainer

    collected = {}
    for backend in ("processes", "ray"):
        config = EmbeddingConfig(num_envs=4, env_workers=1, env_worker_backend=backend, seed=3)
        trainer = EmbeddingTrainer(config, "unused")
        try:
            collected[backend] = (trainer.collect(), trainer.replay.state()[0])
        finally:
            trainer.close()
    assert collected["ray"][0] == collected["processes"][0]
    for key, values in collected["processes"][1].items():
        np.testing.assert_array_equal(collected["ray"][1][key], values, err_msg=key)
