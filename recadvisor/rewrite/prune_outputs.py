"""prune_outputs: serve only some of the signature's outputs (exact, changes the contract).

Rewrites: removes the outputs not listed in ``params.keep`` from the signature and deletes every
node only they needed (e.g. the CVR tower of an ESMM served for ``ctr`` alone). Inputs stay in
the signature even when no kept output reads them any more.

Refuses: when ``keep`` names every output (nothing to prune). Bad params (``keep`` missing or
empty, or naming an output the signature lacks) are plan errors.

Exactness: exact for the kept outputs; the dropped outputs are gone (a contract change, so
clients must not fetch them). Pruning only pays when clients fetch the whole signature: TF
Serving already skips unrequested outputs when ``output_filter`` is set. Control dependencies
keep nodes alive, so ``strip_control_deps`` runs first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recadvisor.errors import PlanError
from recadvisor.model.graph import ModelGraph
from recadvisor.model.spec import SignatureSpec
from recadvisor.rewrite.base import EXACT, PassRefused, PassResult, RewriteContext, RewritePass
from recadvisor.rewrite.drop_unused_inputs import remove_dead_nodes


class PruneOutputsPass(RewritePass):
    """Keep only the outputs in ``params.keep`` and what they need."""

    name = "prune_outputs"
    exactness = EXACT
    changes_contract = True

    def check_params(self, params: Mapping[str, Any], graph: ModelGraph) -> None:
        """``keep`` must be a non-empty list of the graph's output keys.

        Raises:
            PlanError: missing, empty or unknown output names.
        """
        keep = params.get("keep")
        if isinstance(keep, str):
            keep = [keep]
        if not isinstance(keep, (list, tuple)) or not keep:
            raise PlanError(
                "prune_outputs needs params.keep: a list of outputs to serve; outputs are "
                f"{', '.join(sorted(graph.output_tensors))}"
            )
        unknown = [k for k in keep if k not in graph.output_tensors]
        if unknown:
            raise PlanError(
                f"prune_outputs: output(s) {', '.join(map(str, unknown))} not in signature "
                f"'{graph.signature.key}'; outputs are {', '.join(sorted(graph.output_tensors))}"
            )
        extra = set(params) - {"keep"}
        if extra:
            raise PlanError(f"prune_outputs: unknown params {sorted(extra)}; it takes 'keep'")

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Drop the outputs not kept and the nodes only they needed."""
        self.check_params(params, graph)
        keep_param = params["keep"]
        keep = [keep_param] if isinstance(keep_param, str) else list(keep_param)
        dropped = sorted(set(graph.output_tensors) - set(keep))
        if not dropped:
            raise PassRefused("params.keep lists every output; nothing to prune")
        outputs = {k: v for k, v in graph.output_tensors.items() if k in keep}
        signature = SignatureSpec(
            key=graph.signature.key,
            inputs=dict(graph.signature.inputs),
            outputs={k: v for k, v in graph.signature.outputs.items() if k in keep},
        )
        result = remove_dead_nodes(graph, output_tensors=outputs, signature=signature)
        notes = [f"outputs dropped from the signature: {', '.join(dropped)}"]
        pruned = result.graph
        held = pruned.reachable_from_outputs(control=True) - pruned.reachable_from_outputs(
            control=False
        )
        if held:
            notes.append(
                f"{len(held)} nodes kept alive only by control dependencies; enable "
                "strip_control_deps to prune them too"
            )
        stats = result.stats()
        stats["outputs_dropped"] = dropped
        stats["outputs_kept"] = sorted(outputs)
        return PassResult(self.name, pruned, stats, notes=tuple(notes))
