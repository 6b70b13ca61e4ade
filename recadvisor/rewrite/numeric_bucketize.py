"""numeric_bucketize: a number hashed as a string -> ``Bucketize`` + gather from a smaller table.

What it rewrites: a numeric signature input (through Identity/Reshape nodes) formatted by
``AsString`` and hashed by ``StringToHashBucketFast`` (or grappler's fused
``_TensorToHashBucketFast``) whose bucket ids are read (possibly through reshapes, slices and
casts to int32/int64, and measured by ``Shape``/``Size``/``Rank``) only by axis-0 gathers of
constant embedding tables. The kept values are the distinct values seen
in the sample (for integers, every integer between the smallest and the largest seen, when that
span is at most ``max_values``), or the plan's ``values`` / ``value_range``. Each kept value's
row is computed exactly as TensorFlow did (the value formatted like ``tf.strings.as_string``,
FarmHash Fingerprint64 mod the bucket count); the new table holds one row per bucket of a
``Bucketize`` over the values' intervals (adjacent buckets reading the same row are merged), so
1000 hash rows become at most 53 rows for ages 18..70. The string ops go; the signature does not
change.

Outside the kept values (``out_of_range``): ``clamp`` (default) uses the row of the nearest kept
value below (the smallest kept value below the range); ``fallback_row`` uses one fallback row
(``fallback``: ``mean`` of the old table's rows, or ``zeros``). The pass's notes state the exact
range and this rule.

When it refuses: no such pattern; the hash ids feed anything but constant-table gathers (e.g.
arithmetic such as ``ids + offset``, a concat with other ids, a cast to a float); values
that ``Bucketize``'s float32 boundaries cannot represent exactly (integers beyond 2**24, float64
values that are not float32 values); an input dtype ``Bucketize`` does not take; no sample values
and no ``values`` parameter.

Exactness: exact-in-range (exact for every kept value; the clamp/fallback rule elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    add_const,
    add_node,
    const_array,
    dtype_name,
    protected_nodes,
    remove_nodes,
    reserve_name,
    rewire,
    source_through_identity,
    tf_dtype_enum,
)
from recadvisor.model.graph import STRING_OPS, ModelGraph
from recadvisor.model.queries import ROW_GATHER_OPS, SLICE_OPS, gather_axis, walk_passthrough
from recadvisor.rewrite.base import (
    EXACT_IN_RANGE,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
    fallback_row,
)
from recadvisor.rewrite.encodings import format_as_string, hash_bucket

log = logging.getLogger(__name__)

BUCKETIZE_DTYPES = ("int32", "int64", "float32", "float64")
FLOAT32_EXACT_INT = 2**24
DEFAULT_MAX_VALUES = 100_000
# Cast targets that keep bucket ids intact; ops that read only the ids' shape (attr T retyped)
INDEX_DTYPES = frozenset({"int32", "int64"})
RETYPED_SHAPE_OPS = frozenset({"Shape", "Size", "Rank"})


class SiteRefused(Exception):
    """One hashed number cannot be rewritten (the reason names it)."""


@dataclass
class _Site:
    """One ``AsString -> hash -> gathers`` occurrence."""

    key: str
    dtype: str
    value_tensor: str
    hash_node: str
    as_string: str | None
    format_attrs: dict[str, Any]
    num_buckets: int
    chain: list[str]  # pass-through nodes between the hash and the gathers
    gathers: list[str]


def _format_attrs(node: Any) -> dict[str, Any]:
    return {
        "precision": int(node.attr["precision"].i) if "precision" in node.attr else -1,
        "scientific": bool(node.attr["scientific"].b),
        "shortest": bool(node.attr["shortest"].b),
        "width": int(node.attr["width"].i) if "width" in node.attr else -1,
        "fill": node.attr["fill"].s.decode() if "fill" in node.attr else "",
    }


def _hash_readers(graph: ModelGraph, hash_node: str) -> tuple[list[str], list[str]]:
    """Nodes after the hash that carry the ids (or read their shape) and the gathers reading them.

    The ids may pass through reshapes, slices, integer casts and be measured by ``Shape`` /
    ``Size`` / ``Rank`` (all exact on the bucket ids, which only change their values); any other
    reader (arithmetic on the ids, a concat with other ids, a non-constant table) refuses.

    Raises:
        SiteRefused: the ids are read in a way the rewrite would change.
    """
    chain, shape_readers, terminals = walk_passthrough(graph, hash_node, SLICE_OPS | {"Cast"})
    for name in sorted(chain):
        node = graph.nodes[name]
        if node.op == "Cast" and dtype_name(node.attr["DstT"].type) not in INDEX_DTYPES:
            raise SiteRefused(f"the ids of '{hash_node}' are cast to a non-index type by '{name}'")
    for name in sorted(shape_readers):
        if graph.nodes[name].op not in RETYPED_SHAPE_OPS:
            raise SiteRefused(
                f"the ids of '{hash_node}' are read by {graph.nodes[name].op} '{name}'"
            )
    gathers: list[str] = []
    for reader, pos in terminals:
        node = graph.nodes[reader]
        if node.op not in ROW_GATHER_OPS or pos != 1 or gather_axis(graph, node) != 0:
            raise SiteRefused(f"the ids of '{hash_node}' are read by {node.op} '{reader}'")
        table = graph.nodes.get(source_through_identity(graph, node.input[0]))
        if table is None or table.op != "Const":
            raise SiteRefused(f"gather '{reader}' reads a table that is not a constant")
        gathers.append(reader)
    if not gathers or chain & set(graph.output_nodes.values()):
        raise SiteRefused(f"the ids of '{hash_node}' are not only gathered")
    return sorted(chain | shape_readers), gathers


def find_sites(graph: ModelGraph) -> tuple[list[_Site], list[str]]:
    """Every numeric input hashed as a string, and the reasons some cannot be rewritten."""
    sites: list[_Site] = []
    refused: list[str] = []
    for key, info in graph.signature.inputs.items():
        if not info.dtype.startswith(("int", "uint", "float", "bfloat")):
            continue
        _, _, terminals = walk_passthrough(graph, graph.input_nodes[key])
        for reader, pos in terminals:
            node = graph.nodes[reader]
            if pos != 0:
                continue
            if node.op == "_TensorToHashBucketFast":
                hashes = [(reader, None, _format_attrs(node))]
            elif node.op == "AsString":
                hashes = [
                    (h, reader, _format_attrs(node))
                    for h in graph.consumers.get(reader, [])
                    if graph.nodes[h].op == "StringToHashBucketFast"
                ]
            else:
                continue
            value_tensor = node.input[0]
            for hash_node, as_string, attrs in hashes:
                try:
                    if info.dtype not in BUCKETIZE_DTYPES:
                        raise SiteRefused(f"Bucketize does not take {info.dtype} input '{key}'")
                    chain, gathers = _hash_readers(graph, hash_node)
                except SiteRefused as e:
                    refused.append(f"{key}: {e}")
                    continue
                sites.append(
                    _Site(
                        key=key,
                        dtype=info.dtype,
                        value_tensor=value_tensor,
                        hash_node=hash_node,
                        as_string=as_string,
                        format_attrs=attrs,
                        num_buckets=int(graph.nodes[hash_node].attr["num_buckets"].i),
                        chain=chain,
                        gathers=gathers,
                    )
                )
    return sites, refused


def _kept_values(site: _Site, params: Mapping[str, Any], context: RewriteContext) -> np.ndarray:
    np_dtype = np.dtype(site.dtype)
    is_int = np_dtype.kind in "iu"
    if params.get("values") is not None:
        values = np.asarray(params["values"], dtype=np_dtype)
    elif params.get("value_range") is not None:
        lo, hi = params["value_range"]
        if not is_int:
            raise SiteRefused("value_range applies to integer inputs only; give 'values'")
        values = np.arange(int(lo), int(hi) + 1, dtype=np_dtype)
    else:
        sample = context.feeds.get(site.key)
        if sample is None:
            sample = context.raw_feeds.get(site.key)
        logged = None if context.log_stats is None else context.log_stats.distinct_values(site.key)
        if logged is not None and sample is not None:  # the logs' values, and the sample's
            sample = np.concatenate([np.asarray(sample).reshape(-1), logged.astype(np_dtype)])
        if sample is None or np.asarray(sample).size == 0:
            raise SiteRefused(f"no sample values for '{site.key}'; pass --data or plan 'values'")
        values = np.asarray(sample).astype(np_dtype).reshape(-1)
        values = values[np.isfinite(values)] if not is_int else values
        values = np.unique(values)
        max_values = int(params.get("max_values", DEFAULT_MAX_VALUES))
        if is_int and values.size and params.get("fill_range", True):
            span = int(values.max()) - int(values.min()) + 1
            if span <= max_values:
                values = np.arange(int(values.min()), int(values.max()) + 1, dtype=np_dtype)
    values = np.unique(values)
    if values.size == 0:
        raise SiteRefused(f"no finite values to keep for '{site.key}'")
    if is_int:
        if int(np.abs(values.astype(np.int64)).max()) + 1 > FLOAT32_EXACT_INT:
            raise SiteRefused(
                f"'{site.key}' has integers beyond 2**24, which Bucketize's float32 boundaries "
                "cannot tell apart"
            )
    elif np.any(values.astype(np.float32).astype(values.dtype) != values):
        raise SiteRefused(f"'{site.key}' has float64 values that are not float32 values")
    return values


def _intervals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries (float32) and, per bucket, the index of the kept value owning it (-1: none)."""
    if values.dtype.kind in "iu":
        upper = values.astype(np.float64) + 1.0
    else:
        v32 = values.astype(np.float32)
        upper = np.nextafter(v32, np.float32(np.inf)).astype(np.float64)
    lower = values.astype(np.float64)
    edges = np.unique(np.concatenate([lower, upper]))
    owner = np.full(edges.size + 1, -1, dtype=np.int64)
    for i, lo in enumerate(lower):
        owner[int(np.searchsorted(edges, lo, side="right"))] = i
    return edges.astype(np.float32), owner


