"""Users' own data: CSV files, NPZ files and in-memory arrays, as a :class:`Dataset`.

**CSV** (``csv:PATH``): a header row, then one row per example. Every numeric column except
the label is a feature; the label column is ``label`` unless named (``label_column``). An
optional ``split`` column (``train``/``test``) fixes the split; an optional ``group`` column
(a speaker, a session) keeps each group on one side of every split. A column whose cells are
mostly not numbers is text and is left out (:attr:`Dataset.source` names it).

**NPZ** (``npz:PATH``): arrays ``x`` [rows, features] and ``y`` [rows], optionally ``split``
and ``group`` [rows], with the same meaning. **Arrays**: :func:`from_arrays`.

**Labels** are integer class codes 0..C-1 (class names are their ``str``) or strings (class
names sorted). **Split**: the ``split`` column when given; else group-disjoint when there are
groups (:func:`~phyll.data.base.group_split`), else stratified, fixed by ``seed``.
**Scaling**: each feature is min–max scaled into [0, 1] with statistics of the training rows
only; constant features map to 0; test values beyond the training range are clipped.

Bad data raises :class:`DatasetError` with one line naming the file, the row and the column:
CSV rows are the file's rows (header = row 1), array rows count from 0. Loading writes nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from phyll.data.base import (
    MAX_CLASSES,
    Dataset,
    DatasetError,
    apply_scaling,
    file_provenance,
    fit_minmax,
    group_split,
    stratified_split,
)
from phyll.errors import did_you_mean
from phyll.memory import check_fits, resident_bytes

SPLIT_COLUMN = "split"
GROUP_COLUMN = "group"
SPLITS = ("train", "test")
#: most columns of a CSV file (checked on its header, before any row is parsed)
MAX_COLUMNS = 2**17
#: an NPZ member may inflate at most this many times its compressed size (above NPZ_SMALL)
MAX_NPZ_RATIO = 200
NPZ_SMALL = 64 * 2**20
NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive, as numpy.savez writes


@dataclass
class Table:
    """A parsed CSV: raw feature values and the label/split/group cells, with file rows."""

    path: Path
    feature_names: list[str]
    x: np.ndarray  # float64 [rows, features], finite
    labels: list[str] | None
    split: list[str] | None
    groups: list[str] | None
    rows: list[int]  # the file row of each example (header = row 1)
    ignored: list[str]  # text columns left out


def _cell_error(origin: object, row: int, column: str, problem: str) -> DatasetError:
    return DatasetError(f"{origin}: row {row}, column {column!r}: {problem}")


def _names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"


def _missing_file(path: Path) -> DatasetError | None:
    if path.is_file():
        return None
    return DatasetError(f"{path}: {'not a file' if path.exists() else 'no such file'}")


def _check_header(path: Path, header: list[str]) -> None:
    """Refuse a header with too many columns, a column without a name or a name twice."""
    if len(header) > MAX_COLUMNS:
        raise DatasetError(
            f"{path}: the header has {len(header):,} columns; a CSV may have at most "
            f"{MAX_COLUMNS:,} (wider data: an NPZ file, see docs/your-data.md)"
        )
    seen: set[str] = set()
    for j, name in enumerate(header):
        if not name:
            raise DatasetError(f"{path}: column {j + 1} has no name in the header")
        if name in seen:
            raise DatasetError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)


def _read_cells(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and their file rows; refuses empty, header-only and ragged files."""
    if error := _missing_file(path):
        raise error
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                for cells in reader:
                    if not cells:
                        continue  # blank line
                    if header is None:
                        header = [c.strip() for c in cells]
                        _check_header(path, header)  # before any row is parsed
                    elif len(cells) != len(header):
                        raise DatasetError(
                            f"{path}: row {reader.line_num} has {len(cells)} cells, the header "
                            f"has {len(header)} columns"
                        )
                    else:
                        rows.append(cells)
                        lines.append(reader.line_num)
            except csv.Error as exc:
                raise DatasetError(f"{path}: row {reader.line_num}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text (CSV) file") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if header is None:
        raise DatasetError(f"{path}: empty file; expected a header row, then one row per example")
    if not rows:
        raise DatasetError(f"{path}: header only, no data rows")
    return header, rows, lines


