"""ids_upstream: string (and numeric-as-string) inputs become int64 ids computed by the client.

What it rewrites: a signature input whose every reader (looking through ``Identity``,
``Reshape``, ``Squeeze`` and ``ExpandDims``) is

* ``StringToHashBucketFast(num_buckets=N)`` -> the input becomes the int64 bucket id;
* ``LookupTableFindV2`` on a string-keyed table with integer values and a constant default ->
  the input becomes the vocabulary index (the table's value dtype);
* for numeric inputs, ``AsString`` followed only by ``StringToHashBucketFast``, or grappler's
  fused ``_TensorToHashBucketFast`` -> the input becomes the int64 bucket id of the formatted
  number.

The hash / lookup / ``AsString`` nodes are removed (and the table, when nothing else reads it);
``Shape``-like readers stay. A hashed string input may also be compared (``Equal`` /
``NotEqual``) with constant strings, e.g. a padding mask ``hist != ""``: each such constant is
sent as a reserved negative id (-1, -2...); the comparisons compare ids, and a ``SelectV2`` maps
a reserved id back to the bucket TensorFlow hashed the constant to before the gather (exact).
Each changed input gets an :class:`InputEncoding` (``hash_bucket``, ``as_string_hash_bucket`` or
``vocabulary``) that ``recadvisor.rewrite.encodings`` applies bit for bit like TensorFlow.

When it refuses an input: the input is also read in another way (as a string or a number), is
hashed with two different bucket counts or looked up in two tables (it cannot be one int), uses
``StringToHashBucketStrong`` (a keyed hash) or a table with a non-constant default, or its ids
are themselves a signature output. Other inputs are still rewritten; the pass refuses as a whole
only when no input qualifies.

Exactness: exact (the client computes the same ids TensorFlow computed). Changes the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recadvisor.model.graph import STRING_OPS, ModelGraph
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.rewrite.base import (
    EXACT,
    InputEncoding,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
)
from recadvisor.rewrite.encodings import fingerprint64
from recadvisor.rewrite.table_surgery import (
    add_const,
    add_node,
    protected_nodes,
    remove_if_unread,
    remove_nodes,
    reserve_name,
    resolve_const,
    rewire,
    surviving_tables,
    tf_dtype_enum,
    unique_name,
    walk_passthrough,
)

log = logging.getLogger(__name__)

HASH_OPS = frozenset({"StringToHashBucketFast"})
COMPARE_OPS = frozenset({"Equal", "NotEqual"})
AS_STRING_ATTRS = ("precision", "scientific", "shortest", "width", "fill")


class InputRefused(Exception):
    """One input cannot move upstream (the reason names it)."""


@dataclass
class _Terminal:
    """One reader that ends the input's pass-through chain, and what replaces it."""

    encoding: tuple[str, Any]  # (kind, frozen params) for comparison
    kind: str
    params: dict[str, Any]
    target_dtype: str
    rewires: tuple[tuple[str, str], ...]  # (tensor whose readers move, tensor they read instead)
    remove: tuple[str, ...]  # nodes deleted
    description: str


@dataclass
class _Comparison:
    """``Equal``/``NotEqual`` of the input with a constant string (e.g. a padding mask)."""

    node: str
    const_pos: int
    value: bytes


@dataclass
class _InputPlan:
    key: str
    placeholder: str
    source_dtype: str
    target_dtype: str
    kind: str
    params: dict[str, Any]
    chain: set[str] = field(default_factory=set)
    shape_readers: set[str] = field(default_factory=set)
    terminals: list[_Terminal] = field(default_factory=list)
    comparisons: list[_Comparison] = field(default_factory=list)
    reserved: dict[bytes, int] = field(default_factory=dict)  # constant -> reserved negative id


def _freeze_params(params: Mapping[str, Any]) -> Any:
    out = []
    for k, v in sorted(params.items()):
        out.append((k, tuple(v) if isinstance(v, list) else v))
    return tuple(out)


