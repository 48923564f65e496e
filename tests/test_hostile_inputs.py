"""Issue 25's hostile harness as tests, generated from tables (docs/reliability.md).

Every CLI case runs ``phyll.cli.main`` in-process in a temporary folder and asserts exit status
2, exactly one stderr line naming the culprit, no traceback, no control character on the line,
and every regular file that was there byte-identical afterwards with nothing new (so nothing is
lost in a run folder). Every API case asserts the library's :class:`~phyll.errors.UserError`,
one line, naming the field. Training is replaced by a failure, so a case that would train
cannot pass; FIFOs are never opened by the snapshot, so a case that blocks on one hangs the
test, which a timeout then ends (the hang cases run in subprocesses below).

The ``slow`` cases (``pytest --run-slow``) are the issue's "Done when" list run as separate
processes: exit status 2, one line, peak RSS under 1 GB and under 60 s each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import phyll
from phyll.cli import main
from phyll.data import from_arrays
from phyll.data.tabular import MAX_COLUMNS, MAX_NPZ_RATIO, NPZ_SMALL
from phyll.engine import Engine
from phyll.errors import UserError
from phyll.experiments.config import TrainConfig
from phyll.learning.local import LocalParams
from phyll.learning.pat import PATParams
from phyll.learning.zo import ZOParams
from phyll.params import declared_range
from phyll.systems.acoustic import AcousticParams
from phyll.systems.microwave import MicrowaveParams
from phyll.systems.optical import OpticalParams
from tests.test_bad_inputs import TINY, Case, Setup, both, write

ROOT = Path(__file__).resolve().parents[1]
#: the finished run every run-folder case copies (made once per module)
RUN: dict[str, Path] = {}


# ------------------------------------------------------------------ file builders
def fifo(name: str) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    return setup


def folder(name: str) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.unlink(missing_ok=True)
        path.mkdir(parents=True)

    return setup


def link(name: str, target: str) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)

    return setup


def flipped(name: str) -> Setup:
    """16 bytes flipped in the middle of a file."""

    def setup(tmp: Path) -> None:
        path = tmp / name
        data = bytearray(path.read_bytes())
        for i in range(16):
            data[len(data) // 2 + i] ^= 0xFF
        path.write_bytes(bytes(data))

    return setup


def finished_run(tmp: Path) -> None:
    shutil.copytree(RUN["path"], tmp / "run")


def npz_declaring(shape: tuple[int, ...]) -> bytes:
    """An NPZ whose ``x`` declares ``shape`` (float32) but holds a few bytes only."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("x.npy", "w") as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(64))
        with archive.open("y.npy", "w") as f:
            np.save(f, np.zeros(4, dtype=np.int64))
    return buffer.getvalue()


def wide_csv(columns: int) -> str:
    names = [f"c{i}" for i in range(columns)]
    return ",".join([*names, "label"]) + "\n" + ",".join(["0"] * columns + ["1"]) + "\n"


#: a CSV of the vowels run's twelve features, one row (what predict reads)
FEATURES = ",".join(f"f{i}" for i in range(12)) + "\n" + ",".join(["0.5"] * 12) + "\n"

# ------------------------------------------------------------------ the CLI table
CASES: list[Case] = []

# 1. every declared range of a parameter that sizes an array: below, above, absurd
RANGED: list[tuple[str, str, type, str]] = [
    ("--system", "acoustic", AcousticParams, "--system-param"),
    ("--system", "microwave", MicrowaveParams, "--system-param"),
    ("--system", "optical", OpticalParams, "--system-param"),
    ("--rule", "phyll", LocalParams, "--rule-param"),
    ("--rule", "pat", PATParams, "--rule-param"),
    ("--rule", "zo", ZOParams, "--rule-param"),
]
for option, name, params, flag in RANGED:
    for f in dataclasses.fields(params):
        low, high = declared_range(f)
        if low is None and high is None:
            continue
        values = ["99999999999999999999", "-99999999999999999999"]
        values += [str(low - 1)] if low is not None else []
        values += [str(high + 1)] if high is not None else []
        for value in dict.fromkeys(values):
            argv = ("train", *TINY, option, name, flag, f"{f.name}={value}", "--out", "{tmp}/r")
            CASES.append(Case(f"range-{name}-{f.name}={value}", argv, f.name))

