"""Time-budgeted training: the LR follows the time spent and reaches its floor at the stop; training
stops with a final validation and checkpoint inside the budget; resume continues the budget's clock."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import lightning as L
import pytest
from hydra.utils import instantiate

from tconvseg.callbacks import STATE_KEY, EMAWeights, TimeBudget, finished_budget, process_started_at
from tconvseg.callbacks.time_budget import as_seconds, cosine_factor, process_age
from tconvseg.tasks.train import train
from tconvseg.training.builders import build_datamodule, build_group, build_system, build_trainer, class_weights_for
from tconvseg.training.checkpoints import load_checkpoint, resume_checkpoint_path
from tests.helpers.configs import CHEAP, compose_cfg

#: The real budgeted experiment, on synthetic data with the tiny model (8 steps an epoch).
BUDGETED = ["experiment=baseline_cpu_15min", "data=synthetic", "model=tiny", *CHEAP]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tick(L.Callback):
    """Advances a fake clock by ``seconds`` after every training batch (before the budget looks at it)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.clock.now += self.seconds


class RecordLR(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize(("text", "seconds"), [(90, 90.0), ("00:01:00:00", 3600.0), ("01:30", 90.0), ({"minutes": 15}, 900.0)])
def test_durations_in_lightning_formats(text, seconds):
    assert as_seconds(text, "budget") == seconds


def test_a_bad_duration_names_the_key():
    with pytest.raises(ValueError, match=r"budget='an hour' is not a duration"):
        as_seconds("an hour", "budget")
    with pytest.raises(ValueError, match=r"reserve=100s leaves no training time in budget=100s"):
        TimeBudget(100, reserve=100)


def test_the_factor_follows_time_and_reaches_the_floor_at_the_stop():
    clock = FakeClock()
    budget = TimeBudget(100, warmup_steps=4, min_lr_ratio=0.1, reserve=20, clock=clock)
    assert budget.stop_at == 80
    budget._train_start = budget.elapsed()  # the first step starts now
    assert budget.lr_factor(0) == pytest.approx(0.25)  # warm-up by steps
    assert budget.lr_factor(3) == pytest.approx(1.0)
    clock.now += 40  # half of the training time, whatever the step count
    assert budget.lr_factor(1000) == pytest.approx(cosine_factor(0.5, 0.1)) == pytest.approx(0.55)
    clock.now += 40
    assert budget.progress() == 1.0 and budget.lr_factor(2000) == pytest.approx(0.1)
    clock.now += 500
    assert budget.lr_factor(3000) == pytest.approx(0.1)


def test_a_measured_validation_cost_moves_the_stop_earlier():
    clock = FakeClock()
    budget = TimeBudget(100, reserve=5, val_passes_after_stop=2, margin=1.5, clock=clock)
    budget._val_cost = 10.0
    assert budget.stop_at == 100 - 1.5 * 2 * 10


def test_training_stops_at_the_budget_with_a_final_validation_and_checkpoint(tmp_path):
    cfg = compose_cfg("train", tmp_path, BUDGETED)
    datamodule = build_datamodule(cfg)
    system = build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule))
    clock, lrs = FakeClock(), RecordLR()
    budget = instantiate(cfg.callbacks.time_budget, budget=40, reserve=10, warmup_steps=4, min_lr_ratio=0.05, clock=clock)
    checkpoints = instantiate(cfg.callbacks.model_checkpoint)
    last_saver = instantiate(cfg.callbacks.last_checkpoint)
    trainer = build_trainer(cfg, callbacks=[Tick(clock, 1.0), budget, lrs, checkpoints, last_saver], logger=False)
    trainer.fit(system, datamodule=datamodule)

    # One fake second a step, stop at 40 - 10 = 30 s: 30 steps, in the 4th epoch of 8 steps.
    assert trainer.global_step == 30 and budget.done
    peak = cfg.model.optimizer.lr
    expected = [peak * min(1.0, (s + 1) / 4) * cosine_factor(s / 30, 0.05) for s in range(30)]
    assert lrs.lrs == pytest.approx(expected, rel=1e-9)
    assert budget.lr_factor(30) == pytest.approx(0.05)  # the floor, at the stop
    last = load_checkpoint(resume_checkpoint_path([checkpoints, last_saver]))
    assert last["global_step"] == 30, "the final validation did not write a checkpoint at the stop"
    assert checkpoints.best_model_score is not None  # the validation at the stop scored the model
    state = last["callbacks"][STATE_KEY]
    assert state["done"] and state["elapsed"] == pytest.approx(30.0) and state["stop_at"] == 30
    assert finished_budget(last) == "its time budget of 40 s is used (30 s spent)"


def test_a_restored_budget_continues_the_clock_and_the_schedule():
    first_clock = FakeClock()
    first = TimeBudget(100, reserve=20, clock=first_clock)
    first._train_start = first.elapsed()
    first_clock.now += 30
    state = first.state_dict()

    second_clock = FakeClock()
    second_clock.now = 5.0  # another process: another clock origin
    second = TimeBudget(100, reserve=20, clock=second_clock)
    second.load_state_dict(state)
    assert second.elapsed() == pytest.approx(30.0)
    second_clock.now += 10
    first_clock.now += 10
    assert second.lr_factor(500) == pytest.approx(first.lr_factor(500))
    assert second.progress() == pytest.approx(0.5)


