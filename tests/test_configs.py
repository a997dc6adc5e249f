"""Every option of every config group composes, and builds where this machine can build it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from tconvseg.training.builders import ConfigError, build_datamodule, build_group, build_system, class_weights_for
from tests.helpers.configs import CONFIG_DIR, compose_cfg
from tests.helpers.fakes import make_camvid_tree, make_folder_tree, make_pets_tree, make_voc_tree


def options(group: str) -> list[str]:
    """The group's options; old experiment names (aliases, tests/test_experiment_names.py) left out."""
    paths = (Path(CONFIG_DIR) / group).glob("*.yaml")
    return sorted(p.stem for p in paths if "\nexperiment_renamed:" not in p.read_text())


@pytest.fixture
def synthetic_dm(tmp_path):
    return build_datamodule(compose_cfg("train", tmp_path, ["data=synthetic"]))


@pytest.mark.parametrize("option", [o for o in options("model") if o != "base"])
def test_every_model_option_builds_and_runs(option, tmp_path, synthetic_dm):
    import torch

    cfg = compose_cfg("train", tmp_path, ["data=synthetic", f"model={option}"])
    system = build_system(cfg.model, synthetic_dm.info, class_weights_for(cfg.model, synthetic_dm))
    with torch.no_grad():
        logits = system.eval()(torch.randn(1, 3, 37, 45))
    assert logits.shape == (1, 4, 37, 45)


def test_the_base_model_option_asks_for_an_encoder(tmp_path, synthetic_dm):
    cfg = compose_cfg("train", tmp_path, ["data=synthetic", "model=base"])
    with pytest.raises(ConfigError, match=r"model.net.encoder has no value .*model=base is the shared parent"):
        build_system(cfg.model, synthetic_dm.info, class_weights_for(cfg.model, synthetic_dm))


@pytest.mark.parametrize("option", options("data"))
def test_every_data_option_builds_on_a_fixture(option, tmp_path):
    data_dir = tmp_path / "data"
    if option == "camvid":
        make_camvid_tree(data_dir / "CamVid")
    elif option == "voc":
        make_voc_tree(data_dir)
    elif option == "pets":
        make_pets_tree(data_dir)
    extra = [f"data.dataset.root={make_folder_tree(data_dir / 'mine', num_classes=2)}"] if option == "folder" else []
    cfg = compose_cfg("train", tmp_path, [f"data={option}", "data.num_workers=0", *extra])
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    images, masks = next(iter(datamodule.train_dataloader()))
    assert images.dim() == 4 and masks.dim() == 3 and images.shape[0] == masks.shape[0]


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_option_composes(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, [f"trainer={option}"])
    assert cfg.trainer._target_ == "lightning.pytorch.trainer.Trainer"
    if option in ("cpu", "default"):
        assert instantiate(cfg.trainer, logger=False).max_epochs == cfg.trainer.max_epochs
    elif option == "ddp_cpu":  # two processes: run for real in tests/test_ddp.py
        trainer = instantiate(cfg.trainer, logger=False)
        assert trainer.strategy.process_group_backend == "gloo" and trainer.num_devices == 2
    else:  # needs GPUs: checked on a GPU machine (see docs/results.md, "GPU check")
        assert cfg.trainer.accelerator == "gpu"


