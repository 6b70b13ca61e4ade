"""From an id input's values to the embedding rows the model reads, outside TensorFlow.

For every gather of a frozen embedding table (see
:func:`recadvisor.analysis.detectors.graph_patterns.find_embedding_tables`) whose ids come from
one signature input, :func:`row_mappings` finds the model's own id mapping and expresses it as an
:class:`~recadvisor.rewrite.base.InputEncoding` that :mod:`recadvisor.rewrite.encodings` applies
bit for bit:

* ``StringToHashBucketFast(N)`` on a string input: ``hash_bucket`` (FarmHash Fingerprint64 mod N);
* ``AsString`` + hash, or grappler's ``_TensorToHashBucketFast``, on a number:
  ``as_string_hash_bucket`` (formatted like ``tf.strings.as_string``, then hashed);
* a lookup table: ``vocabulary`` (its keys and values; a missing key reads ``default_value``,
  which is an OOV row, or no row at all when it lies outside the table);
* an integer input gathered directly: the value is the row.

A padding mask beside the hash (``x != ""``) does not change which row the gather reads, so the
padding value's row counts as hit, as it does in the graph. Gathers whose ids come from several
inputs, from a keyed hash, or through arithmetic are listed as unmapped with the reason.
:func:`check_mappings` runs the graph's own index tensors on a sample of the values and compares.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.analysis.detectors.graph_patterns import (
    EmbeddingTable,
    find_embedding_tables,
    find_hash_ops,
    find_table_lookups,
    input_key_of_node,
)
from recadvisor.model.edits import resolve_const
from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import InputEncoding
from recadvisor.rewrite.encodings import encode_feeds
from recadvisor.rewrite.ids_upstream import _as_string_attrs

log = logging.getLogger(__name__)

IDENTITY = "identity"
CHECK_VALUES = 256


@dataclass(frozen=True)
class RowMapping:
    """How the values of one input become rows of one embedding table.

    Attributes:
        table: the table's ``Const`` node in the frozen graph.
        variable: the variable it was folded from.
        rows: the table's row count.
        input: the signature input.
        kind: ``hash_bucket``, ``as_string_hash_bucket``, ``vocabulary`` or ``identity``.
        encoding: the encoding applied (``None`` for ``identity``).
        gathers: the gather nodes this mapping describes.
        indices: the gathers' index tensors (what :func:`check_mappings` evaluates).
    """

    table: str
    variable: str
    rows: int
    input: str
    kind: str
    encoding: InputEncoding | None
    gathers: tuple[str, ...]
    indices: tuple[str, ...]

    def rows_of(self, values: np.ndarray) -> np.ndarray:
        """The row each value reads (int64; ``-1`` where the id is not a row of the table).

        Args:
            values: a 1-D array of non-null values (numbers, or Python ``str`` for strings).

        Returns:
            An int64 array of the same length.
        """
        if self.encoding is None:
            ids = np.asarray(values).astype(np.int64)
        else:
            ids = encode_feeds([self.encoding], {self.input: values})[self.input]
            ids = np.asarray(ids).astype(np.int64).reshape(-1)
        return np.where((ids >= 0) & (ids < self.rows), ids, -1)

    def describe(self) -> dict[str, Any]:
        """JSON form (without the vocabulary's keys)."""
        params = dict(self.encoding.params) if self.encoding is not None else {}
        if "keys" in params:
            params = {
                "vocabulary_size": len(params.pop("keys")),
                "default_value": params.get("default_value"),
            }
        return {"input": self.input, "kind": self.kind, "params": params}


def _vocabulary_encoding(
    graph: ModelGraph, key: str, dtype: str, lookup: Any
) -> InputEncoding | str:
    table = graph.tables.get(lookup.table or "")
    if table is None:
        return "its lookup table's contents are unknown"
    node = graph.nodes[lookup.node]
    default = resolve_const(graph, node.input[2]) if len(node.input) > 2 else None
    if default is None or np.asarray(default).ndim != 0:
        return "its lookup table's default is not a constant"
    if not table.value_dtype.startswith(("int", "uint")):
        return f"its lookup table maps to {table.value_dtype}"
    string_keys = table.key_dtype == "string"
    keys = [
        (k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k))
        if string_keys
        else int(k)
        for k in table.keys.reshape(-1)
    ]
    params = {
        "key_dtype": "string" if string_keys else "int64",
        "keys": keys,
        "values": [int(v) for v in table.values.reshape(-1)],
        "default_value": int(np.asarray(default)),
    }
    return InputEncoding(key, "vocabulary", dtype, table.value_dtype, params)


def _hash_encoding(graph: ModelGraph, key: str, dtype: str, hop: Any) -> InputEncoding | str:
    if hop.op not in ("StringToHashBucketFast", "_TensorToHashBucketFast"):
        return f"it is hashed with {hop.op}, which the encoder does not compute"
    if hop.num_buckets is None:
        return "its hash has no bucket count"
    if hop.op == "_TensorToHashBucketFast" or hop.as_string is not None:
        params: dict[str, Any] = {"num_buckets": int(hop.num_buckets), "value_dtype": dtype}
        if hop.as_string is not None:
            params.update(_as_string_attrs(graph.nodes[hop.as_string]))
        return InputEncoding(key, "as_string_hash_bucket", dtype, "int64", params)
    if dtype != "string":
        return f"it is a {dtype} input hashed as a string"
    return InputEncoding(key, "hash_bucket", dtype, "int64", {"num_buckets": int(hop.num_buckets)})


