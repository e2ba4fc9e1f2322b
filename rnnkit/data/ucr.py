"""UCR/UEA time-series classification data in the sktime ``.ts`` format.

Format read here (see the sktime documentation of ``load_from_tsfile``)::

    # comment lines start with '#'
    @problemName GunPoint
    @timeStamps false            (true is not supported)
    @missing false               (informational: '?' and NaN are accepted either way)
    @univariate true
    @dimensions 12               (optional; defaults to 1 if univariate, else the first line's)
    @equalLength true
    @seriesLength 150            (optional; when given, every series must have this length)
    @classLabel true 1 2         (or: @classLabel false -- then there are no labels)
    @data
    v,v,v,...:v,v,v,...:label    (one series per line; channels separated by ':')

Missing values (``?`` or ``NaN``) are filled by :func:`rnnkit.data.fill_missing`: linear
interpolation within a channel, leading/trailing gaps take the nearest observed value, and
an all-missing channel becomes zeros. The number of filled values is kept in
:attr:`TimeSeriesDataset.missing_filled`; no NaN is ever returned.

The UCR 2018 archive's tab-separated files (``NAME_TRAIN.tsv``: one univariate series a line,
the class label first, ``NaN`` for missing values and after the end of a shorter series) are
read too, and a folder holding one ``NAME_TRAIN`` / ``NAME_TEST`` pair of either format
stands for that pair.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.bundle import DataError, bundled_path
from rnnkit.data.missing import fill_missing
from rnnkit.data.normalizer import Normalizer
from rnnkit.data.splits import stratified_split_indices
from rnnkit.data.textfile import read_text_file
from rnnkit.data.timeseries import is_number

BUNDLED_UCR: tuple[str, ...] = ("GunPoint", "ItalyPowerDemand", "JapaneseVowels")
"""Data set names accepted by :func:`load_ucr`; each has a bundled TRAIN and TEST file."""

_SPLITS = ("train", "test")
_KNOWN_TAGS = (
    "problemname", "timestamps", "missing", "univariate", "dimensions",
    "equallength", "serieslength", "classlabel", "targetlabel", "data",
)  # fmt: skip
_MISSING_TOKENS = {"?", "nan"}


@dataclass(eq=False)
class TimeSeriesDataset:
    """Labelled series for classification.

    * ``series[i]``: float64 array of shape (length_i, channels); lengths may differ.
    * ``labels``: int64 array of shape (N,), class indices into ``class_names``
      (-1 for every series when the file has ``@classLabel false``).
    * ``class_names``: the class labels in the order of the file's ``@classLabel`` list.
    * ``missing_filled``: how many missing values were filled while reading the file
      (0 for data sets derived with :meth:`subset`).
    """

    series: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    name: str = ""
    missing_filled: int = 0
    _lengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.series) != len(self.labels):
            raise ValueError(f"{len(self.series)} series but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self._lengths = np.array([len(s) for s in self.series], dtype=np.int64)

    def __len__(self) -> int:
        """Number of series N."""
        return len(self.series)

    @property
    def n_channels(self) -> int:
        """Number of channels C (1 for a univariate data set)."""
        return int(self.series[0].shape[1]) if self.series else 0

    @property
    def n_classes(self) -> int:
        """Number of classes K (the length of ``class_names``)."""
        return len(self.class_names)

    @property
    def lengths(self) -> np.ndarray:
        """Length of each series: int64 array of shape (N,)."""
        return self._lengths

    def subset(self, indices: np.ndarray | list[int]) -> TimeSeriesDataset:
        """The series at ``indices`` (same class names), as a new data set."""
        indices = np.asarray(indices, dtype=np.int64)
        return TimeSeriesDataset(
            series=[self.series[i] for i in indices],
            labels=self.labels[indices],
            class_names=list(self.class_names),
            name=self.name,
        )

    def normalized(self, normalizer: Normalizer) -> TimeSeriesDataset:
        """A copy whose every series is standardised by ``normalizer`` (per channel)."""
        return TimeSeriesDataset(
            series=[normalizer.transform(s) for s in self.series],
            labels=self.labels.copy(),
            class_names=list(self.class_names),
            name=self.name,
            missing_filled=self.missing_filled,
        )

    def padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All series as one batch: inputs (N, T_max, C) float32, lengths (N,), labels (N,)."""
        inputs, lengths = pad_series(self.series)
        return inputs, lengths, torch.as_tensor(self.labels, dtype=torch.long)


@dataclass(eq=False)
class UCRSplits:
    """A UCR data set split three ways; ``val`` is taken from the TRAIN file, never from TEST."""

    train: TimeSeriesDataset
    val: TimeSeriesDataset
    test: TimeSeriesDataset
    normalizer: Normalizer | None = None


