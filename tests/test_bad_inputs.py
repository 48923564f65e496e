"""Hostile and broken input, table-driven: every case exits with status 2 and one stderr line.

Each case runs ``phyll.cli.main`` in-process inside a temporary folder and checks: exit status 2
(returned, or argparse's ``SystemExit(2)``), exactly one line on stderr naming the culprit (an
option, a file, a row), no traceback, every file that existed byte-identical and nothing new
(no empty folder, no lock, no staging folder). Every case fails during validation, before
training: ``Engine.fit`` is replaced by a failure so that a case that would train cannot pass.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from phyll.cli import main
from phyll.engine import Engine
from phyll.experiments.config import FORMAT, TrainConfig
from phyll.experiments.run_folder import RunLock

TINY = ("--epochs", "1", "--measurements", "8", "--width", "4", "--quiet")
Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """argv (``{tmp}`` is the case's folder), the text the one line must hold, a setup."""

    id: str
    argv: tuple[str, ...]
    culprit: str
    setup: Setup | None = None


# ------------------------------------------------------------------ file builders
def write(name: str, data: bytes | str) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)

    return setup


def run_config(config: dict | None = None, fmt: str | None = FORMAT) -> Setup:
    """A ``run/config.json`` (phyll's, unless ``fmt`` says otherwise)."""
    record = {**({"format": fmt} if fmt else {}), **TrainConfig().to_dict(), "resolved": {}}
    return write("run/config.json", json.dumps(config if config is not None else record))


def saved(obj: object) -> bytes:
    """``obj`` as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


TINY_CONFIG = TrainConfig(epochs=1, measurements=8, width=4).to_dict()


def checkpoint(data: bytes) -> Setup:
    return both(run_config(), write("run/checkpoint.pt", data))


class Payload:
    """Unpickling this would create ``marker``: the crafted checkpoint of an attacker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def crafted(tmp: Path) -> None:
    checkpoint(saved({"config": Payload(tmp / "marker")}))(tmp)


def raw_pickle(tmp: Path) -> None:
    checkpoint(pickle.dumps(Payload(tmp / "marker")))(tmp)


def locked(tmp: Path) -> None:
    """``run`` holds a phyll run whose lock this process holds (a second writer)."""
    both(run_config(), write("run/checkpoint.pt", saved({"config": TINY_CONFIG})))(tmp)
    LOCKS.append(RunLock(tmp / "run"))


LOCKS: list[RunLock] = []

# ------------------------------------------------------------------ CSV contents
GOOD_ROWS = "".join(f"{i % 3},{i % 5},{'ab'[i % 2]}\n" for i in range(20))
CSV_CASES: list[tuple[str, bytes | str, str]] = [
    ("empty", "", "empty file"),
    ("header-only", "a,b,label\n", "header only"),
    ("text-cell", "a,b,label\n1,2,x\n1,zz,y\n" + GOOD_ROWS, "row 3"),
    ("nan-cell", "a,b,label\n1,nan,x\n" + GOOD_ROWS, "row 2"),
    ("inf-cell", "a,b,label\n1,inf,x\n" + GOOD_ROWS, "row 2"),
    ("empty-cell", "a,b,label\n1,,x\n" + GOOD_ROWS, "row 2"),
    ("short-row", "a,b,label\n1,x\n" + GOOD_ROWS, "row 2"),
    ("long-row", "a,b,label\n1,2,x,9\n" + GOOD_ROWS, "row 2"),
    ("no-label-column", "a,b,c\n" + GOOD_ROWS, "label"),
    ("empty-label", "a,b,label\n1,2,\n" + GOOD_ROWS, "row 2"),
    ("duplicate-header", "a,a,label\n" + GOOD_ROWS, "appears twice"),
    ("blank-header", "a,,label\n" + GOOD_ROWS, "no name"),
    ("one-class", "a,b,label\n" + "".join(f"{i},{i},x\n" for i in range(20)), "1 class"),
    ("one-row", "a,b,label\n1,2,x\n", "bad.csv"),
    ("binary", bytes(range(256)) * 4, "UTF-8"),
    ("utf16", "a,b,label\n1,2,x\n".encode("utf-16"), "bad.csv"),
    ("bad-split", "a,b,label,split\n1,2,x,maybe\n" + GOOD_ROWS.replace("\n", ",train\n"), "row 2"),
    (
        "test-only-class",
        "a,b,label,split\n" + GOOD_ROWS.replace("\n", ",train\n") + "1,2,z,test\n",
        "'z'",
    ),
    ("no-features", "label\n" + "".join(f"{'ab'[i % 2]}\n" for i in range(20)), "bad.csv"),
    ("nul-bytes", "a,b,label\n1,\x002,x\n" + GOOD_ROWS, "bad.csv"),
]

