"""The manual's examples cannot go stale: README.md and docs/ are checked against the code.

- every ```python block runs (fresh namespace, in a temporary working directory), unless the line
  right before it is ``<!-- no-run: reason -->`` with a reason;
- every command of a ```bash block that runs a Hydra entry point (``scripts/{train,eval,predict,export,demo}.py``
  or ``tconvseg-{train,eval,predict,export,demo}``) composes with its overrides, so a renamed option fails here;
- the MkDocs site builds with ``--strict`` (broken links, anchors and docstrings are errors).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers.configs import CONFIG_DIR
from tests.helpers.scripts import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

NO_RUN = re.compile(r"^\s*<!--\s*no-run:(?P<reason>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
SHELL = {"bash", "sh", "shell"}
#: The token that starts an entry point, and the config it composes.
ENTRY = re.compile(r"^(?:.*/)?(?:scripts/(?P<script>train|eval|predict|export|demo)\.py|tconvseg-(?P<console>train|eval|predict|export|demo))$")
#: Hydra's flags that take a value (the value is the next token, or follows "=").
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-dir", "-cd", "--config-name", "-cn", "--info", "-i"}
#: A placeholder the reader fills in: ``<run>``, ``<best checkpoint>``.
PLACEHOLDER = re.compile(r"<(?P<name>[^<>\n]+)>")

#: Commands that need a user's own config folder (``--config-dir``) and so cannot compose here:
#: the exact command text (comments and continuations removed, words joined by one space) -> why.
#: Commands that name the reader's own config folder: the files the page tells the reader to make there,
#: each as a copy of one of ours (``{their file: our file}``); the test makes them, then composes.
USER_CONFIG_COMMANDS = {
    "python scripts/train.py --config-dir my_configs model=fcn8s_resnet18 data=my_data": {"data/my_data.yaml": "data/folder.yaml"},
}


@dataclass(frozen=True)
class Block:
    """A fenced code block of a page: its language, code and the line right before its fence."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    before: str

    @property
    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One entry-point command of a shell block, as written (comments and continuations removed)."""

    where: str
    text: str
    config_name: str
    args: tuple[str, ...]


def shown(path: Path) -> str:
    """A page's path as test ids show it: relative to the repository."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, dedented by their fence's indent."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = len(match["indent"]), match["fence"]
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        code = "\n".join(line[indent:] if not line[:indent].strip() else line.lstrip() for line in lines[i + 1 : end])
        found.append(Block(path, i + 1, match["lang"].lower(), code + "\n", lines[i - 1] if i else ""))
        i = end + 1
    return found


def all_blocks(lang: set[str]) -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang in lang]


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """``(line number, text)`` of each shell line, continuation lines (``\\``) joined."""
    out, start, parts = [], None, []
    for offset, line in enumerate(block.code.splitlines(), start=block.line + 1):
        start = offset if start is None else start
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        out.append((start, " ".join(p.strip() for p in parts)))
        start, parts = None, []
    return out


def commands(block: Block) -> list[Command]:
    """The entry-point commands of a shell block; env-var prefixes, launchers (``srun``, ``torchrun``) and
    ``&&`` chains are read through; placeholders ``<...>`` become plain words."""
    found = []
    for line_no, line in logical_lines(block):
        line = PLACEHOLDER.sub(lambda m: re.sub(r"\W+", "_", m["name"]).strip("_") or "placeholder", line)
        tokens = shlex.split(line, comments=True)
        simple: list[list[str]] = [[]]
        for token in tokens:
            if token in {"&&", "||", ";", "|"}:
                simple.append([])
            else:
                simple[-1].append(token)
        for words in simple:
            for i, word in enumerate(words):
                match = ENTRY.match(word)
                if match:
                    where = f"{shown(block.path)}:{line_no}"
                    found.append(Command(where, " ".join(words), match["script"] or match["console"], tuple(words[i + 1 :])))
                    break
    return found


def all_commands() -> list[Command]:
    return [c for b in all_blocks(SHELL) for c in commands(b)]


