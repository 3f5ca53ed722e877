"""The package's import graph (layered, without a cycle) and the linter.

Every module of `keras_din` belongs to one layer; a module imports only from its own layer
or the ones below it (deferred imports inside functions count too), and the modules of a
layer import each other without a cycle. A new module must be given a layer here.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "keras_din"
# Lowest first. `keras_din/__init__.py` is the package's lazy façade (names resolved on first
# use, by module name) and `__main__` runs the CLI: both stand above everything.
LAYERS = (
    ("leaves", ("keras_din.version", "keras_din.errors")),
    ("core", ("keras_din.architecture", "keras_din.layers")),
    ("shared utilities", ("keras_din._io",)),
    ("presets", ("keras_din.preset",)),
    ("model", ("keras_din.model",)),
    (
        "applications",
        (
            "keras_din.degradations",
            "keras_din.jpeg_constraint",
            "keras_din.metrics",
            "keras_din.data",
            "keras_din.tiling",
            "keras_din.inference",
            "keras_din.restore",
            "keras_din.evaluate",
            "keras_din.train",
            "keras_din.export",
            "keras_din.convert",
        ),
    ),
    ("command line", ("keras_din.cli", "keras_din.__main__", "keras_din")),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes if prefix != "keras_din"):
            return rank
        if module == "keras_din" and "keras_din" in prefixes:
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layering.py: give it one.")


def _imports(path: Path, module: str) -> set[str]:
    """The keras_din modules `path` imports, anywhere in it (top level, functions, TYPE_CHECKING blocks)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "keras_din"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] == "keras_din":
                # `from keras_din.layers import WRDB` imports keras_din.layers; `from keras_din import x` a submodule x
                submodules = {f"{base}.{alias.name}" for alias in node.names}
                found |= {name for name in submodules if _is_module(name)} or {base}
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {module: _imports(path, module) - {module} for module, path in modules.items()}


def test_every_import_goes_to_the_same_layer_or_below():
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in _graph().items()
        if module != "keras_din"  # the façade's lazy names are resolved by module name, not imported
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [module, target] if target in trail else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_checker_sees_an_upward_and_a_deferred_import(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from keras_din.train import train\n    from ..model import DIN\n")
    found = _imports(source, "keras_din.preset.probe")
    assert found == {"keras_din.train", "keras_din.model"}
    assert _layer("keras_din.train") > _layer("keras_din.preset.probe")


def test_ruff_lints_and_formats_the_tree_clean():
    """The ruff configuration in pyproject.toml holds for every source file (`ruff check`, `ruff format --check`)."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extras: pip install -e '.[dev]')")
    folders = ["keras_din", "tests", "tools", "benchmarks"]
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run([ruff, *command, *folders], cwd=PACKAGE.parent, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