# ------------------------------------------------------------------ the table
CASES: list[Case] = []

INT_OPTIONS = (
    "--width",
    "--measurements",
    "--blocks",
    "--epochs",
    "--batch-size",
    "--eval-every",
)
for option in INT_OPTIONS:
    for value in ("0", "-1", "1e7", "x", "", "2.5"):
        CASES.append(Case(f"train{option}={value!r}", ("train", option, value), option))
for option, value in (
    ("--seed", "x"),
    ("--seed", "1.5"),
    ("--lr", "x"),
    ("--lr", ""),
    ("--val-fraction", "x"),
    ("--checkpoint-every", "x"),
    ("--train-eval-samples", "x"),
    ("--eval-samples", "x"),
    ("--eval-samples", ""),
    ("--eval-samples", "2.5"),
    ("--conditioning", "bad"),
    ("--activation", "bad"),
    ("--rule", "nope"),
    ("--system", "nope"),
    ("--dataset", "nope"),
    ("--dataset", "mnist5k:axb"),
):
    CASES.append(Case(f"train{option}={value!r}", ("train", option, value), option))
CASES += [
    Case("train-unknown-option", ("train", "--bogus"), "--bogus"),
    Case("train-missing-value", ("train", "--width"), "--width"),
    Case("no-command", (), "command"),
    Case("unknown-command", ("bogus",), "bogus"),
]
# out-of-range values argparse accepts: TrainConfig and the declared parameters refuse them
for option, value, culprit in (
    ("--width", "10000000", "width"),
    ("--width", str(2**20 + 1), "width"),
    ("--measurements", "5000000", "measurements"),
    ("--blocks", "1001", "blocks"),
    ("--val-fraction", "0.5", "val_fraction"),
    ("--val-fraction", "-0.1", "val_fraction"),
    ("--val-fraction", "nan", "val_fraction"),
    ("--val-fraction", "inf", "val_fraction"),
    ("--checkpoint-every", "-1", "checkpoint_every"),
    ("--train-eval-samples", "-1", "train_eval_samples"),
    ("--eval-samples", "-1", "eval_samples"),  # 0 means every validation sample
    ("--lr", "inf", "lr"),
    ("--lr", "nan", "lr"),
    ("--lr", "-1", "lr"),
    ("--lr", "0", "lr"),
    *([("--device", "cuda", "cuda")] if not torch.cuda.is_available() else []),
    ("--device", "bogus", "bogus"),
    ("--system", "nosuchmodule:Thing", "nosuchmodule"),
    ("--rule", "nosuchmodule:Thing", "nosuchmodule"),
    ("--system", "phyll.systems:NoSuchClass", "NoSuchClass"),
    ("--data-path", "{tmp}/none.csv", "CSV"),
):
    argv = ("train", *TINY, option, value, "--out", "{tmp}/run")
    if option == "--data-path":
        argv = (*argv, "--dataset", "vowels7")
    CASES.append(Case(f"train{option}={value}", argv, culprit))
CASES.append(
    Case(
        "train-no-skip-no-physics",
        ("train", *TINY, "--no-skip", "--no-physics", "--out", "{tmp}/run"),
        "skip",
    )
)
for system in ("acoustic", "microwave", "optical"):
    argv = ("train", *TINY, "--system", system, "--system-param", "bogus=1", "--out", "{tmp}/r")
    CASES.append(Case(f"train-{system}-unknown-param", argv, "valid: "))
for rule in (
    "phyll",
    "ff",
    "pat",
    "backprop-ideal",
    "backprop-transfer",
    "phyll-unsup",
    "dfa",
    "zo",
):
    argv = ("train", *TINY, "--rule", rule, "--rule-param", "bogus=1", "--out", "{tmp}/run")
    CASES.append(Case(f"train-{rule}-unknown-param", argv, "valid: "))