EXPECTED_CALLBACKS = {
    "default": ["LearningRateMonitor", "ModelCheckpoint", "ModelCheckpoint", "RichProgressBar"],
    "with_early_stopping": ["EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "ModelCheckpoint", "RichProgressBar"],
    "none": [],
    "model_checkpoint": ["ModelCheckpoint", "ModelCheckpoint"],  # the best by val/mIoU, and last.ckpt
    "lr_monitor": ["LearningRateMonitor"],
    "rich_progress_bar": ["RichProgressBar"],
    "early_stopping": ["EarlyStopping"],
    "val_samples": ["ValSamples"],
    "ema": ["EMAWeights"],
    "time_budget": ["TimeBudget"],
    "train_phase": ["TrainTransformPhase"],
    "with_samples": ["LearningRateMonitor", "ModelCheckpoint", "ModelCheckpoint", "RichProgressBar", "ValSamples"],
}


def test_every_callbacks_option_is_listed_here():
    assert sorted(EXPECTED_CALLBACKS) == options("callbacks")


@pytest.mark.parametrize("option", options("callbacks"))
def test_every_callbacks_option_builds(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, [f"callbacks={option}"])
    callbacks = build_group(cfg.get("callbacks"))
    names = sorted(type(c).__name__ for c in callbacks)
    assert names == EXPECTED_CALLBACKS[option]


@pytest.mark.parametrize("option", options("experiment"))
def test_every_experiment_builds_every_callback_it_configures(option, tmp_path):
    # Each configured entry becomes a callback: none is a setting without a callback behind it.
    cfg = compose_cfg("train", tmp_path, [f"experiment={option}"])
    configured = [key for key, node in cfg.callbacks.items() if node is not None]
    assert len(build_group(cfg.callbacks)) == len(configured)


def test_a_setting_for_a_callback_not_in_the_group_is_refused_with_its_key(tmp_path):
    # The GPU recipe once set callbacks.ema.decay without ema in its callbacks list: EMA was silently off.
    cfg = compose_cfg("train", tmp_path, ["experiment=baseline_cpu_15min", "+callbacks.ema.decay=0.999"])
    with pytest.raises(ConfigError, match=r"callbacks\.ema = \{'decay': 0\.999\} has no _target_.*callbacks=\[default,ema\]"):
        build_group(cfg.callbacks)
    cfg = compose_cfg("train", tmp_path, ["+logger.wandb.project=x"])
    with pytest.raises(ConfigError, match=r"logger\.wandb .* has no _target_.*logger=\[csv,wandb\]"):
        build_group(cfg.logger, "logger")
    # The override the logger hint gives composes and builds both loggers.
    cfg = compose_cfg("train", tmp_path, ["logger=[csv,tensorboard]"])
    assert [type(lg).__name__ for lg in build_group(cfg.logger, "logger")] == ["CSVLogger", "TensorBoardLogger"]


@pytest.mark.parametrize("option", options("logger"))
def test_every_logger_option_builds(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, [f"logger={option}"])
    assert build_group(cfg.logger)


@pytest.mark.parametrize("option", options("experiment"))
def test_every_experiment_composes(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, [f"experiment={option}"])
    assert cfg.tags and cfg.trainer.max_epochs >= 1


def test_every_debug_option_changes_what_it_says(tmp_path):
    assert options("debug") == ["fdr", "overfit"]
    plain = compose_cfg("train", tmp_path, ["data=folder"])  # the one data option with loader workers
    fdr = compose_cfg("train", tmp_path, ["data=folder", "debug=fdr"])
    overfit = compose_cfg("train", tmp_path, ["data=folder", "debug=overfit"])
    assert not plain.trainer.get("fast_dev_run") and fdr.trainer.fast_dev_run and not fdr.validate_best
    assert not plain.trainer.get("overfit_batches") and overfit.trainer.overfit_batches > 0
    assert plain.data.num_workers == 2 and fdr.data.num_workers == 0 and overfit.data.num_workers == 0


def test_eval_config_requires_a_checkpoint(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose_cfg("eval", tmp_path, [])
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.ckpt_path


def test_unknown_group_option_lists_the_available_ones(tmp_path):
    with pytest.raises(MissingConfigException, match=r"(?s)Could not find 'model/fcn9s_resnet18'.*fcn8s_resnet18"):
        compose_cfg("train", tmp_path, ["model=fcn9s_resnet18"])


def test_overrides_reach_the_objects(tmp_path, synthetic_dm):
    cfg = compose_cfg(
        "train", tmp_path,
        ["data=synthetic", "model=fcn8s_resnet18", "model.net.topology=16s", "model.net.encoder.name=resnet34", "data.batch_size=3"],
    )
    system = build_system(cfg.model, synthetic_dm.info, class_weights_for(cfg.model, synthetic_dm))
    assert len(system.net.decoder.blocks) == 1 and len(system.net.encoder.stages[3]) == 1
    assert sum(p.numel() for p in system.net.encoder.parameters()) > 21_000_000  # resnet34, not 18
    assert build_datamodule(cfg).batch_size == 3


def test_the_30_minute_recipe_is_the_recipe_under_another_budget(tmp_path):
    from omegaconf import OmegaConf

    named = OmegaConf.to_container(compose_cfg("train", tmp_path, ["experiment=recipe_cpu_30min"]), resolve=True)
    composed = OmegaConf.to_container(compose_cfg("train", tmp_path, ["experiment=recipe_cpu_60min", "budget=30min"]), resolve=True)
    assert named == composed
    assert named["callbacks"]["time_budget"]["budget"] == "00:00:30:00" and named["trainer"]["max_time"] == "00:00:33:00"


def test_the_recipe_is_v2_with_the_pretrained_encoder(tmp_path):
    """recipe_cpu_60min is recipe_v2_cpu_60min (the from-scratch recipe of 2026-12-03 to 2026-12-07) with FCN-8s on
    EfficientNet-Lite0 and its ImageNet weights; everything else (data, schedule, budget, callbacks) is v2's."""
    from omegaconf import OmegaConf

    def composed(experiment: str) -> dict:
        return OmegaConf.to_container(compose_cfg("train", tmp_path, [f"experiment={experiment}"]), resolve=True)

    recipe, v2 = composed("recipe_cpu_60min"), composed("recipe_v2_cpu_60min")
    encoder = recipe["model"]["net"]["encoder"]
    assert encoder["_target_"] == "tconvseg.nn.efficientnet_lite_encoder" and encoder["weights"] == "imagenet" and encoder["padding"] == "same"
    assert v2["model"]["net"]["encoder"]["name"] == "mobilenet_v3_large" and v2["model"]["net"]["encoder"]["weights"] is None
    for key in ("class_weighting", "channels_last", "optimizer", "scheduler", "aux_weight"):
        assert recipe["model"][key] == v2["model"][key], key
    assert recipe["model"]["net"]["aux_stages"] == v2["model"]["net"]["aux_stages"] == [-2]
    assert {k: v for k, v in recipe.items() if k not in ("model", "tags")} == {k: v for k, v in v2.items() if k not in ("model", "tags")}


def test_v2_is_v1_with_softer_class_weights_on_train_plus_val_and_the_end_of_schedule_checkpoint(tmp_path):
    """recipe_v2_cpu_60min differs from recipe_v1_cpu_60min (the recipe until 2026-12-03) in its class weighting, what
    it trains on and what it keeps; the protocol experiments stay on v1, whose figures they reproduce."""
    from omegaconf import OmegaConf

    def composed(experiment: str) -> dict:
        return OmegaConf.to_container(compose_cfg("train", tmp_path, [f"experiment={experiment}"]), resolve=True)

    new, old = composed("recipe_v2_cpu_60min"), composed("recipe_v1_cpu_60min")
    assert new["data"]["splits"]["train"] == ["train", "val"] and old["data"]["splits"]["train"] == "train"
    assert new["callbacks"]["model_checkpoint"] is None and old["callbacks"]["model_checkpoint"]["monitor"] == "val/mIoU"
    assert new["validate_best"] is False and new["optimized_metric"] is None and new["callbacks"]["time_budget"]["val_passes_after_stop"] == 1
    assert new["callbacks"]["last_checkpoint"] == old["callbacks"]["last_checkpoint"]
    assert new["model"]["class_weighting"] == "median_frequency_sqrt" and old["model"]["class_weighting"] == "median_frequency"
    assert {**new["model"], "class_weighting": None} == {**old["model"], "class_weighting": None}
    assert new["data"]["train_transforms"] == old["data"]["train_transforms"]
    assert new["trainer"] == old["trainer"] and new["callbacks"]["time_budget"]["budget"] == "00:01:00:00"
    for protocol in ("protocol_select_15min", "protocol_select_steps"):
        assert composed(protocol)["data"]["splits"]["train"] == "train"
    assert len([c for c in build_group(compose_cfg("train", tmp_path, ["experiment=recipe_cpu_60min"]).callbacks)
                if type(c).__name__ == "ModelCheckpoint"]) == 1  # last_checkpoint only


@pytest.mark.parametrize("entry", ["eval", "predict", "export", "demo"])
def test_the_inference_entry_points_share_one_defaults_file(entry, tmp_path):
    cfg = compose_cfg(entry, tmp_path, ["ckpt_path=x.ckpt"] + (["input=x.png"] if entry == "predict" else []))
    assert cfg.trusted_targets == [] and cfg.float32_matmul_precision == "high" and cfg.ckpt_path == "x.ckpt"
    assert ("tta" in cfg) == (entry != "export")  # the exported network is the plain one
