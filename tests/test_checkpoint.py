"""Checkpoints round-trip nested training state without pickle."""

from __future__ import annotations

import json

import numpy as np
import torch

from skill_library.checkpoint import load_checkpoint, save_checkpoint


def test_optimizer_and_module_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": np.random.default_rng(5).bit_generator.state,
        "history": [{"loss": 1.5}, {"loss": 0.5}],
        "array": np.arange(6.0).reshape(2, 3),
        "none": None,
        "scalar": torch.tensor(2.5),
    }
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    restored.load_state_dict(loaded["optimizer"])  # int keys and tensors survive
    assert set(loaded["optimizer"]["state"]) == {0, 1}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    generator = np.random.default_rng()
    generator.bit_generator.state = loaded["rng"]
    assert generator.integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    np.testing.assert_array_equal(loaded["array"], state["array"])
    assert loaded["history"] == state["history"] and loaded["none"] is None
    assert loaded["scalar"].shape == () and loaded["scalar"].item() == 2.5
    json.loads((tmp_path / "state.json").read_text())  # the structure is plain JSON
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_resume_refuses_another_configuration(tmp_path):
    from dataclasses import dataclass

    import pytest

    from hrl_runtime.errors import ConfigError
    from skill_library.checkpoint import config_json, load_resumable

    @dataclass(frozen=True)
    class Config:
        steps: int = 10
        hidden: tuple[int, ...] = (4, 4)

    assert load_resumable(tmp_path, Config()) is None  # nothing to resume yet
    save_checkpoint(tmp_path, {"config": config_json(Config()), "step": 3})
    assert load_resumable(tmp_path, Config())["step"] == 3
    with pytest.raises(ConfigError, match="different configuration"):
        load_resumable(tmp_path, Config(hidden=(8,)))
