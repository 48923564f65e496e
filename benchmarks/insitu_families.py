"""The table a lab needs (issue 23): the in-situ training families on one footing.

For each part (a dataset with a physical system), 3 seeds (0–2), default architecture:

1. ``phyll compare`` of PhyLL, FF, PAT, DFA, ZO and backprop-ideal with the controls
   (``phyll-nophysics``, ``random-features``, ``linear``, ``mlp``, ``dfa-frozen``);
2. ``phyll robustness --scenarios drift`` (one experiment per seed) of the rules that drive the
   physics (PhyLL, FF, PAT, DFA, ZO, backprop-transfer: backprop-ideal never touches it).

The tables (``tables``) give, per rule, the test accuracy (mean ± std over seeds) and what it
cost to reach the *common validation target* — the lowest final validation accuracy (mean over
seeds) among the trained rules of the part without drift, so that every rule can reach it —
setup included: physical queries, digital FLOPs and projected time (device time + digital
time, :mod:`phyll.accounting`), means over the seeds that reach it; then the same under drift
(test accuracy of the selected epoch, and the final test accuracy: the mean of the last 3
epochs), with the same target. Everything is read from the run folders' ``metrics.jsonl`` and
``summary.json``.

Run from the repository root, inside the virtual environment (on a shared machine, with
``nice -n 19`` and ``OMP_NUM_THREADS=1``)::

    python benchmarks/insitu_families.py run vowels7 digits            # ~1 h each, loaded
    python benchmarks/insitu_families.py run mnist5k-optical mnist5k-acoustic   # hours
    python benchmarks/insitu_families.py tables vowels7 digits

Finished experiments are kept (a part whose ``summary.json`` / ``robustness.json`` exists is not
retrained); ``--out`` moves the folder (default ``runs/insitu``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from phyll.experiments.compare import cost_to_target, final_val_accuracy

#: part → (dataset, system)
PARTS = {
    "vowels7": ("vowels7", "acoustic"),
    "digits": ("digits", "acoustic"),
    "mnist5k-optical": ("mnist5k", "optical"),
    "mnist5k-acoustic": ("mnist5k", "acoustic"),
}
RULES = ("phyll", "ff", "pat", "dfa", "zo", "backprop-ideal")
CONTROLS = ("phyll-nophysics", "random-features", "linear", "mlp", "dfa-frozen")
DRIFT_RULES = ("phyll", "ff", "pat", "dfa", "zo", "backprop-transfer")
SEEDS = (0, 1, 2)


def phyll(*args: str) -> None:
    """Run one ``phyll`` command with this interpreter; stop on failure."""
    command = [sys.executable, "-m", "phyll.cli", *args]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def run(part: str, out: Path) -> None:
    """Train the comparison and the drift experiments of ``part`` (what is missing)."""
    dataset, system = PARTS[part]
    common = ("--dataset", dataset, "--system", system, "--quiet")
    compare = out / part / "compare"
    compare.parent.mkdir(parents=True, exist_ok=True)
    if not (compare / "summary.json").exists():
        entries = ",".join(RULES + CONTROLS)
        phyll("compare", *common, "--rules", entries, "--seeds", str(len(SEEDS)),
              "--out", str(compare), "--overwrite")  # fmt: skip
    for seed in SEEDS:
        drift = out / part / f"drift-seed{seed}"
        if (drift / "robustness.json").exists():
            continue
        resume = ("--resume", str(drift)) if (drift / "robustness_config.json").exists() else ()
        phyll("robustness", *common, "--seed", str(seed), "--rules", ",".join(DRIFT_RULES),
              "--scenarios", "drift", "--out", str(drift), *resume)  # fmt: skip


# ---------------------------------------------------------------------- tables
def read_runs(folder: Path, name: str) -> list[dict[str, Any]]:
    """Summary and metrics history of every finished run folder ``folder/name``."""
    runs = []
    for run_dir in sorted(folder.glob(name)):
        if not (run_dir / "summary.json").exists():
            continue  # still training
        summary = json.loads((run_dir / "summary.json").read_text())
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        runs.append({"summary": summary, "history": [json.loads(x) for x in lines if x]})
    return runs


def mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def pct(values: list[float]) -> str:
    stats = mean_std(values)
    return "—" if stats is None else f"{100 * stats[0]:.1f} ± {100 * stats[1]:.1f}"


def to_target_cells(runs: list[dict[str, Any]], target: float) -> list[str]:
    """Queries, digital FLOPs and projected time to ``target`` (means over the seeds that reach
    it, with their count)."""
    reached = [c for c in (cost_to_target(r["history"], target) for r in runs) if c is not None]
    if not reached:
        return [f"— (0/{len(runs)})", "—", "—"]
    queries = statistics.fmean(c["physical_queries"] for c in reached)
    flops = statistics.fmean(c["digital_flops"] for c in reached)
    time_s = statistics.fmean(c["projected_time_s"] for c in reached)
    return [f"{queries:,.0f} ({len(reached)}/{len(runs)})", f"{flops:.3g}", f"{time_s:.3g}"]


def tables(part: str, out: Path) -> str:
    """The two Markdown tables of ``part``: without drift, and under drift."""
    dataset, system = PARTS[part]
    compare = out / part / "compare" / "runs"
    entries = {e: read_runs(compare, f"{e}-seed*") for e in RULES + CONTROLS}
    entries = {e: runs for e, runs in entries.items() if runs}
    trained = [e for e in RULES if e in entries]
    target = min(
        statistics.fmean(final_val_accuracy(r["history"]) for r in entries[e]) for e in trained
    )
    header = (
        "| rule | test accuracy (%) | queries to target (seeds) | digital FLOPs to target "
        "| projected time to target (s) |\n|---|---|---|---|---|"
    )
    lines = [
        f"**{dataset} · {system}**, seeds {SEEDS[0]}–{SEEDS[-1]}; common validation target "
        f"{100 * target:.1f} %.",
        "",
        header,
    ]
    for entry, runs in entries.items():
        accuracy = pct([r["summary"]["test_accuracy"] for r in runs])
        lines.append(
            f"| {entry} | {accuracy} | " + " | ".join(to_target_cells(runs, target)) + " |"
        )
    drift = {rule: read_runs(out / part, f"drift-seed*/runs/{rule}-drift") for rule in DRIFT_RULES}
    drift = {rule: runs for rule, runs in drift.items() if runs}
    if drift:
        finals = {}
        for seed in SEEDS:
            path = out / part / f"drift-seed{seed}" / "robustness.json"
            if path.exists():
                for rule, scenarios in json.loads(path.read_text())["results"].items():
                    finals.setdefault(rule, []).append(scenarios["drift"]["final_test_accuracy"])
        lines += [
            "",
            "Under drift (`phyll robustness --scenarios drift`, same target):",
            "",
            "| rule | test accuracy (%) | final test accuracy (%) | queries to target (seeds) "
            "| digital FLOPs to target | projected time to target (s) |",
            "|---|---|---|---|---|---|",
        ]
        for rule, runs in drift.items():
            accuracy = pct([r["summary"]["test_accuracy"] for r in runs])
            cells = [accuracy, pct(finals.get(rule, [])), *to_target_cells(runs, target)]
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "tables"])
    parser.add_argument("parts", nargs="+", choices=sorted(PARTS))
    parser.add_argument("--out", type=Path, default=Path("runs/insitu"))
    args = parser.parse_args(argv)
    for part in args.parts:
        if args.action == "run":
            run(part, args.out)
        else:
            print(tables(part, args.out))


if __name__ == "__main__":
    main()
