"""The package is grouped by job, and imports run one way: nn <- data <- losses <- the machinery
(training, inference, callbacks) <- the tasks; no module imports itself back through a cycle."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parents[1] / "src" / "tconvseg"
SOURCES = sorted(PACKAGE.rglob("*.py"))

#: Each top-level package or module and its layer: a module may import only from its own layer or below.
LAYERS: dict[str, int] = {
    "nn": 0,
    "peers": 1,  # models outside the decoder path, on nn's encoders
    "data": 1,
    "losses": 2,
    "training": 3,
    "inference": 3,
    "callbacks": 3,
    "entry": 4,
    "tasks": 4,
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _imports(path: pathlib.Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)}
    return {m for m in names if m.startswith("tconvseg.")}


def test_every_top_level_name_has_a_layer_and_no_folder_is_crowded():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert tops - {"__init__"} == set(LAYERS)
    for folder in {p.parent for p in SOURCES}:
        flat = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(flat) <= 13, f"{folder.relative_to(PACKAGE)} holds {len(flat)} modules flat: group them"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_nothing_from_a_layer_above_it(path: pathlib.Path):
    own = _top(_module_name(path))
    if not own:
        return  # tconvseg/__init__.py
    above = {m for m in _imports(path) if LAYERS[_top(m)] > LAYERS[own]}
    assert not above, f"{_module_name(path)} (layer {LAYERS[own]}) imports {sorted(above)}"


def test_no_import_cycles_between_modules():
    modules = {_module_name(p): p for p in SOURCES}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {m: {r for i in _imports(p, top_level_only=True) if (r := resolve(i)) and r != m and not m.startswith(r + ".")}
             for m, p in modules.items()}
    seen: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        seen[m] = 1
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(n):], n]) if n in stack else n)
            if n not in seen:
                visit(n, [*stack, n])
        seen[m] = 2

    for m in sorted(modules):
        if m not in seen:
            visit(m, [m])


def test_the_layers_are_not_vacuous():
    assert {_top(_module_name(p)) for p in SOURCES} >= {"tasks", "training", "inference", "data", "nn"}
    tasks = [p for p in SOURCES if _top(_module_name(p)) == "tasks"]
    assert any(_top(m) == "training" for p in tasks for m in _imports(p))
