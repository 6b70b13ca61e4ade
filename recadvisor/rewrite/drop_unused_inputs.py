"""drop_unused_inputs: remove every node no signature output needs (exact, drop-in).

Rewrites: deletes the nodes that no output depends on (through data or control edges): the
sub-graph of an input the model declares but never reads, dead branches, and the lookup tables
and constants only they used. Signature input placeholders always stay, unconnected when
nothing reads them, so the signature (keys, dtypes, shapes) is unchanged and clients keep
sending the same request.

Refuses: when every input is read and every node already feeds an output. Control dependencies
count as uses, so run ``strip_control_deps`` first (the registry order does) or TF2 graphs keep
almost everything. When the only unused things are inputs nothing reads at all (freezing already
left their placeholders unconnected), the pass applies as a no-op whose notes name those inputs:
the model is drop-in for them as it stands.

Exactness: exact (outputs are computed by the very same nodes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import (
    EXACT,
    ParameterlessPass,
    PassRefused,
    PassResult,
    RewriteContext,
)


@dataclass(frozen=True)
class DeadNodeRemoval:
    """What :func:`remove_dead_nodes` removed."""

    graph: ModelGraph
    nodes_removed: int
    tables_removed: tuple[str, ...]
    const_bytes_removed: int
    removed_by_op: dict[str, int]

    def stats(self) -> dict[str, Any]:
        """The numbers as pass stats."""
        return {
            "nodes_removed": self.nodes_removed,
            "tables_removed": len(self.tables_removed),
            "const_bytes_removed": self.const_bytes_removed,
            "removed_by_op": dict(self.removed_by_op),
        }


def drop_stale_colocation(graph_def: Any) -> int:
    """Remove ``_class: loc:@X`` colocation entries naming nodes the graph no longer has.

    ``import_graph_def`` refuses a colocation with a missing node, so every pass that deletes
    or merges nodes calls this on its result.

    Args:
        graph_def: the GraphDef to edit in place.

    Returns:
        The number of entries removed.
    """
    present = {n.name for n in graph_def.node}
    removed = 0
    for node in graph_def.node:
        if "_class" not in node.attr:
            continue
        entries = list(node.attr["_class"].list.s)
        keep = [
            e
            for e in entries
            if not e.startswith(b"loc:@") or e[len(b"loc:@") :].decode() in present
        ]
        if len(keep) == len(entries):
            continue
        removed += len(entries) - len(keep)
        if keep:
            del node.attr["_class"].list.s[:]
            node.attr["_class"].list.s.extend(keep)
        else:
            del node.attr["_class"]
    return removed


def remove_dead_nodes(graph: ModelGraph, **changes: Any) -> DeadNodeRemoval:
    """Keep only the nodes the outputs depend on, plus the signature input placeholders.

    Args:
        graph: the graph (not mutated).
        changes: ModelGraph fields to replace first (e.g. fewer ``output_tensors``).

    Returns:
        The new graph and what was removed.
    """
    base = graph.replace(**changes) if changes else graph
    keep = base.reachable_from_outputs(control=True) | set(base.input_nodes.values())
    graph_def = base.copy_graph_def()
    kept = [n for n in graph_def.node if n.name in keep]
    removed = [n for n in base.graph_def.node if n.name not in keep]
    removed_by_op: dict[str, int] = {}
    for node in removed:
        removed_by_op[node.op] = removed_by_op.get(node.op, 0) + 1
    const_bytes = sum(base.const_bytes(n.name) for n in removed)
    del graph_def.node[:]
    graph_def.node.extend(kept)
    drop_stale_colocation(graph_def)
    tables = {k: v for k, v in base.tables.items() if k in keep}
    new = base.replace(graph_def=graph_def, tables=tables)
    return DeadNodeRemoval(
        graph=new,
        nodes_removed=len(removed),
        tables_removed=tuple(sorted(set(base.tables) - set(tables))),
        const_bytes_removed=const_bytes,
        removed_by_op=dict(sorted(removed_by_op.items(), key=lambda kv: -kv[1])),
    )


def unread_inputs(graph: ModelGraph) -> list[str]:
    """Signature input keys whose placeholder nothing reads."""
    return sorted(k for k, node in graph.input_nodes.items() if not graph.consumers.get(node))


def refusals(graph: ModelGraph, targets: Sequence[str]) -> dict[str, str]:
    """The pass's matcher: inputs of ``targets`` that stay read once dead nodes are removed."""
    unread = set(unread_inputs(remove_dead_nodes(graph).graph))
    return {t: "a signature output still depends on it" for t in targets if t not in unread}


class DropUnusedInputsPass(ParameterlessPass):
    """Remove nodes no output depends on; keep the signature as it is."""

    name = "drop_unused_inputs"
    exactness = EXACT
    changes_contract = False

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Remove dead nodes and name unread inputs; :class:`PassRefused` when neither exists."""
        result = remove_dead_nodes(graph)
        unread = unread_inputs(result.graph)
        if result.nodes_removed == 0 and not unread:
            raise PassRefused(
                "nothing to drop: every input is read and every node feeds a signature output"
            )
        notes = []
        if unread:
            notes.append(
                f"inputs never read (still accepted by the signature): {', '.join(unread)}"
            )
        if result.nodes_removed == 0:
            notes.append(
                "no node to remove: the unread inputs were already unconnected in the "
                "frozen graph; the graph is unchanged"
            )
        stats = result.stats()
        stats["unread_inputs"] = unread
        return PassResult(self.name, result.graph, stats, notes=tuple(notes))
