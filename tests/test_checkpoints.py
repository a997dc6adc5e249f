"""Checkpoints are data: no code runs from one, writes are atomic, `last` never picks a broken file."""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tconvseg.training.atomic import AtomicCheckpointIO, atomic_torch_save
from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, UnsafeCheckpointError, check_targets, find_last_checkpoint, load_checkpoint
from tests.helpers.configs import SYNTH, compose_cfg


class _WritesMarker:
    """A pickle payload: unpickling it calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    cfg = compose_cfg("train", tmp, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg)
    return tmp, Path(objects["best_checkpoint"])


def _eval_cfg(tmp_path: Path, ckpt: Path, *extra: str):
    return compose_cfg("eval", tmp_path, ["data=synthetic", "trainer=cpu", "data.num_workers=0", f"ckpt_path={ckpt}", *extra])


def test_a_pickle_payload_in_a_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _WritesMarker(marker)}, evil)
    # The payload works when loaded the unsafe way, so the test would notice a weights_only=False load.
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*evil.ckpt.*weights_only=True"):
        evaluate(_eval_cfg(tmp_path, evil))
    assert not marker.exists()
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        train(compose_cfg("train", tmp_path, [*SYNTH, f"ckpt_path={evil}"]))
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # control: the payload is live
    assert marker.exists()


def test_a_raw_pickle_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "raw.ckpt"
    evil.write_bytes(pickle.dumps(_WritesMarker(marker)))
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_a_stored_config_naming_a_file_writing_target_is_refused(tmp_path, trained):
    _, good = trained
    checkpoint = torch.load(good, weights_only=True)
    victim, source = tmp_path / "victim.txt", tmp_path / "source.txt"
    victim.write_text("precious")
    source.write_text("overwritten")
    checkpoint[CKPT_MODEL_CONFIG]["net"]["encoder"] = {"_target_": "shutil.copyfile", "src": str(source), "dst": str(victim)}
    evil = tmp_path / "evil.ckpt"
    torch.save(checkpoint, evil)
    with pytest.raises(UnsafeCheckpointError, match=r"model\.net\.encoder\._target_='shutil.copyfile'.*allowlist"):
        evaluate(_eval_cfg(tmp_path, evil))
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "target",
    [
        "os.system",
        "tconvseg.nn.os.system",  # resolves through a module attribute, but is defined in posix
        "tconvseg.data.fetch.download.download_camvid",  # downloads and writes: not a model part
        "torch.save",
        "torch.nn.init.os.remove",
        "builtins.eval",
        "torch.nn.functional.F",  # does not resolve
    ],
)
def test_targets_outside_the_allowlist_are_refused(target):
    with pytest.raises(UnsafeCheckpointError, match="not on the allowlist"):
        check_targets({"net": {"_target_": target}}, "x.ckpt")


@pytest.mark.parametrize(
    "target",
    [
        "tconvseg.training.system.SegmentationSystem", "tconvseg.nn.FCN", "torch.nn.BatchNorm2d", "torch.optim.AdamW",
        "tconvseg.training.schedules.warmup_cosine",
    ],
)
def test_the_project_model_parts_are_allowed(target):
    check_targets({"a": [{"_target_": target}]}, "x.ckpt")


def test_interpolations_in_a_stored_config_are_refused():
    with pytest.raises(UnsafeCheckpointError, match="interpolation"):
        check_targets({"net": {"name": "${oc.env:HOME}"}}, "x.ckpt")


def test_stored_encoder_weights_are_not_downloaded_when_evaluating(tmp_path, trained, monkeypatch):
    _, good = trained
    checkpoint = torch.load(good, weights_only=True)
    checkpoint[CKPT_MODEL_CONFIG]["net"]["encoder"] = {"_target_": "tconvseg.nn.torchvision_encoder", "name": "resnet18", "weights": "DEFAULT"}
    fetched = []
    monkeypatch.setattr("torch.hub.load_state_dict_from_url", lambda *a, **k: fetched.append(a) or {})
    ckpt = tmp_path / "resnet.ckpt"
    torch.save(checkpoint, ckpt)
    with pytest.raises(ValueError, match="trained with another model"):  # tiny weights, resnet config
        evaluate(_eval_cfg(tmp_path, ckpt))
    assert fetched == []


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"v": 1}, target)

    def broken_save(obj, handle):
        handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"v": 2}, target)
    assert torch.load(target, weights_only=True) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


def test_atomic_save_never_writes_through_the_system_temp_dir(tmp_path, monkeypatch):
    """A temp file on another filesystem would make the final step a copy, not a rename."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("TMPDIR", str(other))
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: renames.append((Path(a).parent, Path(b))) or real_replace(a, b))
    target = tmp_path / "ckpts" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"v": 3}, target)
    assert renames == [(target.parent, target)] and list(other.iterdir()) == []
    assert AtomicCheckpointIO().load_checkpoint(target) == {"v": 3}