for option, value, culprit in (
    ("--rule-param", "theta=abc", "theta"),
    ("--rule-param", "optimizer=bogus", "optimizer"),
    ("--rule-param", "prediction=bogus", "prediction"),
    ("--rule-param", "theta", "theta"),
    ("--system-param", "bogus_name=1", "bogus_name"),
    ("--system-param", "noise_std", "noise_std"),
    ("--system-param", "=1", "=1"),
    ("--system-param", "noise_std=abc", "noise_std"),
    ("--system-param", "temperature_c=(1,2)", "temperature_c"),
    ("--system-param", "encoding=loud", "encoding"),
    ("--system-param", "adc_bits=12.5", "adc_bits"),
):
    argv = ("train", *TINY, option, value, "--out", "{tmp}/run")
    CASES.append(Case(f"train{option}={value}", argv, culprit))
# the default output folder (runs/ in the working folder) is not left behind either
CASES.append(Case("train-default-out", ("train", *TINY, "--rule-param", "x=1"), "x"))

# CSV files
for name, content, culprit in CSV_CASES:
    argv = ("train", *TINY, "--dataset", "csv:{tmp}/bad.csv", "--out", "{tmp}/run")
    CASES.append(Case(f"csv-{name}", argv, culprit, write("bad.csv", content)))
CASES += [
    Case(
        "csv-missing",
        ("train", *TINY, "--dataset", "csv:{tmp}/none.csv", "--out", "{tmp}/run"),
        "none.csv",
    ),
    Case(
        "csv-folder",
        ("train", *TINY, "--dataset", "csv:{tmp}/d.csv", "--out", "{tmp}/run"),
        "d.csv",
        write("d.csv/x", ""),
    ),
    Case(
        "csv-label-column",
        (
            "train",
            *TINY,
            "--dataset",
            "csv:{tmp}/ok.csv",
            "--label-column",
            "nope",
            "--out",
            "{tmp}/run",
        ),
        "nope",
        write("ok.csv", "a,b,label\n" + GOOD_ROWS),
    ),
    Case(
        "npz-not-zip",
        ("train", *TINY, "--dataset", "npz:{tmp}/bad.npz", "--out", "{tmp}/run"),
        "bad.npz",
        write("bad.npz", "not a zip"),
    ),
    Case(
        "npz-empty",
        ("train", *TINY, "--dataset", "npz:{tmp}/bad.npz", "--out", "{tmp}/run"),
        "bad.npz",
        write("bad.npz", b""),
    ),
    Case(
        "compare-csv",
        (
            "compare",
            *TINY,
            "--rules",
            "phyll",
            "--seeds",
            "1",
            "--dataset",
            "csv:{tmp}/bad.csv",
            "--out",
            "{tmp}/cmp",
        ),
        "row 3",
        write("bad.csv", "a,b,label\n1,2,x\n1,zz,y\n" + GOOD_ROWS),
    ),
    Case(
        "depth-csv",
        ("depth", *TINY, "--blocks", "1,2", "--dataset", "csv:{tmp}/bad.csv", "--out", "{tmp}/dep"),
        "empty file",
        write("bad.csv", ""),
    ),
]

# output folders
FOREIGN = write("run/notes.txt", "my thesis")
for name, setup, culprit in (
    ("out-is-file", write("run", "x"), "not a folder"),
    ("foreign-folder", FOREIGN, "not a phyll run"),
    ("foreign-folder-overwrite", FOREIGN, "not a phyll run"),
    ("config-without-format", run_config(fmt=None), "format marker"),
    ("config-other-format", run_config(fmt="other/9"), "format marker"),
    ("config-not-json", write("run/config.json", "{oops"), "config.json"),
    ("config-a-list", write("run/config.json", "[1, 2]"), "config.json"),
    ("config-binary", write("run/config.json", b"\xff\xfe\x00"), "config.json"),
    ("existing-run", both(run_config(), write("run/summary.json", "{}")), "already holds"),
    ("locked-run", locked, f"PID {os.getpid()}"),
):
    out = "{tmp}/run"
    extra = ("--overwrite",) if name in ("foreign-folder-overwrite", "locked-run") else ()
    CASES.append(Case(f"out-{name}", ("train", *TINY, "--out", out, *extra), culprit, setup))
