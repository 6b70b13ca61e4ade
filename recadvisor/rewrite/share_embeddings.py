"""share_embeddings: two embedding tables indexed by one id space become one table.

What it rewrites: groups of embedding tables (float ``Const`` read only by axis-0 gathers) of the
same shape and dtype whose ids come from the same id space. Automatic detection needs all of:

* the same id source where the graph shows it: ``StringToHashBucketFast`` with the same bucket
  count (on strings, or on numbers formatted as strings), the same vocabulary table contents, or
  the same ``Bucketize`` boundaries; ids arriving as integer inputs (after ``ids_upstream``)
  count as "unknown" and are matched on the sample alone;
* the same kind of ids: the ids the sample produces for the two tables overlap by at least
  ``min_overlap`` (default 0.5) of the smaller set (an item id and a history-of-items id share
  most buckets; a user id and an item id hashed into as many buckets share few).

The plan can name the groups instead: ``features: [["item_id", "hist_item_id"]]``. The kept
table (``keep``) is ``mean`` (default: the element-wise mean of the group's tables) or the name of
a feature whose table every gather of the group then reads.

Gate: the pass runs the graph before and after on the sample and records the largest output
difference and, with binary labels, the AUC change in its stats. The pipeline enforces the plan
entry's ``max_abs_diff`` (default: this pass's ``tolerance``, 0.01) and ``max_auc_drop`` (default
0.001) and rolls the pass back beyond them; a caller passing those two params to ``apply``
directly gets the same limits enforced by the pass itself (it then refuses).

When it refuses: no group qualifies; the gate fails; no sample data.

Exactness: lossy (exact only if the tables were identical, which ``merge_duplicates`` handles).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    add_const,
    const_array,
    dtype_name,
    reserve_name,
    resolve_const,
    set_gather_params,
)
from recadvisor.model.graph import ModelGraph, canonical_tensor, node_name
from recadvisor.model.queries import (
    IDENTITY_OPS,
    RESHAPE_OPS,
    EmbeddingTable,
    describe_table,
    rewritable_tables,
)
from recadvisor.model.runtime import probe_tensors
from recadvisor.rewrite.accuracy_gate import GatedTablePass
from recadvisor.rewrite.base import PassRefused, PassResult, RewriteContext

log = logging.getLogger(__name__)

DEFAULT_MIN_OVERLAP = 0.5
CAST_OPS = frozenset({"Cast"})


def id_space(graph: ModelGraph, ids_tensor: str) -> tuple[Any, ...] | None:
    """Where a gather's ids come from, as a comparable key.

    Returns:
        ``("hash", N, kind)``, ``("vocabulary", digest, default)``, ``("bucketize", bounds)``,
        ``("input",)`` for ids fed directly, or None when the source is something else.
    """
    name = node_name(ids_tensor)
    for _ in range(64):
        node = graph.nodes.get(name)
        if node is None:
            return None
        if node.op in IDENTITY_OPS or node.op in RESHAPE_OPS or node.op in CAST_OPS:
            name = node_name(node.input[0])
            continue
        if node.op in ("SelectV2", "Select") and len(node.input) >= 3:
            # ids_upstream's reserved-id restore: SelectV2(is_reserved, bucket, ids)
            if resolve_const(graph, node.input[1]) is not None:
                name = node_name(node.input[2])
                continue
            if resolve_const(graph, node.input[2]) is not None:
                name = node_name(node.input[1])
                continue
            return None
        if node.op == "StringToHashBucketFast":
            src = graph.nodes.get(node_name(node.input[0]))
            kind = "number" if src is not None and src.op == "AsString" else "string"
            return ("hash", int(node.attr["num_buckets"].i), kind)
        if node.op == "_TensorToHashBucketFast":
            return ("hash", int(node.attr["num_buckets"].i), "number")
        if node.op in ("LookupTableFindV2", "LookupTableFind"):
            table = graph.tables.get(graph.table_of_node(name) or "")
            return None if table is None else ("vocabulary", table.content_digest())
        if node.op == "Bucketize":
            return ("bucketize", tuple(node.attr["boundaries"].list.f))
        if name in graph.input_nodes.values():
            return ("input",)
        return None
    return None


def _compatible_space(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None) -> bool:
    if a is None or b is None:
        return False
    if a == ("input",) or b == ("input",):
        return True
    return a == b


def _table_space(graph: ModelGraph, table: EmbeddingTable) -> tuple[Any, ...] | None:
    spaces = {id_space(graph, graph.nodes[g].input[1]) for g in table.gathers}
    return spaces.pop() if len(spaces) == 1 else None


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    return float(np.intersect1d(a, b).size / min(a.size, b.size))


def _group_by_features(
    graph: ModelGraph, tables: Sequence[EmbeddingTable], groups: Sequence[Sequence[str]]
) -> list[list[EmbeddingTable]]:
    result: list[list[EmbeddingTable]] = []
    for group in groups:
        members: list[EmbeddingTable] = []
        for feature in group:
            found = [t for t in tables if feature in t.features]
            if len(found) != 1:
                raise PassRefused(
                    f"share_embeddings: feature '{feature}' reads {len(found)} embedding tables; "
                    "name features that read exactly one"
                )
            members.append(found[0])
        if len({(t.shape, t.dtype) for t in members}) != 1:
            raise PassRefused(
                "share_embeddings: tables of "
                + ", ".join(group)
                + " differ in shape: "
                + "; ".join(describe_table(graph, t) for t in members)
            )
        if len({t.const for t in members}) > 1:
            result.append(members)
    return result


def _detect_groups(
    graph: ModelGraph,
    tables: Sequence[EmbeddingTable],
    used: Mapping[str, np.ndarray],
    min_overlap: float,
) -> tuple[list[list[EmbeddingTable]], list[str]]:
    groups: list[list[EmbeddingTable]] = []
    looked_at: list[str] = []
    taken: set[str] = set()
    for i, a in enumerate(tables):
        if a.const in taken:
            continue
        group = [a]
        for b in tables[i + 1 :]:
            if b.const in taken or (b.shape, b.dtype) != (a.shape, a.dtype):
                continue
            if not _compatible_space(_table_space(graph, a), _table_space(graph, b)):
                continue
            ov = _overlap(used[a.const], used[b.const])
            looked_at.append(
                f"{describe_table(graph, a)} ~ {describe_table(graph, b)}: "
                f"{ov:.0%} of sample ids shared"
            )
            if ov >= min_overlap:
                group.append(b)
        if len(group) > 1:
            taken.update(t.const for t in group)
            groups.append(group)
    return groups, looked_at


class ShareEmbeddingsPass(GatedTablePass):
    """Tables of one id space merged into one (see the module docstring)."""

    name = "share_embeddings"

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Merge the tables of each group.

        Args:
            graph: the current stage.
            params: ``features`` (list of feature-name groups), ``keep`` (``mean`` or a feature
                name), ``min_overlap``, ``max_abs_diff``, ``max_auc_drop``.
            context: sample inputs and labels.

        Returns:
            The graph with shared tables; stats give the groups and bytes saved.
        """
        if not context.feeds:
            raise PassRefused("share_embeddings needs sample data (--data) to be gated")
        tables = list(rewritable_tables(graph).values())
        keep = str(params.get("keep", "mean"))
        if params.get("features"):
            groups = _group_by_features(graph, tables, params["features"])
            looked_at: list[str] = []
        else:
            ids = {g: graph.nodes[g].input[1] for t in tables for g in t.gathers}
            values = probe_tensors(graph, ids.values(), context.feeds)
            used = {
                t.const: np.unique(
                    np.concatenate(
                        [
                            np.asarray(values[canonical_tensor(ids[g])]).reshape(-1)
                            for g in t.gathers
                        ]
                    )
                )
                for t in tables
            }
            groups, looked_at = _detect_groups(
                graph, tables, used, float(params.get("min_overlap", DEFAULT_MIN_OVERLAP))
            )
        if not groups:
            detail = "; ".join(looked_at) or "no two tables of one shape and id space"
            raise PassRefused(f"share_embeddings: no tables to share: {detail}")

        gd = graph.copy_graph_def()
        names = {n.name for n in gd.node}
        old_params: set[str] = set()
        merged: list[dict[str, Any]] = []
        saved = 0
        for group in groups:
            arrays = [const_array(graph.nodes[t.const]) for t in group]
            if keep == "mean":
                shared = np.mean(np.stack(arrays), axis=0).astype(arrays[0].dtype)
            else:
                chosen = [a for t, a in zip(group, arrays, strict=True) if keep in t.features]
                if not chosen:
                    raise PassRefused(
                        f"share_embeddings: keep='{keep}' names no feature of the group "
                        + ", ".join(describe_table(graph, t) for t in group)
                    )
                shared = chosen[0]
            name = reserve_name(names, f"{group[0].const}/shared")
            add_const(gd, name, shared)
            for t in group:
                for g in t.gathers:
                    old_params.add(node_name(graph.nodes[g].input[0]))
                    set_gather_params(gd, g, name, dtype_name(graph.nodes[g].attr["Tparams"].type))
            saved += sum(t.nbytes for t in group) - shared.nbytes
            merged.append(
                {
                    "tables": [describe_table(graph, t) for t in group],
                    "keep": keep,
                    "shape": list(group[0].shape),
                }
            )
        new_graph, gate = self.finish(graph, gd, old_params, params, context)
        notes = [f"shared ({keep}): {' + '.join(m['tables'])}" for m in merged]
        notes.append(gate.summary())
        stats = {
            "groups": merged,
            "bytes_saved": int(saved),
            "gate": gate.to_dict(),
            "candidates": looked_at,
        }
        log.info("share_embeddings: %d groups, %d bytes saved", len(merged), saved)
        return PassResult(self.name, new_graph, stats, (), tuple(notes))
