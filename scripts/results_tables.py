"""The results page's tables built from run records (docs/records/runs/<run>.json), never typed by hand.

    python scripts/results_tables.py --check            # exit 1 if a table on a page and its records disagree
    python scripts/results_tables.py --write            # rewrite the tables on the pages from the records
    python scripts/results_tables.py --from-run RUN_DIR --command "python scripts/train.py ..." --machine "..." \
        --date 2026-12-07 --steps 850 --train-seconds 420 [--commit abc1234] [--label "..."]   # write RUN_DIR's record

A run record holds what made a figure: the training command, machine, date, the git commit it ran at (``null`` when
it was not logged), steps and training wall-clock seconds, a label, and the metrics its evaluations wrote
(``eval_<split>_last.json``: ``holdout/mIoU``, ``holdout/IoU/<class>``, ``val/mIoU``, ...). A page asks for a table
with a marker line and the table follows it up to the closing marker::

    <!-- records: summary holdout run_a run_b -->

    | run | ... |

    <!-- /records -->

Kinds: ``summary`` (label, seed, steps, wall clock, the split's mIoU, val's mIoU) and ``per_class`` (the split's IoU
per class). The docs build (mkdocs ``hooks:``, `on_page_markdown`) rebuilds every table from the records, and
``tests/test_results_records.py`` fails when the committed page differs from what the records give.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "records" / "runs"
PAGES = [ROOT / "docs" / "results.md"]
# Blank lines around the table: Markdown ends an HTML block (the marker) at a blank line, not at a table row.
BLOCK = re.compile(r"(<!-- records: (?P<spec>[^>]*?) -->\n\n)(?P<table>.*?)(\n<!-- /records -->)", re.S)
REQUIRED = ("name", "label", "command", "machine", "date", "commit", "seed", "steps", "train_seconds", "metrics")


def load_record(name: str, records: Path = RECORDS) -> dict[str, Any]:
    """The record of run ``name``; a missing file or field is an error naming it."""
    path = records / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no record {path} for run {name!r}; write it with --from-run")
    record = json.loads(path.read_text())
    missing = [key for key in REQUIRED if key not in record]
    if missing or record["name"] != name:
        raise ValueError(f"{path}: missing {missing} or name {record.get('name')!r} != {name!r}; expected the fields {REQUIRED}")
    return record


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _wall(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def table(kind: str, split: str, names: list[str], records: Path = RECORDS) -> str:
    """The markdown table (with a trailing newline) of ``kind`` for ``split`` over the runs ``names``."""
    rows = [load_record(name, records) for name in names]
    if kind == "summary":
        lines = [f"| run | what | seed | steps | wall m:s | {split} mIoU % | val mIoU % |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            metrics = r["metrics"]
            lines.append(
                f"| `{r['name']}` | {r['label']} | {r['seed']} | {r['steps']} | {_wall(r['train_seconds'])} | "
                f"{_percent(metrics.get(f'{split}/mIoU'))} | {_percent(metrics.get('val/mIoU'))} |"
            )
    elif kind == "per_class":
        classes = [key.split("/")[-1] for key in rows[0]["metrics"] if key.startswith(f"{split}/IoU/")]
        lines = ["| run | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
        for r in rows:
            values = [r["metrics"].get(f"{split}/IoU/{c}") for c in classes]
            lines.append(f"| `{r['name']}` | " + " | ".join("–" if v is None else f"{100 * v:.1f}" for v in values) + " |")
    else:
        raise ValueError(f"records table kind {kind!r}; expected summary or per_class")
    return "\n".join(lines) + "\n"


def render(markdown: str, records: Path = RECORDS) -> str:
    """``markdown`` with every records block's table rebuilt from the records."""

    def rebuild(match: re.Match) -> str:
        kind, split, *names = match["spec"].split()
        return match.group(1) + table(kind, split, names, records) + match.group(4)

    return BLOCK.sub(rebuild, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs hook: the page as built carries the tables the records give, whatever the committed text says."""
    return render(markdown)


def record_from_run(run: Path, command: str, machine: str, date: str, commit: str | None, label: str, steps: int,
                    train_seconds: float) -> dict[str, Any]:
    """A record from a run folder: the metrics of every ``eval_<split>_last.json`` in it (``eval_<split>_last_<tta>.json``:
    keys suffixed ``@<tta>``), the seed of ``command``."""
    metrics: dict[str, float] = {}
    for report in sorted(run.glob("eval_*_last*.json")):
        tta = report.stem.partition("_last")[2].lstrip("_")  # eval_holdout_last_flip.json: scored with tta=flip
        values = json.loads(report.read_text())["metrics"]
        metrics.update({f"{key}@{tta}" if tta else key: value for key, value in values.items()})
    if not metrics:
        raise FileNotFoundError(f"{run}: no eval_<split>_last.json; evaluate the run first (scripts/eval.py ckpt_path=.../last.ckpt split=...)")
    seed = re.search(r"seed=(\d+)", command)
    return {
        "name": run.name, "label": label, "command": command, "machine": machine, "date": date, "commit": commit,
        "seed": int(seed[1]) if seed else 42, "steps": steps, "train_seconds": train_seconds, "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page's tables differ from the records")
    parser.add_argument("--write", action="store_true", help="rewrite the pages' tables from the records")
    parser.add_argument("--from-run", type=Path, help="write a record from this run folder")
    for key in ("command", "machine", "date", "commit", "label"):
        parser.add_argument(f"--{key}")
    parser.add_argument("--steps", type=int, help="optimizer steps of the run (with --from-run)")
    parser.add_argument("--train-seconds", type=float, help="the training command's wall clock (with --from-run)")
    args = parser.parse_args(argv)
    if args.from_run:
        missing = [k for k in ("command", "machine", "date", "steps", "train_seconds") if getattr(args, k) is None]
        if missing:
            parser.error(f"--from-run needs {', '.join('--' + k.replace('_', '-') for k in missing)}")
        record = record_from_run(args.from_run, args.command, args.machine, args.date, args.commit, args.label or args.from_run.name,
                                 args.steps, args.train_seconds)
        RECORDS.mkdir(parents=True, exist_ok=True)
        out = RECORDS / f"{args.from_run.name}.json"
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(out)
        return 0
    stale = []
    for page in PAGES:
        text = page.read_text()
        built = render(text)
        if built != text:
            stale.append(page)
            if args.write:
                page.write_text(built)
    for page in stale:
        print(f"{page.relative_to(ROOT)}: {'rewritten from' if args.write else 'differs from'} its records")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
