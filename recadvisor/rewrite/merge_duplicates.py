"""merge_duplicates: common-subexpression elimination on the frozen graph (exact).

Rewrites: walks the graph in topological order and merges nodes that compute the same thing:

* identical lookup tables (same dtypes and contents, ``LookupTable.content_digest``) become one
  table placeholder (e.g. two copies of one vocabulary);
* identical constants (same dtype, shape and bytes; embedding tables included) become one;
* identical nodes (same op, attributes, device and, after the merges above, the same inputs)
  become one, so a feature hashed twice with the same bucket count (wide and deep parts) is
  hashed once, and a lookup repeated on merged tables is done once.

Consumers of a duplicate read the kept node instead; the duplicate is deleted.

Never merges: signature inputs and outputs, stateful ops other than pure reads (random ops,
asserts, writes: see ``strip_control_deps.is_side_effecting``), control-flow ops of TF1 while
loops. Attributes starting with ``_`` (colocation, shapes) are ignored in the comparison.

Refuses: when nothing is duplicated.

Exactness: exact (the same op on the same inputs gives the same values).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from recadvisor.model.graph import TABLE_OPS, ModelGraph, is_control_input, node_name
from recadvisor.model.queries import embedding_tables
from recadvisor.rewrite.base import (
    EXACT,
    ParameterlessPass,
    PassRefused,
    PassResult,
    RewriteContext,
)
from recadvisor.rewrite.drop_unused_inputs import drop_stale_colocation
from recadvisor.rewrite.strip_control_deps import is_side_effecting

CONTROL_FLOW_OPS = frozenset(
    {
        "Switch",
        "Merge",
        "Enter",
        "Exit",
        "NextIteration",
        "LoopCond",
        "RefSwitch",
        "RefMerge",
        "RefEnter",
        "RefExit",
        "RefNextIteration",
        "ControlTrigger",
    }
)


def _node_key(node: Any, canonical: Mapping[str, str]) -> str:
    """A digest of what the node computes, with inputs renamed to their kept twins."""
    h = hashlib.sha256()
    h.update(f"{node.op}|{node.device}|".encode())
    controls = set()
    for inp in node.input:
        if is_control_input(inp):
            controls.add(canonical.get(node_name(inp), node_name(inp)))
            continue
        src = node_name(inp)
        port = inp[len(src) :]
        h.update(f"{canonical.get(src, src)}{port or ':0'},".encode())
    h.update(("^" + ",".join(sorted(controls)) + "|").encode())
    for key in sorted(node.attr):
        if key.startswith("_"):
            continue
        h.update(key.encode() + b"=")
        h.update(hashlib.sha256(node.attr[key].SerializeToString(deterministic=True)).digest())
    return h.hexdigest()


def _rename(inp: str, canonical: Mapping[str, str]) -> str:
    src = node_name(inp)
    if src not in canonical:
        return inp
    if is_control_input(inp):
        return "^" + canonical[src]
    return canonical[src] + inp[len(src) :]


def find_duplicates(graph: ModelGraph) -> dict[str, str]:
    """The pass's matcher: each node, constant or table it would merge -> the twin it keeps.

    Args:
        graph: the frozen graph.

    Returns:
        Duplicate name -> kept name (empty: the pass refuses).
    """
    protected = set(graph.output_nodes.values()) | set(graph.input_nodes.values())
    canonical: dict[str, str] = {}  # duplicate node -> kept node
    seen: dict[str, str] = {}  # key -> kept node
    for name, table in sorted(graph.tables.items()):
        key = f"table|{table.content_digest()}"
        if key in seen and name not in protected:
            canonical[name] = seen[key]
        else:
            seen.setdefault(key, name)
    side_effects: dict[str, bool] = {}
    order = graph.topological_order()
    position = {n: i for i, n in enumerate(order)}
    for name in order:
        node = graph.nodes[name]
        if name in graph.tables or node.op in ("Placeholder", "PlaceholderWithDefault"):
            continue
        if node.op in CONTROL_FLOW_OPS:
            continue
        if node.op not in side_effects:
            side_effects[node.op] = is_side_effecting(node.op)
        if side_effects[node.op]:
            continue
        # a node read before it is placed is in a cycle: leave it alone
        if any(position.get(node_name(i), -1) > position[name] for i in node.input):
            continue
        key = _node_key(node, canonical)
        if key in seen and name not in protected:
            canonical[name] = seen[key]
        else:
            seen.setdefault(key, name)
    return canonical


def merged_targets(graph: ModelGraph, canonical: Mapping[str, str]) -> list[str]:
    """What the merge acts on, as the advice names it: the signature inputs the merged nodes
    depend on, and the merged lookup tables and embedding tables (both twins) with the inputs
    their readers depend on."""
    embeddings = embedding_tables(graph)
    readers: dict[str, set[str]] = {name: set(t.features) for name, t in embeddings.items()}
    for node in graph.graph_def.node:
        table = graph.table_of_node(node.name) if node.op in TABLE_OPS else None
        if table is not None:
            readers.setdefault(table, set()).update(graph.features_of_node[node.name])
    names: set[str] = set()
    feats: set[str] = set()
    for dup, kept in canonical.items():
        feats |= graph.features_of_node.get(dup, frozenset())
        if dup in graph.tables or dup in embeddings:
            names |= {dup, kept}
            feats |= readers.get(dup, set()) | readers.get(kept, set())
    return sorted(names | feats)


def refusals(graph: ModelGraph, targets: Sequence[str]) -> dict[str, str]:
    """Targets (inputs, tables) no merge of :func:`find_duplicates` acts on, with the reason."""
    merged = set(merged_targets(graph, find_duplicates(graph)))
    return {
        t: "no duplicated node, constant or table computes it" for t in targets if t not in merged
    }


class MergeDuplicatesPass(ParameterlessPass):
    """Merge identical tables, constants and nodes."""

    name = "merge_duplicates"
    exactness = EXACT
    changes_contract = False

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Merge duplicates; raise :class:`PassRefused` when there are none."""
        canonical = find_duplicates(graph)
        if not canonical:
            raise PassRefused("no duplicated nodes, constants or tables")

        graph_def = graph.copy_graph_def()
        kept = []
        for node in graph_def.node:
            if node.name in canonical:
                continue
            renamed = [_rename(i, canonical) for i in node.input]
            data = [i for i in renamed if not is_control_input(i)]
            controls = list(dict.fromkeys(i for i in renamed if is_control_input(i)))
            if renamed != list(node.input) or len(data) + len(controls) != len(renamed):
                del node.input[:]
                node.input.extend(data + controls)
            kept.append(node)
        del graph_def.node[:]
        graph_def.node.extend(kept)
        drop_stale_colocation(graph_def)

        merged_by_op = Counter(graph.nodes[n].op for n in canonical if n not in graph.tables)
        tables_merged = sorted(n for n in canonical if n in graph.tables)
        const_bytes = sum(graph.const_bytes(n) for n in canonical)
        tables = {k: v for k, v in graph.tables.items() if k not in canonical}
        stats = {
            "nodes_merged": len(canonical),
            "merged_by_op": dict(merged_by_op.most_common()),
            "tables_merged": len(tables_merged),
            "const_bytes_saved": const_bytes,
            "targets": merged_targets(graph, canonical),
        }
        notes = []
        hashed = merged_by_op.get("StringToHashBucketFast", 0) + merged_by_op.get(
            "_TensorToHashBucketFast", 0
        )
        if hashed:
            notes.append(f"{hashed} duplicated string hashing op(s) merged")
        if tables_merged:
            notes.append(f"{len(tables_merged)} duplicated lookup table(s) merged")
        return PassResult(
            self.name, graph.replace(graph_def=graph_def, tables=tables), stats, notes=tuple(notes)
        )
