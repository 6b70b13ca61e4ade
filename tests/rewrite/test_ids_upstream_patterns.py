"""ids_upstream + ONNX lowering on the id patterns libraries export (see fixtures_patterns).

For each pattern: parity of the rewritten graph, of the re-exported SavedModel and of the ONNX
file against the original model on raw rows holding the pad / ignore values, OOV values, empty,
unicode and long strings; no string op left; and the negative case with its refusal reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadvisor.advice import advise, build_plan
from recadvisor.analysis.detectors import run_detectors
from recadvisor.analysis.findings import DetectorContext
from recadvisor.errors import ExportError
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import STRING_OPS, ModelGraph
from recadvisor.model.load import load_model
from recadvisor.model.onnx_export import (
    OnnxExportResult,
    export_onnx,
    find_onnx_blockers,
    lower_for_onnx,
)
from recadvisor.model.runtime import GraphRunner, export_saved_model, run_loaded
from recadvisor.plan import PRESET_PASSES
from recadvisor.rewrite.base import PassRefused, PassResult
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import IdsUpstreamPass
from recadvisor.rewrite.pipeline import run_pipeline
from recadvisor.tfimport import import_tf
from tests.rewrite.fixtures_contract import ContractModel, max_abs_diff
from tests.rewrite.fixtures_patterns import (
    bucketized_crosses_feeds,
    deepctr_hash,
    feature_bucketized_crosses,
    feature_column_feeds,
    feature_columns,
    feature_cross,
    feature_cross_oov,
    feature_multi_valued_cross,
    keras3_feeds,
    keras3_patterns,
    keras3_salted_cross,
    multi_valued_cross_feeds,
    raw_sparse_cross,
    retrieval_inverse_lookup,
    retrieval_top_k,
)

pytestmark = pytest.mark.slow  # each model is built by its library (~10-20 s)


def _upstream(model: ContractModel) -> PassResult:
    return IdsUpstreamPass().apply(model.graph, {}, model.context(labels=False))


def _string_free(graph: ModelGraph) -> None:
    assert not [n.op for n in graph.graph_def.node if n.op in STRING_OPS]
    assert all(info.dtype != "string" for info in graph.signature.inputs.values())
    assert not graph.tables


def _check_everywhere(
    model: ContractModel, result: PassResult, tmp_path: Path, fresh: dict[str, np.ndarray]
) -> OnnxExportResult:
    """Parity of the graph, the reloaded SavedModel and the ONNX file; returns the export."""
    diffs: dict[str, float] = {}
    for label, feeds in (("sample", model.feeds), ("fresh", fresh)):
        encoded = encode_feeds(result.encodings, feeds)
        diffs[f"graph_{label}"] = max_abs_diff(
            GraphRunner(result.graph)(encoded), model.run_original(feeds)
        )
    loaded = load_model(export_saved_model(result.graph, tmp_path / "sm"))
    encoded = encode_feeds(result.encodings, model.feeds)
    served = run_loaded(loaded.function, loaded.spec.inputs, encoded)
    diffs["saved_model"] = max_abs_diff(served, model.run_original(model.feeds))
    onnx = export_onnx(result.graph, tmp_path / "model.onnx", encoded)
    diffs["onnx"] = onnx.max_abs_diff
    assert all(d <= 1e-5 for d in diffs.values()), diffs
    return onnx


@pytest.fixture(scope="module")
def keras3() -> tuple[ContractModel, PassResult]:
    model = keras3_patterns()
    return model, _upstream(model)


@pytest.fixture(scope="module")
def columns() -> tuple[ContractModel, PassResult]:
    model = feature_columns()
    return model, _upstream(model)


def test_keras3_masks_lookups_salted_hash_and_cross(keras3, tmp_path: Path) -> None:
    model, result = keras3
    enc = {e.input_key: e for e in result.encodings}
    assert {k: e.kind for k, e in enc.items()} == {
        "hist": "hash_bucket",
        "tags": "vocabulary",
        "uid": "vocabulary",
        "salted": "strong_hash_bucket",
        "a": "fingerprint64",
        "b": "fingerprint64",
        "oov": "vocabulary",
        "code": "vocabulary",
    }
    assert enc["oov"].params["oov_buckets"] == 3 and enc["oov"].params["mask"] == {"": 0}
    assert enc["code"].params["oov_hash"] == "floormod"  # IntegerLookup: code mod 2
    # the padding "" keeps its meaning: a reserved id the hash / lookup never produces
    assert enc["hist"].params["reserved"] == {"": -1}
    assert enc["tags"].params["reserved"] == {"": -1}
    assert enc["uid"].params["key_dtype"] == "int64"
    assert enc["salted"].params["key"] == [11, 22]
    _string_free(result.graph)
    ops = result.graph.op_counts()
    assert ops.get("LookupTableFindV2", 0) == 0 and ops["SparseCross"] == 1  # cross on int64 ids
    encoded = encode_feeds(result.encodings, model.feeds)
    assert (encoded["hist"] == -1).sum() == (model.feeds["hist"] == "").sum() > 0
    onnx = _check_everywhere(model, result, tmp_path, keras3_feeds(64, seed=9))
    assert onnx.lowered["SparseCross"] == 1 and "SparseCross" not in onnx.onnx_ops
    assert onnx.opset >= 18


def test_feature_column_sparse_paths(columns, tmp_path: Path) -> None:
    model, result = columns
    enc = {e.input_key: e for e in result.encodings}
    assert {k: e.kind for k, e in enc.items()} == {
        "user": "hash_bucket",
        "tags": "hash_bucket",
        "cat": "vocabulary",
        "cat2": "vocabulary",
        "shop": "vocabulary",
    }
    # to_sparse_input's ignore values: "" for strings, -1 for the int64 column
    assert enc["user"].params["reserved"] == {"": -1}
    assert enc["shop"].params["reserved"] == {"-1": -2}  # -1 is also the lookup's default
    assert enc["cat"].params["oov_buckets"] == 2 and enc["cat"].params["oov_offset"] == 3
    _string_free(result.graph)
    assert result.graph.op_counts()["GatherNd"] >= 4  # the sparse path stays, on ids
    onnx = _check_everywhere(model, result, tmp_path, feature_column_feeds(64, seed=8))
    assert onnx.lowered["OneHot"] == 1  # -1 (cat2 out of vocabulary) must stay a zero row


def test_feature_cross_keeps_the_cross_on_fingerprints(tmp_path: Path) -> None:
    """user/city/kind are crossed (kind is also a vocabulary, then keyed by Fingerprint64)."""
    model = feature_cross()
    result = _upstream(model)
    enc = {e.input_key: e for e in result.encodings}
    assert {k: e.kind for k, e in enc.items()} == {
        "user": "fingerprint64",
        "city": "fingerprint64",
        "kind": "fingerprint64",
    }
    assert set(enc["kind"].params["compared"]) == {"", "books", "music", "games"}  # collisions
    assert result.graph.op_counts()["FloorMod"] >= 1  # user's bucket from its fingerprint
    (fp_table,) = result.graph.tables.values()
    assert fp_table.key_dtype == "int64" and fp_table.size == 3
    assert not [n.op for n in result.graph.graph_def.node if n.op in STRING_OPS]
    rng = np.random.default_rng(12)
    fresh = {
        k: np.array(rng.choice([*v.reshape(-1).tolist(), "", "new"], (40, 1)), dtype=object)
        for k, v in model.feeds.items()
    }
    onnx = _check_everywhere(model, result, tmp_path, fresh)
    lowered = {k: onnx.lowered.get(k) for k in ("SparseCross", "LookupTableFindV2", "OneHot")}
    assert lowered == {"SparseCross": 2, "LookupTableFindV2": 1, "OneHot": 3}


def test_crossed_vocabulary_with_oov_buckets(tmp_path: Path) -> None:
    model = feature_cross_oov()
    result = _upstream(model)
    assert {e.input_key: e.kind for e in result.encodings} == {
        "kind2": "fingerprint64",
        "city": "fingerprint64",
    }
    ops = result.graph.op_counts()
    assert "LookupTableSizeV2" not in ops and ops["FloorMod"] >= 1  # OOV bucket from the id
    assert not [n.op for n in result.graph.graph_def.node if n.op in STRING_OPS]
    fresh = {k: v[::-1].copy() for k, v in model.feeds.items()}
    onnx = _check_everywhere(model, result, tmp_path, fresh)
    assert onnx.lowered["SparseCross"] == 1


def test_crossed_input_with_a_keyed_hash_is_refused(tmp_path: Path) -> None:
    model = keras3_salted_cross()
    result = _upstream(model)
    assert [e.input_key for e in result.encodings] == ["t"]
    refusal = " ".join(result.notes)
    assert "input 's' is crossed and also read as StringToHashBucketStrong(16, keyed)" in refusal
    assert result.graph.signature.inputs["s"].dtype == "string"
    encoded = encode_feeds(result.encodings, model.feeds)
    assert max_abs_diff(GraphRunner(result.graph)(encoded), model.run_original(model.feeds)) <= 1e-5
    blockers = {b.op: b for b in find_onnx_blockers(result.graph)}
    assert "s" in blockers["string input"].inputs
    with pytest.raises(ExportError, match="StringToHashBucketStrong"):
        export_onnx(result.graph, tmp_path / "m.onnx", encoded)


@pytest.mark.parametrize(
    ("value_dtype", "match_op"), [("int64", "ReduceSum"), ("float32", "ArgMax")]
)
def test_sparse_integer_keys_are_matched_for_onnx(
    tmp_path: Path, value_dtype: str, match_op: str
) -> None:
    """An int64 table over 64-bit ids (too wide for a remap vector) becomes a key match: the
    matched value offset from the default, summed (integer values), or an ArgMax and a gather
    (others)."""
    tf = import_tf()
    keys = np.array([10**12 + 7, 5, -(10**15), 2**62], np.int64)
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, np.array([3, 1, 2, 4], value_dtype)), -1
    )
    module.emb = tf.Variable(np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32))
    spec = {"uid": tf.TensorSpec([None, 1], tf.int64, name="uid")}

    @tf.function(input_signature=[spec])
    def serve(f: dict) -> dict:
        ids = tf.cast(module.table.lookup(f["uid"]), tf.int64)
        return {"score": tf.gather(module.emb, ids + 1)}

    module.serve = serve
    path = tmp_path / "sparse_keys"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    graph = freeze(load_model(path))
    assert find_onnx_blockers(graph) == []
    feeds = {"uid": np.array([[k] for k in [*keys.tolist(), 0, 6, -5, 2**63 - 1]], np.int64)}
    result = export_onnx(graph, tmp_path / "m.onnx", feeds)
    assert result.lowered == {"LookupTableFindV2": 1} and result.max_abs_diff == 0.0
    assert match_op in result.onnx_ops
    assert ({"ArgMax", "ReduceSum"} - {match_op}).isdisjoint(result.onnx_ops)


def test_deepctr_mask_constant_is_computed(tmp_path: Path) -> None:
    model = deepctr_hash()
    result = _upstream(model)
    (enc,) = result.encodings
    assert enc.kind == "hash_bucket" and enc.params == {"num_buckets": 19, "reserved": {"0": -1}}
    _string_free(result.graph)
    assert "AsString" not in result.graph.op_counts()
    rng = np.random.default_rng(3)
    fresh = {"hist": np.array(rng.choice(["0", "", "a", "ü"], (32, 4)), dtype=object)}
    _check_everywhere(model, result, tmp_path, fresh)


def test_exact_suggestions_are_applied_by_fast(keras3, columns) -> None:
    """Advice asks the pass's matcher: every exact ids_upstream target of analyze is rewritten
    by the fast plan, and inputs the matcher refuses get a reason instead of an exact line."""
    models = (keras3[0], columns[0], feature_cross(), feature_cross_oov(), deepctr_hash())
    for model in (*models, retrieval_top_k(), keras3_salted_cross()):
        ctx = DetectorContext(graph=model.graph, info=model.loaded.info, feeds=model.feeds)
        suggestions = advise(run_detectors(ctx, strict=True), model.graph, preset="fast")
        plan = build_plan(suggestions, model.graph, "fast")
        result = run_pipeline(model.graph, plan, model.context(labels=False), strict=True)
        for s in suggestions:
            if s.exactness != "exact" or s.pass_name not in PRESET_PASSES["fast"]:
                continue
            record = result.record(s.pass_name)
            assert record is not None and record.status == "applied", (s.kind, record)
            if s.pass_name == "ids_upstream":
                assert set(s.targets) <= set(record.stats["inputs_changed"])
        refused = [s for s in suggestions if s.kind == "ids_upstream_refused"]
        if model is keras3_salted_cross():
            assert [s.targets for s in refused] == [("s",)]
            assert "crossed and also read as StringToHashBucketStrong" in refused[0].message
            assert result.record("ids_upstream").stats["inputs_changed"] == ["t"]
        else:
            assert refused == []


def test_cli_fast_onnx_on_keras3_patterns(keras3, tmp_path: Path) -> None:
    """``recadvisor rebuild --preset fast --onnx`` end to end: string-free SavedModel and ONNX,
    both exact through ``recadvisor.encode_inputs`` on raw rows."""
    import pandas as pd
    from typer.testing import CliRunner

    from recadvisor.bench import OnnxRunner
    from recadvisor.cli import app
    from recadvisor.encode import encode_inputs

    model, _ = keras3
    data = tmp_path / "sample.parquet"
    frame = {k: (list(v.tolist()) if v.shape[1] > 1 else v[:, 0]) for k, v in model.feeds.items()}
    pd.DataFrame(frame).to_parquet(data)
    out = tmp_path / "fast"
    args = ["rebuild", str(model.path), "--out", str(out), "--preset", "fast", "--onnx"]
    result = CliRunner().invoke(app, [*args, "--data", str(data)])
    assert result.exit_code == 0, result.output
    rebuilt = load_model(out / "saved_model")
    assert all(info.dtype != "string" for info in rebuilt.spec.inputs.values())
    fresh = keras3_feeds(48, seed=21)
    encoded = encode_inputs(out, fresh)
    original = model.run_original(fresh)
    served = run_loaded(rebuilt.function, rebuilt.spec.inputs, encoded)
    assert max_abs_diff(served, original) <= 1e-5
    onnx = OnnxRunner(out / "model.onnx")
    assert max_abs_diff(onnx.run(onnx.prepare(encoded)), original) <= 1e-5


def test_string_outputs_stay_strings_in_onnx(tmp_path: Path) -> None:
    model = retrieval_top_k()
    result = _upstream(model)
    assert [e.kind for e in result.encodings] == ["hash_bucket"]
    assert not [n.op for n in result.graph.graph_def.node if n.op in STRING_OPS]
    assert result.graph.signature.outputs["output_2"].dtype == "string"
    assert find_onnx_blockers(result.graph) == []
    onnx = _check_everywhere(model, result, tmp_path, {"user_id": model.feeds["user_id"][:7]})
    assert onnx.parity["output_2"] == 0.0  # every top-K id string equal
    assert onnx.onnx_ops["Gather"] >= 2


def test_string_output_tables_are_lowered_in_onnx(tmp_path: Path) -> None:
    """int64 -> string tables on the outputs (a Keras-RS inverse ``StringLookup``) are not
    blockers: the string-free graph keeps them and the ONNX export turns them into gathers over
    a string constant, the dense one through a remap and the 64-bit-keyed one through a key
    match, the one holding a string for every top-K position (0..19) through a plain gather
    of the indices (no range check, no default); every id string (the table default included)
    equals TensorFlow's."""
    model = retrieval_inverse_lookup()
    result = _upstream(model)
    assert not [n.op for n in result.graph.graph_def.node if n.op in STRING_OPS]
    assert find_onnx_blockers(result.graph) == []
    onnx = _check_everywhere(model, result, tmp_path, {"user_id": model.feeds["user_id"][:9]})
    assert onnx.lowered == {"LookupTableFindV2": 3}
    assert onnx.parity["item_ids"] == 0.0 and onnx.parity["item_codes"] == 0.0
    assert onnx.parity["item_names"] == 0.0
    lowered, _ = lower_for_onnx(result.graph)
    finds = {
        n.name: n.op
        for n in lowered.graph_def.node
        if n.name.endswith("LookupTableFindV2") and "/onnx_" not in n.name
    }
    assert sorted(finds.values()) == ["GatherV2", "SelectV2", "SelectV2"]
    served = model.run_original(model.feeds)["item_ids"]
    assert b"[UNK]" in set(np.asarray(served).ravel().tolist())  # key 7 reads the default


