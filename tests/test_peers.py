"""torchvision's segmentation models as peers: the project's contract, random init, config errors,
and a trained peer's checkpoint evaluates (its target is on the checkpoint allowlist)."""

from __future__ import annotations

import pytest
import torch

from tconvseg.peers import PEERS, torchvision_peer
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, check_targets, load_checkpoint
from tests.helpers.configs import CHEAP, compose_cfg


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_a_peer_maps_images_to_logits_of_the_same_size(name):
    torch.manual_seed(0)
    peer = torchvision_peer(name, num_classes=5).train()
    x = torch.randn(2, 3, 45, 61)
    logits = peer(x)
    assert logits.shape == (2, 5, 45, 61)
    logits.mean().backward()
    assert all(p.grad is not None for p in peer.parameters() if p.requires_grad)
    assert getattr(peer.model, "aux_classifier", None) is None  # aux_loss off


def test_peer_config_errors_name_the_keys():
    with pytest.raises(ValueError, match=r"model.net.name='segformer' is not a known torchvision peer; expected one of"):
        torchvision_peer("segformer", 3)
    with pytest.raises(ValueError, match=r"model.net.encoder=.*model.net.aux_stages=\[-2\] are set .*expected null and \[\]"):
        torchvision_peer("fcn_resnet50", 3, aux_stages=[-2])


def test_every_peer_has_a_model_option(tmp_path):
    for name in PEERS:
        cfg = compose_cfg("train", tmp_path, [f"model=peer_{name}"])
        assert cfg.model.net.name == name and cfg.model.net._target_ == "tconvseg.peers.torchvision_peer"


def test_a_trained_peer_checkpoint_evaluates(tmp_path):
    overrides = ["data=synthetic", "model=peer_lraspp_mobilenet_v3_large", *CHEAP, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                 "validate_best=false"]
    metrics, objects = train(compose_cfg("train", tmp_path, overrides))
    checkpoint = load_checkpoint(objects["best_checkpoint"])
    check_targets(checkpoint[CKPT_MODEL_CONFIG], "peer")  # allowed, no error
    result, _ = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={objects['best_checkpoint']}"]))
    assert result["val/mIoU"] == pytest.approx(metrics["val/mIoU"], abs=1e-6)