CASES += [
    Case(
        "out-parent-is-file",
        ("train", *TINY, "--out", "{tmp}/f/run"),
        "not a folder",
        write("f", "x"),
    ),
    Case("out-under-proc", ("train", *TINY, "--out", "/proc/phyll-bad-input"), "/proc"),
    Case("out-under-sys", ("train", *TINY, "--out", "/sys/phyll-bad-input"), "/sys"),
]
for command, extra in (
    ("compare", ("--rules", "phyll", "--seeds", "1")),
    ("depth", ("--blocks", "1")),
    ("robustness", ("--rules", "phyll", "--epochs", "2")),
):
    CASES += [
        Case(f"{command}-out-proc", (command, *TINY, *extra, "--out", "/proc/phyll-x/y"), "/proc"),
        Case(
            f"{command}-out-parent-file",
            (command, *TINY, *extra, "--out", "{tmp}/f/o"),
            "f",
            write("f", "x"),
        ),
        Case(
            f"{command}-system-param",
            (command, *TINY, *extra, "--system-param", "bogus=2", "--out", "{tmp}/o"),
            "bogus",
        ),
        Case(
            f"{command}-default-out", (command, *TINY, *extra, "--system-param", "bogus=2"), "bogus"
        ),
        Case(
            f"{command}-seed-like",
            (command, *TINY, *extra, "--val-fraction", "0.9"),
            "val_fraction",
        ),
    ]
CASES += [
    Case(
        "compare-existing",
        ("compare", *TINY, "--rules", "phyll", "--seeds", "1", "--out", "{tmp}/cmp"),
        "already holds",
        both(write("cmp/compare_config.json", "{}"), write("cmp/summary.json", "{}")),
    ),
    Case(
        "compare-foreign",
        ("compare", *TINY, "--rules", "phyll", "--seeds", "1", "--out", "{tmp}/cmp"),
        "not a comparison folder",
        write("cmp/table.md", "my table"),
    ),
    Case(
        "depth-existing",
        ("depth", *TINY, "--blocks", "1", "--out", "{tmp}/dep"),
        "already holds",
        both(write("dep/depth_config.json", "{}"), write("dep/depth.json", "{}")),
    ),
]

# experiment options
for argv, culprit in (
    (("compare", "--rules", "nope"), "nope"),
    (("compare", "--rules", ""), "--rules"),
    (("compare", "--rules", "a;b"), "--rules"),
    (("compare", "--seeds", "0"), "--seeds"),
    (("compare", "--seeds", "x"), "--seeds"),
    (("compare", "--first-seed", "x"), "--first-seed"),
    (("compare", "--target", "x"), "--target"),
    (("compare", *TINY, "--rules", "phyll", "--target", "2"), "--target"),
    (("compare", *TINY, "--rules", "phyll", "--target", "0"), "--target"),
    (("compare", "--rule-param", "x=1"), "--rule-param"),
    (("robustness", "--scenarios", "bad"), "bad"),
    (("robustness", "--scenarios", ""), "--scenarios"),
    (("robustness", "--strength", "x"), "--strength"),
    (("robustness", "--perturb-epoch", "x"), "--perturb-epoch"),
    (("robustness", "--drift-std", "x"), "--drift-std"),
    (("robustness", "--drift-per-queries", "x"), "--drift-per-queries"),
    (("robustness", "--final-window", "x"), "--final-window"),
    (("robustness", *TINY, "--epochs", "2", "--rules", "nope"), "nope"),
    (("robustness", "--resume", "{tmp}/none"), "none"),
    (("depth", "--blocks", "0"), "--blocks"),
    (("depth", "--blocks", "x"), "--blocks"),
    (("depth", "--blocks", "1,x"), "--blocks"),
    (("depth", "--blocks", ""), "--blocks"),
    (("depth", "--seeds", "0"), "--seeds"),
    (("depth", "--rules", "x"), "--rules"),
    (("depth", "--resume", "{tmp}/none"), "none"),
    (("serve",), "MODULE:CLASS"),
    (("serve", "acoustic", "--port", "x"), "--port"),
    (("serve", "acoustic", "--port", "70000"), "--port"),
    (("serve", "acoustic", "--port", "-1"), "--port"),
    (("serve", "acoustic", "--max-bytes", "1"), "--max-bytes"),
    (("serve", "acoustic", "--max-bytes", "x"), "--max-bytes"),
    (("serve", "acoustic", "--bogus"), "--bogus"),
    (("list", "--bogus"), "--bogus"),
):
    CASES.append(Case("-".join(a.strip("-") for a in argv if "{" not in a), argv, culprit))

