"""Signature inputs no output reads, and what each output costs.

* ``unused_input``: a signature input whose placeholder is not in the data ancestry of any
  output. Clients still send (and the server still parses) it; ``drop_unused_inputs`` removes its
  sub-graph while the signature keeps accepting it.
* ``output_cost`` (info): for signatures with several outputs, the nodes, weights and op time each
  output needs on its own (control dependencies ignored, as after ``strip_control_deps``).
* ``unused_output``: for each output, what serving *only* it would skip: an ESMM served for
  ``ctr`` alone skips the CVR tower, while ``ctcvr`` needs both towers and saves nothing (no
  finding). Outputs that return the very same tensor as another are reported too. Whether
  clients read an output cannot be seen in the model, so these are ``low`` (``medium`` when the
  skipped part is >= 10% of op time) and the matching ``prune_outputs`` plan entry is disabled
  until a person confirms it.
"""

from __future__ import annotations

from recadvisor.analysis.findings import (
    INFO,
    LOW,
    MEDIUM,
    OUTPUT_COST,
    UNUSED_INPUT,
    UNUSED_OUTPUT,
    DetectorContext,
    Finding,
    format_bytes,
    make_finding,
    share_text,
)
from recadvisor.model.graph import ModelGraph

NAME = "unused"
# serving one output must skip at least this much (or some weights) to be worth a finding
MIN_SKIPPED_NODES = 3
MIN_SKIPPED_FRACTION = 0.05
# nodes that only pass values along: not counted as work an output needs
PLUMBING_OPS = frozenset({"Identity", "IdentityN", "NoOp", "Snapshot", "StopGradient"})


def unused_inputs(graph: ModelGraph) -> list[str]:
    """Signature input keys whose placeholder no output depends on (data edges)."""
    live = graph.reachable_from_outputs(control=False)
    return sorted(k for k, n in graph.input_nodes.items() if n not in live)


def output_needs(graph: ModelGraph) -> dict[str, set[str]]:
    """Output key -> nodes it needs (data ancestry, no control edges)."""
    return {k: graph.ancestors([n], control=False) for k, n in graph.output_nodes.items()}


def descendants(graph: ModelGraph, name: str) -> set[str]:
    """Nodes reading ``name`` directly or indirectly (data edges), ``name`` excluded."""
    seen: set[str] = set()
    stack = list(graph.consumers.get(name, []))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.consumers.get(current, []))
    return seen


def _unused_input_findings(ctx: DetectorContext) -> list[Finding]:
    graph = ctx.graph
    findings = []
    for key in unused_inputs(graph):
        spec = graph.signature.inputs[key]
        node = graph.input_nodes[key]
        dangling = sorted(descendants(graph, node))
        findings.append(
            make_finding(
                UNUSED_INPUT,
                [key],
                [node, *dangling],
                LOW,
                f"signature input `{key}` ({spec.dtype} {spec.shape_str()}) is declared but no "
                f"output reads it ({len(dangling)} node(s) consume it without reaching an output)",
                evidence={
                    "dtype": spec.dtype,
                    "shape": spec.shape_str(),
                    "placeholder": node,
                    "dead_consumers": dangling,
                },
                detector=NAME,
            )
        )
    return findings


def _output_findings(ctx: DetectorContext) -> list[Finding]:
    graph = ctx.graph
    if len(graph.output_nodes) < 2:
        return []
    needs = output_needs(graph)
    all_needed = set().union(*needs.values())
    bs = ctx.reference_batch

    def weight_bytes(nodes: set[str]) -> int:
        return sum(graph.const_bytes(n) for n in nodes)

    costs = {}
    for key, nodes in sorted(needs.items()):
        others = set().union(*(v for k, v in needs.items() if k != key))
        costs[key] = {
            "nodes": len(nodes),
            "exclusive_nodes": len(nodes - others),
            "weight_bytes": weight_bytes(nodes),
            "time_share": ctx.time_share(nodes),
        }
    findings = [
        make_finding(
            OUTPUT_COST,
            [],
            [],
            INFO,
            "outputs need "
            + ", ".join(f"`{k}` {c['nodes']}" for k, c in costs.items())
            + f" of {len(all_needed)} live nodes",
            evidence={"outputs": costs, "live_nodes": len(all_needed)},
            detector=NAME,
        )
    ]
    by_tensor: dict[str, list[str]] = {}
    for key, tensor in graph.output_tensors.items():
        by_tensor.setdefault(tensor, []).append(key)
    for keys in by_tensor.values():
        if len(keys) > 1:
            findings.append(
                make_finding(
                    UNUSED_OUTPUT,
                    [],
                    [graph.output_nodes[k] for k in keys],
                    LOW,
                    f"outputs {', '.join(f'`{k}`' for k in sorted(keys))} return the very same "
                    "tensor: clients need only one of them",
                    evidence={
                        "reason": "same_tensor",
                        "outputs": sorted(keys),
                        "keep": [sorted(keys)[0]],
                    },
                    detector=NAME,
                )
            )
    for key, nodes in sorted(needs.items()):
        skipped = all_needed - nodes
        compute = [n for n in skipped if graph.nodes[n].op not in PLUMBING_OPS]
        if (
            len(compute) < max(MIN_SKIPPED_NODES, MIN_SKIPPED_FRACTION * len(all_needed))
            and weight_bytes(skipped) == 0
        ):
            continue  # e.g. `logit` vs `sigmoid(logit)`: nothing worth pruning
        share = ctx.time_share(skipped)
        severity = MEDIUM if share is not None and share >= 0.10 else LOW
        others = sorted(k for k in needs if k != key)
        findings.append(
            make_finding(
                UNUSED_OUTPUT,
                [],
                sorted(skipped),
                severity,
                f"serving only `{key}` needs {len(nodes)} of {len(all_needed)} live nodes: the "
                f"rest, needed only by {', '.join(f'`{k}`' for k in others)}, is "
                f"{share_text(share, bs)} and {format_bytes(weight_bytes(skipped))} of weights",
                evidence={
                    "reason": "prunable",
                    "keep": [key],
                    "drop": others,
                    "nodes_needed": len(nodes),
                    "nodes_live": len(all_needed),
                    "nodes_saved": len(skipped),
                    "weight_bytes_saved": weight_bytes(skipped),
                    "time_share": share,
                    "time_share_by_batch": ctx.time_shares(skipped),
                },
                detector=NAME,
            )
        )
    return findings


def detect(ctx: DetectorContext) -> list[Finding]:
    """``unused_input``, ``output_cost`` and ``unused_output`` findings."""
    return _unused_input_findings(ctx) + _output_findings(ctx)
