"""adapt_bn=true: batch-norm statistics recomputed from the images about to be scored, in eval and predict."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tconvseg.callbacks import BatchNormAdaptation, check_adapt_bn
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.predict import predict
from tconvseg.training.checkpoints import load_checkpoint
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import train_tiny, write_image


class Scorer(L.LightningModule):
    """conv -> batch norm; ``inference`` is what the test / predict steps would run."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def inference(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(images))


def stub_trainer(loaders, world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, test_dataloaders=loaders, predict_dataloaders=loaders)


def test_the_statistics_become_those_of_the_scored_images_and_nothing_else_changes():
    model = Scorer().eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    shifted = [(torch.randn(5, 3, 9, 11) * 3 + 2, torch.zeros(5, 9, 11)) for _ in range(3)]  # (images, masks)
    BatchNormAdaptation().on_test_start(stub_trainer([shifted]), model)
    features = model.conv(torch.cat([images for images, _ in shifted]))
    # cumulative average over equal batches: the mean of the batch means, and of the (unbiased) batch variances
    means = torch.stack([model.conv(images).mean(dim=(0, 2, 3)) for images, _ in shifted])
    variances = torch.stack([model.conv(images).transpose(0, 1).flatten(1).var(dim=1) for images, _ in shifted])
    torch.testing.assert_close(model.norm.running_mean, means.mean(0))
    torch.testing.assert_close(model.norm.running_var, variances.mean(0))
    torch.testing.assert_close(model.norm.running_mean, features.mean(dim=(0, 2, 3)))
    assert not model.training and not model.norm.training and model.norm.momentum == 0.1  # modes and momentum restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # weights untouched


def test_predict_batches_are_read_and_undecodable_ones_skipped():
    model = Scorer().eval()
    images = torch.randn(4, 3, 8, 8) + 5
    batches = [{"images": None, "paths": []}, {"images": images, "paths": ["a"] * 4}]
    wrapper = L.LightningModule()
    BatchNormAdaptation(system=model).on_predict_start(stub_trainer([batches]), wrapper)
    torch.testing.assert_close(model.norm.running_mean, model.conv(images).mean(dim=(0, 2, 3)))


def test_more_than_one_process_is_refused_by_name():
    with pytest.raises(ValueError, match=r"adapt_bn=true runs in one process, but this test run has 2.*trainer.devices=1"):
        BatchNormAdaptation().on_test_start(stub_trainer([[]], world_size=2), Scorer())


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_non_boolean_is_named(value):
    with pytest.raises(ValueError, match=rf"adapt_bn={value!r} is invalid; expected true .* or false"):
        check_adapt_bn(value)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("train"))


def _norm_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if "running_" in k}


def test_eval_adapts_to_the_split_and_says_so_in_its_report(ckpt, tmp_path):
    stored = {k.removeprefix("net."): v for k, v in load_checkpoint(ckpt)["state_dict"].items() if "running_" in k}
    common = ["data=synthetic", "data.num_workers=0", f"ckpt_path={ckpt}", "samples=0"]
    plain, plain_objects = evaluate(compose_cfg("eval", tmp_path, [*common, f"output_json={tmp_path / 'plain' / 'r.json'}"]))
    adapted, objects = evaluate(compose_cfg("eval", tmp_path, [*common, "adapt_bn=true", f"output_json={tmp_path / 'adapted' / 'r.json'}"]))
    after = _norm_buffers(objects["model"].net)
    assert stored and after.keys() == stored.keys()
    assert all(torch.equal(v, stored[k]) for k, v in _norm_buffers(plain_objects["model"].net).items())
    assert all(not torch.equal(v, stored[k]) for k, v in after.items())
    assert plain["val/mIoU"] != adapted["val/mIoU"] or plain["val/loss"] != adapted["val/loss"]
    assert json.loads((tmp_path / "adapted" / "r.json").read_text())["adapt_bn"] is True
    assert json.loads((tmp_path / "plain" / "r.json").read_text())["adapt_bn"] is False
    # the adaptation pass leaves the scoring pass whole: every labelled pixel is counted as without it
    totals = [np.loadtxt(tmp_path / run / "confusion_matrix_val_last.csv", delimiter=",", skiprows=1, usecols=range(1, 5)).sum()
              for run in ("plain", "adapted")]
    assert totals[0] == totals[1] > 0
    # the checkpoint on disk keeps its statistics: nothing is written back
    assert all(torch.equal(v, stored[k.removeprefix("net.")]) for k, v in load_checkpoint(ckpt)["state_dict"].items() if "running_" in k)


def test_predict_adapts_to_the_input_images(ckpt, tmp_path):
    for i in range(3):
        write_image(tmp_path / "in" / f"p{i}.png", (20, 28), seed=i)
    overrides = [f"ckpt_path={ckpt}", f"input={tmp_path / 'in'}", f"output_dir={tmp_path / 'out'}", "data=synthetic"]
    quiet = ["callbacks=none", "+trainer.enable_progress_bar=false"]
    summary, objects = predict(compose_cfg("predict", tmp_path, [*overrides, *quiet, "adapt_bn=true"]))
    stored = {k.removeprefix("net."): v for k, v in load_checkpoint(ckpt)["state_dict"].items() if "running_" in k}
    assert sorted(summary["written"]) == ["p0", "p1", "p2"]
    assert all(not torch.equal(v, stored[k]) for k, v in _norm_buffers(objects["system"].net).items())
    norms = [m for m in objects["system"].modules() if isinstance(m, _BatchNorm)]
    assert norms and all(m.momentum == 0.1 for m in norms)


def test_eval_and_predict_check_the_option_before_loading_anything(tmp_path):
    missing = tmp_path / "no.ckpt"
    with pytest.raises(ValueError, match="adapt_bn='yes' is invalid"):
        evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", f"ckpt_path={missing}", "adapt_bn=yes"]))
    with pytest.raises(ValueError, match="adapt_bn='yes' is invalid"):
        predict(compose_cfg("predict", tmp_path, [f"ckpt_path={missing}", f"input={tmp_path}", "data=synthetic", "adapt_bn=yes"]))


class PooledNorm(Scorer):
    """A batch norm after global pooling: one value per channel for a batch of one image."""

    def inference(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(images).mean(dim=(2, 3), keepdim=True))


def test_one_value_per_channel_is_explained():
    single = [(torch.randn(1, 3, 9, 9), torch.zeros(1, 9, 9))]
    model = PooledNorm().eval()
    with pytest.raises(ValueError, match=r"adapt_bn=true: a batch-norm layer .* single value per channel .*batch_size=8"):
        BatchNormAdaptation().on_test_start(stub_trainer([single]), model)
    assert not model.norm.training and model.norm.momentum == 0.1  # modes and momentum restored after the failure