def _python_numbers(
    cells: Sequence[str], path: Path, column: str, rows: list[int], required: bool
) -> np.ndarray | None:
    """Cell by cell, after NumPy refused the column: the values, None for a text column, or
    an error naming the first cell that is not a number."""
    parsed: list[float] = []
    first_bad = None
    for i, cell in enumerate(cells):
        try:
            parsed.append(float(cell))
        except ValueError:
            first_bad = i if first_bad is None else first_bad
    if first_bad is None:
        return np.asarray(parsed)
    if not required and 2 * len(parsed) < sum(1 for c in cells if c.strip()):
        return None
    cell = cells[first_bad]
    problem = f"{cell!r} is not a number" if cell.strip() else "missing value"
    raise _cell_error(path, rows[first_bad], column, problem)


def _numbers(
    cells: Sequence[str], path: Path, column: str, rows: list[int], required: bool
) -> np.ndarray | None:
    """A column's cells as finite floats, or None for a text column (most non-empty cells not
    numbers) unless ``required``. Missing, non-numeric and non-finite cells are errors."""
    try:
        values = np.asarray(cells).astype(np.float64)
    except ValueError:
        values = _python_numbers(cells, path, column, rows, required)
        if values is None:
            return None
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise _cell_error(path, rows[i], column, f"{cells[i].strip()!r} is not a finite number")
    return values


def _text_cells(
    cells: Sequence[str], path: Path, column: str, rows: list[int], lower: bool = False
) -> list[str]:
    """A column's cells stripped (and lower-cased); empty cells are errors."""
    out = [c.strip().lower() if lower else c.strip() for c in cells]
    for row, value in zip(rows, out, strict=True):
        if not value:
            raise _cell_error(path, row, column, "missing value")
    return out


def read_table(
    path: str | os.PathLike[str],
    label_column: str | None = "label",
    feature_names: Sequence[str] | None = None,
) -> Table:
    """Parse a CSV (format in the module docstring).

    With ``feature_names``, exactly those columns are the features (for prediction: the other
    columns, split and group included, are ignored); else every numeric column but label, split
    and group. ``label_column=None``: no labels are read.
    """
    path = Path(path)
    header, cells, rows = _read_cells(path)
    if label_column is not None and label_column not in header:
        raise DatasetError(
            f"{path}: no label column {label_column!r}{did_you_mean(label_column, header)}; "
            f"the columns are {_names(header)} (name the label column with --label-column)"
        )
    columns = dict(zip(header, zip(*cells, strict=True), strict=True))
    if feature_names is not None:
        missing = [n for n in feature_names if n not in columns]
        if missing:
            raise DatasetError(
                f"{path}: missing feature column(s) {_names(missing)}; the file has "
                f"{_names(header)}"
            )
        wanted, extras = list(feature_names), set()
    else:
        extras = {SPLIT_COLUMN, GROUP_COLUMN} & set(header) - {label_column}
        wanted = [n for n in header if n != label_column and n not in extras]
    names, values, ignored = [], [], []
    for name in wanted:
        numbers = _numbers(columns[name], path, name, rows, required=feature_names is not None)
        if numbers is None:
            ignored.append(name)
        else:
            names.append(name)
            values.append(numbers)
    if not names:
        raise DatasetError(
            f"{path}: no numeric feature columns besides the label {label_column!r} "
            f"(columns: {_names(header)})"
        )
    labels = None
    if label_column is not None:
        labels = _text_cells(columns[label_column], path, label_column, rows)
    split = groups = None
    if SPLIT_COLUMN in extras:
        split = _text_cells(columns[SPLIT_COLUMN], path, SPLIT_COLUMN, rows, lower=True)
    if GROUP_COLUMN in extras:
        groups = _text_cells(columns[GROUP_COLUMN], path, GROUP_COLUMN, rows)
    x = np.stack(values, axis=1)
    return Table(path, names, x, labels, split, groups, rows, ignored)


def read_feature_rows(path: str | os.PathLike[str], feature_names: Sequence[str]) -> np.ndarray:
    """Raw feature rows ``[n, len(feature_names)]`` from a CSV holding (at least) those
    columns, in that order; other columns (a label, notes) are ignored. For prediction: pass
    the result to :meth:`Dataset.transform`."""
    return read_table(path, label_column=None, feature_names=feature_names).x


