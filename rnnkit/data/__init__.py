"""Data sets and readers for rnnkit's training tasks.

Bundled data (under ``rnnkit/data/files``, sources and licences in its README.md):

* ``text``       -- character-level corpora (Shakespeare) and truncated-BPTT batching.
* ``ucr``        -- UCR/UEA time-series classification (sktime ``.ts``, UCR 2018 ``.tsv``).
* ``timeseries`` -- univariate CSV series (sunspots, airline) and forecasting windows.
* ``cmudict``    -- grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary.
* ``digits``     -- 5,000 MNIST digits for sequential (row- or pixel-wise) classification.
* ``synthetic``  -- seeded long-range tasks: adding, copy memory, temporal order, dependency.

Every reader reports bad input as :class:`DataError`, one line naming the file (and the
line or column where that applies) and what to do about it.
"""

from rnnkit.data.bundle import DataError, bundled_path
from rnnkit.data.cmudict import (
    G2PBatch,
    SymbolVocab,
    load_cmudict,
    make_g2p_batch,
    pad_token_sequences,
    split_by_word,
)
from rnnkit.data.digits import load_mnist5000, sequential_digits, split_digits
from rnnkit.data.missing import fill_missing
from rnnkit.data.normalizer import Normalizer
from rnnkit.data.splits import hash_split, stable_permutation, stratified_split_indices
from rnnkit.data.synthetic import (
    TrivialBaseline,
    adding_baseline,
    adding_problem,
    copy_memory,
    copy_memory_baseline,
    dependency_baseline,
    dependency_task,
    temporal_order,
    temporal_order_baseline,
)
from rnnkit.data.text import CharVocab, StreamBatcher, load_text, split_text
from rnnkit.data.timeseries import (
    ChronologicalSplit,
    CsvSeries,
    chronological_split,
    load_csv_series,
    make_windows,
)
from rnnkit.data.ucr import (
    TimeSeriesDataset,
    UCRSplits,
    fit_channel_normalizer,
    load_ucr,
    load_ucr_splits,
    pad_series,
    parse_ts_file,
    parse_tsv_file,
    stratified_validation_split,
    ucr_file,
)

__all__ = [
    "CharVocab",
    "ChronologicalSplit",
    "CsvSeries",
    "DataError",
    "G2PBatch",
    "Normalizer",
    "StreamBatcher",
    "SymbolVocab",
    "TimeSeriesDataset",
    "TrivialBaseline",
    "UCRSplits",
    "adding_baseline",
    "adding_problem",
    "bundled_path",
    "chronological_split",
    "copy_memory",
    "copy_memory_baseline",
    "dependency_baseline",
    "dependency_task",
    "fill_missing",
    "fit_channel_normalizer",
    "hash_split",
    "load_cmudict",
    "load_csv_series",
    "load_mnist5000",
    "load_text",
    "load_ucr",
    "load_ucr_splits",
    "make_g2p_batch",
    "make_windows",
    "pad_series",
    "pad_token_sequences",
    "parse_ts_file",
    "parse_tsv_file",
    "sequential_digits",
    "split_by_word",
    "split_digits",
    "split_text",
    "stable_permutation",
    "stratified_split_indices",
    "stratified_validation_split",
    "temporal_order",
    "temporal_order_baseline",
    "ucr_file",
]
