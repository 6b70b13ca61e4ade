"""The sample models: files, signatures, freezing parity, quality, planted flaws, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recadvisor.errors import DataError, OutputExistsError, RecAdvisorError
from recadvisor.model.freeze import freeze
from recadvisor.model.graph import ModelGraph, node_name
from recadvisor.model.load import LoadedModel, inspect_saved_model, load_model
from recadvisor.model.runtime import GraphRunner, run_loaded
from recadvisor.samples import SAMPLE_NAMES, SampleResult, build_sample, build_samples
from recadvisor.samples.build import sample_definition
from recadvisor.samples.common import SIZES, frame_to_feeds, held_out_start, roc_auc
from recadvisor.tfimport import import_tf

pytestmark = pytest.mark.slow  # builds the full-size samples

FLAW_KINDS = {
    "numeric_as_string",
    "duplicate_feature",
    "unused_input",
    "large_embedding",
    "shared_embedding_candidate",
}
EXPECTED_FLAWS = {
    "dssm": {
        ("numeric_as_string", ("age",)),
        ("duplicate_feature", ("city",)),
        ("unused_input", ("request_id",)),
        ("large_embedding", ("user_id",)),
        ("shared_embedding_candidate", ("item_id", "hist_item_id")),
    },
    "esmm": {
        ("numeric_as_string", ("age",)),
        ("unused_input", ("session_id",)),
        ("large_embedding", ("user_id",)),
    },
    "din": {
        ("numeric_as_string", ("age",)),
        ("shared_embedding_candidate", ("cate_id", "hist_cate_id")),
    },
}


class Frozen:
    """One sample loaded, frozen and read back, shared by the tests of a module."""

    def __init__(self, result: SampleResult) -> None:
        self.result = result
        self.loaded: LoadedModel = load_model(result.model_dir)
        self.graph: ModelGraph = freeze(self.loaded)
        self.frame = pd.read_parquet(result.data_path)

    def feeds(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        return frame_to_feeds(self.frame.iloc[start:stop], self.loaded.spec.inputs)


@pytest.fixture(scope="module")
def frozen(tiny_samples: dict[str, SampleResult]) -> dict[str, Frozen]:
    return {name: Frozen(result) for name, result in tiny_samples.items()}


def _hash_nodes(graph: ModelGraph, key: str) -> list[Any]:
    """StringToHashBucketFast nodes whose only feature is the input ``key``."""
    return [
        n
        for n in graph.graph_def.node
        if n.op == "StringToHashBucketFast" and graph.features_of_node[n.name] == {key}
    ]


def _table_of_hash(graph: ModelGraph, hash_node: Any) -> tuple[str, int]:
    """The embedding ``Const`` a hash node's ids gather from, and its row count."""
    tf = import_tf()
    frontier = [hash_node.name]
    while frontier:
        name = frontier.pop()
        for consumer in graph.consumers.get(name, []):
            node = graph.nodes[consumer]
            if node.op in ("GatherV2", "ResourceGather"):
                params = node_name(node.input[0])
                while graph.nodes[params].op == "Identity":
                    params = node_name(graph.nodes[params].input[0])
                shape = tf.TensorShape(graph.nodes[params].attr["value"].tensor.tensor_shape)
                return params, int(shape[0])
            if node.op in ("Identity", "StridedSlice", "Reshape"):
                frontier.append(consumer)
    raise AssertionError(f"no gather reads {hash_node.name}")


def _const_input(graph: ModelGraph, tensor: str) -> Any:
    """The value of a ``Const`` feeding ``tensor`` through Identity nodes."""
    tf = import_tf()
    node = graph.nodes[node_name(tensor)]
    while node.op == "Identity":
        node = graph.nodes[node_name(node.input[0])]
    assert node.op == "Const", node.op
    return tf.make_ndarray(node.attr["value"].tensor).item()


