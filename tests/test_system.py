"""The training system: the configured loss and class weights, auxiliary losses, the objective."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from tconvseg.entry import ObjectiveError, objective
from tconvseg.losses import CrossEntropy, OhemCrossEntropy
from tconvseg.training.builders import ConfigError, build_datamodule, build_system, class_weights_for
from tconvseg.training.system import SegmentationSystem
from tests.helpers.configs import compose_cfg


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sys")
    cfg = compose_cfg("train", tmp, ["data=synthetic", "model=tiny"])
    return tmp, build_datamodule(cfg)


def test_the_configured_loss_gets_the_data_modules_class_weights(synthetic):
    tmp, datamodule = synthetic
    cfg = compose_cfg("train", tmp, ["data=synthetic", "model=tiny", "loss=ohem", "model.class_weighting=median_frequency"])
    system = build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule))
    expected = datamodule.class_weights("median_frequency")
    assert isinstance(system.criterion, OhemCrossEntropy)
    assert torch.equal(system.class_weights, expected) and torch.equal(system.criterion.weight, expected)
    assert system.criterion.ignore_index == datamodule.ignore_index


def test_explicit_and_no_class_weights(synthetic):
    tmp, datamodule = synthetic
    def model(weighting: str):
        return compose_cfg("train", tmp, ["data=synthetic", "model=tiny", f"model.class_weighting={weighting}"]).model

    listed = build_system(model("[1,2,3,4]"), datamodule.info, class_weights_for(model("[1,2,3,4]"), datamodule))
    assert listed.class_weights.tolist() == [1, 2, 3, 4]
    assert build_system(model("[1,2,3,4]"), datamodule.info).class_weights.tolist() == [1, 2, 3, 4]  # listed: no caller needed
    none = build_system(model("null"), datamodule.info, class_weights_for(model("null"), datamodule))
    assert none.class_weights.tolist() == [1, 1, 1, 1]
    softened = build_system(model("median_frequency_sqrt"), datamodule.info, class_weights_for(model("median_frequency_sqrt"), datamodule))
    assert torch.allclose(softened.criterion.weight, datamodule.class_weights("median_frequency").sqrt())
    with pytest.raises(ConfigError, match=r"model.class_weighting='inverse' is invalid; expected median_frequency, median_frequency_sqrt"):
        build_system(model("inverse"), datamodule.info)


def test_restored_class_weights_reach_the_loss(synthetic):
    tmp, datamodule = synthetic
    cfg = compose_cfg("train", tmp, ["data=synthetic", "model=tiny"])
    trained = build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule))
    fresh = build_system(cfg.model, datamodule.info)
    assert not torch.equal(fresh.criterion.weight, trained.class_weights)
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.criterion.weight, trained.class_weights)


def _system(aux_stages: list[int]) -> SegmentationSystem:
    from tconvseg.nn import FCN, plain_conv_encoder

    encoder = plain_conv_encoder([{"channels": 4, "stride": 2}, {"channels": 8, "stride": 2}, {"channels": 8, "stride": 2}])
    net = FCN(encoder, 3, topology="8s", aux_stages=aux_stages)
    return SegmentationSystem(net, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), num_classes=3, ignore_index=255, aux_weight=0.25)


def test_training_adds_weighted_auxiliary_losses_and_evaluation_does_not():
    torch.manual_seed(0)
    system = _system([-2])
    system.log = lambda *a, **k: None  # no trainer attached
    images, masks = torch.randn(2, 3, 19, 23), torch.randint(0, 3, (2, 19, 23))
    main, (aux,) = system.net.forward_with_aux(images)
    ce = CrossEntropy(ignore_index=255)
    expected = ce(main, masks) + 0.25 * ce(aux, masks)
    torch.testing.assert_close(system.model_step((images, masks), "train"), expected)
    torch.testing.assert_close(system.model_step((images, masks), "val"), ce(main, masks))


def test_objective_returns_the_optimized_metric():
    cfg = OmegaConf.create({"optimized_metric": "best/val/mIoU"})
    assert objective({"best/val/mIoU": 0.5, "val/mIoU": 0.4}, cfg) == 0.5
    assert objective({"val/mIoU": 0.4}, cfg) is None  # single run: a warning, not a failure
    assert objective({"val/mIoU": 0.4}, OmegaConf.create({"optimized_metric": None})) is None


def test_a_sweep_without_its_metric_fails(monkeypatch):
    from hydra.types import RunMode

    class _Hydra:
        mode = RunMode.MULTIRUN

    monkeypatch.setattr("tconvseg.entry.HydraConfig.initialized", staticmethod(lambda: True))
    monkeypatch.setattr("tconvseg.entry.HydraConfig.get", staticmethod(lambda: _Hydra))
    with pytest.raises(ObjectiveError, match="optimized_metric='best/val/mIoU' is not among"):
        objective({"val/mIoU": 0.4}, OmegaConf.create({"optimized_metric": "best/val/mIoU"}))
