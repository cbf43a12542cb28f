"""A fitted HistGradientBoostingClassifier as an ONNX graph with the fraud networks' interface, no pickle involved.

The graph takes what the deep models take, ``x_num (B, n_num) float32`` and ``x_cat (B, n_cat) int64``, joins them
as :func:`recipezoo.fraud.baseline.gbdt` does (``np.hstack([x_num, x_cat])``) in float64, runs the trees with
onnxruntime's ``TreeEnsemble`` (``ai.onnx.ml`` opset 5) and returns ``score (B,)`` float64: the log-odds of
``decision_function``, so ``sigmoid(score)`` is ``predict_proba[:, 1]`` and the fraud runtime's ``calibration:
none`` turns it into that probability.

Written here rather than with skl2onnx (checked with 1.20): its HistGradientBoosting converter reads a native
categorical split as a ``<=`` on a meaningless threshold (onnx/sklearn-onnx#1051, #1101: scores off by whole
logits), builds attributes that current protobuf rejects (booleans among ints), and its float64 graph does not load
in onnxruntime. Here every split is exact: a numeric split is scikit-learn's ``x <= threshold`` in float64 (the
float32 features widen exactly), and a categorical split is a set-membership test (``BRANCH_MEMBER``) on the raw
category codes, the set being the categories that do not go where scikit-learn sends missing and unseen ones.

The facts that travel with the trees (decision threshold, feature layout, parameters, the parity measured against
scikit-learn) are stored in the model's ``metadata_props`` under ``recipezoo.*`` keys, JSON-encoded; :func:`read_facts`
reads them back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "recipezoo."
ML_OPSET = 5  # TreeEnsemble: float64 splits and sums, and set-membership splits
OPSET = 18


def _layout(clf: Any) -> tuple[list[int], dict[int, np.ndarray]]:
    """Where the trees' features come from: per tree feature, its column of the input, and per categorical tree
    feature, the raw category values its codes stand for.

    With categorical features, scikit-learn (1.4+) puts its input through a ColumnTransformer: an OrdinalEncoder
    over the categorical columns (unseen values become NaN, i.e. missing) placed first, then the numeric columns
    unchanged; the trees split on that layout, categories as their positions in the encoder's sorted ``categories_``.
    """
    pre = getattr(clf, "_preprocessor", None)
    if pre is None:
        return list(range(clf.n_features_in_)), {}
    columns = [0] * clf.n_features_in_
    categories: dict[int, np.ndarray] = {}
    for name, transformer, selection in pre.transformers_:
        if name not in ("encoder", "numerical"):
            continue
        source = np.arange(clf.n_features_in_)[np.asarray(selection)] if len(selection) else np.zeros(0, int)
        out = pre.output_indices_[name]
        for k, column in zip(range(out.start, out.stop), source.tolist()):
            columns[k] = int(column)
            if name == "encoder":
                cats = np.asarray(transformer.categories_[k - out.start], dtype=np.float64)
                categories[k] = cats[~np.isnan(cats)]  # NaN (missing) is no category: it takes the missing side
    return columns, categories


def _bitset_members(bitset: np.ndarray) -> np.ndarray:
    """The values set in one of scikit-learn's category bitsets (32-bit words, value ``v`` at bit ``v % 32`` of word
    ``v // 32``)."""
    words = np.asarray(bitset, dtype=np.uint32)
    bits = (words[:, None] >> np.arange(32, dtype=np.uint32)) & 1  # (n_words, 32)
    return np.flatnonzero(bits.reshape(-1))


def _categorical_split(node: Any, bitset: np.ndarray, cats: np.ndarray) -> tuple[list[float], bool]:
    """The raw categories tested by a categorical split, and whether a tested category goes left.

    scikit-learn sends a code left when it is in the split's left set, right when it is another known category, and
    the way of missing values (``missing_go_to_left``) when it is missing, negative or unseen in training. So the
    tested set is the known categories that do not go the missing way; everything else, NaN and unseen codes
    included, takes the false branch, which leads the missing way.
    """
    codes = _bitset_members(bitset)
    in_left = np.zeros(len(cats), dtype=bool)
    in_left[codes[codes < len(cats)]] = True
    missing_left = bool(node["missing_go_to_left"])
    members = cats[~in_left] if missing_left else cats[in_left]
    return members.tolist(), not missing_left