# ------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_files_and_result(
    tiny_samples: dict[str, SampleResult], tiny_root: Path, name: str
) -> None:
    result = tiny_samples[name]
    folder = tiny_root / name
    assert result.model_dir == str(folder / "saved_model")
    assert result.data_path == str(folder / "sample.parquet")
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "saved_model" / "variables" / "variables.index").is_file()
    assert (folder / "flaws.json").is_file() and (folder / "sample.json").is_file()
    assert sorted(p.name for p in tiny_root.iterdir() if p.name.startswith(".")) == []
    assert result.rows == 2000 and result.seed == 0 and result.size == "tiny"
    assert result.train_seconds > 0
    assert json.loads((folder / "sample.json").read_text()) == json.loads(
        json.dumps(result.to_dict())
    )


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_signature_matches_definition(tiny_samples: dict[str, SampleResult], name: str) -> None:
    definition = sample_definition(name)
    info = inspect_saved_model(tiny_samples[name].model_dir)
    assert info.source_format == "tf2"
    assert list(info.signatures) == ["serving_default"]
    spec = info.signatures["serving_default"]
    assert spec.inputs == dict(sorted(definition.inputs.items()))
    assert set(spec.outputs) == set(definition.outputs)
    for output in spec.outputs.values():
        assert (output.dtype, output.shape) == ("float32", (None,))


def test_signature_shapes_by_model(tiny_samples: dict[str, SampleResult]) -> None:
    shapes = {
        name: {
            k: (v.dtype, v.shape)
            for k, v in inspect_saved_model(r.model_dir)
            .signatures["serving_default"]
            .inputs.items()
        }
        for name, r in tiny_samples.items()
    }
    assert shapes["dssm"]["hist_item_id"] == ("string", (None, 20))
    assert shapes["dssm"]["price"] == ("float32", (None, 1))
    assert shapes["dssm"]["age"] == ("int64", (None,))
    assert shapes["esmm"]["hist_item_id"] == ("string", (None, 20))
    assert shapes["din"]["hist_item_id"] == shapes["din"]["hist_cate_id"] == ("string", (None, 50))
    assert shapes["din"]["age"] == ("int64", (None, 1))
    assert set(
        inspect_saved_model(tiny_samples["esmm"].model_dir).signatures["serving_default"].outputs
    ) == {"ctr", "cvr", "ctcvr"}


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_parquet_columns(frozen: dict[str, Frozen], name: str) -> None:
    definition = sample_definition(name)
    frame = frozen[name].frame
    assert list(frame.columns) == [*definition.inputs, *definition.labels]
    assert len(frame) == 2000
    for key, info in definition.inputs.items():
        first = frame[key].iloc[0]
        if info.rank == 2 and info.shape[1] != 1:
            assert len(first) == info.shape[1], key  # list column, padded to the input length
        else:
            assert np.ndim(first) == 0, key  # scalar column for [N] and [N, 1]
    for label in definition.labels:
        assert set(frame[label].unique()) == {0, 1}
    if name == "esmm":
        assert (frame["label_ctcvr"] <= frame["label"]).all()


# ---------------------------------------------------------------------------- freezing parity
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_frozen_graph_matches_saved_model(frozen: dict[str, Frozen], name: str) -> None:
    sample = frozen[name]
    feeds = sample.feeds(0, 300)
    expected = run_loaded(sample.loaded.function, sample.loaded.spec.inputs, feeds)
    actual = GraphRunner(sample.graph)(feeds)
    assert set(actual) == set(expected) == set(sample_definition(name).outputs)
    for key in expected:
        assert expected[key].shape == (300,)
        assert np.max(np.abs(actual[key] - expected[key])) <= 1e-6, key


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_reported_auc_is_the_saved_models_auc(frozen: dict[str, Frozen], name: str) -> None:
    sample = frozen[name]
    split = held_out_start(len(sample.frame))
    outputs = run_loaded(sample.loaded.function, sample.loaded.spec.inputs, sample.feeds(split))
    held_out = sample.frame.iloc[split:]
    for output, target in sample_definition(name).auc_targets.items():
        used = np.ones(len(held_out), bool)
        if target.only_where:
            used = held_out[target.only_where].to_numpy() == 1
        auc = roc_auc(held_out[target.label].to_numpy()[used], outputs[output][used])
        assert auc == pytest.approx(sample.result.auc[output], abs=1e-6)
        assert auc > 0.55, (name, output, auc)


