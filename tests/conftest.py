"""Shared test fixtures: where `../shared` lives, the authors' parity cases, and skipping cleanly without them.

Tests read `../shared` beside the checkout (or `KERAS_DIN_SHARED`). Without it, every test that
needs it is skipped, found from the source: a test function that names `SHARED`, `OFFICIAL`,
`DATASETS`, `CASES`, `MANIFEST`, `PAPER_CONFIGS` or `official_case`, or a module-level constant,
helper or fixture that does (transitively), or a doctest that reads `../shared`. The rest runs.
"""

import ast
import functools
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERAS_DIN_SHARED", REPO.parent / "shared"))
OFFICIAL = SHARED / "fixtures" / "official_din"
DATASETS = SHARED / "datasets"
SHARED_AVAILABLE = (OFFICIAL / "manifest.json").is_file() and DATASETS.is_dir()
# The keras-din commands the tests run keep no JAX compilation cache in the home folder
# (tests/test_cli.py gives one its own folder).
os.environ.setdefault("KERAS_DIN_JAX_CACHE", "off")

MANIFEST = json.loads((OFFICIAL / "manifest.json").read_text()) if SHARED_AVAILABLE else {"cases": []}
CASES = {case["name"]: case for case in MANIFEST["cases"]}
PAPER_CONFIGS = json.loads((OFFICIAL / "paper_configs.json").read_text()) if SHARED_AVAILABLE else {}
_SHARED_NAMES = frozenset({"SHARED", "OFFICIAL", "DATASETS", "CASES", "MANIFEST", "PAPER_CONFIGS", "official_case"})


@pytest.fixture(params=sorted(CASES))
def official_case(request):
    return CASES[request.param]


@functools.cache
def _needing_shared(path: Path) -> frozenset[str]:
    """The module-level names of a test file that need ../shared, directly or through each other."""
    tree = ast.parse(path.read_text())
    uses = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = {node.name}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
        else:
            continue
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        used |= {n.arg for n in ast.walk(node) if isinstance(n, ast.arg)}  # fixtures taken as parameters
        for name in names:
            uses[name] = used - {name}
    needing: set[str] = set()
    grown = True
    while grown:
        grown = False
        for name, used in uses.items():
            if name not in needing and used & (_SHARED_NAMES | needing):
                needing.add(name)
                grown = True
    return frozenset(needing)


def pytest_collection_modifyitems(config, items):
    if SHARED_AVAILABLE:
        return
    skip = pytest.mark.skip(reason=f"needs ../shared (fixtures and datasets), not found at {SHARED}")
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            needs = any("../shared" in example.source for example in item.dtest.examples)
        else:
            path = Path(str(item.fspath))
            names = {getattr(item, "originalname", item.name), getattr(item.cls, "__name__", None)}
            needs = path.suffix == ".py" and bool(names & _needing_shared(path))
        if needs:
            item.add_marker(skip)
