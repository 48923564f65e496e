"""Vowel classification from formant frequencies: an embedded synthetic task and the real one.

``vowels`` (embedded, no download) synthesises vowel tokens from the average formants of
Peterson & Barney (1952), "Control methods used in a study of the vowels", JASA 24, 175,
Table II (men, women, children), for the 7 vowels of the physical-neural-network vowel task
(/æ ɑ ɔ ɝ ɪ i u/, ARPAbet ae ah aw er ih iy uw). Each token is F1–F3 sampled at 4 points in
time, like the real task; its variability is documented in :func:`synthesize_vowels`.

``vowels7`` is the real 7-vowel task (Hillenbrand et al. 1995 recordings as prepared for the
physics-aware-training work: 12 normalised formant features, 7 classes, its own 210/49 split),
a CSV with columns ``f0..f11,label,split`` shipped inside phyll (``files/``, CC BY 4.0).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from phyll.data.base import (
    Dataset,
    DatasetError,
    file_provenance,
    make_dataset,
    stratified_split,
)
from phyll.data.tabular import assemble, label_codes, read_table, split_flags

VOWELS = ["ae", "ah", "aw", "er", "ih", "iy", "uw"]
GROUPS = ["men", "women", "children"]

#: Peterson & Barney (1952) Table II average formants F1, F2, F3 in Hz, per vowel and group.
PB1952_FORMANTS_HZ: dict[str, dict[str, tuple[float, float, float]]] = {
    "ae": {"men": (660, 1720, 2410), "women": (860, 2050, 2850), "children": (1010, 2320, 3320)},
    "ah": {"men": (730, 1090, 2440), "women": (850, 1220, 2810), "children": (1030, 1370, 3170)},
    "aw": {"men": (570, 840, 2410), "women": (590, 920, 2710), "children": (680, 1060, 3180)},
    "er": {"men": (490, 1350, 1690), "women": (500, 1640, 1960), "children": (560, 1820, 2160)},
    "ih": {"men": (390, 1990, 2550), "women": (430, 2480, 3070), "children": (530, 2730, 3600)},
    "iy": {"men": (270, 2290, 3010), "women": (310, 2790, 3310), "children": (370, 3200, 3730)},
    "uw": {"men": (300, 870, 2240), "women": (370, 950, 2670), "children": (430, 1170, 3260)},
}

#: log-frequency normalisation bounds (Hz) of F1, F2, F3 → features in [0, 1]
FORMANT_BOUNDS_HZ = np.array([[200.0, 1400.0], [600.0, 3800.0], [1400.0, 4400.0]])
TIME_POINTS = 4

DEFAULT_VOWELS7_NAME = "vowels7_formants.csv"


def synthesize_vowels(
    n_per_class: int = 100,
    seed: int = 0,
    speaker_spread: float = 0.06,
    token_spread: float = 0.05,
    glide_spread: float = 0.04,
    group_weights: tuple[float, float, float] = (0.4, 0.4, 0.2),
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic formant tokens: ``x`` [7·n, 12] in [0, 1], labels ``y`` [7·n].

    Per token: a speaker group (men/women/children with ``group_weights``); a speaker scale
    factor ``exp(N(0, speaker_spread))`` applied to all formants (vocal-tract length within a
    group); an independent per-formant token factor ``exp(N(0, token_spread))``; and a linear
    glide from onset to offset of ``exp(N(0, glide_spread))`` per formant (vowel-inherent
    spectral change), sampled at 4 equally spaced times. Total within-group spread ≈ 8–9 % per
    formant, inside the 5–10 % quoted for Peterson & Barney's speakers.
    """
    rng = np.random.default_rng(seed)
    n = n_per_class * len(VOWELS)
    labels = np.repeat(np.arange(len(VOWELS)), n_per_class)
    groups = rng.choice(len(GROUPS), size=n, p=np.asarray(group_weights) / sum(group_weights))
    base = np.array(
        [PB1952_FORMANTS_HZ[VOWELS[k]][GROUPS[g]] for k, g in zip(labels, groups, strict=True)]
    )
    speaker = np.exp(rng.normal(0.0, speaker_spread, size=(n, 1)))
    token = np.exp(rng.normal(0.0, token_spread, size=(n, 3)))
    onset = np.exp(rng.normal(0.0, glide_spread, size=(n, 3)))
    offset = np.exp(rng.normal(0.0, glide_spread, size=(n, 3)))
    t = np.linspace(0.2, 0.8, TIME_POINTS)[None, :, None]
    glide = onset[:, None, :] ** (1 - t) * offset[:, None, :] ** t  # [n, T, 3]
    formants = (base * speaker * token)[:, None, :] * glide
    lo, hi = np.log(FORMANT_BOUNDS_HZ[:, 0]), np.log(FORMANT_BOUNDS_HZ[:, 1])
    x = np.clip((np.log(formants) - lo) / (hi - lo), 0.0, 1.0).reshape(n, TIME_POINTS * 3)
    return x, labels


def load_vowels(seed: int = 0, n_per_class: int = 100, test_fraction: float = 0.3) -> Dataset:
    """The embedded synthetic 7-vowel task, stratified split fixed by ``seed``."""
    x, y = synthesize_vowels(n_per_class=n_per_class, seed=seed)
    train, test = stratified_split(y, test_fraction, seed)
    return make_dataset(
        "vowels", x, y, train, test, VOWELS, "synthetic, Peterson & Barney (1952) formants"
    )


def packaged_vowels7_path() -> Path:
    """The copy of the real 7-vowel CSV shipped inside phyll (see ``files/README.md``)."""
    return Path(__file__).with_name("files") / DEFAULT_VOWELS7_NAME


def resolve_vowels7_path(data_path: str | os.PathLike[str] | None) -> Path:
    """The CSV to read: ``data_path`` (the file, or a folder holding it), else the packaged
    copy."""
    if data_path is None:
        path, where = packaged_vowels7_path(), "the copy inside phyll"
    else:
        p = Path(data_path)
        path = p / DEFAULT_VOWELS7_NAME if p.is_dir() else p
        where = str(path)
    if path.is_file():
        return path
    raise DatasetError(
        f"the real 7-vowel task needs its CSV file (looked for {where}): pass --data-path "
        f"PATH/TO/{DEFAULT_VOWELS7_NAME} (columns f0..f11,label,split)"
    )


def load_vowels7(data_path: str | os.PathLike[str] | None = None, seed: int = 0) -> Dataset:
    """The real 7-vowel formant task with its own train/test split (``seed`` is not used).

    Features are kept as they are (already in [0, 1]); class names stay ``vowel k``: the
    data's documentation does not say which vowel each code is.
    """
    path = resolve_vowels7_path(data_path)
    table = read_table(path, "label")
    features = [f"f{i}" for i in range(12)]
    if table.feature_names != features or table.split is None:
        raise DatasetError(f"{path}: expected columns f0..f11,label,split")
    assert table.labels is not None
    codes, names = label_codes(table.labels, table.rows, "label", path)
    if table.x.min() < 0 or table.x.max() > 1:
        raise DatasetError(f"{path}: features must lie in [0, 1]")
    return assemble(
        "vowels7",
        table.x,
        codes,
        [f"vowel {name}" for name in names],
        is_test=split_flags(table.split, table.rows, "split", path),
        groups=None,
        feature_names=features,
        rows=table.rows,
        origin=path,
        test_fraction=0.0,
        seed=seed,
        scale=False,
        source=f"Hillenbrand et al. (1995) formants, {path.name}",
        provenance=file_provenance(path),
    )