def label_codes(
    cells: Sequence[str], rows: Sequence[int], column: str, origin: object
) -> tuple[np.ndarray, list[str]]:
    """Class codes and names from label cells: all numbers → integer codes (each an integer
    ≥ 0 below :data:`MAX_CLASSES`, names their ``str``), else strings (names sorted)."""
    try:
        values = np.asarray(cells).astype(np.float64)
    except ValueError:
        names = sorted(set(cells))
        if len(names) > MAX_CLASSES:
            raise DatasetError(
                f"{origin}: column {column!r} has {len(names):,} distinct labels; at most "
                f"{MAX_CLASSES:,} classes"
            ) from None
        index = {name: k for k, name in enumerate(names)}
        return np.array([index[c] for c in cells], dtype=np.int64), names
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values >= 0) & (values == np.floor(values))
    bad = np.flatnonzero(~valid)
    if len(bad):
        i = int(bad[0])
        problem = f"{cells[i]!r} is not a class code (an integer ≥ 0, or text)"
        raise _cell_error(origin, rows[i], column, problem)
    bad = np.flatnonzero(values >= MAX_CLASSES)
    if len(bad):
        i = int(bad[0])
        problem = f"class code {cells[i]} is too large (at most {MAX_CLASSES:,} classes)"
        raise _cell_error(origin, rows[i], column, problem)
    codes = values.astype(np.int64)
    return codes, [str(k) for k in range(int(codes.max()) + 1)]


def split_flags(
    values: Sequence[str], rows: Sequence[int], column: str, origin: object
) -> np.ndarray:
    """``True`` for test rows; any value but train/test is an error."""
    for row, value in zip(rows, values, strict=True):
        if value not in SPLITS:
            raise _cell_error(origin, row, column, f"{value!r} is not 'train' or 'test'")
    return np.asarray(values) == "test"


def assemble(
    name: str,
    x: np.ndarray,
    codes: np.ndarray,
    class_names: list[str],
    *,
    is_test: np.ndarray | None,
    groups: np.ndarray | None,
    feature_names: list[str],
    rows: Sequence[int],
    origin: object,
    test_fraction: float,
    seed: int,
    scale: bool,
    source: str,
    provenance: dict[str, object],
) -> Dataset:
    """Split (given, group-disjoint or stratified), check, scale and build the dataset.

    ``rows[i]`` is example ``i``'s row for messages; ``origin`` is the file or the name.
    ``scale=False`` keeps features that already lie in [0, 1] as they are.
    """
    if is_test is not None:
        train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        how = f"its {SPLIT_COLUMN!r} column"
    else:
        if not 0 < test_fraction < 1:
            raise DatasetError(f"{origin}: test fraction {test_fraction} is not between 0 and 1")
        if groups is not None:
            try:
                train_idx, test_idx = group_split(codes, groups, test_fraction, seed)
            except DatasetError as exc:
                raise DatasetError(f"{origin}: {exc}") from None
        else:
            train_idx, test_idx = stratified_split(codes, test_fraction, seed)
        how = f"a {test_fraction:g} test fraction of {len(codes)} rows"
    for idx, which in ((train_idx, "training"), (test_idx, "test")):
        if not len(idx):
            raise DatasetError(f"{origin}: no {which} rows (split by {how})")
    if groups is not None and is_test is not None:
        shared = sorted(set(groups[train_idx].tolist()) & set(groups[test_idx].tolist()))
        if shared:
            g = shared[0]
            first = [rows[int(idx[groups[idx] == g][0])] for idx in (train_idx, test_idx)]
            raise DatasetError(
                f"{origin}: group {g!r} is in both splits (row {first[0]} train, row {first[1]} "
                "test); each group must sit in one split"
            )
    untrained = np.setdiff1d(codes[test_idx], codes[train_idx])
    if len(untrained):
        c = int(untrained[0])
        row = rows[int(test_idx[codes[test_idx] == c][0])]
        raise DatasetError(
            f"{origin}: class {class_names[c]!r} is in the test split (row {row}) but has no "
            "training rows"
        )
    scaling = fit_minmax(x[train_idx]) if scale else None
    scaled = x if scaling is None else apply_scaling(x, scaling)
    xt = torch.as_tensor(np.asarray(scaled, dtype=np.float32))
    yt = torch.as_tensor(codes)
    return Dataset(
        name=name,
        x_train=xt[train_idx],
        y_train=yt[train_idx],
        x_test=xt[test_idx],
        y_test=yt[test_idx],
        n_classes=len(class_names),
        class_names=class_names,
        source=source,
        feature_names=feature_names,
        scaling=scaling,
        provenance=provenance,
        train_groups=None if groups is None else groups[train_idx],
        test_groups=None if groups is None else groups[test_idx],
    )


