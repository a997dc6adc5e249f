"""Recipe levers switched from the config: EMA of the weights (validated, checkpointed, resumed), a
training-transform phase, channels_last, torch.compile, thread count, instance-batch norm, ClassMix."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from tconvseg.callbacks import TrainTransformPhase
from tconvseg.nn import InstanceBatchNorm2d
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.export import export
from tconvseg.tasks.train import train
from tconvseg.training.builders import build_datamodule, build_system, build_trainer, class_weights_for
from tconvseg.training.checkpoints import load_checkpoint, resume_checkpoint_path
from tests.helpers.configs import SYNTH, compose_cfg

EMA = ["callbacks=[default,ema]", "callbacks.rich_progress_bar=null", "callbacks.ema.decay=0.9"]


def test_ema_weights_are_validated_checkpointed_tested_and_evaluated(tmp_path):
    metrics, objects = train(compose_cfg("train", tmp_path, [*SYNTH, *EMA, "trainer.max_epochs=2", "test=true"]))
    last = load_checkpoint(resume_checkpoint_path(objects["trainer"].checkpoint_callbacks))
    raw, averaged = last["current_model_state"], last["state_dict"]
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw if raw[k].is_floating_point())
    # The checkpoint's state_dict holds the averaged weights, and evaluating it gives the score
    # logged during training, the re-validated score and the test score of train(cfg).
    best = objects["best_checkpoint"]
    val, _ = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={best}"]))
    test, _ = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={best}", "split=test"]))
    assert val["val/mIoU"] == pytest.approx(metrics["best/checkpoint_score"], abs=1e-6)
    assert metrics["best/val/mIoU"] == pytest.approx(metrics["best/checkpoint_score"], abs=1e-6)
    assert metrics["test/mIoU"] == pytest.approx(test["test/mIoU"], abs=1e-6)


class Interrupt(RuntimeError):
    """Raised by :class:`InterruptAtEpoch` in place of a kill."""


class InterruptAtEpoch(L.Callback):
    """Test device: stops the run with an exception when ``epoch`` starts (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Interrupt(f"interrupted at epoch {self.epoch}")


def test_ema_resume_ends_bit_identical_to_the_uninterrupted_run(tmp_path):
    common = [*SYNTH, *EMA, "validate_best=false", "trainer.max_epochs=3", "threads=1"]
    threads = torch.get_num_threads()
    try:
        _, straight = train(compose_cfg("train", tmp_path / "a", common))
        interrupt = ["+callbacks.stop._target_=tests.test_levers.InterruptAtEpoch", "+callbacks.stop.epoch=1"]
        with pytest.raises(Interrupt):
            train(compose_cfg("train", tmp_path / "b", [*common, *interrupt], run="first"))
        _, resumed = train(compose_cfg("train", tmp_path / "b", [*common, "ckpt_path=last"], run="second"))
    finally:
        torch.set_num_threads(threads)
    ref = load_checkpoint(resume_checkpoint_path(straight["trainer"].checkpoint_callbacks))
    got = load_checkpoint(resume_checkpoint_path(resumed["trainer"].checkpoint_callbacks))
    assert got["global_step"] == ref["global_step"] == 24
    for key in ("state_dict", "current_model_state"):
        assert all(torch.equal(got[key][k], ref[key][k]) for k in ref[key]), f"{key} differs after resume"


class RecordShapes(L.Callback):
    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.shapes.append(tuple(batch[0].shape[-2:]))


def test_a_transform_phase_switches_from_crops_to_whole_images(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=2", "+data.train_transforms.crop_size=[32,48]"])
    datamodule = build_datamodule(cfg)
    phase, shapes = TrainTransformPhase(start=0.5, train_transforms={"crop_size": None}), RecordShapes()
    trainer = build_trainer(cfg, callbacks=[phase, shapes], logger=False, enable_checkpointing=False)
    trainer.fit(build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule)), datamodule=datamodule)
    # 16 steps; the switch comes after step 8 (half the run). Lightning fetches one batch ahead, so
    # the batch right after the switch may still be a crop.
    assert phase.switched and len(shapes.shapes) == 16
    assert set(shapes.shapes[:8]) == {(32, 48)}
    assert set(shapes.shapes[9:]) == {(64, 96)}
    assert phase.state_dict() == {"switched": True}


