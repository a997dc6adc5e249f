"""restore.rebuild_system: the one path from a checkpoint to a system (eval, predict and export use it)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from tconvseg.data.datasets.info import synthetic_info
from tconvseg.inference.restore import rebuild_system, resolve_checkpoint, set_up_inference
from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, UnsafeCheckpointError, load_checkpoint
from tests.helpers.inference import train_tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = train_tiny(tmp_path_factory.mktemp("restore"))
    return str(path), load_checkpoint(path)


def test_the_rebuilt_system_has_the_trained_weights_and_class_weights(checkpoint):
    path, ckpt = checkpoint
    system = rebuild_system(ckpt, path, synthetic_info(4)).eval()
    state = system.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt["state_dict"].items())
    assert torch.equal(system.criterion.weight, ckpt["state_dict"]["class_weights"])
    with torch.no_grad():
        assert system(torch.randn(1, 3, 37, 45)).shape == (1, 4, 37, 45)


def test_a_given_model_config_replaces_the_stored_one(checkpoint):
    path, ckpt = checkpoint
    stored = OmegaConf.create(ckpt[CKPT_MODEL_CONFIG])
    system = rebuild_system(ckpt, path, synthetic_info(4), model_cfg=stored)
    assert torch.equal(system.state_dict()["class_weights"], ckpt["state_dict"]["class_weights"])
    other = OmegaConf.merge(stored, {"net": {"topology": "32s"}})
    with pytest.raises(ValueError, match="trained with another model.*topology=8s"):
        rebuild_system(ckpt, path, synthetic_info(4), model_cfg=other)


def test_a_foreign_target_in_the_stored_config_is_refused(checkpoint):
    path, ckpt = checkpoint
    poisoned = {**ckpt, CKPT_MODEL_CONFIG: {**ckpt[CKPT_MODEL_CONFIG], "_target_": "os.system"}}
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        rebuild_system(poisoned, path, synthetic_info(4))


def test_no_model_config_and_a_missing_file_are_explained(checkpoint, tmp_path):
    path, ckpt = checkpoint
    with pytest.raises(ValueError, match="holds no model config"):
        rebuild_system({k: v for k, v in ckpt.items() if k != CKPT_MODEL_CONFIG}, path, synthetic_info(4))
    with pytest.raises(FileNotFoundError, match=r"nope.ckpt: no such checkpoint file; expected a .ckpt"):
        resolve_checkpoint(str(tmp_path / "nope.ckpt"), str(tmp_path))


def test_the_inference_set_up_checks_the_options_and_sets_up_the_process():
    cfg = OmegaConf.create({"tta": "multiscale_flip", "tta_scales": [0.75, 1.0], "tiles": "none", "adapt_bn": False,
                            "seed": 7, "float32_matmul_precision": "medium"})
    before = torch.get_float32_matmul_precision()
    try:
        options = set_up_inference(cfg)
        assert options.tta == {"mode": "multiscale_flip", "scales": (0.75, 1.0)} and options.adapt_bn is False
        assert options.tiling["tiles"] == "none" and torch.get_float32_matmul_precision() == "medium"
        first = torch.rand(3)
        set_up_inference(cfg)
        assert torch.equal(torch.rand(3), first)  # seeded
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(ValueError, match="tta='mirror' is not a test-time augmentation"):
        set_up_inference(OmegaConf.create({"tta": "mirror"}))