def _as_string_attrs(node: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in AS_STRING_ATTRS:
        if name not in node.attr:
            continue
        a = node.attr[name]
        if name in ("scientific", "shortest"):
            attrs[name] = bool(a.b)
        elif name == "fill":
            attrs[name] = a.s.decode()
        else:
            attrs[name] = int(a.i)
    return attrs


def _comparison(graph: ModelGraph, reader: str, pos: int) -> _Comparison | None:
    """The reader as a comparison with a scalar string constant, else None."""
    node = graph.nodes[reader]
    if node.op not in COMPARE_OPS or pos > 1 or len(node.input) < 2:
        return None
    other = 1 - pos
    value = resolve_const(graph, node.input[other])
    if value is None or np.asarray(value).ndim != 0 or np.asarray(value).dtype != object:
        return None
    raw = np.asarray(value).item()
    return _Comparison(reader, other, raw if isinstance(raw, bytes) else str(raw).encode())


def _plan_string_terminal(graph: ModelGraph, key: str, reader: str, pos: int) -> _Terminal:
    node = graph.nodes[reader]
    if node.op in HASH_OPS and pos == 0:
        nb = int(node.attr["num_buckets"].i)
        params = {"num_buckets": nb}
        return _Terminal(
            ("hash_bucket", _freeze_params(params)),
            "hash_bucket",
            params,
            "int64",
            ((reader + ":0", node.input[0]),),
            (reader,),
            f"StringToHashBucketFast({nb})",
        )
    if node.op in ("LookupTableFindV2", "LookupTableFind") and pos == 1:
        table_name = graph.table_of_node(reader)
        table = graph.tables.get(table_name or "")
        if table is None:
            raise InputRefused(f"input '{key}' is looked up in a table whose contents are unknown")
        if table.key_dtype != "string" or not table.value_dtype.startswith(("int", "uint")):
            raise InputRefused(
                f"input '{key}' is looked up in a {table.key_dtype}->{table.value_dtype} table; "
                "only string->integer vocabularies move upstream"
            )
        default = resolve_const(graph, node.input[2]) if len(node.input) > 2 else None
        if default is None or np.asarray(default).ndim != 0:
            raise InputRefused(
                f"input '{key}' is looked up in table '{table_name}' with a non-constant default"
            )
        keys = [
            k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k)
            for k in table.keys.reshape(-1)
        ]
        params = {
            "key_dtype": "string",
            "keys": keys,
            "values": [int(v) for v in table.values.reshape(-1)],
            "default_value": int(np.asarray(default)),
        }
        frozen = ("vocabulary", table.content_digest(), int(np.asarray(default)))
        return _Terminal(
            frozen,
            "vocabulary",
            params,
            table.value_dtype,
            ((reader + ":0", node.input[1]),),
            (reader,),
            f"vocabulary lookup ({table.size} keys)",
        )
    if node.op == "StringToHashBucketStrong":
        raise InputRefused(
            f"input '{key}' uses StringToHashBucketStrong (a keyed hash); clients cannot "
            "compute it without the key, so it stays in the graph"
        )
    raise InputRefused(f"input '{key}' is also read as a string by {node.op} '{reader}'")


def _plan_numeric_terminal(
    graph: ModelGraph, key: str, reader: str, pos: int, dtype: str
) -> _Terminal | None:
    node = graph.nodes[reader]
    if node.op == "_TensorToHashBucketFast" and pos == 0:
        nb = int(node.attr["num_buckets"].i)
        params = {"num_buckets": nb, "value_dtype": dtype}
        return _Terminal(
            ("as_string_hash_bucket", _freeze_params(params)),
            "as_string_hash_bucket",
            params,
            "int64",
            ((reader + ":0", node.input[0]),),
            (reader,),
            f"_TensorToHashBucketFast({nb})",
        )
    if node.op == "AsString" and pos == 0:
        hashes = graph.consumers.get(reader, [])
        if not hashes or any(graph.nodes[h].op not in HASH_OPS for h in hashes):
            others = sorted({graph.nodes[h].op for h in hashes} - HASH_OPS)
            raise InputRefused(
                f"input '{key}' is formatted as a string and then read by {others or 'nothing'}"
            )
        if any(n == reader for n in graph.output_nodes.values()):
            raise InputRefused(f"input '{key}' formatted as a string is a signature output")
        buckets = {int(graph.nodes[h].attr["num_buckets"].i) for h in hashes}
        if len(buckets) > 1:
            raise InputRefused(
                f"input '{key}' is hashed into {sorted(buckets)} buckets; it cannot become one "
                "int64 input"
            )
        nb = buckets.pop()
        params = {"num_buckets": nb, "value_dtype": dtype, **_as_string_attrs(node)}
        return _Terminal(
            ("as_string_hash_bucket", _freeze_params(params)),
            "as_string_hash_bucket",
            params,
            "int64",
            tuple((h + ":0", node.input[0]) for h in hashes),
            (reader, *hashes),
            f"AsString + StringToHashBucketFast({nb})",
        )
    return None


