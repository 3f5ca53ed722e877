"""Start-up: the command line's help and argument errors load no backend; DIN registers with keras.saving."""

import subprocess
import sys

import pytest

_NO_BACKEND = (
    "import sys, keras_din.cli\n"
    "try:\n    keras_din.cli.main({argv!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
    "loaded = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
    "print('LOADED', loaded, 'EXIT', code)\n"
)


@pytest.mark.parametrize(
    "argv", [["--help"], ["restore", "--help"], ["restore", "x.png"], ["evaluate", "--task", "nope"]]
)
def test_help_and_argument_errors_load_no_backend(argv):
    result = subprocess.run(
        [sys.executable, "-c", _NO_BACKEND.format(argv=argv)], capture_output=True, text=True, timeout=60
    )
    assert "LOADED [] EXIT" in result.stdout, result.stdout + result.stderr
    assert result.stdout.strip().endswith("EXIT 0" if argv[-1] == "--help" else "EXIT 2")


def test_a_keras_file_loads_after_import_keras_then_keras_din(tmp_path):
    script = (
        "import keras, keras_din, numpy as np\n"
        f"path = {str(tmp_path / 'm.keras')!r}\n"
        "keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1).save(path)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    load = f"import keras, keras_din\nprint(type(keras.saving.load_model({str(tmp_path / 'm.keras')!r})).__name__)\n"
    result = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("DIN"), result.stderr
