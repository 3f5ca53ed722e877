"""Writes a run's results: `results.json` (everything), `results.md` (tables), `results.png` (bar chart)."""

from __future__ import annotations

import json
from pathlib import Path

from _summary import TARGET_BEST_INFERENCE, TARGET_EVERY_BACKEND, TARGET_TRAINING

# What each mode is on each backend (see _keras_workload).
MODE_NAMES = {
    ("tensorflow", "eager"): "eager",
    ("tensorflow", "graph"): "tf.function",
    ("tensorflow", "compiled"): "XLA",
    ("jax", "eager"): "eager",
    ("jax", "compiled"): "jax.jit",
    ("torch", "eager"): "eager",
    ("torch", "compiled"): "torch.compile",
}
BACKEND_COLOURS = {"tensorflow": "tab:orange", "jax": "tab:green", "torch": "tab:blue"}
FORMAT_NAMES = {"channels_last": "NHWC", "channels_first": "NCHW"}
PRECISION_NAMES = {"float32": "f32", "mixed_bfloat16": "mixed bf16"}


def _setting(spec: dict) -> str:
    if spec["kind"] == "official":
        return "authors' PyTorch (eager NCHW f32)"
    return (
        f"{spec['backend']} {FORMAT_NAMES[spec['data_format']]} {MODE_NAMES[(spec['backend'], spec['mode'])]} "
        f"{PRECISION_NAMES[spec['precision']]}"
    )


