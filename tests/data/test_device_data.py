"""data.augment_on=device in the datamodule: raw uint8 or index batches, augmentation in training only."""

from types import SimpleNamespace

import pytest
import torch
from hydra.errors import InstantiationException

from tconvseg.data import DatasetError, SyntheticShapesDataset, synthetic_info
from tconvseg.data.augment.device_data import DeviceCache, DeviceTraining, IndexItems, RawItems
from tconvseg.tasks.train import train
from tests.data.test_datamodule import build
from tests.helpers.configs import CHEAP, compose_cfg

DEVICE = {"augment_on": "device", "train_transforms": {"hflip": 0.5, "crop_size": [32, 48], "random_scale": [0.75, 1.5]}}


def stub_trainer(training: bool) -> SimpleNamespace:
    return SimpleNamespace(training=training, current_epoch=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device("cpu")))


@pytest.mark.parametrize(("cache", "expected"), [(True, "indices"), (False, "raw"), ("auto", "indices")])
def test_training_batches_are_indices_or_raw_uint8_pairs(tmp_path, cache, expected):
    dm = build("synthetic", tmp_path, device_cache=cache, **DEVICE)
    batch = next(iter(dm.train_dataloader()))
    if expected == "indices":
        assert isinstance(batch, torch.Tensor) and batch.dtype == torch.int64 and batch.shape == (8,)
    else:
        images, masks = batch
        assert images.dtype == torch.uint8 and images.shape == (8, 3, 64, 96) and masks.shape == (8, 64, 96)
    dm.trainer = stub_trainer(training=True)
    images, masks = dm.on_after_batch_transfer(batch, 0)
    assert images.shape == (8, 3, 32, 48) and images.dtype == torch.float32 and masks.dtype == torch.int64


def test_cache_and_loader_give_the_same_augmented_batch(tmp_path):
    out = []
    for cache in (True, False):
        dm = build("synthetic", tmp_path, device_cache=cache, seed=7, **DEVICE)
        batch = next(iter(dm.train_dataloader()))
        dm.trainer = stub_trainer(training=True)
        torch.manual_seed(0)
        out.append(dm.on_after_batch_transfer(batch, 0))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


def test_validation_batches_pass_through_untouched(tmp_path):
    dm = build("synthetic", tmp_path, **DEVICE)
    batch = next(iter(dm.val_dataloader()))
    dm.trainer = stub_trainer(training=False)
    assert dm.on_after_batch_transfer(batch, 0) is batch
    assert batch[0].dtype == torch.float32  # the per-item eval transforms ran in the loader


def test_loader_mode_never_augments_in_the_hook(tmp_path):
    dm = build("synthetic", tmp_path)
    batch = next(iter(dm.train_dataloader()))
    dm.trainer = stub_trainer(training=True)
    assert dm.on_after_batch_transfer(batch, 0) is batch


def test_mixed_sizes_refuse_a_forced_cache_and_fall_back_under_auto():
    info = synthetic_info(3)
    small = SyntheticShapesDataset(2, size=(16, 16), num_classes=3)
    large = SyntheticShapesDataset(2, size=(16, 24), num_classes=3)

    class Mixed(SyntheticShapesDataset):
        def __len__(self):
            return 4

        def load_pair(self, index):
            return (small if index < 2 else large).load_pair(index % 2)

    mixed = Mixed(4, size=(16, 16), num_classes=3)
    assert mixed.info.num_classes == info.num_classes
    with pytest.raises(DatasetError, match="data.device_cache=true needs one image size.*2 sizes"):
        DeviceCache(mixed)
    items, _ = DeviceTraining({"hflip": 0.5}, 3, "auto", 0.5).items(mixed, torch.device("cpu"), lambda b: b)
    assert isinstance(items, RawItems)
    items, collate = DeviceTraining({"hflip": 0.5}, 3, "auto", 0.5).items(small, torch.device("cpu"), lambda b: b)
    assert isinstance(items, IndexItems) and collate is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"augment_on": "gpu"}, r"data.augment_on='gpu' is invalid; expected loader or device"),
        ({"augment_on": "device", "device_cache": "yes"}, r"data.device_cache='yes' is invalid"),
        ({"augment_on": "device", "device_cache_fraction": 0}, r"device_cache_fraction=0 is invalid"),
        ({"augment_on": "device", "train_transforms": {"photometric": 0.5}}, r"\['photometric'\] have no device version"),
        (
            {"augment_on": "device", "train_transforms": {"crop_size": [8, 8], "class_uniform_crop": 0.5}},
            r"\['class_uniform_crop'\] have no device version",
        ),
    ],
)
def test_bad_device_options_are_named(tmp_path, options, message):
    with pytest.raises(InstantiationException, match=message):
        build("synthetic", tmp_path, **options)


def test_a_device_augmented_run_trains_and_repeats_with_its_seed(tmp_path):
    overrides = [
        "experiment=synthetic_quick", *CHEAP, "trainer.max_epochs=2", "validate_best=false", "data.augment_on=device",
        "data.train_transforms.crop_size=[48,64]", "data.train_transforms.random_scale=[0.75,1.25]",
    ]
    scores = []
    for run in ("a", "b"):
        _, objects = train(compose_cfg("train", tmp_path, overrides, run=run))
        scores.append({k: float(v) for k, v in objects["trainer"].callback_metrics.items()})
    assert scores[0] == scores[1] and torch.isfinite(torch.tensor(scores[0]["train/loss"]))


def test_a_device_augmented_run_resumes_bit_identical(tmp_path):
    common = [
        "experiment=synthetic_quick", *CHEAP, "validate_best=false", "data.augment_on=device", "data.device_cache=true",
        "data.train_transforms.crop_size=[48,64]", "data.train_transforms.random_scale=[0.75,1.25]",
        "model.scheduler=null",  # a constant LR: the 1-epoch first part must not decay over its own shorter schedule
    ]
    _, straight = train(compose_cfg("train", tmp_path / "straight", [*common, "trainer.max_epochs=3"]))
    train(compose_cfg("train", tmp_path / "split", [*common, "trainer.max_epochs=1"], run="first"))
    _, resumed = train(compose_cfg("train", tmp_path / "split", [*common, "trainer.max_epochs=3", "ckpt_path=last"], run="second"))
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ranks_draw_different_augmentation_parameters():
    from tconvseg.data.augment.batch_augment import BatchAugment
    from tconvseg.data.splits.samplers import EpochShuffleSampler

    augment = BatchAugment(ignore_index=255, crop_size=[16, 16], random_scale=[0.5, 1.5])
    thetas = []
    for rank in (0, 1, 0):
        list(EpochShuffleSampler(32, 5, torch.Generator(), epoch=2, num_replicas=2, rank=rank))  # seeds this process's RNGs
        thetas.append(augment._draw_theta(8, 32, 32, 16, 16, torch.device("cpu")))
    assert not torch.equal(thetas[0], thetas[1]) and torch.equal(thetas[0], thetas[2])