def plan_input(graph: ModelGraph, key: str) -> _InputPlan | None:
    """How input ``key`` would move upstream; None when it is not hashed or looked up at all.

    Raises:
        InputRefused: the input is hashed/looked up but cannot become one integer input.
    """
    info = graph.signature.inputs[key]
    placeholder = graph.input_nodes[key]
    chain, shape_readers, terminals = walk_passthrough(graph, placeholder)
    is_string = info.dtype == "string"
    is_numeric = info.dtype.startswith(("int", "uint", "float", "bfloat")) or info.dtype == "bool"
    if not terminals or not (is_string or is_numeric):
        return None
    planned: list[_Terminal] = []
    comparisons: list[_Comparison] = []
    numeric_uses: list[str] = []
    for reader, pos in terminals:
        if reader in graph.output_nodes.values():
            raise InputRefused(f"input '{key}' (or its ids) is a signature output")
        if is_string:
            cmp = _comparison(graph, reader, pos)
            if cmp is not None:
                comparisons.append(cmp)
            else:
                planned.append(_plan_string_terminal(graph, key, reader, pos))
        else:
            term = _plan_numeric_terminal(graph, key, reader, pos, info.dtype)
            if term is None:
                numeric_uses.append(f"{graph.nodes[reader].op} '{reader}'")
            else:
                planned.append(term)
    if not planned:
        return None
    if numeric_uses:
        raise InputRefused(
            f"input '{key}' is hashed as a string but also read as a number by "
            f"{', '.join(numeric_uses[:3])}"
        )
    kinds = {t.encoding for t in planned}
    if len(kinds) > 1:
        described = sorted({t.description for t in planned})
        raise InputRefused(
            f"input '{key}' is read as {' and '.join(described)}; it cannot become one int64 "
            "input (merge_duplicates or the model must hash it one way)"
        )
    first = planned[0]
    params = dict(first.params)
    reserved: dict[bytes, int] = {}
    if comparisons:
        if first.kind != "hash_bucket":
            raise InputRefused(
                f"input '{key}' is compared with a constant string and looked up in a "
                "vocabulary; only hashed inputs keep such comparisons exact"
            )
        for cmp in comparisons:
            reserved.setdefault(cmp.value, -(len(reserved) + 1))
        params["reserved"] = {v.decode("utf-8", "surrogateescape"): i for v, i in reserved.items()}
    return _InputPlan(
        key=key,
        placeholder=placeholder,
        source_dtype=info.dtype,
        target_dtype=first.target_dtype,
        kind=first.kind,
        params=params,
        chain=chain,
        shape_readers=shape_readers,
        terminals=planned,
        comparisons=comparisons,
        reserved=reserved,
    )


def _restore_reserved(
    graph_def: Any, names: set[str], ids: str, reserved: Mapping[bytes, int], num_buckets: int
) -> str:
    """Nodes turning reserved negative ids back into the bucket TensorFlow hashed them to."""
    current = ids
    base = ids.split(":")[0]
    for value, rid in reserved.items():
        bucket = fingerprint64(value) % num_buckets
        rid_const, bucket_const = (
            unique_name(names, f"{base}/reserved_{abs(rid)}_{s}") for s in ("id", "bucket")
        )
        names.update((rid_const, bucket_const))
        add_const(graph_def, rid_const, np.array(rid, np.int64))
        add_const(graph_def, bucket_const, np.array(bucket, np.int64))
        is_reserved = reserve_name(names, f"{base}/is_reserved_{abs(rid)}")
        add_node(
            graph_def,
            is_reserved,
            "Equal",
            [current, rid_const],
            T="dtype:int64",
            incompatible_shape_error=True,
        )
        restored = reserve_name(names, f"{base}/restored_{abs(rid)}")
        add_node(
            graph_def, restored, "SelectV2", [is_reserved, bucket_const, current], T="dtype:int64"
        )
        current = restored
    return current


def _set_type_attr(node: Any, dtype: str) -> None:
    enum = tf_dtype_enum(dtype)
    if node.op == "Placeholder":
        node.attr["dtype"].type = enum
    elif "T" in node.attr:
        node.attr["T"].type = enum