def test_dssm_graph_has_the_string_stage(frozen: dict[str, Frozen]) -> None:
    graph = frozen["dssm"].graph
    counts = graph.op_counts()
    assert counts.get("AsString") == 1
    # user_id, age, gender, city (twice), hist_item_id, item_id
    assert counts.get("StringToHashBucketFast") == 7
    assert counts.get("LookupTableFindV2") == 1
    (table,) = graph.tables.values()
    assert table.key_dtype == "string" and table.value_dtype == "int64"
    assert table.size == 25 and sorted(table.values.tolist()) == list(range(25))
    (find,) = [n for n in graph.graph_def.node if n.op == "LookupTableFindV2"]
    assert graph.features_of_node[find.name] == {"category"}
    assert _const_input(graph, find.input[2]) == 25  # out-of-vocabulary -> the reserved row
    saved_counts = inspect_saved_model(frozen["dssm"].result.model_dir).op_counts
    for op in ("AsString", "StringToHashBucketFast", "LookupTableFindV2"):
        assert saved_counts.get(op, 0) >= 1


def test_din_and_esmm_hash_age_as_string(frozen: dict[str, Frozen]) -> None:
    for name in ("esmm", "din"):
        graph = frozen[name].graph
        (as_string,) = [n for n in graph.graph_def.node if n.op == "AsString"]
        assert graph.features_of_node[as_string.name] == {"age"}
        assert graph.signature.inputs["age"].dtype == "int64"


# ------------------------------------------------------------------------------ planted flaws
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_flaws_file(tiny_samples: dict[str, SampleResult], name: str) -> None:
    result = tiny_samples[name]
    flaws = json.loads(Path(result.flaws_path).read_text())
    assert flaws == [dict(f) for f in result.flaws]
    inputs = set(sample_definition(name).inputs)
    for entry in flaws:
        assert set(entry) == {"kind", "features", "detail"}
        assert entry["kind"] in FLAW_KINDS
        assert set(entry["features"]) <= inputs
        assert entry["detail"]
    assert {(f["kind"], tuple(f["features"])) for f in flaws} == EXPECTED_FLAWS[name]


def test_unused_inputs_are_never_read(frozen: dict[str, Frozen]) -> None:
    for name, key in (("dssm", "request_id"), ("esmm", "session_id")):
        graph = frozen[name].graph
        read = set().union(*(graph.features_of_node[n] for n in graph.output_nodes.values()))
        assert key not in read
        assert read == set(graph.signature.inputs) - {key}
    din = frozen["din"].graph
    read = set().union(*(din.features_of_node[n] for n in din.output_nodes.values()))
    assert read == set(din.signature.inputs)  # negative case: DIN reads every input


def test_duplicate_feature_city_is_hashed_twice(frozen: dict[str, Frozen]) -> None:
    graph = frozen["dssm"].graph
    hashes = _hash_nodes(graph, "city")
    assert len(hashes) == 2
    assert {h.attr["num_buckets"].i for h in hashes} == {SIZES["tiny"].city_buckets}
    tables = {_table_of_hash(graph, h)[0] for h in hashes}
    assert len(tables) == 2  # a deep embedding and a separate bias table
    assert len(_hash_nodes(graph, "user_id")) == 1  # negative case


def test_shared_embedding_candidates_use_two_tables(frozen: dict[str, Frozen]) -> None:
    for name, (a, b) in (
        ("dssm", ("item_id", "hist_item_id")),
        ("din", ("cate_id", "hist_cate_id")),
    ):
        graph = frozen[name].graph
        (hash_a,), (hash_b,) = _hash_nodes(graph, a), _hash_nodes(graph, b)
        assert hash_a.attr["num_buckets"].i == hash_b.attr["num_buckets"].i
        assert _table_of_hash(graph, hash_a)[0] != _table_of_hash(graph, hash_b)[0]
    # negative case: DIN's target item and history share one table, as real DIN does
    din = frozen["din"].graph
    (item,), (hist,) = _hash_nodes(din, "item_id"), _hash_nodes(din, "hist_item_id")
    assert _table_of_hash(din, item)[0] == _table_of_hash(din, hist)[0]


def test_large_embedding_is_far_larger_than_its_ids(frozen: dict[str, Frozen]) -> None:
    for name in ("dssm", "esmm"):
        sample = frozen[name]
        (hash_node,) = _hash_nodes(sample.graph, "user_id")
        _, rows = _table_of_hash(sample.graph, hash_node)
        assert rows == SIZES["tiny"].user_buckets
        assert rows >= 5 * sample.frame["user_id"].nunique()


