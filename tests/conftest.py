"""Shared test fixtures: where `../shared` lives, and the authors' parity cases."""

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KERAS_DIN_SHARED", REPO.parent / "shared"))
OFFICIAL = SHARED / "fixtures" / "official_din"
DATASETS = SHARED / "datasets"

if not (OFFICIAL / "manifest.json").is_file():
    raise pytest.UsageError(
        f"The parity fixtures are not at {OFFICIAL}: the tests read ../shared beside the checkout "
        "(or set KERAS_DIN_SHARED to the shared folder)."
    )

MANIFEST = json.loads((OFFICIAL / "manifest.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}
PAPER_CONFIGS = json.loads((OFFICIAL / "paper_configs.json").read_text())


@pytest.fixture(params=sorted(CASES))
def official_case(request):
    return CASES[request.param]
