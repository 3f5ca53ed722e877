"""Publishes every registered preset whose folder has weights to the Hugging Face Hub. A DRY RUN by default.

For each registered preset (or those named with `--only`) whose folder holds
`model.weights.h5`, checks that the folder is that preset (its config and
parameter count are the registry's; run `python -m tools.make_preset_folders` first) and
that the weights match the SHA-256 in its metadata.json, then shows what would be
uploaded where. With `--upload` it creates each Hub repo and commits the folder
and its model card (`keras_din.upload_preset`). Presets without weights are
listed as skipped.

Usage:
    python -m tools.publish_presets                       # show the plan; nothing is sent
    python -m tools.publish_presets --upload              # upload (log in first: `hf auth login`)
    python -m tools.publish_presets --only din_conference_x4 --upload
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_din.preset import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, PresetError, read_preset_json, verify_weights
from keras_din.preset.format import CARD_FILE
from keras_din.preset.hub import upload_preset
from keras_din.preset.registry import PRESETS, PresetInfo, get_preset


def _check_folder(info: PresetInfo, folder: Path) -> list[str]:
    """The files to upload from `folder`, after checking it holds `info`'s preset with intact weights."""
    config = read_preset_json(folder, CONFIG_FILE)["config"]
    metadata = read_preset_json(folder, METADATA_FILE)
    differing = {key: config.get(key) for key, value in info.config.items() if config.get(key) != value}
    if differing:
        raise PresetError(f"{folder}/{CONFIG_FILE} is not {info.name}: it has {differing}, the registry {info.config}.")
    if metadata.get("parameter_count") != info.parameters:
        raise PresetError(
            f"{folder}/{METADATA_FILE} counts {metadata.get('parameter_count')} parameters, "
            f"the registry {info.parameters} for {info.name}."
        )
    verify_weights(folder, metadata)
    return list(dict.fromkeys([CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, *metadata.get("weights", {}), CARD_FILE]))


def _size(path: Path) -> str:
    if not path.is_file():
        return "written from config.json and metadata.json"  # the model card of a folder without one
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size:,} B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upload", action="store_true", help="really upload (default: a dry run that sends nothing)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="registered presets to publish (default: all)")
    parser.add_argument("--root", type=Path, help="folder holding <name>/ preset folders (default: the registry's)")
    parser.add_argument("--private", action="store_true", help="create new Hub repos private")
    args = parser.parse_args(argv)
    try:
        infos = [get_preset(name) for name in args.only] if args.only else list(PRESETS.values())
    except PresetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    plan, failed = [], 0
    for info in infos:
        folder = args.root / info.name if args.root else info.folder()
        if folder is None or not (folder / CONFIG_FILE).is_file():
            print(f"skip {info.name}: no preset folder (run python -m tools.make_preset_folders)")
        elif not (folder / WEIGHTS_FILE).is_file():
            print(f"skip {info.name}: no weights yet ({folder} has no {WEIGHTS_FILE})")
        else:
            try:
                files = _check_folder(info, folder)
            except PresetError as error:
                print(f"error: {info.name}: {error}", file=sys.stderr)
                failed += 1
                continue
            listing = ", ".join(f"{name} ({_size(folder / name)})" for name in files)
            print(f"{'upload' if args.upload else 'would upload'} {folder} -> {info.hf_handle}: {listing}")
            plan.append((info, folder))
    if failed:
        print(f"{failed} preset(s) refused; nothing was uploaded.", file=sys.stderr)
        return 1
    if not args.upload:
        print(f"dry run: {len(plan)} preset(s) to publish; add --upload to send them.")
        return 0
    for info, folder in plan:
        print(f"uploaded {info.name}: {upload_preset(info.hf_handle, folder, private=args.private or None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
