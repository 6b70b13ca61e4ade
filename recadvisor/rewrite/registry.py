"""The one ordered list of rewrite passes.

Order matters:

1. ``strip_control_deps`` first: TF2 automatic control dependencies tie every stateful op (each
   gather, each table lookup) to the outputs, so nothing could be pruned before they go.
2. ``prune_outputs`` / ``drop_unused_inputs`` next: later passes then see only live nodes.
3. ``merge_duplicates`` before the feature rewrites, so a feature hashed twice is rewritten once.
4. Contract-changing passes (``numeric_bucketize``, ``ids_upstream``) before the table passes:
   they remap the tables the later passes shrink.
5. Table passes (row pruning, sharing, SVD, quantization) after the id rewrites.
6. ``per_request_dedup`` changes the batch contract, so it runs on the graph the passes above
   leave.
7. ``split_concat_matmul`` after the table passes (``reduce_embedding_dim`` folds its projections
   into the row blocks of a MatMul over a concat, which must still be there) and after
   ``per_request_dedup`` (which needs DIN's batch-major ``[B, L, d]`` attention tensors; the
   split flattens them to ``[B * L, d]``). After the dedup, a request-side part such as the
   broadcast history is multiplied once per request.
8. ``grappler_optimize`` (constant folding, arithmetic, remapping/fusion) always last.

Each entry names the module and class so the registry imports TensorFlow-heavy code lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from recadvisor.errors import PlanError
from recadvisor.rewrite.base import RewritePass


@dataclass(frozen=True)
class PassEntry:
    """Where a pass lives."""

    name: str
    module: str
    cls: str


PASS_ORDER: tuple[PassEntry, ...] = (
    PassEntry(
        "strip_control_deps", "recadvisor.rewrite.strip_control_deps", "StripControlDepsPass"
    ),
    PassEntry("prune_outputs", "recadvisor.rewrite.prune_outputs", "PruneOutputsPass"),
    PassEntry(
        "drop_unused_inputs", "recadvisor.rewrite.drop_unused_inputs", "DropUnusedInputsPass"
    ),
    PassEntry("merge_duplicates", "recadvisor.rewrite.merge_duplicates", "MergeDuplicatesPass"),
    PassEntry("numeric_bucketize", "recadvisor.rewrite.numeric_bucketize", "NumericBucketizePass"),
    PassEntry("ids_upstream", "recadvisor.rewrite.ids_upstream", "IdsUpstreamPass"),
    PassEntry(
        "prune_embedding_rows", "recadvisor.rewrite.prune_embedding_rows", "PruneEmbeddingRowsPass"
    ),
    PassEntry("share_embeddings", "recadvisor.rewrite.share_embeddings", "ShareEmbeddingsPass"),
    PassEntry(
        "reduce_embedding_dim", "recadvisor.rewrite.reduce_embedding_dim", "ReduceEmbeddingDimPass"
    ),
    PassEntry(
        "quantize_embeddings", "recadvisor.rewrite.quantize_embeddings", "QuantizeEmbeddingsPass"
    ),
    PassEntry("per_request_dedup", "recadvisor.rewrite.per_request_dedup", "PerRequestDedupPass"),
    PassEntry(
        "split_concat_matmul", "recadvisor.rewrite.split_concat_matmul", "SplitConcatMatMulPass"
    ),
    PassEntry("grappler_optimize", "recadvisor.rewrite.grappler_optimize", "GrapplerOptimizePass"),
)
PASS_NAMES: tuple[str, ...] = tuple(e.name for e in PASS_ORDER)


def get_pass(name: str) -> RewritePass:
    """Instantiate a pass by name.

    Raises:
        PlanError: unknown pass name (the message lists the known ones).
    """
    for entry in PASS_ORDER:
        if entry.name == name:
            module = importlib.import_module(entry.module)
            return getattr(module, entry.cls)()
    raise PlanError(f"unknown rewrite pass '{name}'; known passes: {', '.join(PASS_NAMES)}")