def test_a_resumed_run_after_the_switch_trains_with_the_new_transforms(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "+data.train_transforms.crop_size=[32,48]"])
    datamodule = build_datamodule(cfg)
    phase = TrainTransformPhase(start=0.5, train_transforms={"crop_size": None})
    phase.load_state_dict({"switched": True})  # what a checkpoint written after the switch restores
    phase.on_train_start(SimpleNamespace(datamodule=datamodule), None)
    image, _ = datamodule.dataset("train")[0]
    assert tuple(image.shape[-2:]) == (64, 96)


def test_a_transform_phase_refuses_persistent_workers(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "data.num_workers=1", "data.persistent_workers=true"])
    datamodule = build_datamodule(cfg)
    with pytest.raises(ValueError, match=r"data.num_workers=1 persistent workers .*expected data.persistent_workers=false"):
        datamodule.set_train_transforms({"crop_size": None})


def test_channels_last_and_compile_keep_outputs_and_parameter_names(tmp_path):
    datamodule = build_datamodule(compose_cfg("train", tmp_path, ["data=synthetic"]))
    plain = build_system(compose_cfg("train", tmp_path, ["data=synthetic", "model=tiny"]).model, datamodule.info)
    fast = build_system(
        compose_cfg("train", tmp_path, ["data=synthetic", "model=tiny", "model.channels_last=true", "model.compile={backend:eager}"]).model,
        datamodule.info,
    )
    fast.load_state_dict(plain.state_dict())
    fast.setup("fit")
    assert set(fast._compiled) == {"forward", "forward_with_aux"}
    assert fast.state_dict().keys() == plain.state_dict().keys()
    conv = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(x), plain.eval()(x), rtol=1e-4, atol=1e-5)


def test_the_training_flags_reach_a_run(tmp_path):
    threads = torch.get_num_threads()
    try:
        cfg = compose_cfg("train", tmp_path, [*SYNTH, "debug=fdr", "threads=1", "model.channels_last=true", "model.compile={backend:eager}",
                                              "model.net.aux_stages=[-2]"])
        metrics, objects = train(cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert objects["model"]._compiled and objects["model"].net.aux_heads is not None
    assert torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))


def test_instance_batch_norm_trains_restores_from_its_checkpoint_and_exports(tmp_path):
    ibn = ["model=fcn8s_mobilenet_v3", "model.net.encoder.ibn_stages=4"]
    cfg = compose_cfg("train", tmp_path, [*SYNTH, *ibn, "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                                          "+trainer.limit_val_batches=1"])
    metrics, objects = train(cfg)
    assert sum(isinstance(m, InstanceBatchNorm2d) for m in objects["model"].net.modules()) == 12
    best = objects["best_checkpoint"]
    scores, restored = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={best}",
                                                                "+trainer.limit_test_batches=1"]))
    assert sum(isinstance(m, InstanceBatchNorm2d) for m in restored["model"].net.modules()) == 12
    assert scores["val/mIoU"] == pytest.approx(metrics["best/checkpoint_score"], abs=1e-6)
    report, _ = export(compose_cfg("export", tmp_path, [f"ckpt_path={best}", "format=onnx", f"output={tmp_path / 'net.onnx'}",
                                                         "sizes=[[45,61],[64,96]]"]))
    assert all(row["max_abs_diff"] < 1e-4 for row in report["parity"])


def test_class_mix_reaches_the_training_steps_only(tmp_path, monkeypatch):
    import tconvseg.data.datamodule as datamodule_module

    calls: list[tuple[int, ...]] = []
    real = datamodule_module.class_mix

    def spy(images, masks, probability, num_classes):
        calls.append(tuple(images.shape))
        out = real(images, masks, probability, num_classes)
        assert not torch.equal(out[1], masks), "probability 1 mixes the batch"
        return out

    monkeypatch.setattr(datamodule_module, "class_mix", spy)
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "data.class_mix=1.0", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                                          "+trainer.limit_val_batches=2", "validate_best=false"])
    metrics, _ = train(cfg)
    assert len(calls) == 3, "each training batch is mixed once; validation batches are not"
    assert torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))
