"""Two processes (trainer=ddp_cpu, gloo) for real: training shards the data, evaluation of an odd-sized
split gives exactly the single-process metrics, rank zero alone reports, the download happens once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tconvseg.tasks.evaluate import evaluate
from tconvseg.training.checkpoints import load_checkpoint
from tconvseg.training.metrics import SegmentationMetrics
from tests.helpers.configs import QUIET, compose_cfg
from tests.helpers.scripts import run_script

#: 15 validation images: not divisible by 2, so a padding sampler would count one twice.
ODD_VAL = ["data=synthetic", "data.dataset.num_samples.val=15", "data.eval_batch_size=1"]


def _run(script: str, args: list[str], root: Path) -> str:
    result = run_script(script, args, root, timeout=400)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Two epochs of 64 synthetic images, batch 8, in two processes."""
    root = tmp_path_factory.mktemp("ddp")
    out = _run("train.py", ["trainer=ddp_cpu", "data=synthetic", "model=tiny", "trainer.max_epochs=2", "validate_best=false", *QUIET], root)
    return root, out


def test_two_processes_train_on_halves_of_the_data(ddp_run):
    root, out = ddp_run
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out and "distributed_backend=gloo" in out
    (run_dir,) = (root / "logs" / "train" / "runs").iterdir()  # both ranks write into one run folder
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * 4  # 64 images / batch 8 / 2 ranks = 4 steps an epoch (one process: 8)
    assert checkpoint["epoch"] == 1


def test_two_process_evaluation_equals_one_process(ddp_run, tmp_path):
    root, _ = ddp_run
    ckpt = next((root / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
    single, objects = evaluate(compose_cfg("eval", tmp_path, [*ODD_VAL, "data.num_workers=0", f"ckpt_path={ckpt}",
                                                              f"output_json={tmp_path / 'single.json'}"]))
    record = tmp_path / "dataset_calls.txt"
    out = _run("eval.py", [*ODD_VAL, "trainer=ddp_cpu", *QUIET[1:], f"ckpt_path={ckpt}", f"output_json={tmp_path / 'ddp.json'}",
                           "data.dataset._target_=tests.helpers.fakes.recording_synthetic_split", f"+data.dataset.record={record}",
                           "+data.dataset.download=true"], tmp_path)
    ddp = json.loads((tmp_path / "ddp.json").read_text())["metrics"]
    for key in ("val/mIoU", "val/loss"):
        print(f"\n{key}, 15 images: one process {single[key]!r}, two processes {ddp[key]!r}")
    assert set(ddp) == set(single)
    for key, value in single.items():
        if key == "val/loss":  # a mean of per-image means, summed in another order
            assert ddp[key] == pytest.approx(value, rel=1e-6)
        else:  # confusion-matrix metrics: the same counts, so the same floats
            assert ddp[key] == value, key

    # Only rank zero printed; each process built the split once, and only rank zero (prepare_data) downloaded.
    assert out.count("val: per-class IoU") == 1 and "GLOBAL_RANK: 1, MEMBER: 2/2" in out
    calls = [line.split() for line in record.read_text().splitlines()]
    assert len(calls) == 2 and len({pid for pid, _, _ in calls}) == 2
    assert sorted(download for _, _, download in calls) == ["False", "True"]

    # The equality is not vacuous: one padded duplicate (what DistributedSampler adds) moves mIoU.
    model, dataset = objects["model"].eval(), objects["datamodule"].dataset("test")
    metrics = SegmentationMetrics(model.num_classes, model.ignore_index)
    with torch.no_grad():
        for index in [*range(len(dataset)), 0]:
            image, mask = dataset[index]
            metrics.update(model(image[None]).argmax(1), mask[None])
    assert metrics.summary()["mIoU"] != pytest.approx(single["val/mIoU"], abs=1e-7)


def test_two_processes_train_with_the_augmentation_on_the_device(tmp_path):
    device = ["data.augment_on=device", "data.device_cache=true", "data.train_transforms.crop_size=[48,64]",
              "data.train_transforms.random_scale=[0.75,1.25]"]
    _run("train.py", ["trainer=ddp_cpu", "data=synthetic", "model=tiny", "trainer.max_epochs=2", "validate_best=false", *device, *QUIET], tmp_path)
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * 4  # each rank gathers its own half from its device cache
