"""Builds the shipped ``scripted-reach`` package: ``python -m skill_library.scripted.build``.

The gains are hand-set; the dynamics' ``step_length`` is measured in MuJoCo: the median distance
the point mass covers per ``hold_steps`` while cruising toward a far goal.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.registry import SkillRegistry
from skill_library.scripted.reach import ReachConfig, ScriptedReachSkill

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "scripted-reach"
ENV_ID = "hrl/PointArena-v0"


def calibrate_step_length(config: ReachConfig, seed: int = 0, trials: int = 8) -> dict:
    """Measures metres covered per held command in ``hrl/PointArena-v0``.

    Returns:
        ``step_length`` (median over cruising hold periods) and the spread, for the manifest.
    """
    import envs

    env = envs.make_env(ENV_ID)
    skill = ScriptedReachSkill(config, _obs_space(), env.action_space)
    rng = np.random.default_rng(seed)
    steps = []
    for trial in range(trials):
        obs, _ = env.reset(seed=seed + trial, options={"start_xy": (-4.0, -4.0)})
        goal = np.array([4.0, 4.0]) + rng.uniform(-0.5, 0.5, 2)
        start = obs[:2].copy()
        for _ in range(40):
            for _ in range(config.hold_steps):
                obs, *_ = env.step(skill.act(obs, goal))
            if np.linalg.norm(goal - obs[:2]) > 2.0:  # cruising, far from the goal
                steps.append(float(np.linalg.norm(obs[:2] - start)))
            start = obs[:2].copy()
    env.close()
    steps = np.asarray(steps)
    return {
        "step_length": float(np.median(steps)),
        "step_length_p10": float(np.percentile(steps, 10)),
        "step_length_p90": float(np.percentile(steps, 90)),
        "samples": len(steps),
    }


def _obs_space() -> Box:
    return Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)


def build(out: Path = PACKAGE_DIR, version: str = "1.0.0") -> Path:
    """Calibrates and writes the package to ``out``."""
    import envs

    base = ReachConfig()
    calibration = calibrate_step_length(base)
    config = replace(base, step_length=round(calibration["step_length"], 4))
    env = envs.make_env(ENV_ID)
    skill = ScriptedReachSkill(config, _obs_space(), env.action_space)
    env.close()
    return SkillRegistry([out.parent]).save(
        skill,
        out,
        name="scripted-reach",
        version=version,
        description=(
            "PD goal reaching for the 2-D point mass (command = x-y goal, metres) with an "
            "analytic dynamics model for planners"
        ),
        training={"command": "python -m skill_library.scripted.build", "env": ENV_ID},
        metrics=calibration,
        overwrite=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR)
    parser.add_argument("--version", default="1.0.0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(build(args.out, args.version))


if __name__ == "__main__":
    main()