def test_resume_with_ckpt_path_last_continues_the_time_budget(tmp_path):
    budget = ["callbacks.time_budget.budget=600", "callbacks.time_budget.warmup_steps=0", "validate_best=false", "callbacks.time_budget.reserve=30"]
    _, first = train(compose_cfg("train", tmp_path, [*BUDGETED, *budget, "trainer.max_epochs=1"], run="first"))
    before = load_checkpoint(resume_checkpoint_path(first["trainer"].checkpoint_callbacks))["callbacks"][STATE_KEY]
    _, second = train(compose_cfg("train", tmp_path, [*BUDGETED, *budget, "trainer.max_epochs=2", "ckpt_path=last"], run="second"))
    after = load_checkpoint(resume_checkpoint_path(second["trainer"].checkpoint_callbacks))["callbacks"][STATE_KEY]
    assert second["trainer"].global_step == 16
    assert after["train_start"] == before["train_start"]  # the schedule's origin survived the restart
    assert after["elapsed"] > before["elapsed"]  # and the time spent before it still counts
    assert not after["done"]


def test_resuming_a_run_whose_budget_is_used_says_so(tmp_path, caplog):
    cfg = compose_cfg("train", tmp_path, [*BUDGETED, "callbacks.time_budget.budget=2", "callbacks.time_budget.reserve=1",
                                          "validate_best=false", "trainer.max_epochs=50"])
    _, objects = train(cfg)
    assert objects["trainer"].current_epoch < 50  # the budget, not max_epochs, ended it
    again = compose_cfg("train", tmp_path, [*BUDGETED, "callbacks.time_budget.budget=2", "callbacks.time_budget.reserve=1",
                                            "trainer.max_epochs=50", "ckpt_path=last"], run="again")
    _, resumed = train(again)
    assert resumed["finished_before"]


def test_a_config_scheduler_is_refused_with_the_override(tmp_path):
    scheduler = "model.scheduler={_target_:tconvseg.training.schedules.warmup_cosine,_partial_:true}"
    cfg = compose_cfg("train", tmp_path, [*BUDGETED, scheduler, "trainer.max_epochs=1"])
    with pytest.raises(ValueError, match=r"expected model.scheduler=null with callbacks.time_budget"):
        train(cfg)


def test_every_budgeted_experiment_builds_its_callbacks(tmp_path):
    budgeted = ("baseline_cpu_15min", "recipe_cpu_30min", "recipe_cpu_60min", "recipe_v1_cpu_60min", "camvid_gpu_10min", "camvid_gpu_10min_device",
                "camvid_gpu_10min_pretrained")
    for experiment in (*budgeted, "protocol_select_15min"):
        cfg = compose_cfg("train", tmp_path, [f"experiment={experiment}"])
        budget = next(c for c in build_group(cfg.callbacks) if isinstance(c, TimeBudget))
        assert cfg.model.scheduler is None and cfg.trainer.check_val_every_n_epoch == 1
        # Lightning's max_time is a safety net above the budget, never below it.
        assert as_seconds(cfg.trainer.max_time, "max_time") > budget.budget
        assert as_seconds(cfg.trainer.val_check_interval, "val_check_interval") <= budget.budget / 3
        assert math.isfinite(budget.stop_at) and budget.stop_at < budget.budget


def test_the_budget_counts_from_the_start_it_is_given(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*BUDGETED, "callbacks.time_budget.budget=600", "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg, started_at=time.monotonic() - 42.0)  # what tconvseg-train passes: the process's start
    budget = next(c for c in objects["trainer"].callbacks if isinstance(c, TimeBudget))
    assert budget.elapsed() >= 42.0
    _, again = train(compose_cfg("train", tmp_path, [*BUDGETED, "callbacks.time_budget.budget=600", "trainer.max_epochs=1",
                                                     "validate_best=false"], run="again"))
    assert next(c for c in again["trainer"].callbacks if isinstance(c, TimeBudget)).elapsed() < 42.0  # from the call


def test_the_process_start_is_read_on_linux():
    """A process that has lived 0.6 s says so: the fallback (0, "now") would fail here."""
    age = time.monotonic() - process_started_at()
    assert age == pytest.approx(process_age(), abs=0.05)
    code = "import time; time.sleep(0.6); from tconvseg.callbacks.time_budget import process_age; print(process_age())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    child_age = float(result.stdout.strip())
    if sys.platform.startswith("linux"):
        assert 0.6 <= child_age < 120
    else:
        assert child_age == 0.0


def test_the_gpu_experiment_is_full_resolution_bf16_channels_last_with_pinned_batches(tmp_path):
    cfg = compose_cfg("train", tmp_path, ["experiment=camvid_gpu_10min"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.model.channels_last and cfg.data.pin_memory and cfg.data.num_workers > 0
    assert cfg.data.train_transforms.scale == 1.0 and cfg.data.eval_transforms.scale == 1.0
    assert as_seconds(cfg.callbacks.time_budget.budget, "budget") == 600
    # EMA off, as in the CPU recipe (README: the raw weights beat the 0.999 average on the H200 run).
    assert not any(isinstance(c, EMAWeights) for c in build_group(cfg.callbacks)) and "ema" not in cfg.callbacks


def test_the_pretrained_gpu_experiment_is_the_gpu_recipe_on_the_cpu_recipe_s_model(tmp_path):
    gpu = compose_cfg("train", tmp_path, ["experiment=camvid_gpu_10min"])
    pretrained = compose_cfg("train", tmp_path, ["experiment=camvid_gpu_10min_pretrained"])
    cpu = compose_cfg("train", tmp_path, ["experiment=recipe_cpu_60min"])
    assert pretrained.model.net == cpu.model.net and pretrained.model.net.encoder.weights == "imagenet"
    assert pretrained.model.class_weighting == cpu.model.class_weighting and list(pretrained.data.splits.train) == ["train", "val"]
    assert pretrained.trainer == gpu.trainer and pretrained.data.train_transforms == gpu.data.train_transforms
    assert pretrained.model.optimizer == gpu.model.optimizer and not pretrained.validate_best
    assert pretrained.callbacks.get("model_checkpoint") is None
