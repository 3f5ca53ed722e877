"""The `keras-din` command line (also `python -m keras_din`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _convert(args: argparse.Namespace) -> int:
    from keras_din.convert import convert_official_checkpoint

    model = convert_official_checkpoint(args.checkpoint)
    folder = model.save_to_preset(args.out_dir, metadata={"converted_from": Path(args.checkpoint).name})
    print(
        f"Converted {args.checkpoint} -> {folder} (DIN {model.version} x{model.scale}, "
        f"{model.num_features} features, growth {model.growth_rate}, {model.count_params():,} parameters)"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from keras_din.model import DIN
    from keras_din.restore import read_image, restore_array, write_image_atomic

    model = DIN.from_preset(args.preset)
    out_dir = Path(args.output)
    failures = 0
    for name in tqdm(args.inputs, desc="restoring", unit="image"):
        source = Path(name)
        target = out_dir / f"{source.stem}.png"
        try:
            if target.resolve() == source.resolve():
                raise FileExistsError(f"{target} is the input itself; choose another --output folder.")
            write_image_atomic(restore_array(model, read_image(source)), target, overwrite=args.overwrite)
        except Exception as error:  # One bad image must not stop the batch: report it, go on.
            failures += 1
            tqdm.write(f"error: {source}: {error}", file=sys.stderr)
            continue
        tqdm.write(f"{source} -> {target}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-din", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert an authors' DIN checkpoint into a preset folder")
    convert.add_argument("checkpoint", help="the authors' .pth training checkpoint or state dict, or .safetensors")
    convert.add_argument("out_dir", help="preset folder to write (loads with DIN.from_preset(OUT_DIR))")
    convert.set_defaults(run=_convert)

    restore = commands.add_parser("restore", help="restore (super-resolve) image files")
    restore.add_argument("inputs", nargs="+", help="image files")
    restore.add_argument("-o", "--output", required=True, help="output folder (PNG files named after the inputs)")
    restore.add_argument("--preset", required=True, help="preset folder or authors' checkpoint")
    restore.add_argument("--overwrite", action="store_true", help="replace existing output files")
    restore.set_defaults(run=_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"keras-din {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