def _cell(text: str, limit: int = 160) -> str:
    """`text` shortened and made safe for one Markdown table cell."""
    return text[:limit].replace("|", "/").replace("\n", " ")


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _timing_table(records: list[dict], task: str) -> list[str]:
    rows = [r for r in records if r["spec"]["kind"] in ("official", "keras") and r["spec"]["task"] == task]
    if not rows:
        return []
    spec0 = rows[0]["spec"]
    lines = [
        f"### {task.capitalize()}: batch {spec0['batch']}, {spec0['height']}×{spec0['width']} low-resolution input",
        "",
        "| config | setting | median ms | min–max ms | first call s | output MP/s | conv GFLOP/s | % of matmul | "
        "peak RSS MiB | × authors | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for record in rows:
        spec, result, derived = record["spec"], record["result"], record["derived"]
        ok = result["status"] == "ok"
        fraction = derived.get("matmul_fraction")
        lines.append(
            "| "
            + " | ".join(
                [
                    spec["config"],
                    _setting(spec),
                    _number(result["median_s"] * 1e3) if ok else "—",
                    f"{result['min_s'] * 1e3:,.0f}–{result['max_s'] * 1e3:,.0f}" if ok else "—",
                    _number(result.get("first_call_s")),
                    _number(derived.get("throughput_mp_s"), 3),
                    _number(derived.get("gflop_s")),
                    _number(None if fraction is None else 100 * fraction, 0),
                    _number(result.get("rss_peak_mib"), 0),
                    _number(derived.get("vs_authors"), 2),
                    "ok" if ok else _cell(f"{result['status']}: {result.get('error', '')}"),
                ]
            )
            + " |"
        )
    return lines + [""]


def _disturbed(loads, threads: int) -> bool:
    # Before the run the machine should be idle; just after it, the 1-minute load average still
    # counts the run's own `threads` busy threads, so only load beyond those is someone else's.
    return loads[0][0] > 0.5 or loads[1][0] > threads + 0.5


def _markdown(machine: dict, settings: dict, summary: dict) -> str:
    records, matmul = summary["records"], summary["matmul_gflop_s"]
    loads = machine["load_average_1_5_15"], machine["load_average_1_5_15_after"]
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    lines = [
        "# keras-din benchmark",
        "",
        f"* **Machine:** {machine['cpu_model']} ({machine['logical_cpus']} logical CPUs, "
        f"{machine['usable_cpus']} usable), {machine['memory_gib']} GiB; flags {' '.join(machine['cpu_flags'])}; "
        f"{machine['platform']}",
        f"* **Threads per measurement:** {settings['threads']} (process pinned to as many CPUs)",
        f"* **Load average (1 min) before / after:** {loads[0][0]:.2f} / {loads[1][0]:.2f}"
        + (" — **the machine was not idle: timings are disturbed**" if _disturbed(loads, settings["threads"]) else ""),
        f"* **Software:** Python {machine['python']}; {libraries}",
        f"* **Run:** {'--quick, ' if settings['quick'] else ''}warm-up {settings['warmup']}, "
        f"{settings['repeats']} timed inference calls, {settings['train_repeats']} timed training steps; "
        f"{settings['duration_s'] / 60:.1f} min in all",
        "",
        f"Reference matrix multiply (float32, {settings['matmul_size']}×{settings['matmul_size']}, same threads): "
        + (", ".join(f"{lib} {rate:,.1f} GFLOP/s" for lib, rate in matmul.items()) or "not measured"),
        "",
    ]
    if summary["parity"]:
        lines += ["## Same weights in both implementations", ""]
        for check in summary["parity"]:
            if check["status"] == "ok":
                lines.append(
                    f"* {check['config']}: max |ours − authors'| = {check['max_abs_diff']:.2e} "
                    f"(outputs up to {check['max_abs_output']:.2f}; Keras on {check['keras_backend']})"
                )
            else:
                lines.append(f"* {check['config']}: {check['status']}: {check.get('error', '')}")
        lines.append("")
    if summary["targets"]:
        lines += [
            f"## Targets (best backend ≥ {TARGET_BEST_INFERENCE}×, every backend ≥ {TARGET_EVERY_BACKEND}×, "
            f"training step ≥ {TARGET_TRAINING}× the authors' speed)",
            "",
            "| target | goal | float32 | by | met | any precision | by | met |",
            "|---|---:|---:|---|---|---:|---|---|",
        ]
        for target in summary["targets"]:
            cells = [target["target"], f"{target['goal']}×"]
            for scope in ("float32", "any"):
                result = target[scope]
                cells += [f"{_number(result['value'], 2)}×", result["setting"], "yes" if result["met"] else "**no**"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Timings", ""]
    for task in ("inference", "training"):
        lines += _timing_table(records, task)
    return "\n".join(lines)


def _chart(path: Path, records: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [
        task
        for task in ("inference", "training")
        if any(r["spec"]["task"] == task and r["spec"]["kind"] in ("keras", "official") for r in records)
    ]
    if not tasks:
        return
    heights = [
        sum(1 for r in records if r["spec"]["task"] == task and r["spec"]["kind"] == "keras") + 2 for task in tasks
    ]
    figure, axes = plt.subplots(
        len(tasks), 1, figsize=(10, 0.32 * sum(heights) + 1.5), height_ratios=heights, squeeze=False
    )
    for axis, task in zip(axes[:, 0], tasks):
        done = [r for r in records if r["spec"]["task"] == task and r["result"]["status"] == "ok"]
        ours = [r for r in done if r["spec"]["kind"] == "keras"]
        authors = [r for r in done if r["spec"]["kind"] == "official"]
        labels = [f"{r['spec']['config']} {_setting(r['spec'])}" for r in ours]
        values = [r["result"]["median_s"] for r in ours]
        axis.barh(range(len(ours)), values, color=[BACKEND_COLOURS[r["spec"]["backend"]] for r in ours])
        axis.set_yticks(range(len(ours)), labels, fontsize=7)
        axis.invert_yaxis()
        for record in authors:
            axis.axvline(record["result"]["median_s"], color="red", linestyle="--")
        if values and max(values) / max(min(values), 1e-9) > 20:
            axis.set_xscale("log")
        axis.set_xlabel("median seconds per step (shorter is faster)")
        axis.set_title(f"{task}" + (f" — red: {_setting(authors[0]['spec'])}" if authors else ""), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(out: Path, machine: dict, settings: dict, summary: dict) -> list[Path]:
    """Writes the three files into `out` (created if needed) and returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "results.png"]
    paths[0].write_text(json.dumps({"machine": machine, "settings": settings, **summary}, indent=1, default=str))
    paths[1].write_text(_markdown(machine, settings, summary))
    _chart(paths[2], summary["records"])
    return [path for path in paths if path.exists()]