def _parse_bool(value: str, tag: str, where: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise DataError(f"{where}: @{tag} must be 'true' or 'false', got {value.strip()!r}")
    return word == "true"


def _parse_int(value: str, tag: str, where: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise DataError(f"{where}: @{tag} must be a positive integer, got {value.strip()!r}")
    return number


def _parse_channel(text: str, channel: int, where: str) -> np.ndarray:
    values = np.empty(text.count(",") + 1, dtype=np.float64)
    for i, token in enumerate(text.split(",")):
        token = token.strip()
        if token.lower() in _MISSING_TOKENS:
            values[i] = np.nan
            continue
        try:
            value = float(token)
        except ValueError:
            shown = repr(token) if token else "an empty value"
            raise DataError(
                f"{where}: {shown} in dimension {channel + 1} (value {i + 1}) is not a number; "
                "use '?' or 'NaN' for a missing value"
            ) from None
        if not np.isfinite(value):
            raise DataError(f"{where}: {token!r} in dimension {channel + 1} is not finite")
        values[i] = value
    return values


def parse_ts_file(path: str | os.PathLike[str]) -> TimeSeriesDataset:
    """Read one sktime ``.ts`` file (format in the module docstring) into a data set.

    Raises :class:`DataError` naming the file and line number for: an unknown or malformed
    header, data before ``@data``, a missing ``@data`` line, no series, a line with the
    wrong number of dimensions, a non-numeric value, channels of unequal length within a
    series, a length that breaks ``@seriesLength``/``@equalLength true``, or a label not in
    the ``@classLabel`` list.
    """
    path = Path(path)
    text = read_text_file(path)
    name = path.stem
    univariate: bool | None = None
    dimensions: int | None = None
    equal_length = False
    series_length: int | None = None
    has_labels: bool | None = None
    class_names: list[str] = []
    in_data = False
    series: list[np.ndarray] = []
    labels: list[int] = []
    n_missing = 0

    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        where = f"{path}: line {number}"
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{where}: data before the @data line; add the header and @data")
            tag, _, value = line[1:].partition(" ")
            tag = tag.lower()
            if tag not in _KNOWN_TAGS:
                raise DataError(
                    f"{where}: unknown header @{line[1:].split()[0]}; known: "
                    + ", ".join("@" + t for t in _KNOWN_TAGS)
                )
            if tag == "problemname":
                name = value.strip() or name
            elif tag == "timestamps":
                if _parse_bool(value, "timeStamps", where):
                    raise DataError(
                        f"{where}: @timeStamps true is not supported; store plain values"
                    )
            elif tag == "missing":
                _parse_bool(value, "missing", where)
            elif tag == "univariate":
                univariate = _parse_bool(value, "univariate", where)
            elif tag == "dimensions":
                dimensions = _parse_int(value, "dimensions", where)
            elif tag == "equallength":
                equal_length = _parse_bool(value, "equalLength", where)
            elif tag == "serieslength":
                series_length = _parse_int(value, "seriesLength", where)
            elif tag == "classlabel":
                words = value.split()
                if not words:
                    raise DataError(f"{where}: @classLabel needs 'true' and labels, or 'false'")
                has_labels = _parse_bool(words[0], "classLabel", where)
                class_names = words[1:]
                if has_labels and not class_names:
                    raise DataError(
                        f"{where}: @classLabel true lists no class labels; add them after 'true'"
                    )
                if len(set(class_names)) != len(class_names):
                    raise DataError(f"{where}: @classLabel lists a label twice")
            elif tag == "targetlabel":
                if _parse_bool(value.split()[0] if value.split() else "", "targetLabel", where):
                    raise DataError(
                        f"{where}: regression files (@targetLabel true) are not "
                        "supported; rnnkit reads classification files"
                    )
            elif tag == "data":
                if has_labels is None:
                    raise DataError(
                        f"{where}: @data before @classLabel; "
                        "add '@classLabel true <labels>' or '@classLabel false'"
                    )
                if univariate and dimensions not in (None, 1):
                    raise DataError(f"{where}: @univariate true but @dimensions {dimensions}")
                if univariate and dimensions is None:
                    dimensions = 1
                in_data = True
            continue

        fields = line.split(":")
        label_name = fields.pop().strip() if has_labels else None
        if dimensions is None:
            dimensions = len(fields)
        if len(fields) != dimensions:
            expected = f"{dimensions} dimension(s)" + (" and a class label" if has_labels else "")
            found = len(fields) + (1 if has_labels else 0)
            raise DataError(
                f"{where}: expected {expected} separated by ':', found {found} field(s)"
            )
        channels = [_parse_channel(f, c, where) for c, f in enumerate(fields)]
        length = len(channels[0])
        for c, channel in enumerate(channels[1:], start=2):
            if len(channel) != length:
                raise DataError(
                    f"{where}: dimension {c} has {len(channel)} values but "
                    f"dimension 1 has {length}; all dimensions need equal length"
                )
        if series_length is not None and length != series_length:
            raise DataError(
                f"{where}: series has {length} values but @seriesLength is {series_length}"
            )
        if equal_length and series and length != len(series[0]):
            raise DataError(
                f"{where}: series has {length} values but the first has "
                f"{len(series[0])} and @equalLength is true"
            )
        values = np.stack(channels, axis=1)
        missing = int(np.isnan(values).sum())
        if missing:
            n_missing += missing
            values = fill_missing(values)
        series.append(values)
        if label_name is not None:
            if label_name not in class_names:
                raise DataError(
                    f"{where}: class label {label_name!r} is not in the @classLabel "
                    f"list ({' '.join(class_names)})"
                )
            labels.append(class_names.index(label_name))
        else:
            labels.append(-1)

    if not in_data:
        raise DataError(f"{path}: no @data line; the header must end with @data")
    if not series:
        raise DataError(f"{path}: no series after the @data line")
    return TimeSeriesDataset(
        series=series,
        labels=np.array(labels, dtype=np.int64),
        class_names=class_names if has_labels else [],
        name=name,
        missing_filled=n_missing,
    )


def parse_tsv_file(path: str | os.PathLike[str]) -> TimeSeriesDataset:
    """Read one UCR 2018 archive ``.tsv`` file: a univariate series a line, its class label
    first, values separated by tabs (or commas), ``NaN`` for a missing value. Trailing NaNs
    end a shorter series; other NaNs are filled as in ``.ts`` files. Class names are the
    labels found, in numeric order where all are numbers. Raises :class:`DataError` naming
    the file and line of a non-numeric value or a line without values."""
    path = Path(path)
    text = read_text_file(path)
    rows: list[tuple[str, np.ndarray]] = []
    n_missing = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = re.split(r"[\t,]", line)
        label, values = fields[0].strip(), fields[1:]
        try:
            series = np.array([float(v) if v.strip().lower() not in _MISSING_TOKENS
                               else np.nan for v in values], dtype=np.float64)
        except ValueError:
            bad = next(v for v in values if not is_number(v))
            raise DataError(f"{path}: line {number}: {bad!r} is not a number; expected a class "
                            "label, then the values separated by tabs") from None
        observed = np.flatnonzero(~np.isnan(series))
        if observed.size == 0:
            raise DataError(f"{path}: line {number}: no values after the class label {label!r}")
        series = series[:observed[-1] + 1]
        missing = int(np.isnan(series).sum())
        if missing:
            n_missing += missing
            series = fill_missing(series)
        rows.append((label, series[:, None]))
    if not rows:
        raise DataError(f"{path}: no series; expected one labelled series a line")
    found = {label for label, _ in rows}
    numeric = all(is_number(label) for label in found)
    class_names = sorted(found, key=float if numeric else None)
    return TimeSeriesDataset(
        series=[values for _, values in rows],
        labels=np.array([class_names.index(label) for label, _ in rows], dtype=np.int64),
        class_names=class_names, name=path.stem, missing_filled=n_missing)


_SPLIT_SUFFIX = re.compile(r"^(?P<stem>.*)_(?P<split>train|test)$", re.IGNORECASE)
_FORMATS = (".ts", ".tsv")


def _pair_in_folder(folder: Path) -> Path:
    """The TRAIN file of the one NAME_TRAIN / NAME_TEST pair in ``folder``."""
    found = sorted(path for path in folder.iterdir()
                   if path.suffix.lower() in _FORMATS and path.stem.lower().endswith("_train"))
    if not found:
        raise DataError(f"{folder}: no NAME_TRAIN.ts or NAME_TRAIN.tsv file in this folder")
    preferred = [path for path in found if path.suffix.lower() == ".ts"] or found
    stems = {path.stem for path in preferred}
    if len(stems) > 1:
        raise DataError(f"{folder}: several data sets in this folder ({', '.join(sorted(stems))}"
                        "); give the path of one NAME_TRAIN file")
    return preferred[0]


def _split_path(name_or_path: str | os.PathLike[str], split: str) -> Path:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(name_or_path, str):
        for name in BUNDLED_UCR:
            if name_or_path.lower() == name.lower():
                return bundled_path(f"ucr/{name}_{split.upper()}.ts")
    path = Path(name_or_path)
    if path.is_dir():
        path = _pair_in_folder(path)
    match = _SPLIT_SUFFIX.match(path.stem)
    if match is None:
        if not path.exists():
            raise DataError(
                f"{path}: no such file or folder; give a NAME_TRAIN.ts or .tsv file, a folder "
                f"holding one, or one of the bundled names: {', '.join(BUNDLED_UCR)}"
            )
        if split == "test":
            raise DataError(
                f"{path}: cannot find its test split; name the files "
                "NAME_TRAIN.ts and NAME_TEST.ts side by side"
            )
        return path
    stored = match.group("split")
    if stored.isupper():
        wanted = split.upper()
    elif stored.islower():
        wanted = split
    else:
        wanted = split.capitalize()
    partner = path.with_name(f"{match.group('stem')}_{wanted}{path.suffix}")
    if not partner.exists():
        raise DataError(
            f"{partner}: no such file (the {split} split of {path.name}); "
            f"put NAME_TRAIN{path.suffix} and NAME_TEST{path.suffix} side by side"
        )
    return partner


def ucr_file(name_or_path: str | os.PathLike[str], split: str = "train") -> Path:
    """The file :func:`load_ucr` reads for ``split`` of ``name_or_path``."""
    return _split_path(name_or_path, split)


def load_ucr(name_or_path: str | os.PathLike[str], split: str = "train") -> TimeSeriesDataset:
    """Load one split of a UCR/UEA data set.

    ``name_or_path`` is a bundled name (GunPoint, ItalyPowerDemand, JapaneseVowels; any
    case), the path of a ``.ts`` or UCR 2018 ``.tsv`` file, or a folder holding one
    ``NAME_TRAIN`` / ``NAME_TEST`` pair. For a path named ``X_TRAIN.ts`` or ``X_TEST.ts``
    the file of the requested ``split`` ("train" or "test") is found beside it by name; a
    path without that suffix is read as the training split. Raises :class:`DataError`.
    """
    path = _split_path(name_or_path, split)
    return parse_tsv_file(path) if path.suffix.lower() == ".tsv" else parse_ts_file(path)


def pad_series(
    series: list[np.ndarray] | list[torch.Tensor], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad variable-length series into one batch.

    ``series[i]`` has shape (T_i, C) (or (T_i,) for one channel). Returns
    ``(inputs, lengths)``: float32 tensor (B, T_max, C) with ``pad_value`` after each
    series' end, and int64 tensor (B,) of the lengths T_i.
    """
    if len(series) == 0:
        raise ValueError("pad_series needs at least one series")
    tensors = []
    for s in series:
        t = torch.as_tensor(np.asarray(s) if not isinstance(s, torch.Tensor) else s)
        t = t.to(torch.float32)
        tensors.append(t[:, None] if t.dim() == 1 else t)
    channels = {t.shape[1] for t in tensors}
    if len(channels) != 1 or any(t.dim() != 2 for t in tensors):
        raise ValueError(f"all series need shape (T_i, C) with the same C, got C in {channels}")
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)
    batch = torch.full((len(tensors), int(lengths.max()), tensors[0].shape[1]), pad_value)
    for i, t in enumerate(tensors):
        batch[i, : t.shape[0]] = t
    return batch, lengths


def fit_channel_normalizer(train: TimeSeriesDataset) -> Normalizer:
    """Per-channel mean/std over every time step of every training series (padding excluded)."""
    return Normalizer.fit(np.concatenate(train.series, axis=0))


def stratified_validation_split(
    train: TimeSeriesDataset, fraction: float = 0.2, seed: int = 0
) -> tuple[TimeSeriesDataset, TimeSeriesDataset]:
    """Split the TRAIN data into (train, val), holding out ``fraction`` of each class.

    The split is fixed for a given seed (version-independent hashing, see
    :mod:`rnnkit.data.splits`), so model choices never look at the test split.
    """
    keep, held_out = stratified_split_indices(train.labels, fraction, seed)
    return train.subset(keep), train.subset(held_out)


def load_ucr_splits(
    name_or_path: str | os.PathLike[str],
    val_fraction: float = 0.2,
    seed: int = 0,
    normalize: bool = True,
) -> UCRSplits:
    """Load train/val/test for a UCR data set, ready for training.

    ``val`` is a stratified ``val_fraction`` of the TRAIN file (see
    :func:`stratified_validation_split`). With ``normalize`` every split is standardised
    per channel with statistics of the remaining training series only.
    """
    train = load_ucr(name_or_path, "train")
    test = load_ucr(name_or_path, "test")
    if test.class_names != train.class_names:
        raise DataError(
            f"{name_or_path}: TRAIN and TEST list different class labels "
            f"({train.class_names} vs {test.class_names}); make them agree"
        )
    train, val = stratified_validation_split(train, val_fraction, seed)
    if not normalize:
        return UCRSplits(train, val, test)
    normalizer = fit_channel_normalizer(train)
    return UCRSplits(
        train.normalized(normalizer),
        val.normalized(normalizer),
        test.normalized(normalizer),
        normalizer,
    )