def load_csv(
    path: str | os.PathLike[str],
    seed: int = 0,
    label_column: str = "label",
    test_fraction: float = 0.2,
) -> Dataset:
    """A dataset from a CSV file (format in the module docstring), named ``csv:PATH``."""
    table = read_table(path, label_column)
    assert table.labels is not None
    codes, class_names = label_codes(table.labels, table.rows, label_column, table.path)
    is_test = None
    if table.split is not None:
        is_test = split_flags(table.split, table.rows, SPLIT_COLUMN, table.path)
    source = f"CSV file {table.path.name}"
    if table.ignored:
        source += f" (text columns left out: {', '.join(table.ignored)})"
    return assemble(
        f"csv:{path}",
        table.x,
        codes,
        class_names,
        is_test=is_test,
        groups=None if table.groups is None else np.asarray(table.groups),
        feature_names=table.feature_names,
        rows=table.rows,
        origin=table.path,
        test_fraction=test_fraction,
        seed=seed,
        scale=True,
        source=source,
        provenance=file_provenance(table.path),
    )


def _as_text(values: np.ndarray) -> np.ndarray:
    """Bytes or all-``str`` object arrays → a NumPy string array; others unchanged."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8")
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values.tolist()):
        return values.astype(str)
    return values


def _array_labels(
    y: np.ndarray, class_names: Sequence[str] | None, origin: object
) -> tuple[np.ndarray, list[str]]:
    """Codes and names from ``y``: integers ≥ 0 (names their ``str``, or ``class_names``) or
    strings (names sorted, or ``class_names`` giving the order)."""
    y = _as_text(y)
    if y.dtype.kind in "iu":
        negative, too_large = np.flatnonzero(y < 0), np.flatnonzero(y >= MAX_CLASSES)
        if len(negative):
            i = int(negative[0])
            raise _cell_error(origin, i, "y", f"{y[i]} is not a class code (an integer ≥ 0)")
        if len(too_large):
            i = int(too_large[0])
            problem = f"class code {y[i]} is too large (at most {MAX_CLASSES:,} classes)"
            raise _cell_error(origin, i, "y", problem)
        codes = y.astype(np.int64)
        n = int(codes.max()) + 1
        if class_names is None:
            return codes, [str(k) for k in range(n)]
        if len(class_names) < n:
            raise DatasetError(f"{origin}: {len(class_names)} class names for codes up to {n - 1}")
        return codes, list(class_names)
    if y.dtype.kind != "U":
        raise DatasetError(f"{origin}: y must hold integers ≥ 0 or strings, not {y.dtype}")
    labels = y.tolist()
    names = sorted(set(labels)) if class_names is None else list(class_names)
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"{origin}: {len(names):,} classes; at most {MAX_CLASSES:,}")
    index = {name: k for k, name in enumerate(names)}
    for i, label in enumerate(labels):
        if label not in index:
            raise _cell_error(origin, i, "y", f"{label!r} is not one of the class names")
    return np.array([index[v] for v in labels], dtype=np.int64), names


@dataclass
class _Arrays:
    x: np.ndarray  # float64, finite
    codes: np.ndarray
    class_names: list[str]
    is_test: np.ndarray | None
    groups: np.ndarray | None
    feature_names: list[str]


def _check_arrays(
    x: object,
    y: object,
    split: object,
    group: object,
    class_names: Sequence[str] | None,
    feature_names: Sequence[str] | None,
    origin: object,
) -> _Arrays:
    """Validate user arrays (shapes, numbers, labels, split values) for :func:`assemble`."""
    if y is None:
        raise DatasetError(f"{origin}: y (one label per row) is required")
    try:
        xa = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged rows, or objects that are not arrays
        raise DatasetError(f"{origin}: x is not a 2-D array of numbers ({exc})") from None
    if xa.ndim != 2:
        raise DatasetError(f"{origin}: x must be 2-D [rows, features], got shape {list(xa.shape)}")
    if xa.dtype.kind not in "biuf":
        raise DatasetError(f"{origin}: x must hold numbers, not {xa.dtype}")
    n, n_features = xa.shape
    check_fits(  # a broadcast view is small until it is copied: its float copies are not
        resident_bytes() + 3 * 8 * n * n_features,
        f"the dataset {origin} ({n:,} rows × {n_features:,} features)",
        "use fewer rows or features",
    )
    if n == 0 or n_features == 0:
        raise DatasetError(f"{origin}: x has shape {list(xa.shape)}: no rows or no features")
    # plain str: names end up in run files read with weights_only (numpy.str_ would not load)
    names = [f"f{j}" for j in range(n_features)] if feature_names is None else list(feature_names)
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise DatasetError(f"{origin}: {len(names)} feature names for {n_features} features")
    for key, arr in (("y", y), ("split", split), ("group", group)):
        if arr is not None and np.shape(arr) != (n,):
            shape = list(np.shape(arr))
            raise DatasetError(f"{origin}: {key} has shape {shape}; x has {n} rows, one label each")
    xf = xa.astype(np.float64)
    bad = np.argwhere(~np.isfinite(xf))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise _cell_error(origin, i, names[j], f"{xf[i, j]} is not a finite number")
    codes, classes = _array_labels(np.asarray(y), class_names, origin)
    classes = [str(c) for c in classes]
    is_test = None
    if split is not None:
        values = [str(v).strip().lower() for v in _as_text(np.asarray(split)).tolist()]
        is_test = split_flags(values, range(n), "split", origin)
    groups = None if group is None else _as_text(np.asarray(group)).astype(str)
    return _Arrays(xf, codes, classes, is_test, groups, names)


def _from_checked(
    arrays: _Arrays,
    name: str,
    origin: object,
    test_fraction: float,
    seed: int,
    source: str,
    provenance: dict[str, object],
) -> Dataset:
    return assemble(
        name,
        arrays.x,
        arrays.codes,
        arrays.class_names,
        is_test=arrays.is_test,
        groups=arrays.groups,
        feature_names=arrays.feature_names,
        rows=range(len(arrays.codes)),
        origin=origin,
        test_fraction=test_fraction,
        seed=seed,
        scale=True,
        source=source,
        provenance=provenance,
    )


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    split: np.ndarray | None = None,
    group: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    name: str = "arrays",
    test_fraction: float = 0.2,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """A :class:`Dataset` from raw arrays: ``x`` [rows, features] (any scale), ``y`` integer
    codes ≥ 0 or strings, optional ``split`` ('train'/'test') and ``group`` per row. Split,
    scaling and checks as for CSV files (module docstring); rows in messages count from 0.
    ``image_shape`` (height, width) declares the features as pixels row by row (what image
    augmentation needs)."""
    arrays = _check_arrays(x, y, split, group, class_names, feature_names, name)
    dataset = _from_checked(arrays, name, name, test_fraction, seed, "arrays", {})
    if image_shape is not None:
        height, width = (int(v) for v in image_shape)
        if height * width != dataset.n_features:
            raise DatasetError(
                f"{name}: image_shape {height}×{width} needs {height * width} features, "
                f"got {dataset.n_features}"
            )
        dataset = dataclasses.replace(dataset, image_shape=(height, width))
    return dataset


def _check_npz_members(file: Path) -> None:
    """Refuse, before anything is inflated, an NPZ member whose declared array is larger than
    the data the archive holds for it, or that inflates over :data:`MAX_NPZ_RATIO` times its
    compressed size (a zip bomb), or members that together would not fit in memory."""
    total = 0
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                if info.file_size > NPZ_SMALL and info.file_size > MAX_NPZ_RATIO * max(
                    info.compress_size, 1
                ):
                    raise DatasetError(
                        f"{file}: array {name!r} inflates from {info.compress_size:,} to "
                        f"{info.file_size:,} bytes (over {MAX_NPZ_RATIO}×: a zip bomb?); save "
                        "it with numpy.savez, or compress less redundant data"
                    )
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                declared = math.prod(int(n) for n in shape) * dtype.itemsize
                if declared > info.file_size:
                    raise DatasetError(
                        f"{file}: array {name!r} declares shape {list(shape)} ({declared:,} "
                        f"bytes) but the archive holds {info.file_size:,} bytes for it"
                    )
                total += declared
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{file}: cannot read as NPZ ({exc})") from exc
    check_fits(
        resident_bytes() + 3 * total,  # the arrays, their checked copies, the split
        f"loading {file.name} ({total:,} bytes of arrays)",
        "use a smaller dataset",
    )


def load_npz(path: str | os.PathLike[str], seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """A dataset from an NPZ file with arrays ``x``, ``y`` and optionally ``split``,
    ``group`` (as for :func:`from_arrays`), named ``npz:PATH``."""
    file = Path(path)
    if error := _missing_file(file):
        raise error
    with file.open("rb") as f:
        if f.read(4) not in NPZ_MAGIC:
            raise DatasetError(f"{file}: not an NPZ file (a zip of arrays, as numpy.savez writes)")
    _check_npz_members(file)
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{file}: cannot read as NPZ ({exc})") from exc
    if "x" not in arrays or "y" not in arrays:
        held = _names(sorted(arrays)) or "none"
        raise DatasetError(
            f"{file}: needs arrays 'x' and 'y' (optionally 'split', 'group'); it holds {held}"
        )
    checked = _check_arrays(
        arrays["x"], arrays["y"], arrays.get("split"), arrays.get("group"), None, None, file
    )
    source, provenance = f"NPZ file {file.name}", file_provenance(file)
    return _from_checked(checked, f"npz:{path}", file, test_fraction, seed, source, provenance)
