"""`phyll report DIR`: one self-contained HTML page per run, comparison, robustness, depth or
sweep folder, its figures embedded; rendered by headless Chromium where it is installed."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from phyll.cli import main
from phyll.plotting import accuracy_axis, epoch_axis
from phyll.report import write_report

SMALL = ["--blocks", "1", "--epochs", "2", "--width", "16", "--measurements", "32", "--quiet"]
#: a trial error holding markup: the page must show it as text
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def write_sweep(folder: Path) -> None:
    """A sweep folder as ``phyll sweep`` writes it (the format of ``sweep.json``, version 1):
    two trials trained by ``phyll train``, one failed, one pending."""
    (folder / "trials").mkdir(parents=True)
    trials = []
    for i, (lr, width) in enumerate([(0.003, 8), (0.01, 16)]):
        run_dir = f"trials/trial-{i:04d}"
        argv = ["train", *SMALL, "--lr", str(lr), "--width", str(width)]
        assert main([*argv, "--out", str(folder / run_dir)]) == 0
        s = json.loads((folder / run_dir / "summary.json").read_text())
        costs = ("physical_queries", "digital_flops", "wall_time_s", "projected_time_s", "energy_j")
        trials.append({
            "id": f"trial-{i:04d}", "params": {"lr": lr, "width": width}, "status": "done",
            "error": None, "test_accuracy": s["test_accuracy"], "val_accuracy": s["val_accuracy"],
            "best_epoch": s["best_epoch"], "epochs": s["epochs"],
            "costs": {k: s[k] for k in costs}, "run_dir": run_dir,
        })  # fmt: skip
    for i, status, error in ((2, "error", HOSTILE), (3, "pending", None)):
        trials.append({"id": f"trial-{i:04d}", "params": {"lr": 0.1, "width": 64},
                       "status": status, "error": error, "test_accuracy": None,
                       "val_accuracy": None, "best_epoch": None, "epochs": None, "costs": None,
                       "run_dir": f"trials/trial-{i:04d}"})  # fmt: skip
    sweep = {
        "format": "phyll-sweep/1", "engine": "ray", "searcher": "grid",
        "metric": "val_accuracy", "mode": "max",
        "space": {"lr": {"grid": [0.003, 0.01, 0.1]}, "width": {"grid": [8, 16, 64]}},
        "base_config": {"dataset": "vowels", "epochs": 2, "blocks": 1}, "wall_time_s": 3.0,
        "trials": trials,
    }  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(sweep))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One small folder of every kind (and a one-seed comparison), trained once."""
    root = tmp_path_factory.mktemp("report")
    out = {kind: root / kind for kind in ("run", "compare", "compare1", "robustness", "depth")}
    assert main(["train", *SMALL, "--out", str(out["run"])]) == 0
    rules = ["--rules", "phyll,phyll-nophysics"]
    assert main(["compare", *rules, "--seeds", "2", *SMALL, "--out", str(out["compare"])]) == 0
    assert main(["compare", *rules, "--seeds", "1", *SMALL, "--out", str(out["compare1"])]) == 0
    argv = ["robustness", "--rules", "phyll", "--scenarios", "none,step", *SMALL]
    assert main([*argv, "--out", str(out["robustness"])]) == 0
    assert main(["depth", "--blocks", "1,2", *SMALL[2:], "--out", str(out["depth"])]) == 0
    out["sweep"] = root / "sweep"
    write_sweep(out["sweep"])
    return out


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in IMAGE.findall(page)]