# 2. sizes the memory estimate refuses before anything is allocated (or the config's range)
for options, culprit in (
    (("--width", "1048576"), "--width"),
    (("--measurements", "4194304"), "--measurements"),
    (("--width", "2000000"), "width"),
    (("--measurements", "5000000"), "measurements"),
    (("--blocks", "1000", "--width", "65536"), "--width"),
    (("--batch-size", "100000000", "--width", "4096"), "--batch-size"),
    (("--width", "262144", "--blocks", "3"), "--width"),
    (("--width", "65536", "--max-memory", "1G"), "--max-memory 1.0 GB"),
    (("--max-memory", "12"), "--max-memory"),
    (("--max-memory", "lots"), "--max-memory"),
    (("--max-memory", "2P"), "--max-memory"),
):
    argv = ("train", "--epochs", "1", "--quiet", *options, "--out", "{tmp}/r")
    CASES.append(Case(f"memory-{'-'.join(options)}", argv, culprit))

# 3. hostile data files: FIFOs, devices, folders, wide headers, lying or bombing NPZ members
for kind in ("csv", "npz"):
    for what, setup, culprit in (
        ("fifo", fifo(f"d.{kind}"), "not a file"),
        ("folder", folder(f"d.{kind}"), "not a file"),
        ("dev-zero", link(f"d.{kind}", "/dev/zero"), "not a file"),
        ("dev-null", link(f"d.{kind}", "/dev/null"), "not a file"),
        ("dangling", link(f"d.{kind}", "/no/such/file"), "no such file"),
        ("empty", write(f"d.{kind}", ""), f"d.{kind}"),
        ("garbage", write(f"d.{kind}", b"\x00\xff" * 100), f"d.{kind}"),
    ):
        argv = ("train", *TINY, "--dataset", f"{kind}:{{tmp}}/d.{kind}", "--out", "{tmp}/r")
        CASES.append(Case(f"data-{kind}-{what}", argv, culprit, setup))
for columns in (MAX_COLUMNS + 1, 4 * MAX_COLUMNS):
    argv = ("train", *TINY, "--dataset", "csv:{tmp}/w.csv", "--out", "{tmp}/r")
    CASES.append(
        Case(
            f"csv-{columns}-columns",
            argv,
            f"{columns + 1:,} columns",
            write("w.csv", wide_csv(columns)),
        )
    )
for header, culprit in (
    ("a,a,label", "appears twice"),
    ("a,,label", "no name"),
    ("\x1b]0;pwned\x07,\x1b]0;pwned\x07,label", "appears twice"),
):
    argv = ("train", *TINY, "--dataset", "csv:{tmp}/h.csv", "--out", "{tmp}/r")
    setup = write("h.csv", f"{header}\n1,2,0\n")
    CASES.append(Case(f"csv-header-{header[:5]!r}", argv, culprit, setup))
for shape in ((10**9, 10), (2**40,), (10**6, 10**6), (1, 2**62)):
    argv = ("train", *TINY, "--dataset", "npz:{tmp}/lie.npz", "--out", "{tmp}/r")
    setup = write("lie.npz", npz_declaring(shape))
    CASES.append(Case(f"npz-declares-{shape}", argv, "declares shape", setup))
for name in ("a\x1b[2Jb.csv", "t\x1b]0;x\x07.csv", "r\rq.csv", "n\x9bm.csv"):
    argv = ("train", *TINY, "--dataset", f"csv:{{tmp}}/{name}", "--out", "{tmp}/r")
    CASES.append(Case(f"control-chars-{name!r}", argv, "no such file"))

