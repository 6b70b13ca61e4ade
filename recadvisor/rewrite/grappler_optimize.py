"""grappler_optimize: run TensorFlow's Grappler offline on the frozen graph (exact, always last).

Rewrites: runs Grappler (``tf_optimizer.OptimizeGraph`` on a ``MetaGraphDef`` holding the frozen
graph, with the signature inputs and outputs as fetch nodes so that they keep their names) with,
in this order, the remapper (``remap``: ``MatMul + BiasAdd/Add + activation`` ->
``_FusedMatMul``), constant folding, the arithmetic optimizer and the dependency optimizer.

Why the MatMul fusion was lost after freezing, and how it comes back: freezing turns the Dense
bias *variable* into a ``Const``. When TensorFlow loads the frozen graph, Grappler's constant
folding / arithmetic optimizer see that the bias is all zeros (an untrained or zero-initialised
bias, as in freshly built sample models) and delete the ``BiasAdd`` as a no-op; the remapper,
which runs after them, then finds ``MatMul -> Relu`` with no bias, a pattern it cannot fuse, so
oneDNN runs ``_MklMatMul`` + ``Relu`` instead of one ``_MklNativeFusedMatMul``. (A non-zero bias
is not removed and keeps its fusion; the Identity/ReadVariableOp nodes and re-exporting big
constants as variables are not the cause.) Running the remapper *first*, offline, stores the
fused ``_FusedMatMul`` in the rebuilt graph, where load-time constant folding can no longer
drop the bias; oneDNN then rewrites it to ``_MklNativeFusedMatMul``, and the ``Relu`` (or
``Sigmoid``/``Tanh``...) is fused again.

Portability: the rebuilt SavedModel must run on any TensorFlow CPU build, with or without oneDNN.
``_FusedMatMul`` with ``BiasAdd`` followed by nothing, ``Relu``, ``Relu6``, ``Elu``,
``LeakyRelu``, ``Sigmoid`` or ``Tanh`` has a kernel in plain TensorFlow (checked on TF 2.21 with
``TF_ENABLE_ONEDNN_OPTS=0``), and so has ``_TensorToHashBucketFast`` (``AsString`` + hash, which
the remapper fuses too); Gelu fusions and oneDNN-only ops (``_Mkl*``) do not. When the
remapper produces anything else, the pass re-runs without the remapper and says so. ``params.fuse:
false`` skips the remapper altogether (e.g. for very old TF Serving builds).

Refuses: when Grappler changes nothing.

Exactness: exact up to float reordering (fused kernels, folded constants): checked against the
previous stage with the default 1e-5 tolerance.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from recadvisor.errors import PlanError
from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import EXACT, PassRefused, PassResult, RewriteContext, RewritePass
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

OPTIMIZERS_WITH_FUSION = ("remap", "constfold", "arithmetic", "dependency")
OPTIMIZERS_NO_FUSION = ("constfold", "arithmetic", "dependency")
# fused_ops lists plain (non-oneDNN) TensorFlow CPU kernels implement for _FusedMatMul
PORTABLE_MATMUL_FUSIONS = frozenset(
    {("BiasAdd",)}
    | {("BiasAdd", act) for act in ("Relu", "Relu6", "Elu", "LeakyRelu", "Sigmoid", "Tanh")}
)
# internal ops with a kernel in every TensorFlow CPU build (the remapper's AsString + hash fusion)
PORTABLE_INTERNAL_OPS = frozenset({"_TensorToHashBucketFast"})
_CPU = "/device:CPU:0"


def optimize_graph_def(graph: ModelGraph, optimizers: tuple[str, ...]) -> Any:
    """Run Grappler on ``graph`` with the given optimizers, in order.

    Args:
        graph: the frozen graph (not mutated).
        optimizers: Grappler optimizer names (``remap``, ``constfold``, ...).

    Returns:
        The optimized ``GraphDef`` (device fields cleared).
    """
    tf = import_tf()
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph_def = graph.copy_graph_def()
    for node in graph_def.node:
        if not node.device:
            node.device = _CPU  # the remapper only fuses nodes placed on a CPU
        if node.op == "Placeholder" and "shape" not in node.attr:
            # Grappler cannot import a placeholder without a shape (TF1 table placeholders)
            node.attr["shape"].shape.CopyFrom(
                tf.TensorShape([] if node.name in graph.tables else None).as_proto()
            )
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    keep = sorted(set(graph.output_nodes.values()) | set(graph.input_nodes.values()))
    meta.collection_def["train_op"].node_list.value.extend(keep)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(optimizers)
    rewrite.min_graph_nodes = -1
    rewrite.meta_optimizer_iterations = 1  # ONE: each optimizer once, in the order given
    optimized = tf_optimizer.OptimizeGraph(config, meta, verbose=False)
    for node in optimized.node:
        if node.device == _CPU:
            node.device = ""
    return optimized


def non_portable_nodes(graph_def: Any, before_ops: set[str]) -> list[str]:
    """Nodes whose op plain TensorFlow may lack: new internal ops, unportable fusions.

    Args:
        graph_def: the optimized graph.
        before_ops: op types present before optimizing (always allowed).

    Returns:
        ``name (op[fused_ops])`` descriptions, empty when everything is portable.
    """
    bad = []
    for node in graph_def.node:
        if node.op in before_ops or not node.op.startswith("_") or node.op in PORTABLE_INTERNAL_OPS:
            continue
        if node.op == "_FusedMatMul":
            fused = tuple(s.decode() for s in node.attr["fused_ops"].list.s)
            if fused in PORTABLE_MATMUL_FUSIONS:
                continue
            bad.append(f"{node.name} ({node.op}[{','.join(fused)}])")
        else:
            bad.append(f"{node.name} ({node.op})")
    return bad


def _same_structure(a: Any, b: Any) -> bool:
    """Same nodes, ops and edges (attributes such as an added placeholder shape ignored)."""

    def edges(graph_def: Any) -> set[tuple[str, str, tuple[str, ...]]]:
        return {(n.name, n.op, tuple(n.input)) for n in graph_def.node}

    return edges(a) == edges(b)


class GrapplerOptimizePass(RewritePass):
    """Grappler remapping (MatMul fusion), constant folding, arithmetic and dependency passes."""

    name = "grappler_optimize"
    exactness = EXACT
    changes_contract = False

    def check_params(self, params: Mapping[str, Any], graph: ModelGraph) -> None:
        """Only ``fuse`` (bool) is accepted.

        Raises:
            PlanError: unknown params or a non-boolean ``fuse``.
        """
        extra = set(params) - {"fuse"}
        if extra:
            raise PlanError(f"grappler_optimize: unknown params {sorted(extra)}; it takes 'fuse'")
        if "fuse" in params and not isinstance(params["fuse"], bool):
            raise PlanError("grappler_optimize: params.fuse must be true or false")

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Optimize; keep only portable fused ops; refuse when nothing changed."""
        self.check_params(params, graph)
        notes: list[str] = []
        before_ops = set(graph.op_counts())
        optimizers = OPTIMIZERS_WITH_FUSION if params.get("fuse", True) else OPTIMIZERS_NO_FUSION
        optimized = optimize_graph_def(graph, optimizers)
        bad = non_portable_nodes(optimized, before_ops)
        if bad:
            log.info("grappler produced non-portable ops %s; re-running without remap", bad[:5])
            notes.append(f"remapper output not portable ({', '.join(bad[:3])}); ran without fusion")
            optimizers = OPTIMIZERS_NO_FUSION
            optimized = optimize_graph_def(graph, optimizers)
        if _same_structure(optimized, graph.graph_def):
            raise PassRefused("grappler found nothing to optimize")
        present = {n.name for n in optimized.node}
        missing = [
            n
            for n in list(graph.output_nodes.values()) + list(graph.input_nodes.values())
            if n not in present
        ]
        if missing:
            raise PassRefused(f"grappler removed signature nodes {missing}; graph left as it was")
        new = graph.replace(
            graph_def=optimized, tables={k: v for k, v in graph.tables.items() if k in present}
        )
        before, after = Counter(graph.op_counts()), Counter(new.op_counts())
        fused = [n for n in optimized.node if n.op == "_FusedMatMul"]
        if fused:
            kinds = Counter(
                "+".join(["MatMul"] + [s.decode() for s in n.attr["fused_ops"].list.s])
                for n in fused
            )
            notes.append("fused: " + ", ".join(f"{v}x {k}" for k, v in kinds.items()))
        stats = {
            "optimizers": list(optimizers),
            "nodes_before": len(graph.graph_def.node),
            "nodes_after": len(optimized.node),
            "fused_matmuls": len(fused),
            "ops_removed": {k: v for k, v in (before - after).items()},
            "ops_added": {k: v for k, v in (after - before).items()},
        }
        return PassResult(self.name, new, stats, notes=tuple(notes))
