"""Derived numbers: throughput, GFLOP/s, share of the matmul rate, speed relative to the authors, targets.

"× authors" is the authors' median time divided by ours for the same
configuration and task (so > 1 means we are faster). The targets of the
benchmark issue, per configuration:

* the best backend (its best inference setting) is >= 1.2 × the authors' speed,
* every backend (each one's best inference setting) is >= 0.8 ×,
* the best training step is >= 1.0 ×.

Each is judged twice: on float32 settings only (like for like: the authors' code
runs float32) and on any precision (mixed bfloat16 included).
"""

from __future__ import annotations

TARGET_BEST_INFERENCE = 1.2
TARGET_EVERY_BACKEND = 0.8
TARGET_TRAINING = 1.0
PARITY_FIELDS = ("status", "error", "max_abs_diff", "max_abs_output", "keras_backend")


def _ok(record: dict) -> bool:
    return record["result"]["status"] == "ok"


def _derive(record: dict, reference_gflop_s: float | None, authors: dict) -> dict:
    spec, result = record["spec"], record["result"]
    if not _ok(record) or spec["kind"] not in ("keras", "official"):
        return {}
    median = result["median_s"]
    derived = {
        "throughput_mp_s": result["output_pixels"] / 1e6 / median,
        "gflop_s": result["gflop"] / median,
    }
    if reference_gflop_s:
        derived["matmul_fraction"] = derived["gflop_s"] / reference_gflop_s
    authors_median = authors.get((spec["config"], spec["task"]))
    if spec["kind"] == "keras" and authors_median:
        derived["vs_authors"] = authors_median / median
    return derived


def _best(candidates: list[dict]) -> dict | None:
    scored = [c for c in candidates if "vs_authors" in c["derived"]]
    return max(scored, key=lambda c: c["derived"]["vs_authors"], default=None)


def _target(name: str, goal: float, candidates: list[dict]) -> dict:
    """The best `vs_authors` among `candidates`, in float32 and in any precision, against `goal`."""
    target = {"target": name, "goal": goal}
    float32 = [c for c in candidates if c["spec"]["precision"] == "float32"]
    for scope, pool in (("float32", float32), ("any", candidates)):
        best = _best(pool)
        if best is None:
            target[scope] = {"value": None, "met": False, "setting": "no successful measurement"}
            continue
        spec = best["spec"]
        target[scope] = {
            "value": best["derived"]["vs_authors"],
            "met": best["derived"]["vs_authors"] >= goal,
            "setting": f"{spec['backend']} {spec['data_format']} {spec['mode']} {spec['precision']}",
        }
    return target


def _targets(config: str, records: list[dict]) -> list[dict]:
    ours = [r for r in records if r["spec"]["kind"] == "keras" and r["spec"]["config"] == config]
    inference = [r for r in ours if r["spec"]["task"] == "inference"]
    training = [r for r in ours if r["spec"]["task"] == "training"]
    targets = [_target(f"{config}: best backend, inference", TARGET_BEST_INFERENCE, inference)] if inference else []
    for backend in sorted({r["spec"]["backend"] for r in inference}):
        candidates = [r for r in inference if r["spec"]["backend"] == backend]
        targets.append(_target(f"{config}: {backend}, inference", TARGET_EVERY_BACKEND, candidates))
    if training:
        targets.append(_target(f"{config}: best training step", TARGET_TRAINING, training))
    return targets


def summarize(records: list[dict]) -> dict:
    """Returns `records` with a `derived` dict each, plus the reference matmul rates, parity and targets."""
    matmul = {
        r["spec"]["library"]: r["result"]["gflop"] / r["result"]["median_s"]
        for r in records
        if r["spec"]["kind"] == "matmul" and _ok(r)
    }
    reference = max(matmul.values(), default=None)
    authors = {
        (r["spec"]["config"], r["spec"]["task"]): r["result"]["median_s"]
        for r in records
        if r["spec"]["kind"] == "official" and _ok(r)
    }
    derived = [{**r, "derived": _derive(r, reference, authors)} for r in records]
    parity = [
        {"config": r["spec"]["config"], **{k: v for k, v in r["result"].items() if k in PARITY_FIELDS}}
        for r in records
        if r["spec"]["kind"] == "parity"
    ]
    configs = list(dict.fromkeys(r["spec"]["config"] for r in records if r["spec"]["kind"] == "keras"))
    targets = [t for config in configs for t in _targets(config, derived)] if authors else []
    return {
        "matmul_gflop_s": matmul,
        "reference_gflop_s": reference,
        "records": derived,
        "parity": parity,
        "targets": targets,
    }