# 4. a finished run whose files are replaced: each command that reads the file refuses it
READERS: dict[str, list[tuple[str, ...]]] = {
    "model.pt": [("predict", "{tmp}/run", "{tmp}/run/../in.csv"), ("evaluate", "{tmp}/run")],
    "checkpoint.pt": [("train", "--resume", "{tmp}/run", "--epochs", "3")],
    "config.json": [
        ("predict", "{tmp}/run", "{tmp}/in.csv"),
        ("evaluate", "{tmp}/run"),
        ("train", "--resume", "{tmp}/run", "--epochs", "3"),
        ("report", "{tmp}/run"),
    ],
    "manifest.json": [
        ("evaluate", "{tmp}/run"),
        ("train", "--resume", "{tmp}/run", "--epochs", "3"),
    ],
    "metrics.jsonl": [("train", "--resume", "{tmp}/run", "--epochs", "3")],
}
REPLACEMENTS: dict[str, Callable[[str], Setup]] = {
    "fifo": lambda f: fifo(f"run/{f}"),
    "folder": lambda f: folder(f"run/{f}"),
    "dev-zero": lambda f: link(f"run/{f}", "/dev/zero"),
    "flipped": lambda f: flipped(f"run/{f}"),
}
#: what the line names: the file always; how it is wrong where the command reads it itself
CULPRITS = {"fifo": "", "folder": "", "dev-zero": "", "flipped": ""}
for file, commands in READERS.items():
    for replacement, make in REPLACEMENTS.items():
        if replacement == "flipped" and file in ("metrics.jsonl",):
            continue  # a flipped byte in a metrics line is a corrupt line: test_resume's
        for argv in commands:
            culprit = CULPRITS[replacement] or file
            setup = both(finished_run, write("in.csv", FEATURES), make(file))
            CASES.append(
                Case(f"run-{file}-{replacement}-{argv[0]}{len(argv)}", argv, culprit, setup)
            )

# 5. folders phyll did not make: every experiment kind refuses them, its marker or not
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "compare": ("compare", *TINY, "--rules", "phyll", "--seeds", "1"),
    "depth": ("depth", *TINY, "--blocks", "1"),
    "robustness": (
        "robustness",
        "--epochs",
        "2",
        "--measurements",
        "8",
        "--width",
        "4",
        "--quiet",
        "--rules",
        "phyll",
    ),
    "frontier": ("frontier", "--epochs", "1", "--quiet"),
    "sweep": ("sweep", "--param", "lr=0.01"),
}
MARKERS = {
    "compare": "compare_config.json",
    "depth": "depth_config.json",
    "robustness": "robustness_config.json",
    "frontier": "frontier.json",
    "sweep": "sweep_config.json",
}
OWN_NAMES = {
    "compare": "table.md",
    "depth": "depth.png",
    "robustness": "robustness.json",
    "frontier": "frontier_inference.png",
    "sweep": "sweep_table.md",
}
for kind, argv in EXPERIMENTS.items():
    marker = MARKERS[kind]
    for what, setup, culprit in (
        ("user-file", write("out/notes.txt", "mine"), "notes.txt"),
        ("own-name", write(f"out/{OWN_NAMES[kind]}", "mine"), OWN_NAMES[kind]),
        (
            "marker-and-user-file",
            both(write(f"out/{marker}", "{}"), write("out/thesis.tex", "x")),
            "thesis.tex",
        ),
        (
            "a-run-folder",
            both(write("out/config.json", "{}"), write("out/model.pt", "x")),
            "config.json",
        ),
        ("out-is-a-file", write("out", "x"), "not a folder"),
    ):
        extra = ("--overwrite",) if kind != "frontier" else ()
        CASES.append(Case(f"owner-{kind}-{what}", (*argv, "--out", "{tmp}/out"), culprit, setup))
        if what == "user-file" and extra:
            CASES.append(
                Case(
                    f"owner-{kind}-{what}-overwrite",
                    (*argv, "--out", "{tmp}/out", *extra),
                    culprit,
                    setup,
                )
            )
for what, setup, culprit in (
    ("user-file-beside-run", both(finished_run, write("run/notes.txt", "mine")), "notes.txt"),
    ("user-png-beside-run", both(finished_run, write("run/plot.png", "mine")), "plot.png"),
):
    CASES.append(
        Case(
            f"owner-train-{what}",
            ("train", *TINY, "--out", "{tmp}/run", "--overwrite"),
            culprit,
            setup,
        )
    )

