"""Evaluation: the published bicubic table reproduced, and a model evaluated end to end."""

import json

import numpy as np
import pytest
from PIL import Image

import keras_din
from keras_din.evaluate import evaluate
from keras_din.preset.card import format_sr_table

from conftest import DATASETS, OFFICIAL

# Bicubic rows of the RDN/RCAN tables (independent of this code).
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


def test_bicubic_reproduces_the_published_table(tmp_path):
    rows = evaluate("bicubic", DATASETS, ["Set5", "Set14"], [2, 3, 4], json_path=tmp_path / "r.json", progress=False)
    print("\n" + format_sr_table(rows, digits=4))
    for row in rows:
        published_psnr, published_ssim = PUBLISHED[(row["dataset"], row["scale"])]
        assert abs(row["psnr"] - published_psnr) <= 0.01, row
        assert abs(row["ssim"] - published_ssim) <= 0.001, row
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(r["dataset"], r["scale"]) for r in report["results"]] == list(PUBLISHED)
    assert set(report["results"][0]) >= {"dataset", "scale", "psnr", "ssim"}


def test_model_evaluation_writes_report_and_comparison_figure(tmp_path):
    preset = keras_din.convert_official_checkpoint(OFFICIAL / "conference_x3.pth").save_to_preset(tmp_path / "p")
    data = tmp_path / "data" / "Tiny" / "HR"
    data.mkdir(parents=True)
    hr = np.asarray(Image.open(DATASETS / "Set5" / "HR" / "bird.png"))[:60, :45]
    Image.fromarray(hr).save(data / "crop.png")
    rows = evaluate(
        str(preset),
        tmp_path / "data",
        ["Tiny"],
        [3],
        json_path=tmp_path / "r.json",
        figure_path=tmp_path / "cmp.png",
        progress=False,
    )
    assert rows[0]["images"] == 1 and np.isfinite(rows[0]["psnr"]) and -1 <= rows[0]["ssim"] <= 1
    with Image.open(tmp_path / "cmp.png") as figure:
        assert figure.size[0] > 3 * 45 and figure.mode == "RGB"
    with pytest.raises(ValueError, match=r"×3 model; it cannot be evaluated at scale \[2\]"):
        evaluate(str(preset), tmp_path / "data", ["Tiny"], [2], progress=False)
