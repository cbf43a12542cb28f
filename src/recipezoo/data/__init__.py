"""The one place that reads and shapes user data, as small pure stages a DataModule composes.

- :mod:`~recipezoo.data.tables`: CSV / TSV / delimited text / JSON lines / Parquet files, separator sniffing, encoding;
- :mod:`~recipezoo.data.columns`: columns by name, list of candidates or position, with "columns found" errors;
- :mod:`~recipezoo.data.timeparse`: time columns (numbers, datetimes, date text) as sortable seconds;
- :mod:`~recipezoo.data.splits`: split names, fixed files, stratified / group / time / leave-last-out / random splits;
- :mod:`~recipezoo.data.labels`: label maps (multi-label, unseen-label policy, ``data_info``);
- :mod:`~recipezoo.data.folders`: class sub-folders, split sub-folders, file-name patterns, the bad-file budget;
- :mod:`~recipezoo.data.contract`: the DataModule contract the entry points rely on.

Nothing here imports torch or Lightning: every stage is testable alone on tiny tables and temporary files.
"""

from recipezoo.data.columns import column_values, find_column, resolve_column
from recipezoo.data.contract import DataModuleContract
from recipezoo.data.folders import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    check_bad_files,
    compile_pattern,
    scan_class_folders,
    split_folders,
)
from recipezoo.data.labels import LabelMap, read_label_names, sort_labels
from recipezoo.data.splits import (
    SPLIT_ALIASES,
    SPLITS,
    canonical_split,
    carve_missing,
    group_split,
    leave_last_out,
    random_split,
    split_paths,
    stratified_split,
    time_split,
)
from recipezoo.data.tables import read_table, read_text_file
from recipezoo.data.timeparse import parse_times

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "SPLIT_ALIASES",
    "DataModuleContract",
    "LabelMap",
    "canonical_split",
    "carve_missing",
    "check_bad_files",
    "column_values",
    "compile_pattern",
    "find_column",
    "group_split",
    "leave_last_out",
    "parse_times",
    "random_split",
    "read_label_names",
    "read_table",
    "read_text_file",
    "resolve_column",
    "scan_class_folders",
    "sort_labels",
    "split_folders",
    "split_paths",
    "stratified_split",
    "time_split",
]