# 6. names too long, places that cannot be written, symlinked runs, predictions into a run
LONG = "x" * 300
for command, argv in (
    ("train", ("train", *TINY)),
    *((kind, argv) for kind, argv in EXPERIMENTS.items()),
):
    CASES.append(
        Case(f"long-name-{command}", (*argv, "--out", f"{{tmp}}/{LONG}"), "choose a shorter")
    )
    CASES.append(
        Case(
            f"long-path-{command}",
            (*argv, "--out", "{tmp}/" + "/".join(["y" * 200] * 25)),
            "too long",
        )
    )
    CASES.append(Case(f"unwritable-{command}", (*argv, "--out", "/proc/phyll-x/out"), "/proc"))
CASES += [
    Case(
        "overwrite-a-symlinked-run",
        ("train", *TINY, "--out", "{tmp}/linked", "--overwrite"),
        "symbolic link",
        both(finished_run, link("linked", "run")),
    ),
    Case(
        "predict-out-into-the-run",
        ("predict", "{tmp}/run", "{tmp}/in.csv", "--out", "{tmp}/run/summary.json"),
        "a folder phyll made",
        both(finished_run, write("in.csv", FEATURES)),
    ),
    Case(
        "predict-out-a-long-name",
        ("predict", "{tmp}/run", "{tmp}/in.csv", "--out", f"{{tmp}}/{LONG}.csv"),
        "choose a shorter",
        both(finished_run, write("in.csv", FEATURES)),
    ),
]

# 7. numbers the command line refuses before anything runs
for option in ("--seed", "--epochs", "--batch-size", "--blocks", "--width", "--measurements"):
    for value in ("-1", "1e30", "99999999999999999999", "nan", "0x10"):
        if option != "--seed" and value == "-1":
            continue  # test_bad_inputs covers it
        CASES.append(
            Case(
                f"number{option}={value}",
                ("train", *TINY, option, value, "--out", "{tmp}/r"),
                option.lstrip("-"),
            )
        )


# ------------------------------------------------------------------ harness
def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a regular file's sha256, else its kind (FIFOs never opened)."""
    state = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        key = str(path.relative_to(root))
        if stat.S_ISREG(mode):
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = stat.filemode(mode)
    return state


@pytest.fixture(scope="module", autouse=True)
def a_finished_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "--dataset", "vowels", *TINY, "--blocks", "1", "--out", str(out)]) == 0
    RUN["path"] = out


@pytest.fixture
def never_train(monkeypatch: pytest.MonkeyPatch) -> None:
    def fit(self: Engine) -> None:
        raise AssertionError("a hostile case reached training")

    monkeypatch.setattr(Engine, "fit", fit)


