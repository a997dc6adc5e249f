"""Fine-tuning options of a pretrained encoder: the data's normalisation checked, the encoder's learning rate factor."""

import pytest
import torch
from omegaconf import OmegaConf

from tconvseg.data.datasets.info import CAMVID
from tconvseg.training.builders import ConfigError, build_system, check_input_normalization
from tests.helpers.configs import compose_cfg
from tests.nn.test_efficientnet_lite import needs_weights

LITE = ["model=fcn8s_efficientnet_lite0", "model.net.encoder.weights=null"]


def test_a_data_normalisation_the_encoder_does_not_expect_is_refused(tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=camvid", *LITE])
    system = build_system(cfg.model, CAMVID)
    check_input_normalization(system.net, cfg.data)  # the defaults: ImageNet's, what the stem maps from
    OmegaConf.set_struct(cfg, False)
    bad = OmegaConf.merge(cfg.data, {"eval_transforms": {"mean": [0.5, 0.5, 0.5]}})
    with pytest.raises(ConfigError, match=r"data.eval_transforms.mean=\[0.5, 0.5, 0.5\] but the encoder expects inputs normalised"):
        check_input_normalization(system.net, bad)
    none = OmegaConf.merge(cfg.data, {"train_transforms": {"std": None}})
    with pytest.raises(ConfigError, match=r"data.train_transforms.std=None"):
        check_input_normalization(system.net, none)
    resnet = build_system(compose_cfg("train", tmp_path, ["data=camvid", "model=fcn8s_resnet18"]).model, CAMVID)
    check_input_normalization(resnet.net, bad)  # an encoder that states nothing is not checked


def test_the_encoder_learns_at_its_own_rate(tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=camvid", *LITE, "model.encoder_lr_factor=0.1", "model.optimizer.lr=0.002"])
    system = build_system(cfg.model, CAMVID)
    groups = system.parameter_groups()
    encoder_ids = {id(p) for p in system.net.encoder.parameters()}
    assert len(groups) == 2 and groups[0]["lr"] == pytest.approx(0.0002) and "lr" not in groups[1]
    assert {id(p) for p in groups[0]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups[1]["params"]}
    optimizer = system.optimizer_factory(params=groups)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.0002, 0.002])
    same = build_system(compose_cfg("train", tmp_path, ["data=camvid", *LITE]).model, CAMVID)
    assert len(same.parameter_groups()) == 1
    with pytest.raises(Exception, match=r"model.encoder_lr_factor=0 is invalid"):
        build_system(OmegaConf.merge(cfg.model, {"encoder_lr_factor": 0}), CAMVID)


@needs_weights
def test_a_pretrained_run_trains_restores_and_scores(tmp_path):
    from tconvseg.tasks.evaluate import evaluate
    from tconvseg.tasks.train import train
    from tests.helpers.configs import CHEAP
    from tests.helpers.fakes import make_camvid_tree

    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=4, n_val=2, n_test=0, size=(45, 61))
    overrides = ["data=camvid", "model=fcn8s_efficientnet_lite0", *CHEAP, "trainer.max_epochs=1", "data.batch_size=2",
                 "model.encoder_lr_factor=0.5", "data.train_transforms.crop_size=null"]
    metrics, objects = train(compose_cfg("train", tmp_path, overrides))
    stem = objects["model"].net.encoder.stages[0][0].body.conv.weight
    from tconvseg.nn.encoders.efficientnet_lite_weights import read_checkpoint

    assert not torch.equal(stem, read_checkpoint("efficientnet_lite0")["_conv_stem.weight"])  # fine-tuned, from the weights
    assert torch.allclose(stem, read_checkpoint("efficientnet_lite0")["_conv_stem.weight"], atol=0.05)
    out = tmp_path / "val.json"
    scores, _ = evaluate(compose_cfg("eval", tmp_path, ["data=camvid", "trainer=cpu", "split=val", "samples=0",
                                                        f"ckpt_path={objects['best_checkpoint']}", f"output_json={out}"]))
    assert scores["val/mIoU"] == pytest.approx(metrics["best/val/mIoU"], abs=1e-6)