def test_checkpoint_io_refuses_unsafe_loads(tmp_path):
    target = tmp_path / "a.ckpt"
    atomic_torch_save({"v": 1}, target)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=False"):
        AtomicCheckpointIO().load_checkpoint(target, weights_only=False)


def test_last_skips_a_truncated_newer_checkpoint(tmp_path):
    runs = tmp_path / "logs" / "train" / "runs"
    good = runs / "a" / "checkpoints" / "last.ckpt"
    atomic_torch_save({"epoch": 1}, good)
    broken = runs / "b" / "checkpoints" / "last.ckpt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(good.read_bytes()[:100])
    os.utime(broken, (good.stat().st_mtime + 10,) * 2)
    assert find_last_checkpoint(tmp_path / "logs", "train") == str(good)


_WRITER = """
import sys, torch
from pathlib import Path
from tconvseg.training.atomic import atomic_torch_save
path, i = Path(sys.argv[1]), 0
while True:
    w = torch.randn(2_000_000)
    atomic_torch_save({"w": w, "sum": float(w.sum()), "i": i}, path)
    i += 1
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_at_random_moments_never_leaves_a_broken_last_checkpoint(tmp_path, seed):
    """SIGKILL a process that rewrites last.ckpt (8 MB) in a loop: the file always loads whole."""
    import random

    rng = random.Random(seed)
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    import time

    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.random() * 0.6)  # a random point of the write loop
        proc.kill()
        assert proc.wait() == -9  # killed, not finished
        checkpoint = load_checkpoint(target)
        assert float(checkpoint["w"].sum()) == pytest.approx(checkpoint["sum"], rel=1e-4, abs=1e-2)


def test_training_writes_every_checkpoint_through_an_atomic_rename(tmp_path, monkeypatch):
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append((Path(a), Path(b))) or real_replace(a, b))
    _, objects = train(compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"]))
    assert isinstance(objects["trainer"].strategy.checkpoint_io, AtomicCheckpointIO)
    written = sorted(tmp_path.rglob("*.ckpt"))
    # a set: at a new best, last.ckpt is written twice (the best keeper's save_last, then last_checkpoint)
    assert written and sorted({b for _, b in replaced if b.suffix == ".ckpt"}) == written
    assert all(a.parent == b.parent for a, b in replaced)


def test_a_user_can_trust_their_own_package_by_name():
    config = {"net": {"_target_": "mypkg.decoders.Mine"}}
    with pytest.raises(UnsafeCheckpointError, match="trusted_targets=\\[your_package\\]"):
        check_targets(config, "x.ckpt")
    check_targets(config, "x.ckpt", trusted=["mypkg"])
    with pytest.raises(UnsafeCheckpointError):
        check_targets({"net": {"_target_": "mypkgevil.x"}}, "x.ckpt", trusted=["mypkg"])


def test_a_checkpoint_that_names_the_modules_before_the_move_loads_with_todays_paths(tmp_path):
    """Checkpoints written before the package was grouped by job (2026-12-07) name tconvseg.system and
    tconvseg.schedules; loading reads them as today's paths, and they pass the allowlist."""
    from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, MOVED_MODULES, load_checkpoint, upgrade_moved_targets

    old = {
        "_target_": "tconvseg.system.SegmentationSystem",
        "scheduler": {"_target_": "tconvseg.schedules.warmup_cosine", "_partial_": True},
        "net": {"_target_": "tconvseg.nn.FCN", "layers": [{"_target_": "tconvseg.tta.TestTimeAugmentation"}]},
        "note": "tconvseg.system.SegmentationSystem",  # only _target_ values are rewritten
    }
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {}, CKPT_MODEL_CONFIG: old}, path)
    stored = load_checkpoint(path)[CKPT_MODEL_CONFIG]
    assert stored["_target_"] == "tconvseg.training.system.SegmentationSystem"
    assert stored["scheduler"] == {"_target_": "tconvseg.training.schedules.warmup_cosine", "_partial_": True}
    assert stored["net"]["layers"][0]["_target_"] == "tconvseg.inference.tta.TestTimeAugmentation"
    assert stored["note"] == "tconvseg.system.SegmentationSystem" and stored["net"]["_target_"] == "tconvseg.nn.FCN"
    check_targets({k: v for k, v in stored.items() if k != "net"}, str(path))
    assert upgrade_moved_targets(stored) == stored  # today's paths stay as they are
    for new in MOVED_MODULES.values():
        importlib.import_module(new)
