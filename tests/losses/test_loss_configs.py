"""The loss config group: each option builds a working loss and lands in model.loss."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tconvseg.losses import CombinedLoss, CrossEntropy, DiceLoss, LovaszSoftmax, OhemCrossEntropy
from tests.helpers.configs import CONFIG_DIR, compose_cfg
from tests.losses.cases import random_case

# --- configs ----------------------------------------------------------------------------------

LOSS_CONFIGS = {
    "ce": CrossEntropy,
    "ohem": OhemCrossEntropy,
    "lovasz": LovaszSoftmax,
    "dice": DiceLoss,
    "ce_lovasz": CombinedLoss,
}


def test_the_loss_group_has_exactly_the_documented_options():
    assert sorted(p.stem for p in (Path(CONFIG_DIR) / "loss").glob("*.yaml")) == sorted(LOSS_CONFIGS)


@pytest.mark.parametrize("option", sorted(LOSS_CONFIGS))
def test_each_loss_config_builds_a_working_loss(option):
    path = Path(CONFIG_DIR) / "loss" / f"{option}.yaml"
    assert path.read_text().splitlines()[0] == "# @package model.loss"
    factory = instantiate(OmegaConf.load(path))
    assert isinstance(factory, functools.partial)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss = factory(weight=weight, ignore_index=255)
    assert isinstance(loss, LOSS_CONFIGS[option]) and loss.ignore_index == 255
    logits, target = random_case(seed=12)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("option", sorted(LOSS_CONFIGS))
def test_each_loss_config_lands_in_model_loss(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=synthetic", f"loss={option}"])
    assert cfg.model.loss._target_ == f"tconvseg.losses.{LOSS_CONFIGS[option].__name__}"
    assert cfg.model.loss._partial_ is True
    assert "loss" not in cfg
