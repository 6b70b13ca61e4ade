"""prune_embedding_rows: keep only the embedding rows the sample data uses.

What it rewrites: each embedding table (a float ``Const`` read only by axis-0 gathers) of at least
``min_rows`` rows. The ids every gather reads are computed by running the graph itself on the
sample inputs (so they come out of the graph's own hashing and vocabulary lookups). The table
keeps the rows hit (sorted by id) plus one fallback row; each gather reads
``Gather(kept_table, Gather(remap, ids))`` where ``remap`` is a small int32 vector (one entry per
old row) sending kept ids to their new row and every other id to the fallback row.

Fallback row (``fallback``): ``mean`` (default: the mean of the rows pruned away) or ``zeros``.

With full-log statistics (``rebuild --stats``, ``context.log_stats``) a table keeps every row the
logs hit at least ``min_count`` times (default 1), plus the rows the sample hits (so the parity
check on the sample still holds); the notes give the rows kept and the share of the logs' lookups
they cover. A table the stats do not describe any more (its rows or the inputs reading it changed
since, e.g. after ``numeric_bucketize`` or a merge) falls back to the sample, and says so.

When it refuses: no sample data; no table of ``min_rows`` rows; a table where the kept rows are at
least ``max_keep_fraction`` (default 0.9) of the rows (nothing worth pruning).

Exactness: lossy for ids the sample (or the logs) never produced (they read the fallback row);
exact on the sample itself, so the pipeline's parity check on the sample holds at 1e-5.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from recadvisor.model.edits import (
    add_gather,
    add_table_consts,
    const_array,
    dtype_name,
    protected_nodes,
    remove_if_unread,
    reserve_name,
    set_gather_params,
    tf_dtype_enum,
)
from recadvisor.model.graph import ModelGraph, canonical_tensor
from recadvisor.model.queries import describe_table, rewritable_tables
from recadvisor.model.runtime import probe_tensors
from recadvisor.rewrite.base import (
    LOSSY,
    PassRefused,
    PassResult,
    RewriteContext,
    RewritePass,
    fallback_row,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_ROWS = 16
DEFAULT_MAX_KEEP_FRACTION = 0.9


class PruneEmbeddingRowsPass(RewritePass):
    """Embedding tables shrunk to the rows the sample uses (see the module docstring)."""

    name = "prune_embedding_rows"
    exactness = LOSSY
    changes_contract = False

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Prune unused rows from the embedding tables.

        Args:
            graph: the current stage.
            params: ``fallback`` (``mean`` | ``zeros``), ``min_rows`` (default 16),
                ``max_keep_fraction`` (default 0.9), ``tables`` (Const names), ``min_count``
                (with log stats: hits a row needs in the logs to be kept, default 1).
            context: the sample inputs (in the current contract) and the log stats, if any.

        Returns:
            The graph with smaller tables; stats give rows before/after per table.
        """
        if not context.feeds:
            raise PassRefused("prune_embedding_rows needs sample data (--data) to see used rows")
        how = str(params.get("fallback", "mean"))
        min_rows = int(params.get("min_rows", DEFAULT_MIN_ROWS))
        max_keep = float(params.get("max_keep_fraction", DEFAULT_MAX_KEEP_FRACTION))
        min_count = int(params.get("min_count", 1))
        wanted = params.get("tables")
        tables = [
            t
            for t in rewritable_tables(graph, min_rows=min_rows).values()
            if not wanted or graph.names_table(wanted, t.const)
        ]
        if not tables:
            raise PassRefused(f"prune_embedding_rows: no embedding table of {min_rows}+ rows")
        ids_tensors = {g: graph.nodes[g].input[1] for t in tables for g in t.gathers}
        values = probe_tensors(graph, ids_tensors.values(), context.feeds)
        gd = graph.copy_graph_def()
        names = {n.name for n in gd.node}
        per_table: dict[str, Any] = {}
        skipped: list[str] = []
        bytes_before = bytes_after = 0
        for table in tables:
            label = describe_table(graph, table)
            rows = table.shape[0]
            used = np.unique(
                np.concatenate(
                    [
                        np.asarray(values[canonical_tensor(ids_tensors[g])]).reshape(-1)
                        for g in table.gathers
                    ]
                ).astype(np.int64)
            )
            used = used[(used >= 0) & (used < rows)]
            logs = _log_rows(graph, table, context, min_count)
            if logs is not None:
                log_used, log_hits, source = logs
                sample_only = int(np.setdiff1d(used, log_used).size)
                used = np.union1d(used, log_used)
            else:
                source = "sample"
            if used.size >= max_keep * rows:
                skipped.append(f"{label}: {source} uses {used.size} of {rows} rows")
                continue
            old = const_array(graph.nodes[table.const])
            dropped = np.ones(rows, dtype=bool)
            dropped[used] = False
            fallback = fallback_row(old, how, self.name, mean_of=old[dropped])
            new = np.concatenate([old[used], fallback[None]]).astype(old.dtype)
            remap = np.full(rows, used.size, dtype=np.int32)
            remap[used] = np.arange(used.size, dtype=np.int32)
            (t_name, r_name), axis = add_table_consts(
                gd, names, table.const, {"pruned": new, "remap": remap}
            )
            for gname in table.gathers:
                gather = next(n for n in gd.node if n.name == gname)
                ids = gather.input[1]
                new_ids = reserve_name(names, f"{gname}/remapped_ids")
                add_gather(
                    gd,
                    new_ids,
                    r_name,
                    ids,
                    "int32",
                    dtype_name(gather.attr["Tindices"].type),
                    axis,
                )
                set_gather_params(gd, gname, t_name, dtype_name(gather.attr["Tparams"].type))
                gather.input[1] = new_ids
                gather.attr["Tindices"].type = tf_dtype_enum("int32")
            remove_if_unread(
                gd,
                {graph.nodes[g].input[0].split(":")[0] for g in table.gathers},
                protected_nodes(graph),
            )
            size = new.nbytes + remap.nbytes
            bytes_before += old.nbytes
            bytes_after += size
            per_table[graph.table_name(table.const)] = {
                "table": label,
                "node": table.const,
                "rows_before": rows,
                "rows_after": int(new.shape[0]),
                "bytes_before": int(old.nbytes),
                "bytes_after": int(size),
                "rows_source": source,
            }
            if logs is not None:
                total = int(log_hits.sum())
                per_table[graph.table_name(table.const)].update(
                    {
                        "log_rows_hit": int(np.count_nonzero(log_hits)),
                        "log_rows_kept": int(log_used.size),
                        "min_count": min_count,
                        "log_lookups": total,
                        "log_lookups_covered": float(log_hits[used].sum() / total)
                        if total
                        else 1.0,
                        "sample_only_rows": sample_only,
                    }
                )
        if not per_table:
            raise PassRefused("prune_embedding_rows: nothing to prune: " + "; ".join(skipped))
        notes = [
            f"{d['table']}: {d['rows_before']} -> {d['rows_after']} rows ({_kept_text(d)}); ids "
            f"unseen in the {d['rows_source'].split(' (')[0]} read the fallback row "
            f"({how}{' of the pruned rows' if how == 'mean' else ''})"
            for d in per_table.values()
        ]
        notes.extend(f"left as is: {s}" for s in skipped)
        stats = {
            "tables": per_table,
            "table_bytes_before": int(bytes_before),
            "table_bytes_after": int(bytes_after),
            "fallback": how,
        }
        log.info(
            "prune_embedding_rows: %d tables, %d -> %d bytes",
            len(per_table),
            bytes_before,
            bytes_after,
        )
        return PassResult(self.name, graph.replace(graph_def=gd), stats, (), tuple(notes))


def _log_rows(
    graph: ModelGraph, table: Any, context: RewriteContext, min_count: int
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(rows hit >= ``min_count`` times in the logs, hits per row, source label), or ``None``
    when there are no log stats for this table as it is now."""
    stats = context.log_stats
    if stats is None:
        return None
    inputs: set[str] = set()
    for gather in table.gathers:
        inputs |= graph.features_of_node.get(gather, frozenset())
    hits = stats.row_hits(table.const, table.shape[0], inputs)
    if hits is None:
        log.info("prune_embedding_rows: no log stats for %s as it is now", table.const)
        return None
    return np.flatnonzero(hits >= min_count), hits, stats.source()


def _kept_text(d: Mapping[str, Any]) -> str:
    """How the kept rows were chosen, for the notes."""
    if "log_rows_kept" not in d:
        return "rows the sample hits"
    extra = f" + {d['sample_only_rows']} only the sample hits" if d["sample_only_rows"] else ""
    return (
        f"{d['log_rows_kept']} rows hit >= {d['min_count']}x in the {d['rows_source']}{extra}, "
        f"covering {100 * d['log_lookups_covered']:.4g}% of {d['log_lookups']:,} lookups"
    )