def test_the_tables_are_large() -> None:
    assert len(CASES) + len(API_CASES) >= 300, (len(CASES), len(API_CASES))
    ids = [c.id for c in CASES] + [c[0] for c in API_CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"


@pytest.fixture
def deadline() -> Iterator[None]:
    """A case that blocks (a FIFO opened, an endless read) fails after 30 s instead of hanging."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError("the case hung for 30 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_cli_input_is_one_line_exit_2_and_loses_nothing(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    never_train: None,
    deadline: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    try:
        code = main([a.replace("{tmp}", str(tmp_path)) for a in case.argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert case.culprit in lines[0], lines[0]
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in lines[0]), repr(lines[0])
    assert snapshot(tmp_path) == before, "a refused command changed or left files"
    assert not list(tmp_path.glob("*.new-*")), "a staging folder stayed"


# ------------------------------------------------------------------ the API table
WRONG: dict[str, tuple[Any, ...]] = {
    "int": ("x", 1.5, None, True, [1]),
    "int | None": ("x", 1.5, True, [1]),
    "float": ("x", None, True, [0.1]),
    "str": (1, None, 1.5, b"x"),
    "str | None": (1, 1.5, b"x"),
    "bool": (1, "yes", None),
    "list": ("x", None, {"a": 1}),
    "dict": ("x", None, [1]),
}


def kind_of(annotation: str) -> str | None:
    text = annotation.replace(" ", "")
    for kind in ("int|None", "str|None"):
        if text == kind:
            return kind.replace("|", " | ")
    if text.startswith("list"):
        return "list"
    if text.startswith("dict"):
        return "dict"
    return text if text in WRONG else None


API_CASES: list[tuple[str, Callable[[], Any], str]] = []
for f in dataclasses.fields(TrainConfig):
    kind = kind_of(str(f.type))
    for value in WRONG.get(kind or "", ()):
        API_CASES.append(
            (
                f"TrainConfig-{f.name}={value!r}",
                lambda n=f.name, v=value: TrainConfig(**{n: v}),
                f.name,
            )
        )
for field, value in (
    ("seed", -1),
    ("seed", 2**40),
    ("width", 0),
    ("width", 2**21),
    ("blocks", 1001),
):
    API_CASES.append(
        (f"TrainConfig-{field}-{value}", lambda n=field, v=value: TrainConfig(**{n: v}), field)
    )
API_CASES += [
    ("from_dict-unknown", lambda: TrainConfig.from_dict({"sed": 1}), "sed"),
    ("make_system-n_paths", lambda: phyll.make_system("acoustic", 4, 4, n_paths=10**8), "n_paths"),
    (
        "make_system-adc_bits",
        lambda: phyll.make_system("acoustic", 4, 4, adc_bits=10**20),
        "adc_bits",
    ),
    ("make_system-unknown", lambda: phyll.make_system("acoustik", 4, 4), "acoustik"),
    ("make_rule-negatives", lambda: phyll.make_rule("phyll", None, negatives=10**9), "negatives"),
    ("train-a-dict", lambda: phyll.train({"seed": 1}), "TrainConfig"),
    ("train-out-an-int", lambda: phyll.train(TrainConfig(epochs=1), 5), "out"),
    ("train-dataset-a-list", lambda: phyll.train(TrainConfig(), dataset=[1]), "dataset"),
    ("from_arrays-ragged", lambda: from_arrays([[1, 2], [3]], [0, 1]), "x"),
    ("from_arrays-no-labels", lambda: from_arrays(np.zeros((4, 2)), None), "y"),
    (
        "from_arrays-80-GB-broadcast",
        lambda: from_arrays(
            np.broadcast_to(np.float32(0), (10**6, 10**4)), np.zeros(10**6, dtype=int)
        ),
        "1,000,000 rows",
    ),
    ("make_rule-unknown", lambda: phyll.make_rule("phyl", None), "phyl"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_hostile_api_input_is_the_library_user_error(
    case: tuple[str, Callable[[], Any], str],
) -> None:
    _, call, culprit = case
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and culprit in message, message


# ------------------------------------------------------------------ in a run folder
def test_a_manifest_names_both_files_and_a_kill_between_leaves_them_loadable(tmp_path) -> None:
    run = RUN["path"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["files"]) == {"checkpoint.pt", "model.pt"}
    for name, sums in manifest["files"].items():
        assert sums == [hashlib.sha256((run / name).read_bytes()).hexdigest()]


def test_leftovers_of_a_killed_write_are_removed_on_resume(tmp_path, capsys) -> None:
    shutil.copytree(RUN["path"], tmp_path / "run")
    tmp = tmp_path / "run" / ".checkpoint.pt.abcd1234.tmp"
    tmp.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet"]) == 0
    assert not tmp.exists()


def test_a_killed_overwrite_is_rolled_back_or_completed_on_the_next_start(tmp_path) -> None:
    out = tmp_path / "run"
    shutil.copytree(RUN["path"], out)
    unfinished = tmp_path / "run.new-x1y2"  # killed before the swap: marked, the new run
    shutil.copytree(RUN["path"], unfinished)
    (unfinished / ".staging").write_text("run\n")
    swapped = tmp_path / "run.new-z3w4"  # killed after the swap: the old run, unmarked
    shutil.copytree(RUN["path"], swapped)
    assert main(["train", *TINY, "--out", str(out)]) == 2  # refused: the run is there
    assert not unfinished.exists() and not swapped.exists()
    assert snapshot(out) == snapshot(RUN["path"])


def test_a_run_moved_aside_by_a_killed_overwrite_comes_back(tmp_path) -> None:
    aside = tmp_path / "run.old-a1b2"  # no atomic exchange: killed between the two renames
    shutil.copytree(RUN["path"], aside)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    assert not aside.exists() and snapshot(tmp_path / "run") == snapshot(RUN["path"])


# ------------------------------------------------------------------ the "Done when" list
def run_measured(argv: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Run the CLI in a fresh process: (status, stderr, peak RSS in MB, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # of every child
    return process.returncode, err, peak_mb, time.monotonic() - started


def zip_bomb(path: Path) -> None:
    """1 GiB of float32 zeros declared and held, about 1 MB on disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": (2**18, 1024)}
            np.lib.format.write_array_header_1_0(f, header)
            block = bytes(2**20)
            for _ in range(1024):
                f.write(block)
        with archive.open("y.npy", "w") as f:
            np.save(f, np.zeros(2**18, dtype=np.int64))
    assert NPZ_SMALL < 2**30 > MAX_NPZ_RATIO * path.stat().st_size


DONE_WHEN: list[tuple[str, list[str], str]] = [
    ("width", ["train", *TINY, "--width", "1048576", "--out", "w"], "--width"),
    ("measurements", ["train", *TINY, "--measurements", "4194304", "--out", "m"], "--measurements"),
    (
        "adc_bits",
        ["train", *TINY, "--system-param", "adc_bits=99999999999999999999", "--out", "a"],
        "adc_bits",
    ),
    ("wide-csv", ["train", *TINY, "--dataset", "csv:wide.csv", "--out", "c"], "columns"),
    ("zip-bomb", ["train", *TINY, "--dataset", "npz:bomb.npz", "--out", "z"], "zip bomb"),
    ("fifo-checkpoint", ["train", "--resume", "fifo", "--epochs", "3", "--quiet"], "FIFO"),
    ("flipped-model", ["predict", "flipped", "in.csv"], "model.pt"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", DONE_WHEN, ids=[c[0] for c in DONE_WHEN])
def test_done_when_each_exits_2_in_one_line_under_1_gb_and_60_s(case, tmp_path) -> None:
    name, argv, culprit = case
    if name == "wide-csv":
        (tmp_path / "wide.csv").write_text(wide_csv(10**6))
    if name == "zip-bomb":
        zip_bomb(tmp_path / "bomb.npz")
    if name == "fifo-checkpoint":
        shutil.copytree(RUN["path"], tmp_path / "fifo")
        (tmp_path / "fifo" / "checkpoint.pt").unlink()
        os.mkfifo(tmp_path / "fifo" / "checkpoint.pt")
    if name == "flipped-model":
        shutil.copytree(RUN["path"], tmp_path / "flipped")
        flipped("flipped/model.pt")(tmp_path)
        (tmp_path / "in.csv").write_text(FEATURES)
    status, err, peak_mb, seconds = run_measured(argv, tmp_path)
    lines = err.splitlines()
    assert status == 2 and len(lines) == 1 and culprit in lines[0], err
    assert peak_mb < 1024, f"peak RSS {peak_mb:.0f} MB"
    assert seconds < 60, f"{seconds:.0f} s"


@pytest.mark.slow
def test_done_when_a_tampered_system_runs_nothing_through_predict(tmp_path) -> None:
    shutil.copytree(RUN["path"], tmp_path / "run")
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "system": "evilmod:Device"}))
    for name in ("checkpoint.pt", "model.pt"):  # every record, as a tamperer would
        state = torch.load(run / name, weights_only=True)
        state["config"]["system"] = "evilmod:Device"
        torch.save(state, run / name)
    (run / "manifest.json").unlink()
    marker = tmp_path / "marker"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nDevice = 1\n")
    (tmp_path / "in.csv").write_text(FEATURES)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{tmp_path}"}
    done = subprocess.run(
        [sys.executable, "-m", "phyll.cli", "predict", "run", "in.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "evilmod" in done.stderr and not marker.exists()


def test_trainconfig_seed_1_5_is_the_user_error() -> None:
    with pytest.raises(phyll.UserError, match="seed"):
        phyll.TrainConfig(seed=1.5)
