"""Cost attribution: the profiled op time of a model charged to its input features.

The rule. Every profiled node's time (``OpTiming.self_us``, fused kernels already charged to
the graph nodes they replace) is charged to the signature inputs in its data ancestry
(:attr:`ModelGraph.features_of_node`, united over the nodes a fused kernel absorbed):

* a node fed by no signature input (a weight read, a constant computation redone at run time)
  goes to the bucket ``"(no feature)"``;
* ``rule="split"`` (default): a node fed by k features gives each of them 1/k of its time,
  except a node fed by at least 2 features that make up at least ``shared_fraction`` (default
  one half) of the *used* inputs (those some output depends on): that node is common work such
  as the MLP over the concatenated embeddings, or a whole tower in a two-tower model, and goes
  to ``"(shared)"``. So a feature's share is the work done for it alone plus its part of small
  interactions (a DIN attention over ``hist_items`` and ``item_id`` is split between those two),
  not an arbitrary slice of the big common MLP;
* ``rule="exclusive"``: only nodes fed by exactly one feature are charged to it; every node fed
  by 2 or more goes to ``"(shared)"`` (a lower bound of what dropping the feature would save);
* ``rule="even"``: every node is split evenly among its features, with no ``"(shared)"`` bucket
  (an upper bound that charges the MLP to everyone).

Shares are fractions of the mapped op time at one batch size (``BatchProfile.mapped_us``), so
``per_feature`` (features plus the two buckets) sums to 1, as do ``per_op_type`` and
``per_stage``; ``per_feature_stage[f]`` and ``per_feature_op_type[f]`` each sum to
``per_feature[f]``. Op time is summed over threads and measured under the profiler: it ranks
costs, it is not latency (see :class:`~recadvisor.bench.LatencySummary`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from recadvisor.analysis.profile import BatchProfile
from recadvisor.analysis.stages import STAGES, stage_of_node
from recadvisor.model.graph import ModelGraph

SHARED = "(shared)"
NO_FEATURE = "(no feature)"
BUCKETS: tuple[str, ...] = (SHARED, NO_FEATURE)
RULES: tuple[str, ...] = ("split", "exclusive", "even")
DEFAULT_SHARED_FRACTION = 0.5


@dataclass(frozen=True)
class Attribution:
    """Op time at one batch size, charged to features, op types and stages.

    Attributes:
        batch_size: the batch size profiled.
        per_feature: feature (signature input key) or bucket -> share of the mapped op time;
            every signature input is listed (0.0 when nothing is charged to it); sums to ~1.
        per_op_type: graph op type -> share.
        per_stage: stage (``string/lookup``, ``embedding gather``, ``dense/MLP``, ``other``)
            -> share; all four listed.
        per_feature_stage: feature or bucket -> stage -> share (non-zero entries only).
        per_feature_op_type: feature or bucket -> op type -> share (non-zero entries only).
        per_node_features: profiled node -> the features in its ancestry (sorted).
        rule / shared_fraction: the attribution rule used.
        mapped_fraction: the profile's fraction of traced op time mapped to graph nodes.
        per_node_bucket: profiled node -> where its time went: a feature, ``(shared)``,
            ``(no feature)``, or ``(split)`` when divided among several features.
    """

    batch_size: int
    per_feature: dict[str, float]
    per_op_type: dict[str, float]
    per_stage: dict[str, float]
    per_feature_stage: dict[str, dict[str, float]]
    per_feature_op_type: dict[str, dict[str, float]]
    per_node_features: dict[str, list[str]]
    rule: str = "split"
    shared_fraction: float = DEFAULT_SHARED_FRACTION
    mapped_fraction: float = 1.0
    per_node_bucket: dict[str, str] = field(default_factory=dict)

    def feature_summary(self, feature: str, top: int = 2) -> str:
        """One sentence on what a feature costs, e.g. ``feature 'age' costs 7.0% of op time at
        batch 256, 96% of it in StringToHashBucketFast``.

        Args:
            feature: a signature input key (or bucket name).
            top: how many op types to name.
        """
        share = self.per_feature.get(feature, 0.0)
        text = f"feature '{feature}' costs {100 * share:.1f}% of op time at batch {self.batch_size}"
        ops = self.per_feature_op_type.get(feature, {})
        if share <= 0 or not ops:
            return text
        parts = [f"{100 * v / share:.0f}% of it in {k}" for k, v in list(ops.items())[:top]]
        return text + ", " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "batch_size": self.batch_size,
            "rule": self.rule,
            "shared_fraction": self.shared_fraction,
            "mapped_fraction": self.mapped_fraction,
            "per_feature": dict(self.per_feature),
            "per_op_type": dict(self.per_op_type),
            "per_stage": dict(self.per_stage),
            "per_feature_stage": {k: dict(v) for k, v in self.per_feature_stage.items()},
            "per_feature_op_type": {k: dict(v) for k, v in self.per_feature_op_type.items()},
            "per_node_features": {k: list(v) for k, v in self.per_node_features.items()},
            "per_node_bucket": dict(self.per_node_bucket),
        }


def used_features(graph: ModelGraph) -> frozenset[str]:
    """Signature inputs that at least one signature output depends on.

    Args:
        graph: the frozen graph.

    Returns:
        The set of input keys in the data ancestry of the outputs.
    """
    feats = graph.features_of_node
    out: set[str] = set()
    for node in graph.output_nodes.values():
        out |= feats.get(node, frozenset())
    return frozenset(out)


def _charges(features: frozenset[str], rule: str, shared_min: int) -> list[tuple[str, float]]:
    """(feature or bucket, fraction) pairs a node with these features is charged to."""
    if not features:
        return [(NO_FEATURE, 1.0)]
    if len(features) == 1:
        return [(next(iter(features)), 1.0)]
    if rule == "exclusive" or (rule == "split" and len(features) >= shared_min):
        return [(SHARED, 1.0)]
    part = 1.0 / len(features)
    return [(f, part) for f in sorted(features)]


def _sorted_desc(d: dict[str, float]) -> dict[str, float]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


def attribute(
    graph: ModelGraph,
    batch: BatchProfile,
    rule: str = "split",
    *,
    shared_fraction: float = DEFAULT_SHARED_FRACTION,
) -> Attribution:
    """Charge a batch profile's op time to features, op types and stages.

    Args:
        graph: the frozen graph the profile was mapped onto.
        batch: the profile at one batch size.
        rule: ``split`` (default), ``exclusive`` or ``even``; see the module docstring.
        shared_fraction: with ``split``, a node fed by at least this fraction of the used
            inputs (and at least 2) is ``(shared)``.

    Returns:
        An :class:`Attribution`; with no profiled time every share is 0.

    Raises:
        ValueError: unknown rule, or ``shared_fraction`` outside (0, 1].
    """
    if rule not in RULES:
        raise ValueError(f"unknown attribution rule '{rule}'; use one of: {', '.join(RULES)}")
    if not 0 < shared_fraction <= 1:
        raise ValueError(f"shared_fraction must be in (0, 1], got {shared_fraction}")
    feats_of = graph.features_of_node
    used = used_features(graph) or frozenset(graph.signature.inputs)
    shared_min = max(2, math.ceil(shared_fraction * len(used) - 1e-9))
    total = sum(t.self_us for t in batch.ops)

    per_feature: dict[str, float] = {k: 0.0 for k in graph.signature.inputs}
    per_feature.update({b: 0.0 for b in BUCKETS})
    per_op_type: dict[str, float] = defaultdict(float)
    per_stage: dict[str, float] = {s: 0.0 for s in STAGES}
    per_feature_stage: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_feature_op: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_node_features: dict[str, list[str]] = {}
    per_node_bucket: dict[str, str] = {}

    for timing in batch.ops:
        features = frozenset(feats_of.get(timing.node, frozenset()))
        for absorbed in timing.fused_nodes:
            features |= feats_of.get(absorbed, frozenset())
        per_node_features[timing.node] = sorted(features)
        if total <= 0:
            continue
        share = timing.self_us / total
        stage = stage_of_node(graph, timing.node)
        per_op_type[timing.op] += share
        per_stage[stage] += share
        charges = _charges(features, rule, shared_min)
        per_node_bucket[timing.node] = charges[0][0] if len(charges) == 1 else "(split)"
        for who, part in charges:
            amount = share * part
            per_feature[who] = per_feature.get(who, 0.0) + amount
            per_feature_stage[who][stage] += amount
            per_feature_op[who][timing.op] += amount

    return Attribution(
        batch_size=batch.batch_size,
        per_feature=_sorted_desc(per_feature),
        per_op_type=_sorted_desc(dict(per_op_type)),
        per_stage=per_stage,
        per_feature_stage={k: _sorted_desc(dict(v)) for k, v in per_feature_stage.items()},
        per_feature_op_type={k: _sorted_desc(dict(v)) for k, v in per_feature_op.items()},
        per_node_features=per_node_features,
        rule=rule,
        shared_fraction=shared_fraction,
        mapped_fraction=batch.mapped_fraction,
        per_node_bucket=per_node_bucket,
    )
