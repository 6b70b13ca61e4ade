"""strip_control_deps: remove automatic control dependencies and the NoOp/Identity chains (exact).

Rewrites: TF2 ``tf.function`` adds automatic control dependencies: every stateful op (each
gather from a variable, each table lookup, each ``ReadVariableOp``) is tied through ``NoOp``
nodes to every output (``Identity(..., ^NoOp)``). In a frozen serving graph those ops only read,
so the edges order nothing, but they keep every node reachable from every output and block
pruning (the sample ESMM pruned to ``ctr`` keeps 115 of its 132 frozen nodes without this pass,
67 after it). The pass

1. replaces each control input ``^X`` by control inputs on the *side-effecting* ops ``X``
   depends on (``Assert``, ``Print``, variable/table writes, random ops: stateful ops that are
   not pure reads), which is usually none, and drops it otherwise. A conditional or loop that
   contains such an op is waited for through its ``Merge``/``Exit`` node;
2. deletes the ``NoOp`` nodes nothing refers to any more;
3. bypasses plain ``Identity`` nodes (one data input, no control input left): consumers read the
   Identity's input directly. Signature output nodes are never removed.

TF1 control flow (``Switch``/``Merge``/``Enter``/``Exit``, which freezing lowers ``tf.cond`` and
``tf.while_loop`` to) gives control edges a meaning: a node in an untaken branch is *dead*, and
deadness travels along control edges too (stripping them there turned an ``Assert`` guard into
an empty output). Nodes between a Switch/Enter and its Merge/Exit are therefore left untouched.

Refuses: when the graph has no control inputs, NoOps or bypassable Identity nodes (outside
control flow).

Exactness: exact. Ordering against real side effects (an ``Assert`` before an output) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recadvisor.model.graph import ModelGraph, is_control_input, node_name
from recadvisor.rewrite.base import (
    EXACT,
    ParameterlessPass,
    PassRefused,
    PassResult,
    RewriteContext,
)
from recadvisor.rewrite.drop_unused_inputs import drop_stale_colocation

# Stateful in their OpDef but side-effect free for serving: reading a variable or a table.
READ_ONLY_STATEFUL_OPS = frozenset(
    {
        "ReadVariableOp",
        "ResourceGather",
        "ResourceGatherNd",
        "VarHandleOp",
        "VarIsInitializedOp",
        "VariableShape",
        "LookupTableFindV2",
        "LookupTableFind",
        "LookupTableSizeV2",
        "LookupTableSize",
        "LookupTableExportV2",
        "HashTableV2",
        "Placeholder",
        "PlaceholderV2",
        "PlaceholderWithDefault",
        "Const",
    }
)


def is_side_effecting(op_type: str) -> bool:
    """True for ops whose execution order matters (stateful and not a pure read).

    Unknown op types (custom ops) count as side-effecting, to stay safe.
    """
    if op_type in READ_ONLY_STATEFUL_OPS or op_type in ("NoOp", "Identity", "IdentityN"):
        return False
    from recadvisor.tfimport import import_tf

    import_tf()
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op_type)
    return True if op_def is None else bool(op_def.is_stateful)


# TF1 control flow (what freezing lowers tf.cond / tf.while_loop to): edges into and out of the
# nodes between a Switch/Enter and its Merge/Exit carry "dead branch" and loop-frame semantics.
CONTROL_FLOW_OPEN = frozenset({"Switch", "RefSwitch", "Enter", "RefEnter"})
CONTROL_FLOW_CLOSE = frozenset({"Merge", "RefMerge", "Exit", "RefExit"})


def _descendants(graph: ModelGraph, names: set[str]) -> set[str]:
    """``names`` and every node reading them through data or control edges."""
    readers: dict[str, list[str]] = {}
    for node in graph.graph_def.node:
        for inp in node.input:
            readers.setdefault(node_name(inp), []).append(node.name)
    seen, stack = set(names), list(names)
    while stack:
        for reader in readers.get(stack.pop(), ()):
            if reader not in seen:
                seen.add(reader)
                stack.append(reader)
    return seen


def control_flow_region(graph: ModelGraph) -> set[str]:
    """Nodes inside TF1 conditionals and loops (from Switch/Enter to Merge/Exit, both included).

    Their inputs, control ones included, are left exactly as they are.
    """
    opens = {n.name for n in graph.graph_def.node if n.op in CONTROL_FLOW_OPEN}
    if not opens:
        return set()
    closes = {n.name for n in graph.graph_def.node if n.op in CONTROL_FLOW_CLOSE}
    after_open = _descendants(graph, opens)
    before_close = graph.ancestors(closes)
    after_close = _descendants(graph, closes) - closes
    return after_open & (before_close | (set(graph.nodes) - after_close))


def _effect_roots(graph: ModelGraph, region: set[str]) -> dict[str, frozenset[str]]:
    """Node name -> the nodes a control edge on it must keep waiting for.

    Those are the side-effecting nodes in its ancestry; a conditional or loop containing one
    is represented by its Merge/Exit node (which, unlike the branch inside, is never dead).
    """
    cache: dict[str, bool] = {}

    def effectful(node: Any) -> bool:
        if node.op not in cache:
            cache[node.op] = is_side_effecting(node.op)
        return cache[node.op]

    roots: dict[str, frozenset[str]] = {}
    for name in graph.topological_order():
        node = graph.nodes[name]
        if name in region:
            if node.op in CONTROL_FLOW_CLOSE:
                inner = graph.ancestors([name])
                has_effect = any(effectful(graph.nodes[n]) for n in inner)
                roots[name] = frozenset({name}) if has_effect else frozenset()
            else:
                roots[name] = frozenset({name})
            continue
        acc: set[str] = {name} if effectful(node) else set()
        for inp in node.input:
            acc |= roots.get(node_name(inp), frozenset())
        roots[name] = frozenset(acc)
    return roots


def _bypass_target(
    name: str, nodes: Mapping[str, Any], protected: set[str], memo: dict[str, str | None]
) -> str | None:
    """Tensor string a bypassable Identity forwards (following chains), else None."""
    if name in memo:
        return memo[name]
    node = nodes.get(name)
    target: str | None = None
    if (
        node is not None
        and node.op == "Identity"
        and name not in protected
        and len(node.input) == 1
        and not is_control_input(node.input[0])
    ):
        src = node.input[0]
        deeper = _bypass_target(node_name(src), nodes, protected, memo)
        src_port = src.rpartition(":")[2] if ":" in src else "0"
        target = deeper if deeper is not None and src_port == "0" else src
    memo[name] = target
    return target


class StripControlDepsPass(ParameterlessPass):
    """Drop control edges that order nothing, then the NoOps and Identity chains left."""

    name = "strip_control_deps"
    exactness = EXACT
    changes_contract = False

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Rewrite control inputs, delete NoOps, bypass Identity nodes."""
        region = control_flow_region(graph)
        roots = _effect_roots(graph, region)
        graph_def = graph.copy_graph_def()
        removed_edges = kept_edges = 0
        for node in graph_def.node:
            if node.name in region:
                continue
            data = [i for i in node.input if not is_control_input(i)]
            controls = [node_name(i) for i in node.input if is_control_input(i)]
            if not controls:
                continue
            implied: set[str] = set()
            for inp in data:
                implied |= roots.get(node_name(inp), frozenset())
            needed: list[str] = []
            for src in controls:
                for effect in sorted(roots.get(src, frozenset())):
                    if effect not in implied and effect not in needed:
                        needed.append(effect)
            removed_edges += len(controls)
            kept_edges += len(needed)
            del node.input[:]
            node.input.extend(data + ["^" + n for n in needed])

        protected = set(graph.output_nodes.values()) | set(graph.input_nodes.values()) | region
        referenced = {node_name(i) for n in graph_def.node for i in n.input}
        noops = [
            n.name
            for n in graph_def.node
            if n.op == "NoOp" and n.name not in referenced and n.name not in protected
        ]
        nodes = {n.name: n for n in graph_def.node}
        memo: dict[str, str | None] = {}
        bypassed = {n for n in nodes if _bypass_target(n, nodes, protected, memo) is not None}
        for node in graph_def.node:
            new_inputs = []
            for inp in node.input:
                src = node_name(inp)
                if src in bypassed:
                    target = memo[src]
                    assert target is not None
                    inp = "^" + node_name(target) if is_control_input(inp) else target
                new_inputs.append(inp)
            if new_inputs != list(node.input):
                del node.input[:]
                node.input.extend(new_inputs)
        gone = set(noops) | bypassed
        kept = [n for n in graph_def.node if n.name not in gone]
        del graph_def.node[:]
        graph_def.node.extend(kept)
        drop_stale_colocation(graph_def)
        net_removed = removed_edges - kept_edges
        if net_removed == 0 and not gone:
            raise PassRefused("no automatic control dependencies, NoOps or Identity chains found")
        stats = {
            "control_inputs_removed": net_removed,
            "control_inputs_kept": kept_edges,
            "noops_removed": len(noops),
            "identities_bypassed": len(bypassed),
            "nodes_removed": len(gone),
            "control_flow_nodes_kept": len(region),
        }
        notes = []
        if kept_edges:
            notes.append(
                f"{kept_edges} control inputs kept: they order side-effecting ops "
                "(asserts, prints, writes)"
            )
        if region:
            notes.append(f"{len(region)} nodes inside TF1 conditionals/loops left as they are")
        return PassResult(self.name, graph.replace(graph_def=graph_def), stats, notes=tuple(notes))