def test_crossed_multi_valued_columns(tmp_path: Path) -> None:
    """Feature-column crosses of a [N,3] vocabulary column (0 to 3 values a row, the sparse
    path) and of a raw [N,2] string key (dense) with a bucketized column: string-free, exact in
    the graph, the SavedModel and ONNX (the crosses lowered, not left to TensorFlow)."""
    model = feature_multi_valued_cross()
    result = _upstream(model)
    enc = {e.input_key: e for e in result.encodings}
    assert {k: e.kind for k, e in enc.items()} == {"tags": "vocabulary", "words": "fingerprint64"}
    assert enc["tags"].params["reserved"] == {"": -2}  # the ignore value, not the default -1
    _string_free(result.graph)
    assert result.graph.op_counts()["SparseCross"] == 2
    assert find_onnx_blockers(result.graph) == []
    onnx = _check_everywhere(model, result, tmp_path, multi_valued_cross_feeds(40, seed=13))
    assert onnx.lowered["SparseCross"] == 2 and "SparseCross" not in onnx.onnx_ops


def test_three_column_and_two_bucket_crosses(tmp_path: Path) -> None:
    """``city`` x ``hist`` x ``age`` (a dense column after two sparse ones), ``tags`` [N,3] x a
    bucketized ``prices`` [N,2] (two bucket ids a row) into an embedding, ``hist`` x ``age``:
    string-free and exact everywhere, also for a one-row request with no history (its crosses
    with ``hist`` are empty: ``[1, 0]``)."""
    from recadvisor.bench import OnnxRunner

    model = feature_bucketized_crosses()
    result = _upstream(model)
    assert {e.input_key: e.kind for e in result.encodings} == {
        "hist": "vocabulary",
        "tags": "fingerprint64",
        "city": "fingerprint64",
    }
    _string_free(result.graph)
    assert result.graph.op_counts()["SparseCross"] == 3
    onnx = _check_everywhere(model, result, tmp_path, bucketized_crosses_feeds(40, seed=14))
    assert onnx.lowered["SparseCross"] == 3 and "SparseCross" not in onnx.onnx_ops
    runner = OnnxRunner(tmp_path / "model.onnx")
    request = {k: v[5:6].copy() for k, v in bucketized_crosses_feeds(8, seed=15).items()}
    request["hist"][:] = ""
    encoded = encode_feeds(result.encodings, request)
    original = model.run_original(request)
    assert max_abs_diff(runner.run(runner.prepare(encoded)), original) <= 1e-5


