"""Small things a new user met: missing output parents are made, evaluate reuses the run's own
data, mistyped names get a suggestion, a double Ctrl-C names the folder to resume."""

from __future__ import annotations

import json

import pytest

from phyll.cli import main
from phyll.errors import did_you_mean

TINY = ("--epochs", "1", "--width", "8", "--measurements", "16", "--blocks", "1", "--quiet")


def test_train_out_makes_its_missing_parents(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()


def test_a_failed_start_leaves_no_empty_parents(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert main(["train", *TINY, "--system-param", "bogus=1", "--out", str(out)]) == 2
    assert not (tmp_path / "a").exists()


def test_evaluate_reuses_the_runs_dataset_and_label_column(tmp_path, capsys):
    csv = tmp_path / "data.csv"
    rows = ["x1,x2,kind"] + [f"{i % 7 / 7},{(i * 3) % 5 / 5},{'ab'[i % 2]}" for i in range(80)]
    csv.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert main(["train", *TINY, "--dataset", f"csv:{csv}", "--label-column", "kind",
                 "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "the run's own test split" in out
    summary = json.loads((run / "summary.json").read_text())
    assert f"{summary['test_accuracy']:.3f}" in out


def test_mistyped_names_get_a_suggestion(tmp_path, capsys):
    assert did_you_mean("optcal", ["optical", "acoustic"]) == " (did you mean 'optical'?)"
    assert did_you_mean("zzz", ["phyll"]) == ""
    for argv, hint in (
        (["train", "--system", "optcal"], "did you mean 'optical'"),
        (["train", "--dataset", "mnst"], "did you mean 'mnist'"),
        (["train", "--rule", "phyl"], "did you mean 'phyll'"),
    ):
        with pytest.raises(SystemExit) as exited:  # argparse's own one-line error
            main(argv)
        assert exited.value.code == 2 and hint in capsys.readouterr().err
    csv = tmp_path / "d.csv"
    csv.write_text("a,label_\n0.1,x\n0.2,y\n")
    assert main(["train", *TINY, "--dataset", f"csv:{csv}", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean 'label_'" in capsys.readouterr().err


def test_an_abort_names_the_folder_to_resume(tmp_path, monkeypatch, capsys):
    import phyll.cli

    def abort(*args, **kwargs):
        raise KeyboardInterrupt  # a second Ctrl-C: no message of its own

    monkeypatch.setattr(phyll.cli, "train", abort)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert f"phyll train --resume {tmp_path / 'run'}" in err and "RUN_DIR" not in err