def _bucket_rows(owner: np.ndarray, rows: np.ndarray, out_of_range: str) -> np.ndarray:
    """Old-table row per bucket (-1: the fallback row), by the out-of-range rule."""
    result = np.full(owner.size, -1, dtype=np.int64)
    last = -1
    first_owned = rows[owner[owner >= 0][0]]
    for j, o in enumerate(owner):
        if o >= 0:
            last = int(rows[o])
            result[j] = last
        elif out_of_range == "clamp":
            result[j] = last if last >= 0 else int(first_owned)
    return result


def _merge(boundaries: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop boundaries between adjacent buckets that read the same row."""
    keep_bucket = np.ones(sources.size, dtype=bool)
    keep_bucket[1:] = sources[1:] != sources[:-1]
    merged_sources = sources[keep_bucket]
    merged_bounds = boundaries[keep_bucket[1:]]
    return merged_bounds, merged_sources


def _values_source(site: _Site, params: Mapping[str, Any], context: RewriteContext) -> str:
    """Where the kept values came from: the plan, the full logs or the sample rows."""
    if params.get("values") is not None or params.get("value_range") is not None:
        return "from the plan"
    stats = context.log_stats
    if stats is not None and stats.distinct_values(site.key) is not None:
        return f"seen in the {stats.source()} and the sample"
    return "seen in the sample"


def _describe_range(values: np.ndarray, contiguous: bool) -> str:
    lo, hi = values.min().item(), values.max().item()
    if contiguous:
        return f"every integer in [{lo}, {hi}] ({values.size} values)"
    return f"{values.size} observed values in [{lo}, {hi}]"


class NumericBucketizePass(RewritePass):
    """Numbers hashed as strings become ``Bucketize`` + a remapped table (see module docstring)."""

    name = "numeric_bucketize"
    exactness = EXACT_IN_RANGE
    changes_contract = False

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Rewrite every numeric-as-string hash feeding constant-table gathers.

        Args:
            graph: the current stage.
            params: ``inputs`` (restrict to these keys), ``values`` / ``value_range`` (explicit
                values to keep, applied to every rewritten input), ``out_of_range``
                (``clamp`` | ``fallback_row``), ``fallback`` (``mean`` | ``zeros``),
                ``max_values`` (largest integer span filled in, default 100000).
            context: the sample values (``context.feeds``), and every value the full logs
                hold when ``context.log_stats`` is set (``rebuild --stats``).

        Returns:
            The rewritten graph; stats per input give the range, rows and bytes.
        """
        out_of_range = str(params.get("out_of_range", "clamp"))
        if out_of_range not in ("clamp", "fallback_row"):
            raise PassRefused(
                f"numeric_bucketize: out_of_range must be 'clamp' or 'fallback_row', got "
                f"'{out_of_range}'"
            )
        fallback = str(params.get("fallback", "mean"))
        only = set(params.get("inputs") or [])
        sites, refused = find_sites(graph)
        sites = [s for s in sites if not only or s.key in only]
        gd = graph.copy_graph_def()
        by_name = {n.name: n for n in gd.node}
        names = set(by_name)
        doomed: set[str] = set()
        done_hashes: set[str] = set()
        per_input: dict[str, Any] = {}
        notes: list[str] = []
        bytes_before = bytes_after = 0
        done = 0
        for site in sites:
            try:
                values = _kept_values(site, params, context)
            except SiteRefused as e:
                refused.append(str(e))
                continue
            text = format_as_string(values, site.dtype, **site.format_attrs)
            rows = hash_bucket(text, site.num_buckets, site.key)
            boundaries, owner = _intervals(values)
            sources = _bucket_rows(owner, rows, out_of_range)
            boundaries, sources = _merge(boundaries, sources)
            contiguous = values.dtype.kind in "iu" and values.size == (
                int(values.max()) - int(values.min()) + 1
            )

            bucketize = reserve_name(names, f"{site.hash_node}/bucketize")
            add_node(
                gd,
                bucketize,
                "Bucketize",
                [site.value_tensor],
                T=f"dtype:{site.dtype}",
                boundaries=[float(b) for b in boundaries],
            )
            rewire(gd, site.hash_node + ":0", bucketize + ":0")
            for name in site.chain:  # the ids are int32 buckets from here on
                node = by_name[name]
                for attr in ("SrcT", "DstT") if node.op == "Cast" else ("T",):
                    node.attr[attr].type = tf_dtype_enum("int32")
            tables_done: dict[str, str] = {}
            for gname in site.gathers:
                gather = by_name[gname]
                table_name = source_through_identity(graph, gather.input[0])
                if table_name not in tables_done:
                    old = const_array(graph.nodes[table_name])
                    fb = fallback_row(old, fallback, self.name)
                    new = np.stack([old[s] if s >= 0 else fb for s in sources]).astype(old.dtype)
                    const_name = reserve_name(names, f"{table_name}/bucketized")
                    add_const(gd, const_name, new)
                    tables_done[table_name] = const_name
                    bytes_before += old.nbytes
                    bytes_after += new.nbytes
                    per_input.setdefault(site.key, {}).update(
                        {
                            "rows_before": int(old.shape[0]),
                            "rows_after": int(new.shape[0]),
                        }
                    )
                gather.input[0] = tables_done[table_name]
                gather.attr["Tindices"].type = tf_dtype_enum("int32")
            doomed.add(site.hash_node)
            done_hashes.add(site.hash_node)
            rule = (
                "the row of the nearest kept value below (the smallest one below the range)"
                if out_of_range == "clamp"
                else f"a fallback row ({fallback} of the old table)"
            )
            described = _describe_range(values, contiguous)
            per_input.setdefault(site.key, {}).update(
                {
                    "values": int(values.size),
                    "min": values.min().item(),
                    "max": values.max().item(),
                    "contiguous_integers": bool(contiguous),
                    "boundaries": int(boundaries.size),
                    "out_of_range": out_of_range,
                    "values_source": _values_source(site, params, context),
                }
            )
            notes.append(
                f"{site.key}: exact for {described} "
                f"({per_input[site.key]['values_source']}); other values get {rule} "
                f"(TensorFlow would have hashed them into one of {site.num_buckets} rows)"
            )
            done += 1
        if not done:
            reason = "; ".join(refused) or "no numeric input is formatted with AsString and hashed"
            raise PassRefused(f"numeric_bucketize: nothing to rewrite: {reason}")
        # an AsString goes when every hash reading it was rewritten
        for site in sites:
            readers = set(graph.consumers.get(site.as_string or "", []))
            if site.as_string is not None and readers <= done_hashes:
                doomed.add(site.as_string)
        removed = remove_nodes(gd, doomed, protected_nodes(graph))
        notes.extend(f"left as is: {r}" for r in refused)
        new_graph = graph.replace(graph_def=gd)
        before_ops, after_ops = graph.op_counts(), new_graph.op_counts()
        stats = {
            "inputs": per_input,
            "sites_rewritten": done,
            "nodes_removed": len(removed),
            "table_bytes_before": int(bytes_before),
            "table_bytes_after": int(bytes_after),
            "string_ops_before": sum(c for op, c in before_ops.items() if op in STRING_OPS),
            "string_ops_after": sum(c for op, c in after_ops.items() if op in STRING_OPS),
        }
        log.info(
            "numeric_bucketize: %d sites, tables %d -> %d bytes", done, bytes_before, bytes_after
        )
        return PassResult(self.name, new_graph, stats, (), tuple(notes))
