"""The `keras-din` command line (also `python -m keras_din`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path


def _convert(args: argparse.Namespace) -> int:
    from keras_din.convert import convert_official_checkpoint

    out_dir = Path(args.out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not args.overwrite:
        raise FileExistsError(
            f"{str(out_dir)!r} exists and is not an empty folder: pass --overwrite to replace the preset in it, "
            "or choose a new OUT_DIR."
        )
    model = convert_official_checkpoint(args.checkpoint)
    folder = model.save_to_preset(args.out_dir, metadata={"converted_from": Path(args.checkpoint).name})
    print(
        f"Converted {args.checkpoint} -> {folder} (DIN {model.version} x{model.scale}, "
        f"{model.num_features} features, growth {model.growth_rate}, {model.count_params():,} parameters)"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from keras_din.inference import use_jax_compilation_cache
    from keras_din.restore import ImageRestorer, check_tiling, output_suffix, restore_files

    # Options are checked once, before the model loads or any image is read.
    suffix = None if args.format is None else output_suffix(args.format, name="--format")
    tile = check_tiling(args.tile, args.overlap, names=("--tile", "--overlap"))
    use_jax_compilation_cache()
    restorer = ImageRestorer.from_preset(
        args.preset,
        dtype=args.precision,
        tile=tile,
        overlap=args.overlap,
        self_ensemble=args.self_ensemble,
        jpeg_constraint=args.jpeg_constraint,
    )
    failures = restore_files(restorer, args.inputs, args.output, overwrite=args.overwrite, suffix=suffix)
    if failures:
        print(f"{len(failures)} input(s) failed: " + ", ".join(str(p) for p, _ in failures), file=sys.stderr)
    return 1 if failures else 0


def _presets(args: argparse.Namespace) -> int:
    from keras_din.preset.registry import list_presets

    rows = [("name", "version", "scale", "parameters", "weights", "PSNR (dB)")]
    for row in list_presets():
        psnr = ", ".join(f"{dataset} {value:.2f}" for dataset, value in row["psnr"].items()) or "not measured yet"
        weights = "yes" if row["weights_available"] else "not yet"
        rows.append((row["name"], row["version"], f"x{row['scale']}", f"{row['parameters']:,}", weights, psnr))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _train(args: argparse.Namespace) -> int:
    from keras_din.train import train

    train(args.config, resume=not args.restart, minutes=args.minutes)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from keras_din.evaluate import DEFAULT_DATASETS, evaluate, evaluate_restoration
    from keras_din.inference import use_jax_compilation_cache
    from keras_din.preset.card import format_restoration_table, format_sr_table

    use_jax_compilation_cache()

    datasets = None if args.datasets is None else [d for d in args.datasets.split(",") if d]
    if args.task != "sr":
        levels = args.noise_levels if args.task == "denoise" else args.qualities
        rows = evaluate_restoration(
            args.preset,
            args.task,
            levels=None if levels is None else [int(v) for v in levels.split(",") if v],
            data_root=args.data,
            datasets=datasets,
            self_ensemble=args.self_ensemble,
            json_path=args.json,
            figure_path=args.figure,
            jpeg_constraint=args.jpeg_constraint,
        )
        print(format_restoration_table(rows))
        return 0
    rows = evaluate(
        args.preset,
        data_root=args.data,
        datasets=datasets or DEFAULT_DATASETS,
        scales=None if args.scale is None else [int(s) for s in args.scale.split(",") if s],
        self_ensemble=args.self_ensemble,
        json_path=args.json,
        figure_path=args.figure,
    )
    print(format_sr_table(rows, digits=4))
    return 0


def _export(args: argparse.Namespace) -> int:
    from keras_din.export import INPUT_NAME, OUTPUT_NAME, export_model

    path = export_model(args.preset, args.output, format=args.format, overwrite=args.overwrite, opset=args.opset)
    print(
        f"Exported {args.preset} -> {path} ({args.format}: input {INPUT_NAME!r} NHWC float32 in [0, 1], "
        f"output {OUTPUT_NAME!r}, dynamic batch, height and width)"
    )
    return 0


def _add_jpeg_constraint(command: argparse.ArgumentParser) -> None:
    from keras_din.jpeg_constraint import CHOICES

    command.add_argument(
        "--jpeg-constraint",
        default="auto",
        choices=CHOICES,
        help="keep a same-size result consistent with its JPEG input's file (its luma's DCT coefficients within "
        "the file's quantisation cells): auto (default) = on for the JPEG presets and for preset folders whose "
        'metadata.json says "task": "jpeg" (not for a .keras checkpoint, which holds no task: pass on)',
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keras-din", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert an authors' DIN checkpoint into a preset folder")
    convert.add_argument("checkpoint", help="the authors' .pth training checkpoint or state dict, or .safetensors")
    convert.add_argument("out_dir", help="preset folder to write (loads with DIN.from_preset(OUT_DIR))")
    convert.add_argument("--overwrite", action="store_true", help="replace the preset files of a non-empty OUT_DIR")
    convert.set_defaults(run=_convert)

    restore = commands.add_parser("restore", help="restore (super-resolve) image files, folders or globs")
    restore.add_argument("inputs", nargs="+", help="image files, folders or glob patterns (PNG, JPEG, BMP, TIFF, WebP)")
    restore.add_argument("-o", "--output", required=True, help="output folder (files keep the inputs' names)")
    restore.add_argument(
        "--preset",
        default=None,
        help="registered preset name (see `keras-din presets`), hf://owner/repo[@revision], preset folder, "
        "authors' checkpoint, or .keras file (a training checkpoint; default: keras_din.DEFAULT_PRESET)",
    )
    restore.add_argument("--tile", default="auto", help="LR tile size in pixels, 'auto' (default) or 'none'")
    restore.add_argument("--overlap", type=int, default=32, help="LR pixels shared by neighbouring tiles (default 32)")
    restore.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (x8 slower)")
    restore.add_argument(
        "--precision", default=None, choices=["float32", "mixed_float16", "mixed_bfloat16"], help="dtype policy"
    )
    restore.add_argument(
        "--format", default=None, help="output format: png, jpg, jpeg, bmp, tif, tiff or webp; default: the input's"
    )
    restore.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_jpeg_constraint(restore)
    restore.set_defaults(run=_restore)

    presets = commands.add_parser("presets", help="list the registered presets: scale, parameters, weights, PSNR")
    presets.set_defaults(run=_presets)
    train = commands.add_parser("train", help="train a DIN from a JSON config (resumes from its output_dir)")
    train.add_argument("config", help="training config JSON (see keras_din/train.py)")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    train.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="time budget: stop after the last epoch that fits (committed; run again to resume)",
    )
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM on benchmark sets (SR, denoising, JPEG)")
    evaluate.add_argument(
        "--preset",
        required=True,
        help="a preset (name, hf://, folder, checkpoint, .keras), 'bicubic' (SR) or 'input' (denoise, jpeg)",
    )
    evaluate.add_argument(
        "--task", choices=("sr", "denoise", "jpeg"), default="sr", help="what is measured (default sr)"
    )
    evaluate.add_argument("--data", default="../shared/datasets", help="folder holding <Dataset>/HR/*.png")
    evaluate.add_argument(
        "--datasets",
        default=None,
        help="comma-separated dataset names (default: sr Set5,Set14,B100,Urban100; denoise CBSD68,Kodak24; "
        "jpeg LIVE1, or Classic5,LIVE1_gray for a greyscale model)",
    )
    evaluate.add_argument("--noise-levels", default=None, help="denoise: comma-separated σ on 0–255 (default 15,25,50)")
    evaluate.add_argument(
        "--qualities", default=None, help="jpeg: comma-separated JPEG qualities (default 10,20,30,40)"
    )
    evaluate.add_argument(
        "--scale", default=None, help="comma-separated scales (default: a model preset's own; 2,3,4 for bicubic)"
    )
    evaluate.add_argument("--self-ensemble", action="store_true", help="x8 geometric self-ensemble")
    evaluate.add_argument("--json", default=None, help="write the report (dataset, scale, psnr, ssim rows) here")
    evaluate.add_argument("--figure", default=None, help="write a PNG of visual comparisons here")
    _add_jpeg_constraint(evaluate)
    evaluate.set_defaults(run=_evaluate)

    from keras_din.export import DEFAULT_OPSET, FORMATS

    export = commands.add_parser("export", help="export a DIN to ONNX or a TensorFlow SavedModel (dynamic sizes)")
    export.add_argument(
        "--preset",
        required=True,
        help="the preset to export (name, hf://owner/repo[@revision], folder, checkpoint, .keras)",
    )
    export.add_argument("--format", default="onnx", choices=FORMATS, help="onnx (default) or saved_model")
    export.add_argument("-o", "--output", required=True, help="the .onnx file or SavedModel folder to write")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output")
    export.set_defaults(run=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one `keras-din` command; returns its exit code: 0 done, 2 a bad input named in one line,
    3 a run that failed (a diverged training, a failed export); `--debug` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        from keras_din.errors import KerasDinError

        expected = (KerasDinError, ValueError, OSError, ImportError, RuntimeError, FloatingPointError)
        if args.debug or not isinstance(error, expected):
            raise
        print(f"keras-din {args.command}: error: {error}", file=sys.stderr)
        return 3 if isinstance(error, RuntimeError) else 2


def run() -> None:
    """The `keras-din` console script and `python -m keras_din`: `main()`, then a quick exit.

    When a command has returned, every output is written and closed; what is left of the process is
    Python's own shutdown, which tears down each module the backends imported (torch, TensorFlow,
    JAX, ...): about 1.1 s on the 2-core AVX-512 EPYC on every backend, for nothing. So the exit
    handlers run and the streams are flushed, then the process ends with `os._exit`. A command that
    raises takes Python's normal path (its traceback, its exit code).
    """
    import atexit
    import os

    code = main()
    atexit._run_exitfuncs()  # what a normal shutdown runs first: logging's flush, tempfile's cleanup, ...
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing left to flush
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