def to_onnx(clf: Any, n_num: int, n_cat: int, facts: dict[str, Any] | None = None) -> Any:
    """The ONNX model of a fitted binary ``HistGradientBoostingClassifier`` trained on ``hstack([x_num, x_cat])``.

    Args:
        clf: the fitted classifier.
        n_num: columns of ``x_num``.
        n_cat: columns of ``x_cat`` (0: the graph has no ``x_cat`` input, as the deep exports prune it).
        facts: JSON-able facts stored in ``metadata_props`` (``recipezoo.<key>``), e.g. the threshold.

    Returns:
        An ``onnx.ModelProto``: ``(x_num, x_cat) -> score (B,)`` float64 log-odds, equal to ``decision_function``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if len(clf.classes_) != 2 or getattr(clf, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary HistGradientBoostingClassifier models are converted.")
    if clf.n_features_in_ != n_num + n_cat:
        raise ValueError(f"the classifier has {clf.n_features_in_} features, not n_num + n_cat = {n_num + n_cat}.")
    columns, categories = _layout(clf)
    # TreeEnsemble (ai.onnx.ml 5): interior nodes and leaves are two numbered lists over all trees; a branch names
    # its child's index and whether that child is a leaf.
    feature, split, mode, true_id, true_leaf, false_id, false_leaf, missing, membership = ([] for _ in range(9))
    roots: list[int] = []
    leaf_weights: list[float] = []
    constant = float(np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(-1)[0])
    for per_iteration in clf._predictors:
        tree = per_iteration[0]
        nodes = tree.nodes
        if nodes[0]["is_leaf"]:  # a tree without a split adds its value to every row
            constant += float(nodes[0]["value"])
            continue
        interior = np.flatnonzero(nodes["is_leaf"] == 0)
        leaves = np.flatnonzero(nodes["is_leaf"] != 0)
        index = np.zeros(len(nodes), dtype=np.int64)
        index[interior] = len(feature) + np.arange(len(interior))
        index[leaves] = len(leaf_weights) + np.arange(len(leaves))
        roots.append(int(index[0]))
        leaf_weights.extend(nodes["value"][leaves].astype(np.float64).tolist())
        for i in interior.tolist():
            node = nodes[i]
            f, left, right = int(node["feature_idx"]), int(node["left"]), int(node["right"])
            feature.append(columns[f])
            if node["is_categorical"]:
                members, member_left = _categorical_split(node, tree.raw_left_cat_bitsets[node["bitset_idx"]],
                                                          categories[f])  # fmt: skip
                if members:
                    mode.append(6)  # BRANCH_MEMBER: x in membership set -> true
                    split.append(np.nan)
                    membership.extend([*members, np.nan])  # sets are NaN-separated, in the order of member nodes
                else:  # every known category goes the missing way: x <= -inf is never true
                    mode.append(0)
                    split.append(-np.inf)
                first, second = (left, right) if member_left else (right, left)
                missing.append(0)  # NaN is never a member: false, the missing way
            else:
                mode.append(0)  # BRANCH_LEQ, scikit-learn's x <= num_threshold, on float64
                split.append(float(node["num_threshold"]))
                first, second = left, right
                missing.append(int(node["missing_go_to_left"]))
            for child, ids, is_leaf in ((first, true_id, true_leaf), (second, false_id, false_leaf)):
                ids.append(int(index[child]))
                is_leaf.append(int(nodes[child]["is_leaf"] != 0))

    def tensor(values: list[float], dtype: Any = np.float64) -> Any:
        return numpy_helper.from_array(np.asarray(values, dtype=dtype))

    nodes_out = [helper.make_node("Cast", ["x_num"], ["num64"], to=TensorProto.DOUBLE)]
    inputs = [helper.make_tensor_value_info("x_num", TensorProto.FLOAT, ["batch", n_num])]
    if n_cat:
        inputs.append(helper.make_tensor_value_info("x_cat", TensorProto.INT64, ["batch", n_cat]))
        nodes_out += [
            helper.make_node("Cast", ["x_cat"], ["cat64"], to=TensorProto.DOUBLE),
            helper.make_node("Concat", ["num64", "cat64"], ["features"], axis=1),  # (B, n_num + n_cat)
        ]
    else:
        nodes_out.append(helper.make_node("Identity", ["num64"], ["features"]))
    if roots:
        nodes_out.append(
            helper.make_node(
                "TreeEnsemble",
                ["features"],
                ["trees"],  # (B, 1)
                domain="ai.onnx.ml",
                n_targets=1,
                aggregate_function=1,  # SUM
                post_transform=0,  # NONE
                tree_roots=roots,
                nodes_featureids=feature,
                nodes_splits=tensor(split),
                nodes_modes=tensor(mode, np.uint8),
                nodes_truenodeids=true_id,
                nodes_trueleafs=true_leaf,
                nodes_falsenodeids=false_id,
                nodes_falseleafs=false_leaf,
                nodes_missing_value_tracks_true=missing,
                leaf_targetids=[0] * len(leaf_weights),
                leaf_weights=tensor(leaf_weights),
                **({"membership_values": tensor(membership)} if membership else {}),
            )
        )
    else:  # no tree ever split: the same score for every row
        nodes_out += [
            helper.make_node("Shape", ["features"], ["rows"], end=1),  # (1,): B
            helper.make_node("Concat", ["rows", "one"], ["shape"], axis=0),  # (2,): B, 1
            helper.make_node("ConstantOfShape", ["shape"], ["trees"], value=tensor([0.0])),  # (B, 1) zeros
        ]
    nodes_out += [
        helper.make_node("Add", ["trees", "baseline"], ["raw"]),  # + the prior log-odds (and split-less trees)
        helper.make_node("Reshape", ["raw", "flat"], ["score"]),  # (B,)
    ]
    graph = helper.make_graph(
        nodes_out,
        "hist_gradient_boosting",
        inputs,
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["batch"])],
        initializer=[
            numpy_helper.from_array(np.array([constant], dtype=np.float64), "baseline"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
            *([] if roots else [numpy_helper.from_array(np.array([1], dtype=np.int64), "one")]),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="recipezoo",
        doc_string="HistGradientBoostingClassifier: (x_num, x_cat) -> score, the log-odds of fraud",
    )
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases older than this onnx package
    onnx.checker.check_model(model)
    return set_facts(model, facts or {})


def set_facts(model: Any, facts: dict[str, Any]) -> Any:
    """Store JSON-able ``facts`` in ``model``'s ``metadata_props`` (``recipezoo.<key>``, replacing earlier values)."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key[len(PREFIX) :] not in facts]
    del model.metadata_props[:]
    for key, value in keep + [(PREFIX + k, json.dumps(v)) for k, v in facts.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def read_facts(path: str | Path) -> dict[str, Any]:
    """The ``recipezoo.*`` facts stored in an ONNX file written by :func:`to_onnx` (keys without the prefix)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(PREFIX) :]: json.loads(p.value) for p in model.metadata_props if p.key.startswith(PREFIX)}
