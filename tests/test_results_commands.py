"""Every command the results page gives composes: those in its prose (inline code, which the shell-block test of
test_docs.py does not read) and the benchmark commands of every page, whose ``--loop`` / ``--models`` arguments are
training configs of their own."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tconvseg.tasks.benchmark import build_parser, option_row
from tests.helpers.configs import CONFIG_DIR
from tests.helpers.scripts import ROOT
from tests.test_docs import PAGES, all_blocks, logical_lines

RESULTS = ROOT / "docs" / "results.md"
PROTOCOL = RESULTS.with_name("protocol.md")  # the amendments: their commands compose too
SCRIPT = re.compile(r"^(?:python3? )?(?:\S*/)?scripts/(?P<script>\w+)\.py(?=\s|$)")
FENCED = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
#: What a reader puts in the place of ``<same>`` in a ``--loop`` list: the first set of overrides.
FIRST = "__FIRST_LOOP_ENTRY__"
HYDRA_CONFIGS = {"train", "eval", "predict", "export"}


def inline_commands(path: Path = RESULTS) -> list[str]:
    """The inline code spans of a page's prose that start a script, whitespace joined; spans of training overrides
    (``experiment=...``) as the training command they are."""
    prose = FENCED.sub("", path.read_text(encoding="utf-8"))
    spans = [re.sub(r"\s+", " ", span).strip() for span in re.findall(r"`([^`]+)`", prose)]
    return [span for span in spans if SCRIPT.match(span)] + [f"python scripts/train.py {span}" for span in spans if span.startswith("experiment=")]


def benchmark_block_commands() -> list[str]:
    """``scripts/benchmark.py`` lines of every page's shell blocks."""
    lines = [line for block in all_blocks({"bash", "sh", "shell"}) for _, line in logical_lines(block)]
    return [line.split("#")[0].strip() for line in lines if "scripts/benchmark.py" in line]


def words_of(text: str) -> list[str]:
    """Shell words with the reader's blanks filled: ``<same>`` (a loop entry) -> the first entry, a standalone
    ``<lever>`` or ``[lever]`` dropped, ``[k=v]`` (optional) kept, ``key=<a|b>`` -> ``key=a``, ``...`` dropped."""
    text = re.sub(r"<same>|<the baseline again>|<baseline>", FIRST, text)
    text = re.sub(r'(^|[\s"])<[^<>]+>(?=[\s"]|$)', r"\1", text)
    text = re.sub(r"<([^<>]+)>", lambda m: re.sub(r"\W+", "_", m[1].split("|")[0]).strip("_") or "x", text)
    words = []
    for word in shlex.split(text):
        if word.endswith(("...", "…")):  # model=peer_...: "one of them"
            continue
        if word.startswith("[") and word.endswith("]") and "=" not in word.split("[", 1)[1].split("]")[0]:
            continue  # [lever]: a placeholder
        words.append(word[1:-1] if word.startswith("[") and word.endswith("]") and "=" in word else word)
    return words


def composes(config_name: str, overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    assert cfg.task_name


def check_command(text: str) -> None:
    match = SCRIPT.match(text)
    assert match, text
    script = match["script"]
    assert (ROOT / "scripts" / f"{script}.py").is_file(), f"{text!r}: no scripts/{script}.py"
    args = words_of(text[match.end():])
    if script in HYDRA_CONFIGS:
        composes(script, [a for a in args if not a.startswith("-")])
    elif script == "benchmark":
        parsed = build_parser().parse_args(args)
        loops = [words_of(spec) for spec in parsed.loop or []]
        for entry in loops:
            composes("train", [w for part in entry for w in (loops[0] if part == FIRST else [part])])
        for spec in parsed.models or []:
            assert option_row(spec, [], parsed.num_classes).model_cfg
        assert not parsed.runs or all(isinstance(r, str) for r in parsed.runs)


def test_the_results_page_and_benchmark_commands_are_found():
    found = inline_commands() + inline_commands(PROTOCOL)
    assert len(inline_commands()) >= 20 and len(inline_commands(PROTOCOL)) >= 20
    assert any("--loop" in c for c in found) and any("scripts/train.py" in c for c in found)
    assert any("--models" in c for c in benchmark_block_commands())
    assert words_of('--loop "a=1" "<same> b=2" x=<s|t> [lever] [c=3] <lever> ...') == ["--loop", "a=1", f"{FIRST} b=2", "x=s", "c=3"]


@pytest.mark.parametrize("text", sorted(set(inline_commands() + inline_commands(PROTOCOL) + benchmark_block_commands())))
def test_every_results_page_command_composes(text):
    check_command(text)


def test_a_command_that_no_longer_composes_fails(tmp_path):
    with pytest.raises(Exception, match="experiment"):
        check_command("python scripts/train.py experiment=no_such_recipe")
    with pytest.raises(Exception, match="no_such_recipe"):
        check_command('python scripts/benchmark.py --steps 60 --loop "experiment=protocol_select_steps" "<same> model=no_such_recipe"')
    with pytest.raises(AssertionError, match="no scripts/gone.py"):
        check_command("python scripts/gone.py")


def test_pages_list_is_the_manual():
    assert RESULTS in PAGES
