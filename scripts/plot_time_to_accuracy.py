"""The results page's time-to-accuracy plot, drawn from its record file (no figure is typed here).

    python scripts/plot_time_to_accuracy.py [--record docs/records/time_to_accuracy.json] [--out docs/images/time_to_accuracy.png]
    python scripts/plot_time_to_accuracy.py --from-run RUN_DIR   # print a run's validations as a record entry

The record holds, per run, its command, machine, date, training seconds, steps and in-run validations ``[step, mIoU %]``;
the plot puts each validation at ``step * train_seconds / steps / 60`` minutes (the run's mean pace: validations are
not time-stamped) and marks the end-of-hour one-pass and flip scores.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "docs" / "records" / "time_to_accuracy.json"
OUT = ROOT / "docs" / "images" / "time_to_accuracy.png"


def minutes(run: dict) -> list[tuple[float, float]]:
    """``[(minute, mIoU %)]`` of a record entry's validations, at the run's mean pace."""
    per_step = run["train_seconds"] / run["steps"] / 60
    return [(step * per_step, miou) for step, miou in run["validations"]]


def plot(record: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for run in record["runs"]:
        points = minutes(run)
        line, = axes.plot(*zip(*points), marker="o", label=f"{run['label']} ({run['date']})")
        end = run["train_seconds"] / 60
        axes.scatter([end, end], [run["final"], run["final_flip"]], marker="*", s=90, color=line.get_color(), zorder=3)
    axes.set_xlabel("wall-clock minutes of the hour (2 CPU cores)")
    axes.set_ylabel("mIoU % on the held-out drive 0006R0")
    axes.set_xlim(0, 62)
    lowest = min(miou for run in record["runs"] for _, miou in run["validations"])
    axes.set_ylim(lowest - 6, None)  # room for the legend below the curves
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    axes.set_title("Time to accuracy on a new drive (stars: last.ckpt, one pass and flip)", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out


def from_run(run_dir: Path) -> dict:
    """A record entry's measured fields from a run folder: ``csv/metrics.csv`` and the time budget's stop line."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/mIoU")]
    stop = re.search(r"stopping at (\d+) s of \d+ s after (\d+) steps", (run_dir / "train.log").read_text())
    if not rows or stop is None:
        raise SystemExit(f"--from-run {run_dir}: expected csv/metrics.csv with val/mIoU rows and a time-budget stop line in train.log")
    return {"train_seconds": int(stop[1]), "steps": int(stop[2]),
            "validations": [[int(r["step"]), round(100 * float(r["val/mIoU"]), 2)] for r in rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--from-run", type=Path)
    args = parser.parse_args(argv)
    if args.from_run:
        print(json.dumps(from_run(args.from_run)))
        return
    print(plot(json.loads(args.record.read_text()), args.out))


if __name__ == "__main__":
    main()