def test_sparse_string_cross_matches_tensorflow_entry_for_entry(tmp_path: Path) -> None:
    """``tf.sparse.cross_hashed`` of a sparse string column (``""`` dropped), a sparse int64
    column and a dense one: the string column is sent as Fingerprint64 ids, ``""`` as its
    fingerprint; the cross's indices, values and dense shape (outputs) are equal to the
    original's, in order, from the rebuilt graph and from onnxruntime, empty rows included."""
    from recadvisor.bench import OnnxRunner

    model = raw_sparse_cross()
    result = _upstream(model)
    (enc,) = result.encodings
    assert (enc.input_key, enc.kind, enc.params) == ("tags", "fingerprint64", {"compared": [""]})
    _string_free(result.graph)
    onnx = _check_everywhere(model, result, tmp_path, {k: v[::-1] for k, v in model.feeds.items()})
    assert onnx.lowered["SparseCross"] == 1
    runner = OnnxRunner(tmp_path / "model.onnx")
    empty = {k: v[:3] for k, v in model.feeds.items()}  # rows without a tag: nothing crossed
    for feeds in (model.feeds, empty):  # the [3, 0] cross: see test_onnx_sparse_reshape
        original = model.run_original(feeds)
        encoded = encode_feeds(result.encodings, feeds)
        for got in (GraphRunner(result.graph)(encoded), runner.run(runner.prepare(encoded))):
            for key in ("indices", "values", "dense_shape"):
                assert np.array_equal(np.asarray(got[key]), original[key]), key
            assert np.allclose(np.asarray(got["score"]), original["score"], atol=1e-6)
    assert model.run_original(empty)["dense_shape"].tolist() == [3, 0]


def test_string_valued_cross_is_refused() -> None:
    """``tf.sparse.cross`` makes strings (``SparseCrossV2``): the input stays a string, with
    the reason, and ONNX export names the cross."""
    model = raw_sparse_cross(hashed=False)
    with pytest.raises(PassRefused, match="crossed into strings by SparseCrossV2"):
        _upstream(model)
    blockers = {b.op: b for b in find_onnx_blockers(model.graph)}
    assert "tags" in blockers["SparseCrossV2"].inputs
