"""The time-to-accuracy plot: its record agrees with the results page, a run folder yields a record entry, the plot is drawn."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((ROOT / "docs" / "records" / "time_to_accuracy.json").read_text())
RESULTS = (ROOT / "docs" / "results.md").read_text()


def _script():
    spec = importlib.util.spec_from_file_location("plot_time_to_accuracy", ROOT / "scripts" / "plot_time_to_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("run", RECORD["runs"], ids=lambda r: r["name"])
def test_the_record_says_what_the_results_page_says(run):
    listed = ", ".join(f"{miou:.1f}" for _, miou in run["validations"][:-1]) + f" and {run['validations'][-1][1]:.1f}"
    assert listed in RESULTS, f"{run['name']}: the page does not list the validations {listed}"
    assert f"{run['final']:.2f}" in RESULTS and f"{run['final_flip']:.2f}" in RESULTS
    assert 0 < run["validations"][0][0] < run["validations"][-1][0] <= run["steps"]


def test_a_run_folder_gives_a_record_entry_and_the_plot_is_drawn(tmp_path):
    script = _script()
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text("epoch,step,train/loss,val/mIoU\n0,10,0.5,\n0,99,,0.25\n1,199,,0.3125\n")
    (run / "train.log").write_text("... Time budget: stopping at 590 s of 600 s after 200 steps; a last validation follows\n")
    entry = script.from_run(run)
    assert entry == {"train_seconds": 590, "steps": 200, "validations": [[99, 25.0], [199, 31.25]]}
    assert script.minutes({**entry})[1] == pytest.approx((199 * 590 / 200 / 60, 31.25))
    record = {"runs": [{**entry, "label": "x", "date": "today", "final": 31.0, "final_flip": 32.0}]}
    out = script.plot(record, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (run / "train.log").write_text("no budget here\n")
    with pytest.raises(SystemExit, match=r"--from-run .*expected csv/metrics.csv with val/mIoU rows and a time-budget stop line"):
        script.from_run(run)
