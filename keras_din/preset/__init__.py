"""Presets: the format, the registry, the Hub, model cards, the authors' checkpoints, and the loader.

Layered so that no module here imports a model class: `format` (file names, checks,
checksums, saving) is the leaf; `registry` (pure data), `checkpoint` (the authors'
format), `card` and `hub` build on it; `loader` dispatches a reference to them and
builds the class its caller passes (`DIN.from_preset` passes `DIN`).

The format's names are importable from here, as they always were.
"""

from keras_din.preset.format import (  # noqa: F401
    CARD_FILE,
    CONFIG_FILE,
    MAX_TEXT_BYTES,
    MAX_WEIGHTS_BYTES,
    METADATA_FILE,
    WEIGHTS_FILE,
    CorruptedFileError,
    PresetError,
    check_file_name,
    preset_config,
    preset_file,
    read_preset_json,
    save_to_preset,
    sha256_of,
    verify_weights,
    weights_entries,
)