# -------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_same_seed_builds_are_identical(
    tiny_samples: dict[str, SampleResult],
    tiny_samples_again: dict[str, SampleResult],
    name: str,
) -> None:
    tf = import_tf()
    first, second = tiny_samples[name], tiny_samples_again[name]
    assert Path(first.data_path).read_bytes() == Path(second.data_path).read_bytes()
    assert first.flaws == second.flaws and first.auc == second.auc
    reader_a = tf.train.load_checkpoint(str(Path(first.model_dir) / "variables" / "variables"))
    reader_b = tf.train.load_checkpoint(str(Path(second.model_dir) / "variables" / "variables"))
    names = sorted(reader_a.get_variable_to_shape_map())
    assert names == sorted(reader_b.get_variable_to_shape_map())
    for var in names:
        if var.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        np.testing.assert_array_equal(reader_a.get_tensor(var), reader_b.get_tensor(var))
    frame = pd.read_parquet(first.data_path).iloc[:200]
    loaded_a, loaded_b = load_model(first.model_dir), load_model(second.model_dir)
    feeds = frame_to_feeds(frame, loaded_a.spec.inputs)
    out_a = run_loaded(loaded_a.function, loaded_a.spec.inputs, feeds)
    out_b = run_loaded(loaded_b.function, loaded_b.spec.inputs, feeds)
    for key in out_a:
        np.testing.assert_array_equal(out_a[key], out_b[key])


def test_other_seed_gives_other_data(tiny_samples: dict[str, SampleResult], tmp_path: Path) -> None:
    other = build_sample("dssm", tmp_path, rows=2000, seed=1, size="tiny")
    assert Path(other.data_path).read_bytes() != Path(tiny_samples["dssm"].data_path).read_bytes()


# ----------------------------------------------------------------------------- output safety
def test_existing_output_needs_force(
    tiny_samples: dict[str, SampleResult], tiny_root: Path
) -> None:
    parquet = Path(tiny_samples["dssm"].data_path)
    before = parquet.read_bytes()
    with pytest.raises(OutputExistsError, match="--force"):
        build_sample("dssm", tiny_root, rows=2000, size="tiny")
    assert parquet.read_bytes() == before


def test_build_samples_checks_every_folder_first(tmp_path: Path) -> None:
    (tmp_path / "esmm").mkdir()
    with pytest.raises(OutputExistsError):
        build_samples(tmp_path, rows=2000, size="tiny", names=["dssm", "esmm"])
    assert not (tmp_path / "dssm").exists()  # nothing was built before refusing


def test_force_replaces(tmp_path: Path) -> None:
    (tmp_path / "din").mkdir()
    (tmp_path / "din" / "stale.txt").write_text("old")
    messages: list[str] = []
    (result,) = build_samples(
        tmp_path, rows=400, size="tiny", names=["din"], force=True, progress=messages.append
    )
    assert not (tmp_path / "din" / "stale.txt").exists()
    assert Path(result.data_path).is_file() and result.rows == 400
    assert len(messages) == 2 and messages[1].startswith("din: AUC")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(RecAdvisorError, match="unknown sample 'wide_deep'"):
        build_sample("wide_deep", tmp_path)
    with pytest.raises(RecAdvisorError, match="unknown sample size"):
        build_sample("dssm", tmp_path, size="huge")
    with pytest.raises(DataError, match="rows"):
        build_sample("dssm", tmp_path, rows=10)
    assert list(tmp_path.iterdir()) == []


def test_fresh_process_builds_the_same_weights(
    tiny_samples: dict[str, SampleResult], tmp_path: Path
) -> None:
    tf = import_tf()
    code = (
        "import sys; from recadvisor.samples import build_sample; "
        "build_sample('din', sys.argv[1], rows=2000, seed=0, size='tiny')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True)
    ours = tf.train.load_checkpoint(
        str(Path(tiny_samples["din"].model_dir) / "variables/variables")
    )
    theirs = tf.train.load_checkpoint(str(tmp_path / "din/saved_model/variables/variables"))
    names = [n for n in ours.get_variable_to_shape_map() if not n.startswith("_CHECKPOINTABLE")]
    assert len(names) >= 10
    for var in names:
        np.testing.assert_array_equal(ours.get_tensor(var), theirs.get_tensor(var))


def test_importing_samples_does_not_import_tensorflow() -> None:
    code = "import sys, recadvisor.samples; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
