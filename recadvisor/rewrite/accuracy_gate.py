"""Accuracy measurement (and optional gate) of the lossy table passes.

A lossy pass (quantize, share, reduce dimension) runs the graph before and after its rewrite on
the sample inputs and records the largest absolute output difference and, when the sample has
binary labels, the AUC of every score-like output (one value per row) before and after. The
pipeline enforces the plan's limits (``max_abs_diff``, ``max_auc_drop``) and rolls back; when a
caller hands those limits to the pass directly, :func:`check_accuracy` enforces them and raises
:class:`PassRefused` with the measured numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recadvisor.model.edits import protected_nodes, remove_if_unread
from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import LOSSY, PassRefused, RewriteContext, RewritePass
from recadvisor.verify import auc_changes, compare_outputs

log = logging.getLogger(__name__)

DEFAULT_MAX_AUC_DROP = 0.001


@dataclass(frozen=True)
class GateResult:
    """What the gate measured.

    Attributes:
        max_abs_diff: largest absolute difference over all outputs.
        per_output: output key -> max abs diff.
        auc_before / auc_after: output key -> AUC against the labels (empty without labels).
        auc_drop: the largest AUC decrease over the outputs (0.0 without labels).
        rows: number of sample rows compared.
    """

    max_abs_diff: float
    per_output: dict[str, float] = field(default_factory=dict)
    auc_before: dict[str, float] = field(default_factory=dict)
    auc_after: dict[str, float] = field(default_factory=dict)
    auc_drop: float = 0.0
    rows: int = 0

    def summary(self) -> str:
        """``max abs output diff X on N sample rows``, for the passes' notes."""
        return f"max abs output diff {self.max_abs_diff:.3g} on {self.rows} sample rows"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (goes into a pass's stats)."""
        return {
            "max_abs_diff": self.max_abs_diff,
            "per_output": dict(self.per_output),
            "auc_before": dict(self.auc_before),
            "auc_after": dict(self.auc_after),
            "auc_drop": self.auc_drop,
            "rows": self.rows,
        }


def measure_change(
    before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], labels: np.ndarray | None
) -> GateResult:
    """Differences and AUCs between two runs of the same signature
    (:func:`recadvisor.verify.compare_outputs` and :func:`recadvisor.verify.auc_changes`).

    Args:
        before / after: output key -> value.
        labels: binary labels per row, or None.

    Returns:
        A :class:`GateResult`.
    """
    parity = compare_outputs(before, after, tolerance=float("inf"))
    aucs = auc_changes(before, after, labels)
    return GateResult(
        max_abs_diff=parity.max_abs_diff,
        per_output={o.key: o.max_abs_diff for o in parity.outputs},
        auc_before={k: c.before for k, c in aucs.items()},
        auc_after={k: c.after for k, c in aucs.items()},
        auc_drop=float(max([c.drop for c in aucs.values()] or [0.0])),
        rows=parity.rows,
    )


def check_accuracy(
    pass_name: str,
    before: ModelGraph,
    after: ModelGraph,
    context: RewriteContext,
    max_abs_diff: float | None = None,
    max_auc_drop: float | None = None,
) -> GateResult:
    """Run both graphs on ``context.feeds``; refuse the pass when it exceeds a given limit.

    Args:
        pass_name: named in the refusal.
        before / after: the graphs (same contract).
        context: sample inputs and labels.
        max_abs_diff: limit on the largest absolute output difference (None: not checked).
        max_auc_drop: limit on the AUC decrease when labels exist (None: not checked).

    Returns:
        The :class:`GateResult` (the pass records it in its stats).

    Raises:
        PassRefused: a limit is exceeded, or there is no sample to measure on.
    """
    from recadvisor.model.runtime import GraphRunner

    if not context.feeds:
        raise PassRefused(f"{pass_name} is lossy and needs sample data (--data) to be gated")
    feeds = {k: context.feeds[k] for k in before.signature.inputs}
    result = measure_change(GraphRunner(before)(feeds), GraphRunner(after)(feeds), context.labels)
    log.info(
        "%s gate: max abs diff %.3g, AUC drop %.4g", pass_name, result.max_abs_diff, result.auc_drop
    )
    if max_abs_diff is not None and result.max_abs_diff > float(max_abs_diff):
        raise PassRefused(
            f"{pass_name} changes outputs by {result.max_abs_diff:.3g} > max_abs_diff "
            f"{max_abs_diff:g}; raise max_abs_diff in the plan or leave the pass off"
        )
    if max_auc_drop is not None and result.auc_drop > float(max_auc_drop):
        raise PassRefused(
            f"{pass_name} lowers AUC by {result.auc_drop:.4f} > max_auc_drop {max_auc_drop:g} "
            "on the sample labels; leave the pass off"
        )
    return result


class GatedTablePass(RewritePass):
    """Base of the lossy table passes (quantize, share, reduce dimension).

    They share their contract (lossy, same inputs, a 1e-2 default ``max_abs_diff``) and their
    last step: drop the old tables nothing reads any more and measure the new graph against the
    old one with :func:`check_accuracy`.
    """

    exactness = LOSSY
    changes_contract = False
    tolerance = 1e-2  # the pipeline's default max_abs_diff for these passes

    def finish(
        self,
        graph: ModelGraph,
        graph_def: Any,
        old_tables: set[str],
        params: Mapping[str, Any],
        context: RewriteContext,
    ) -> tuple[ModelGraph, GateResult]:
        """Remove the unread old tables, then gate the new graph.

        Args:
            graph: the stage the pass started from.
            graph_def: the rewritten GraphDef (its old tables are removed in place).
            old_tables: names of the replaced table nodes (removed when nothing reads them).
            params: the pass parameters (``max_abs_diff``, ``max_auc_drop``).
            context: sample inputs and labels.

        Returns:
            The new graph and what the gate measured.

        Raises:
            PassRefused: the gate fails or there is no sample data.
        """
        remove_if_unread(graph_def, old_tables, protected_nodes(graph))
        new_graph = graph.replace(graph_def=graph_def)
        gate = check_accuracy(
            self.name,
            graph,
            new_graph,
            context,
            params.get("max_abs_diff"),
            params.get("max_auc_drop"),
        )
        return new_graph, gate