#: kind → (figures on the page, text it must hold)
EXPECTED = {
    "run": (1, ["Costs per phase", "selected epoch / epochs", "what it resolved to"]),
    "compare": (2, ["Physics gain and controls", "phyll − phyll-nophysics", "mean ± std"]),
    "robustness": (1, ["Final accuracies", "right after the step", "°C"]),
    "depth": (1, ["Accuracy per depth", "losses finite"]),
    "sweep": (2, ["Search space", "trial-0003", "pending", "Costs per phase of the best trial"]),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_report_of_every_kind_embeds_its_figures(folders, kind, capsys):
    assert main(["report", str(folders[kind])]) == 0
    path = folders[kind] / "report.html"
    assert str(path) in capsys.readouterr().out
    page = path.read_text()
    assert path.stat().st_size > 10_000
    n_figures, texts = EXPECTED[kind]
    pngs = embedded_pngs(page)
    assert len(pngs) == page.count("<img") == n_figures
    for png in pngs:  # every figure is a whole PNG with content, not an empty canvas
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.05
    for text in texts:
        assert text in page, text
    assert "<script" not in page.lower() and "://" not in page  # no script, nothing fetched


def test_strings_from_files_are_escaped(folders):
    page = write_report(folders["sweep"]).read_text()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold" in page
    assert "<b>bold" not in page and "<script" not in page


def test_one_seed_shows_no_spread(folders):
    for kind in ("compare1", "run", "depth", "robustness"):
        page = write_report(folders[kind]).read_text()
        assert "±" not in page, kind
    assert "±" not in (folders["compare1"] / "table.md").read_text()
    assert "± 0.0" not in write_report(folders["compare"]).read_text()


def test_the_best_trial_leads_the_sweep_table(folders):
    page = write_report(folders["sweep"]).read_text()
    trials = json.loads((folders["sweep"] / "sweep.json").read_text())["trials"]
    best = max(trials[:2], key=lambda t: t["val_accuracy"])["id"]
    assert re.search(rf'<tr class="best"><td>{best}</td>', page)


def test_unknown_or_missing_folders_are_one_line_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a phyll run, comparison, robustness, depth, sweep or frontier folder" in err
    assert err.count("\n") == 1
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "sweep.json").write_text('{"format": "other"}')
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a phyll sweep" in capsys.readouterr().err


def test_accuracy_axis_zooms_to_the_data_and_shows_chance():
    fig, (near, far) = plt.subplots(1, 2)
    near.plot([1, 2, 3], [0.3, 0.5, 0.6])
    accuracy_axis(near, [0.3, 0.5, 0.6], chance=0.25)
    low, high = near.get_ylim()
    assert 0.2 < low < 0.25 and 0.6 < high < 0.7  # chance on the axis, the rest zoomed
    assert near.get_legend_handles_labels()[1] == ["chance 25.0 %"]
    far.plot([1, 2, 3], [0.95, 0.97, 0.98])
    accuracy_axis(far, [0.95, 0.97, 0.98], chance=0.1)
    epoch_axis(far)
    assert far.get_ylim()[0] > 0.9  # chance far below: named, not drawn
    assert far.get_legend_handles_labels()[1] == ["chance 10.0 % (below the axis)"]
    assert all(float(t).is_integer() for t in far.get_xticks())
    plt.close(fig)


CHROMIUM = shutil.which("chromium")
#: the test adds this to a copy of the page: after load, each image records its decoded width
PROBE = (
    "<script>addEventListener('load', () => { for (const i of document.images) "
    "i.setAttribute('data-decoded', i.complete ? i.naturalWidth : 0); });</script>"
)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (`chromium`) is not installed")
@pytest.mark.parametrize("kind", ["compare", "sweep"])
def test_chromium_renders_the_page_and_every_figure(folders, kind, tmp_path):
    page = write_report(folders[kind]).read_text()
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "page.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,2000",
                    (folders[kind] / "report.html").as_uri()], check=True, timeout=120,
                   capture_output=True)  # fmt: skip
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280) and pixels[..., :3].std() > 0.1  # not blank
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dump = [*browser, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(dump, check=True, timeout=120, capture_output=True, text=True).stdout
    decoded = [int(w) for w in re.findall(r'data-decoded="(\d+)"', dom)]
    widths = [int.from_bytes(png[16:20], "big") for png in embedded_pngs(page)]
    assert decoded == widths and all(w > 0 for w in decoded)