# run folders and checkpoints: --resume
RESUME = ("train", "--resume", "{tmp}/run", "--quiet")
for name, setup, culprit in (
    ("missing-folder", None, "no such folder"),
    ("no-config", write("run/checkpoint.pt", saved({"config": TINY_CONFIG})), "config.json"),
    (
        "config-without-format",
        both(run_config(fmt=None), write("run/checkpoint.pt", b"")),
        "format marker",
    ),
    ("config-garbage", write("run/config.json", "\x00\x01"), "config.json"),
    ("no-checkpoint", run_config(), "no checkpoint"),
    ("empty", checkpoint(b""), "checkpoint.pt"),
    ("truncated", checkpoint(saved({"config": TINY_CONFIG})[:100]), "checkpoint.pt"),
    (
        "truncated-half",
        checkpoint(saved({"config": TINY_CONFIG, "x": torch.ones(500)})[:600]),
        "checkpoint.pt",
    ),
    ("random", checkpoint(os.urandom(4096)), "checkpoint.pt"),
    ("text", checkpoint(b"hello, I am a checkpoint\n"), "checkpoint.pt"),
    ("zip-not-torch", checkpoint(b"PK\x05\x06" + bytes(18)), "checkpoint.pt"),
    ("a-tensor", checkpoint(saved(torch.ones(3))), "Tensor"),
    ("a-list", checkpoint(saved([1, 2, 3])), "list"),
    ("an-int", checkpoint(saved(7)), "int"),
    ("a-string", checkpoint(saved("checkpoint")), "str"),
    ("none", checkpoint(saved(None)), "NoneType"),
    ("crafted-payload", crafted, "checkpoint.pt"),
    ("raw-pickle-payload", raw_pickle, "checkpoint.pt"),
    ("dict-without-config", checkpoint(saved({"model": {}})), "no config"),
    ("config-not-dict", checkpoint(saved({"config": [1]})), "no config"),
    ("config-unknown-keys", checkpoint(saved({"config": {**TINY_CONFIG, "evil": 1}})), "evil"),
    ("config-bad-width", checkpoint(saved({"config": {**TINY_CONFIG, "width": 0}})), "width"),
    (
        "config-bad-dataset",
        checkpoint(saved({"config": {**TINY_CONFIG, "dataset": "nope"}})),
        "nope",
    ),
    ("engine-state-missing", checkpoint(saved({"config": TINY_CONFIG})), "does not fit"),
    ("engine-state-wrong", checkpoint(saved({"config": TINY_CONFIG, "model": 3})), "does not fit"),
    ("checkpoint-is-folder", both(run_config(), write("run/checkpoint.pt/x", "")), "checkpoint"),
    (
        "metrics-corrupt-line",
        both(
            checkpoint(saved({"config": TINY_CONFIG})),
            write("run/metrics.jsonl", '{"epoch": 1}\n{oops\n{"epoch": 3}\n'),
        ),
        "line 2",
    ),
    (
        "metrics-not-object",
        both(
            checkpoint(saved({"config": TINY_CONFIG})),
            write("run/metrics.jsonl", '{"epoch": 1}\n[1]\n'),
        ),
        "line 2",
    ),
    (
        "metrics-binary",
        both(checkpoint(saved({"config": TINY_CONFIG})), write("run/metrics.jsonl", b"\xff\xfe\n")),
        "metrics.jsonl",
    ),
    ("locked", locked, f"PID {os.getpid()}"),
):
    CASES.append(Case(f"resume-{name}", RESUME, culprit, setup))


# ------------------------------------------------------------------ the check
def snapshot(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder, by path relative to ``root``."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        state[key] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(autouse=True)
def never_train(monkeypatch: pytest.MonkeyPatch) -> None:
    def fit(self: Engine) -> None:
        raise AssertionError("a bad-input case reached training")

    monkeypatch.setattr(Engine, "fit", fit)


def test_the_table_is_large() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    try:
        try:
            code = main([a.replace("{tmp}", str(tmp_path)) for a in case.argv])
        except SystemExit as exc:
            code = exc.code
        after = snapshot(tmp_path)
    finally:
        while LOCKS:
            LOCKS.pop().release()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert case.culprit in lines[0], lines[0]
    assert not (tmp_path / "marker").exists(), "a checkpoint's payload ran"
    assert after == before, "a failed command changed or left files"
    assert not list(tmp_path.parent.glob(f"{tmp_path.name}*.new-*")), "a staging folder stayed"