def row_mappings(graph: ModelGraph) -> tuple[list[RowMapping], list[dict[str, Any]]]:
    """The id mapping of every embedding gather fed by one input.

    Args:
        graph: the frozen model.

    Returns:
        (mappings, one per table and input; unmapped gathers as ``{table, gather, inputs,
        reason}``).
    """
    hashes = {h.node: h for h in find_hash_ops(graph)}
    lookups = {t.node: t for t in find_table_lookups(graph)}
    found: dict[tuple[str, str], RowMapping] = {}
    unmapped: list[dict[str, Any]] = []
    for table in find_embedding_tables(graph):
        for use in table.uses:
            reason, mapping = _map_use(graph, table, use, hashes, lookups)
            if mapping is None:
                unmapped.append(
                    {
                        "table": table.node,
                        "gather": use.node,
                        "inputs": sorted(use.features),
                        "reason": reason,
                    }
                )
                continue
            k = (table.node, mapping.input)
            prev = found.get(k)
            if prev is not None and prev.encoding != mapping.encoding:
                unmapped.append(
                    {
                        "table": table.node,
                        "gather": use.node,
                        "inputs": [mapping.input],
                        "reason": "the input reaches this table through two different id maps",
                    }
                )
                continue
            if prev is not None:  # one input gathered twice from one table: count it once
                mapping = RowMapping(
                    prev.table,
                    prev.variable,
                    prev.rows,
                    prev.input,
                    prev.kind,
                    prev.encoding,
                    prev.gathers + mapping.gathers,
                    prev.indices + mapping.indices,
                )
            found[k] = mapping
    return list(found.values()), unmapped


def _map_use(
    graph: ModelGraph,
    table: EmbeddingTable,
    use: Any,
    hashes: Mapping[str, Any],
    lookups: Mapping[str, Any],
) -> tuple[str, RowMapping | None]:
    if not use.rows_evaluable or use.op == "GatherNd":
        return "the gather does not read whole rows along axis 0", None
    if len(use.features) != 1:
        return f"its ids come from {len(use.features)} inputs", None
    key = next(iter(use.features))
    dtype = graph.signature.inputs[key].dtype
    encoding: InputEncoding | str | None
    if use.id_kind == "hash":
        hop = hashes[use.id_source]
        if hop.feature != key:
            return "the hashed value is computed from the input, not the input itself", None
        encoding = _hash_encoding(graph, key, dtype, hop)
    elif use.id_kind == "vocabulary":
        lookup = lookups[use.id_source]
        if lookup.feature != key:
            return "the looked-up value is computed from the input", None
        encoding = _vocabulary_encoding(graph, key, dtype, lookup)
    elif use.id_kind == "input" and input_key_of_node(graph, use.id_source) == key:
        if not dtype.startswith(("int", "uint")):
            return f"a {dtype} input used as row ids", None
        encoding = None
    else:
        return "its ids pass through arithmetic the encoder does not model", None
    if isinstance(encoding, str):
        return encoding, None
    return "", RowMapping(
        table=table.node,
        variable=table.variable,
        rows=table.rows,
        input=key,
        kind=IDENTITY if encoding is None else encoding.kind,
        encoding=encoding,
        gathers=(use.node,),
        indices=(use.indices,),
    )


def check_mappings(
    graph: ModelGraph, mappings: list[RowMapping], values: Mapping[str, np.ndarray]
) -> dict[tuple[str, str], bool | None]:
    """Run the graph's index tensors on sample values and compare with :meth:`RowMapping.rows_of`.

    Each checked input gets its values (one per row; repeated along a sequence), every other
    input synthesized values; the gather's index tensor, flattened, must equal the encoder's ids.

    Args:
        graph: the frozen model.
        mappings: the mappings to check.
        values: input -> up to :data:`CHECK_VALUES` distinct non-null values seen in the data.

    Returns:
        (table, input) -> True (equal), False (different) or None (not checked: no values, or
        the index tensor's size differs from the input's).
    """
    from recadvisor.analysis.detectors.graph_patterns import evaluate_tensors
    from recadvisor.data.synthesize import synthesize_feeds

    result: dict[tuple[str, str], bool | None] = {}
    by_input: dict[str, list[RowMapping]] = {}
    for m in mappings:
        by_input.setdefault(m.input, []).append(m)
    for key, ms in by_input.items():
        sample = values.get(key)
        if sample is None or len(sample) == 0:
            result.update({(m.table, key): None for m in ms})
            continue
        n = len(sample)
        quiet = logging.getLogger("recadvisor.data.synthesize")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # its "no sample data" warning is meant for analyze
        try:
            feeds = synthesize_feeds(graph.signature, n, seed=0)
        finally:
            quiet.setLevel(level)
        shape = feeds[key].shape
        width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        column = np.asarray(sample, dtype=object if feeds[key].dtype == object else None)
        feeds[key] = np.repeat(column, width).reshape(shape).astype(feeds[key].dtype)
        tensors = sorted({t for m in ms for t in m.indices})
        try:
            got = evaluate_tensors(graph, tensors, feeds)
        except Exception as e:  # noqa: BLE001 - a check only; the stats go on without it
            log.warning("could not run the id tensors of '%s' to check the mapping: %s", key, e)
            result.update({(m.table, key): None for m in ms})
            continue
        for m in ms:
            expected = m.rows_of(feeds[key].reshape(-1))
            verdict: bool | None = True
            for t in m.indices:
                ids = np.asarray(got[t]).astype(np.int64).reshape(-1)
                ids = np.where((ids >= 0) & (ids < m.rows), ids, -1)
                if ids.shape != expected.shape:
                    verdict = None if verdict else verdict
                    continue
                if not np.array_equal(ids, expected):
                    verdict = False
            result[(m.table, key)] = verdict
    return result