class IdsUpstreamPass(RewritePass):
    """String / numeric-as-string inputs become integer ids (see the module docstring)."""

    name = "ids_upstream"
    exactness = EXACT
    changes_contract = True

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Move hashing / vocabulary lookups out of the graph.

        Args:
            graph: the current stage.
            params: ``inputs`` (only these keys), ``exclude`` (never these keys),
                ``numeric`` (default true: also numeric-as-string inputs).
            context: unused (the rewrite is exact by construction).

        Returns:
            The rewritten graph, one encoding per changed input, refusals as notes.
        """
        only = set(params.get("inputs") or [])
        exclude = set(params.get("exclude") or [])
        numeric = bool(params.get("numeric", True))
        plans: list[_InputPlan] = []
        refused: list[str] = []
        for key, info in graph.signature.inputs.items():
            if (only and key not in only) or key in exclude:
                continue
            if info.dtype != "string" and not numeric:
                continue
            try:
                plan = plan_input(graph, key)
            except InputRefused as e:
                refused.append(str(e))
                continue
            if plan is not None:
                plans.append(plan)
        if not plans:
            reason = "; ".join(refused) if refused else "no input is hashed or looked up in a table"
            raise PassRefused(f"ids_upstream: nothing to move upstream: {reason}")

        gd = graph.copy_graph_def()
        by_name = {n.name: n for n in gd.node}
        doomed: set[str] = set()
        encodings: list[InputEncoding] = []
        notes: list[str] = []
        new_inputs = dict(graph.signature.inputs)
        names = set(by_name)
        old_consts: set[str] = set()
        for plan in plans:
            for name in (plan.placeholder, *plan.chain, *plan.shape_readers):
                _set_type_attr(by_name[name], plan.target_dtype)
            for cmp in plan.comparisons:
                node = by_name[cmp.node]
                const = reserve_name(names, f"{cmp.node}/reserved_id")
                add_const(gd, const, np.array(plan.reserved[cmp.value], np.int64))
                old_consts.add(node.input[cmp.const_pos].split(":")[0])
                node.input[cmp.const_pos] = const
                node.attr["T"].type = tf_dtype_enum("int64")
            fixed: dict[str, str] = {}
            for term in plan.terminals:
                for old, new in term.rewires:
                    if plan.reserved:
                        if new not in fixed:
                            fixed[new] = _restore_reserved(
                                gd, names, new, plan.reserved, int(plan.params["num_buckets"])
                            )
                        new = fixed[new]
                    rewire(gd, old, new)
                doomed.update(term.remove)
            info = graph.signature.inputs[plan.key]
            new_inputs[plan.key] = TensorInfo(plan.key, plan.target_dtype, info.shape)
            encodings.append(
                InputEncoding(
                    plan.key, plan.kind, plan.source_dtype, plan.target_dtype, dict(plan.params)
                )
            )
            reserved = "".join(
                f"; {v.decode('utf-8', 'replace')!r} is sent as {i}"
                for v, i in plan.reserved.items()
            )
            notes.append(
                f"{plan.key}: {plan.source_dtype} -> {plan.target_dtype} "
                f"({plan.terminals[0].description}{reserved}; compute with recadvisor encode)"
            )
        removed = remove_nodes(gd, doomed, protected_nodes(graph))
        removed |= remove_if_unread(gd, old_consts - removed, protected_nodes(graph))
        notes.extend(f"left in the graph: {r}" for r in refused)
        signature = SignatureSpec(graph.signature.key, new_inputs, dict(graph.signature.outputs))
        new_graph = graph.replace(
            graph_def=gd, signature=signature, tables=surviving_tables(graph, gd)
        )
        before_ops, after_ops = graph.op_counts(), new_graph.op_counts()
        stats = {
            "inputs_changed": [p.key for p in plans],
            "inputs_refused": len(refused),
            "nodes_removed": len(removed),
            "nodes_before": len(graph.graph_def.node),
            "nodes_after": len(gd.node),
            "string_ops_before": sum(c for op, c in before_ops.items() if op in STRING_OPS),
            "string_ops_after": sum(c for op, c in after_ops.items() if op in STRING_OPS),
            "tables_removed": len(graph.tables) - len(new_graph.tables),
        }
        log.info(
            "ids_upstream: %d inputs moved upstream, %d nodes removed", len(plans), len(removed)
        )
        return PassResult(self.name, new_graph, stats, tuple(encodings), tuple(notes))
