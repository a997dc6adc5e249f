"""The results page's tables built from records (docs/records/runs/<run>.json, docs/records/tables/<table>.json), never typed by hand.

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
per class) over run records, and ``table <table_id>``: any table, its header and rows held in
``docs/records/tables/<table_id>.json`` with the provenance of every row (docs/records/README.md describes the format;
most of those were transcribed from the page once their run folders were gone, and say so in their ``source``). The
docs build (mkdocs ``hooks:``, `on_page_markdown`) rebuilds every table from the records; ``--check`` and
``tests/test_results_records.py`` fail when the committed page differs from what the records give, or when a table
outside a records block measures something (every section but "Not measured").
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
TABLES = ROOT / "docs" / "records" / "tables"
PAGES = [ROOT / "docs" / "results.md", ROOT / "docs" / "deploy.md"]
#: Pages on which every measurement table must be a records block (the deploy page also has tables of options).
MEASURED_PAGES = [ROOT / "docs" / "results.md"]
# Blank lines around the table: Markdown ends an HTML block (the marker) at a blank line, not at a table row.
BLOCK = re.compile(r"(<!-- records: (?P<spec>[^>]*?) -->\n\n)(?P<table>(?:(?!<!-- ).)*?)(\n<!-- /records -->)", re.S)
MARKER = re.compile(r"<!-- records: (?P<spec>[^>]*?) -->")
REQUIRED = ("name", "label", "command", "machine", "date", "commit", "seed", "steps", "train_seconds", "metrics")
#: What every row of a table record answers (``provenance()``): from its run record, else its own keys over its table's
#: ``provenance``; ``null`` where the page never said.
PROVENANCE = ("command", "machine", "date", "commit")
ROW_KEYS = {"cells", "run", "trained", "evaluate", "time_utc", "note", *PROVENANCE}
#: ``{{holdout/mIoU:pct2}}`` in a cell: the figure from the row's run record (a metric key, or steps / seed / train_seconds).
PLACEHOLDER = re.compile(r"\{\{(?P<key>[^{}:]+)(?::(?P<fmt>\w+))?\}\}")
FORMATS = {"pct2": lambda v: f"{100 * v:.2f}", "pct1": lambda v: f"{100 * v:.1f}", "wall": lambda v: _wall(v), "": str}
ALIGN = {"---", ":---", "---:", ":---:"}
#: Sections whose tables need not come from records (they measure nothing).
NOT_MEASURED = ("Not measured",)
TABLE_LINE = re.compile(r"^\|.*\|$")


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


def load_table(table_id: str, tables: Path = TABLES) -> dict[str, Any]:
    """The table record ``table_id``: ``columns`` (headers), optional ``align``, ``provenance``, ``source`` and
    ``rows`` (each ``cells``, one string per column, and optional run / provenance keys); a malformed one is an error
    naming the file and what was expected."""
    path = tables / f"{table_id}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no table record {path} for table {table_id!r}")
    record = json.loads(path.read_text())
    columns, rows = record.get("columns"), record.get("rows")
    if record.get("table") != table_id or not columns or not rows:
        raise ValueError(f"{path}: expected \"table\": {table_id!r}, a list of \"columns\" and a list of \"rows\"")
    align = record.get("align", ["---"] * len(columns))
    if len(align) != len(columns) or not set(align) <= ALIGN:
        raise ValueError(f"{path}: \"align\" needs one of {sorted(ALIGN)} per column ({len(columns)})")
    for n, row in enumerate(rows):
        unknown = set(row) - ROW_KEYS
        if unknown or len(row.get("cells", [])) != len(columns) or not all(isinstance(c, str) for c in row["cells"]):
            raise ValueError(f"{path}: row {n} has unknown keys {sorted(unknown)} or not {len(columns)} string cells; "
                             f"expected the keys {sorted(ROW_KEYS)}")
    return record


def run_record(name: str | None, records: Path = RECORDS) -> dict[str, Any] | None:
    """The run record of ``name`` when there is one, else ``None``."""
    return load_record(name, records) if name and (records / f"{name}.json").is_file() else None


def provenance(record: dict[str, Any], row: dict[str, Any], tables: Path = TABLES, records: Path = RECORDS) -> dict[str, Any]:
    """What made ``row``'s figures: its run record's fields if its run has one; else the row's own keys over its
    table's ``provenance`` (``null``: the page never said), with ``source``, and ``trained_by``, the provenance of the
    row of the same run in the table that ``trained`` names (the checkpoint a row's evaluation scored)."""
    run = run_record(row.get("run"), records)
    if run:
        return {key: run[key] for key in PROVENANCE} | {"source": f"docs/records/runs/{run['name']}.json"}
    found = dict.fromkeys(PROVENANCE) | record.get("provenance", {}) | {k: v for k, v in row.items() if k not in ("cells", "run", "trained")}
    found["source"] = record.get("source")
    if row.get("trained"):
        trained = load_table(row["trained"], tables)
        match = [r for r in trained["rows"] if r.get("run") == row.get("run")]
        if not match:
            raise ValueError(f"table {record['table']!r}: the row of run {row.get('run')!r} says trained in table {row['trained']!r}, "
                             "which has no row of that run")
        found["trained_by"] = provenance(trained, match[0], tables, records)
    return found


def _fill(cell: str, name: str | None, run: dict[str, Any] | None, where: str) -> str:
    def figure(match: re.Match) -> str:
        key, fmt = match["key"], match["fmt"] or ""
        if run is None:
            raise FileNotFoundError(f"{where}: the cell {cell!r} asks for {match[0]}, but there is no record docs/records/runs/{name}.json "
                                    "of the row's run (or the row names no run)")
        value = run["metrics"].get(key, run.get(key))
        if value is None or fmt not in FORMATS:
            raise ValueError(f"{where}: {match[0]}: no {key!r} in run {run['name']!r} or format {fmt!r} not one of {sorted(FORMATS)}")
        return FORMATS[fmt](value)

    return PLACEHOLDER.sub(figure, cell)


def record_table(table_id: str, tables: Path = TABLES, records: Path = RECORDS) -> str:
    """The markdown table (with a trailing newline) held by the table record ``table_id``; ``{{key:fmt}}`` in a cell
    is the figure of the row's run record."""
    record = load_table(table_id, tables)
    align = record.get("align", ["---"] * len(record["columns"]))
    lines = ["| " + " | ".join(record["columns"]) + " |", "| " + " | ".join(align) + " |"]
    for n, row in enumerate(record["rows"]):
        run = run_record(row.get("run"), records)
        lines.append("| " + " | ".join(_fill(cell, row.get("run"), run, f"table {table_id!r} row {n}") for cell in row["cells"]) + " |")
    return "\n".join(lines) + "\n"


def render(markdown: str, records: Path = RECORDS, tables: Path = TABLES) -> str:
    """``markdown`` with every records block's table rebuilt from the records."""

    def rebuild(match: re.Match) -> str:
        kind, *args = match["spec"].split()
        built = record_table(args[0], tables, records) if kind == "table" else table(kind, args[0], args[1:], records)
        return match.group(1) + built + match.group(4)

    whole = {m.start() for m in BLOCK.finditer(markdown)}
    broken = [m["spec"] for m in MARKER.finditer(markdown) if m.start() not in whole]
    if broken:  # e.g. a marker with no table line before its end marker: the block would swallow what follows it
        raise ValueError(f"records block(s) {broken}: expected the marker, a blank line, a table (one line is enough: the build "
                         "replaces it), a blank line and <!-- /records -->")
    return BLOCK.sub(rebuild, markdown)


def hand_typed_tables(markdown: str) -> list[str]:
    """The first line (and its heading) of every markdown table outside a records block and outside the sections that
    measure nothing (``NOT_MEASURED``): each should be built from a record."""
    inside = [range(*m.span()) for m in BLOCK.finditer(markdown)]
    found, section, offset, previous, fenced = [], "", 0, "", False
    for line in markdown.splitlines(keepends=True):
        fenced = fenced != line.lstrip().startswith("```")
        if not fenced and line.startswith(("# ", "## ")):
            section = line.strip("# \n")  # the page's title or a second-level section: the table's section
        table_start = TABLE_LINE.match(line.strip()) and not TABLE_LINE.match(previous.strip())
        if table_start and not fenced and section not in NOT_MEASURED and not any(offset in span for span in inside):
            found.append(f"{section}: {line.strip()[:80]}")
        offset, previous = offset + len(line), line
    return found


def on_page_markdown(markdown: str, page: Any = None, **_: Any) -> str:
    """mkdocs hook: the pages of ``PAGES`` as built carry the tables the records give, whatever the committed text
    says; other pages (docs/records/README.md shows a marker as an example) are left as they are."""
    if page is not None and Path(page.file.abs_src_path).resolve() not in PAGES:
        return markdown
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
    stale, typed = [], []
    for page in PAGES:
        text = page.read_text()
        built = render(text)
        if page in MEASURED_PAGES:
            typed += [f"{page.relative_to(ROOT)}: a table typed by hand, not built from records: {t}" for t in hand_typed_tables(text)]
        if built != text:
            stale.append(page)
            if args.write:
                page.write_text(built)
    for page in stale:
        print(f"{page.relative_to(ROOT)}: {'rewritten from' if args.write else 'differs from'} its records")
    print("\n".join(typed), end="\n" if typed else "")
    return 1 if (stale or typed) and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