def overrides_of(command: Command) -> tuple[str, list[str], str | None]:
    """``(config name, overrides, config dir)``: Hydra's flags dropped (``-m`` noted, ``--config-name``
    and ``--config-dir`` read), placeholders ``key=...`` dropped, sweeps of a multirun cut to their first value."""
    config_name, config_dir, multirun, overrides = command.config_name, None, False, []
    args = list(command.args)
    while args:
        arg = args.pop(0)
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in VALUE_FLAGS or arg.split("=", 1)[0] in VALUE_FLAGS:
            flag, _, value = arg.partition("=")
            value = value or (args.pop(0) if args else "")
            if flag in ("--config-name", "-cn"):
                config_name = value
            elif flag in ("--config-dir", "-cd"):
                config_dir = value
        elif arg.startswith("-"):
            continue  # --resolve, --help, --hydra-help, ...
        elif arg.partition("=")[2] != "...":
            overrides.append(arg)
    if multirun:
        parsed = OverridesParser.create().parse_overrides(overrides)
        overrides = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line for o in parsed
        ]
    return config_name, overrides, config_dir


def test_pages_are_found_with_code_and_commands():
    """The parsing finds the manual's pages, its python blocks and a command of every entry point."""
    assert (ROOT / "docs" / "index.md") in PAGES and len(PAGES) >= 10
    assert len(all_blocks({"python"})) >= 5
    assert {c.config_name for c in all_commands()} >= {"train", "eval", "predict", "export"}


def test_blocks_and_commands_are_read_as_a_shell_reads_them(tmp_path):
    """Fences, no-run markers, continuations, comments, env prefixes, flags, sweeps and placeholders."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- no-run: needs a GPU -->\n```python\nif True:\n    x = 1\n```\n\n"
        "```bash\n# python scripts/train.py not=a_command\n"
        "TCONVSEG_DATA_DIR=/d python scripts/train.py -m 'model.optimizer.lr=0.1,0.2' \\\n"
        "    data.batch_size=4   # a comment\n"
        "pip install x && tconvseg-eval --cfg job ckpt_path=<best checkpoint> experiment=...\n```\n",
        encoding="utf-8",
    )
    python, shell = blocks(page)
    assert (python.lang, python.code, NO_RUN.match(python.before)["reason"].strip()) == ("python", "if True:\n    x = 1\n", "needs a GPU")
    train, evaluate = commands(shell)
    assert train.where == "page.md:9" and overrides_of(train) == ("train", ["model.optimizer.lr=0.1", "data.batch_size=4"], None)
    assert overrides_of(evaluate) == ("eval", ["ckpt_path=best_checkpoint"], None)


@pytest.mark.parametrize("block", all_blocks({"python"}), ids=lambda b: b.where)
def test_python_block_runs(block, tmp_path, monkeypatch):
    """Each python block runs as written, in a fresh namespace, in an empty working directory."""
    marker = NO_RUN.match(block.before)
    if marker:
        assert marker["reason"].strip(), f"{block.where}: <!-- no-run: ... --> needs a reason"
        pytest.skip(f"no-run: {marker['reason'].strip()}")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.code, block.where, "exec"), {"__name__": "__main__"})


def test_every_no_run_marker_gives_a_reason_and_precedes_a_python_block():
    """``<!-- no-run: reason -->`` opts a python block out only with a reason, right before its fence."""
    python_starts = {(b.path, b.line - 1) for b in all_blocks({"python"})}
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            if line.lstrip().startswith("<!--") and "no-run" in line:
                match = NO_RUN.match(line)
                assert match and match["reason"].strip(), f"{page.name}:{number}: write <!-- no-run: reason -->"
                assert (page, number) in python_starts, f"{page.name}:{number}: no-run must be right before a ```python fence"


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: c.where)
def test_documented_command_composes(command, tmp_path):
    """Each entry-point command of a shell block composes with its overrides (a renamed option fails); a
    ``--config-dir`` command composes with the reader's folder as the page describes it."""
    config_name, overrides, config_dir = overrides_of(command)
    if config_dir is not None:
        files = USER_CONFIG_COMMANDS.get(command.text)
        assert files, f"{command.where}: {command.text!r} needs --config-dir {config_dir}; list the files it needs in USER_CONFIG_COMMANDS"
        for theirs, ours in files.items():
            (tmp_path / config_dir / theirs).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(CONFIG_DIR) / ours, tmp_path / config_dir / theirs)
        overrides = [*overrides, f"hydra.searchpath=[file://{tmp_path / config_dir}]"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    assert cfg.task_name


def test_user_config_commands_are_still_documented():
    """Every listed ``--config-dir`` command still appears in the manual (no stale entries)."""
    documented = {c.text for c in all_commands()}
    assert set(USER_CONFIG_COMMANDS) <= documented


def test_the_manual_builds_strictly(tmp_path):
    """``mkdocs build --strict``: no broken link, anchor, image or docstring in the manual."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    args = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
