"""The pure stages the speech DataModules compose: targets -> file check -> split -> fit -> encode.

Each stage is a plain function of items (dicts, see :mod:`recipezoo.speech.sources`) and settings, testable alone;
the split rules, group and stratified carving, split names, the bad-file budget and label maps come from
:mod:`recipezoo.data`. What is speech-specific: transcript normalisation, audio headers (duration, rate, channels)
and the character vocabulary of CTC models.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import folders as F
from recipezoo.data import labels as LB
from recipezoo.data import splits as S
from recipezoo.runtime.audio import BLANK

log = logging.getLogger("recipezoo.speech.data")

Items = list[dict[str, Any]]
Rule = dict[str, set[str]]


def _listed(found: Sequence[Any], n: int) -> str:
    return ", ".join(map(str, found[:n])) + (" ..." if len(found) > n else "")


# -- targets ------------------------------------------------------------------------------------------------------
def normalize_text(text: str, lowercase: bool = True, remove_punctuation: bool = False) -> str:
    """Unicode NFC, optionally lower-cased and without punctuation (apostrophes kept), whitespace collapsed."""
    text = unicodedata.normalize("NFC", str(text))
    if lowercase:
        text = text.lower()
    if remove_punctuation:
        text = "".join(
            " " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text.replace("\u2019", "'")
        )
    return " ".join(text.split())


def label_items(items: Items, column: str, where: str) -> Items:
    """Move the label ``column`` of manifest items onto their ``label`` field (stripped).

    Raises:
        DataError: a row without a label.
    """
    for item in items:
        item["label"] = str(item.pop(column) if column != "label" else item["label"]).strip()
    empty = sum(1 for item in items if not item["label"])
    if empty:
        raise DataError(f"{where}: {empty} row(s) have an empty '{column}'; every file needs a label.")
    return items


def transcript_items(items: Items, column: str, where: str, lowercase: bool, remove_punctuation: bool) -> Items:
    """Move the transcript ``column`` onto the normalised ``text`` field; rows with an empty one are skipped.

    Raises:
        DataError: every transcript is empty.
    """
    kept, empty = [], []
    for item in items:
        text = normalize_text(item.pop(column) if column != "text" else item["text"], lowercase, remove_punctuation)
        if not text:
            empty.append(item["path"])
            continue
        item["text"] = text
        kept.append(item)
    if empty:
        log.warning("%s: skipped %d row(s) with an empty transcript: %s", where, len(empty), _listed(empty, 3))
    if not kept:
        raise DataError(f"{where}: every transcript is empty.")
    return kept


# -- checking files -----------------------------------------------------------------------------------------------
def report_bad(
    total: int,
    good: int,
    missing: Sequence[str],
    unreadable: Sequence[str],
    empty: Sequence[str],
    *,
    max_bad_fraction: float,
    where: str,
    missing_hint: str = "",
) -> None:
    """The bad-file budget (:func:`~recipezoo.data.folders.check_bad_files`) over missing, unreadable and empty
    audio files; ``missing_hint`` is added when some are missing."""
    F.check_bad_files(
        good,
        {"missing": missing, "unreadable": unreadable, "empty": empty},
        max_bad_fraction,
        where=where,
        noun="audio files",
        total=total,
        hint=missing_hint if missing else "",
        empty_ok=True,
        logger=log,
    )


def check_files(
    items: Items,
    *,
    sample_rate: int,
    min_seconds: float,
    max_seconds: float | None,
    skip_long: bool,
    max_bad_fraction: float,
    where: str,
    missing_hint: str = "",
) -> Items:
    """Read every file's header: skip missing, unreadable, empty, too short (and, with ``skip_long``, too long)
    files with counts; note what will be converted. Kept items gain ``seconds``, ``rate`` and ``channels``.

    Raises:
        DataError: the bad-file budget is exceeded (see :func:`report_bad`).
    """
    import soundfile as sf

    missing, unreadable, empty, short, long = [], [], [], [], []
    rates: Counter = Counter()
    stereo = 0
    good = []
    for item in items:
        if item.get("audio") is not None:
            frames, rate, channels = len(item["audio"]), int(item["rate"]), 1
        else:
            path = item["path"]
            if not os.path.isfile(path):
                missing.append(path)
                continue
            try:
                info = sf.info(path)
                frames, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
            except Exception:
                unreadable.append(path)
                continue
        if frames <= 0 or rate <= 0:
            empty.append(item.get("path", "<generated>"))
            continue
        seconds = frames / rate
        if seconds < min_seconds:
            short.append(item.get("path", "<generated>"))
            continue
        if max_seconds and seconds > max_seconds and skip_long:
            long.append(item.get("path", "<generated>"))
            continue
        item["seconds"], item["rate"], item["channels"] = seconds, rate, channels
        rates[rate] += 1
        stereo += channels > 1
        good.append(item)
    report_bad(
        len(items),
        len(good),
        missing,
        unreadable,
        empty,
        max_bad_fraction=max_bad_fraction,
        where=where,
        missing_hint=missing_hint,
    )
    for what, found, why in (
        ("shorter than data.min_seconds", short, min_seconds),
        ("longer than data.max_seconds", long, max_seconds),
    ):
        if found:
            log.warning("Skipped %d file(s) %s=%s: %s", len(found), what, why, _listed(found, 3))
    converted = {r: n for r, n in rates.items() if r != sample_rate}
    if converted or stereo:
        notes = []
        if converted:
            froms = ", ".join(f"{n} at {r} Hz" for r, n in sorted(converted.items()))
            notes.append(f"{sum(converted.values())} resampled to {sample_rate} Hz ({froms})")
        if stereo:
            notes.append(f"{stereo} multi-channel file(s) mixed to mono")
        log.info("%s: converted on load: %s.", where, "; ".join(notes))
    return good


# -- splitting ----------------------------------------------------------------------------------------------------
def where_rule(rule: Any, name: str) -> Rule:
    """``{field: values}`` with every value a string (file-name fields are strings: 0 and "0" are the same).

    Raises:
        ConfigError: the rule is not a mapping.
    """
    if not rule:
        return {}
    if not hasattr(rule, "items"):
        raise ConfigError(f"data.{name} must map a field to values, e.g. data.{name}={{speaker:[theo]}}.")
    out = {}
    for field, values in rule.items():
        if isinstance(values, str) or not isinstance(values, Iterable):
            values = [values]
        out[str(field)] = {str(v) for v in values}
    return out


def matches(item: Mapping[str, Any], rule: Rule) -> bool:
    """Whether an item meets every condition of a (non-empty) rule."""
    return bool(rule) and all(str(item.get(field)) in values for field, values in rule.items())


def check_rule_fields(items: Items, rules: Mapping[str, Rule], group_by: str | None) -> None:
    """Refuse rules and ``group_by`` on fields the items lack, and rules no item meets.

    Raises:
        ConfigError: a field the data does not have.
        DataError: a rule that matches no item.
    """
    fields = sorted({k for item in items for k in item if k not in ("audio", "path", "rate", "channels")})
    for name, rule in rules.items():
        for field, values in rule.items():
            if not any(field in item for item in items):
                raise ConfigError(
                    f"data.{name} uses field '{field}', which the data does not have; its fields are: "
                    f"{', '.join(fields)}.{close_matches(field, fields)} File-name fields come from data.pattern."
                )
            if not any(str(item.get(field)) in values for item in items):
                seen = sorted({str(item.get(field)) for item in items}, key=S.natural_key)
                raise DataError(
                    f"data.{name}: no file has {field} in {sorted(values, key=S.natural_key)}; its values are: "
                    f"{', '.join(seen[:20])}{' ...' if len(seen) > 20 else ''}."
                )
    if group_by and not all(group_by in item for item in items):
        raise ConfigError(
            f"data.group_by='{group_by}' is not a field of every file; the fields are: {', '.join(fields)}."
            f"{close_matches(group_by, fields)} File-name fields come from data.pattern (e.g. "
            "{label}_{speaker}_{index}.wav), manifest fields from its columns; 'dir' is each file's folder."
        )


def assign_splits(items: Items, val_where: Rule, test_where: Rule, what: str) -> dict[str, Items]:
    """Items to splits by rule (test first), else by their ``split`` field (any alias; default train).

    Raises:
        DataError: an unknown split name.
    """
    splits: dict[str, Items] = {s: [] for s in S.SPLITS}
    for item in items:
        if matches(item, test_where):
            splits["test"].append(item)
        elif matches(item, val_where):
            splits["val"].append(item)
        else:
            named = S.canonical_split(item.get("split", "train") or "train")
            if named is None:
                raise DataError(
                    f"{what}: unknown split '{item.get('split')}' (for {item.get('path')}); use train, val or test."
                )
            splits[named].append(item)
    return splits


def carve_splits(
    splits: dict[str, Items],
    total: int,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_by: str | None,
    stratify_by: str | None,
    what: str,
) -> str | None:
    """Carve the empty held-out splits from train (in place): whole ``group_by`` groups, else stratified by the
    ``stratify_by`` field (else at random). Fractions are of all ``total`` items, as when nothing is given.

    Returns:
        How they were carved (for the log), or None when nothing was missing.

    Raises:
        DataError: too few groups, or groups too large, to carve a split.
    """
    missing = S.missing_splits(splits, empty=True)
    if not missing:
        return None
    pool = splits["train"]
    fractions = [val_fraction if s == "val" else test_fraction for s in missing]
    fractions = [min(0.95, f * total / max(1, len(pool))) for f in fractions]
    if group_by:
        groups = [str(i[group_by]) for i in pool]
        n_groups = len(set(groups))
        if n_groups < len(fractions) + 1:
            raise DataError(
                f"{what}: {n_groups} distinct {group_by} value(s) are too few to split train/val/test by {group_by}; "
                "add data, name the held-out ones with data.test_where / data.val_where, or drop data.group_by."
            )
        # Speech's group fill: groups in natural order before the seeded shuffle, parts filled in order, an empty
        # part taking the next group whatever its size (few speakers, many files each).
        parts = S.carve_missing(
            [], fractions, seed, what=what, groups=groups, group_order="natural", fill="first_first", take_first=True
        )
        for k, f in enumerate(fractions, 1):
            if f > 0 and not parts[k]:
                raise DataError(
                    f"{what}: the {group_by} groups are too few or too large to carve {f:.0%} for a split; name "
                    "held-out groups with data.val_where / data.test_where."
                )
        how = f"{'/'.join(missing)} carved by {group_by} (seed {seed})"
    else:
        keys = [i[stratify_by] for i in pool] if stratify_by else [0] * len(pool)
        parts = S.carve_missing(keys, fractions, seed, what=what)
        note = f", stratified by {stratify_by}" if stratify_by else ""
        how = f"{'/'.join(missing)} carved at random{note} (seed {seed})"
    splits["train"] = [pool[i] for i in parts[0]]
    for s, idx in zip(missing, parts[1:]):
        splits[s] = [pool[i] for i in idx]
    return how


def split_items(
    items: Items,
    *,
    val_where: Rule,
    test_where: Rule,
    group_by: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    stratify_by: str | None,
    what: str,
) -> dict[str, Items]:
    """Items to train / val / test: rules, then ``split`` fields, then what is missing carved from train.

    Raises:
        ConfigError, DataError: see :func:`check_rule_fields`, :func:`assign_splits` and :func:`carve_splits`; no
            training item left.
    """
    check_rule_fields(items, {"val_where": val_where, "test_where": test_where}, group_by)
    splits = assign_splits(items, val_where, test_where, what)
    how = carve_splits(
        splits,
        len(items),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        group_by=group_by,
        stratify_by=stratify_by,
        what=what,
    )
    if not splits["train"]:
        raise DataError(f"{what}: no training files are left after the val/test split.")
    if group_by:
        shared = S.group_overlap(splits, group_by)
        if shared:
            log.warning(
                "%d %s value(s) appear in more than one split (from explicit splits or rules): %s",
                len(shared),
                group_by,
                ", ".join(shared[:5]),
            )
    log.info(
        "%s: %s files%s",
        what,
        ", ".join(f"{s} {len(splits[s])}" for s in S.SPLITS),
        f"; {how}" if how else "",
    )
    return splits


# -- fitting and encoding -----------------------------------------------------------------------------------------
def fit_labels(splits: Mapping[str, Items], labels: Sequence[str] | None, what: str) -> list[str]:
    """The class list: every label of the data in natural order (``2`` before ``10``), or the fixed ``labels``
    (a checkpoint's), which must cover the data's. Classes without a training file are warned about.

    Raises:
        DataError: labels the fixed list lacks, or fewer than two classes.
    """
    found = LB.sort_labels((i["label"] for s in S.SPLITS for i in splits[s]), "natural")
    if labels is None:
        labels = found
    else:
        labels = list(labels)
        LB.LabelMap(labels).check_known(found, order="natural")
    if len(labels) < 2:
        raise DataError(
            f"{what} has only one class ({labels}); a classifier needs at least 2 (one sub-folder or label value per "
            "class)."
        )
    counts = Counter(i["label"] for i in splits["train"])
    absent = [label for label in labels if not counts[label]]
    if absent:
        log.warning("Classes with no training file (the model cannot learn them): %s", ", ".join(absent[:10]))
    return labels


def encode_labels(items: Items, labels: Sequence[str]) -> list[int]:
    """Each item's class index."""
    index = LB.LabelMap(list(labels)).index
    return [index[i["label"]] for i in items]


def fit_tokens(train: Items, vocabulary: str | None, lowercase: bool) -> list[str]:
    """The CTC token list: the blank, then every character of the training transcripts (space first), or of the
    fixed ``vocabulary``.

    Raises:
        DataError: training transcripts with characters outside ``vocabulary``.
    """
    chars = Counter(c for i in train for c in i["text"])
    if vocabulary:
        allowed = set(normalize_text(vocabulary, lowercase, False) + " ")
        outside = {c: n for c, n in chars.items() if c not in allowed}
        if outside:
            shown = ", ".join(f"{c!r} ({n})" for c, n in sorted(outside.items(), key=lambda kv: -kv[1])[:10])
            raise DataError(
                f"training transcripts hold characters outside data.vocabulary: {shown}. Add them to "
                "data.vocabulary, or set data.remove_punctuation=true / clean the transcripts."
            )
        chars = Counter({c: 1 for c in allowed})
    tokens = [BLANK, *sorted(chars, key=lambda c: (c != " ", c))]
    log.info("Vocabulary: %d characters from the training transcripts: %r", len(tokens) - 1, "".join(tokens[1:]))
    return tokens


def unknown_characters(splits: Mapping[str, Items], tokens: Sequence[str]) -> Counter:
    """Characters of the transcripts outside the vocabulary, warned about per split."""
    known = set(tokens[1:])
    total: Counter = Counter()
    for s in S.SPLITS:
        unknown = Counter(c for i in splits[s] for c in i["text"] if c not in known)
        if unknown:
            shown = ", ".join(f"{c!r} ({n})" for c, n in unknown.most_common(10))
            log.warning(
                "%s transcripts hold %d character(s) absent from the vocabulary: %s. They are left out of the "
                "loss targets; WER/CER still count them as errors.",
                s,
                sum(unknown.values()),
                shown,
            )
        total.update(unknown)
    return total


def encode_transcripts(items: Items, tokens: Sequence[str]) -> list[list[int]]:
    """Each transcript as token ids; characters outside the vocabulary are left out."""
    index = {c: k for k, c in enumerate(tokens)}
    return [[index[c] for c in i["text"] if c in index] for i in items]


__all__ = [
    "assign_splits",
    "carve_splits",
    "check_files",
    "check_rule_fields",
    "encode_labels",
    "encode_transcripts",
    "fit_labels",
    "fit_tokens",
    "label_items",
    "matches",
    "normalize_text",
    "report_bad",
    "split_items",
    "transcript_items",
    "unknown_characters",
    "where_rule",
]
