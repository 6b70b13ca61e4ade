"""The passes' own matchers, asked before a suggestion naming a pass is called exact.

``analyze`` suggests a pass for some targets (inputs, tables); the rebuild runs the pass, which
decides by itself what it rewrites. So the advice never promises more than the pass will do, it
asks the pass's matcher first (:func:`refusals`): a target the matcher refuses leaves the exact
suggestion and gets a ``<pass>_refused`` suggestion with the matcher's reason instead.

Each matcher is the very function the pass's ``apply`` decides with:

* ``ids_upstream``: :func:`recadvisor.rewrite.ids_upstream.plan_input` per input;
* ``merge_duplicates``: :func:`recadvisor.rewrite.merge_duplicates.refusals`
  (over ``find_duplicates``);
* ``drop_unused_inputs``: :func:`recadvisor.rewrite.drop_unused_inputs.refusals`.

They see the graph as the pipeline hands it to them: after ``strip_control_deps``, which every
preset runs first (:func:`pipeline_view`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recadvisor.model.graph import ModelGraph
from recadvisor.rewrite.base import PassRefused, RewriteContext

Refusals = Callable[[ModelGraph, Sequence[str]], dict[str, str]]


def ids_upstream_refusals(graph: ModelGraph, targets: Sequence[str]) -> dict[str, str]:
    """Inputs :func:`~recadvisor.rewrite.ids_upstream.plan_input` refuses, with its reason."""
    from recadvisor.rewrite.ids_upstream import InputRefused, plan_input

    refused = {}
    for key in targets:
        try:
            if plan_input(graph, key) is None:
                refused[key] = f"nothing hashes or looks up `{key}`"
        except InputRefused as e:
            refused[key] = str(e)
    return refused


@dataclass(frozen=True)
class Matcher:
    """Where a pass's matcher lives and which plan parameter lists its targets.

    Attributes:
        module / function: the matcher, ``function(graph, targets) -> {target: reason}``.
        applied_stat: the pass's stats key listing the targets it rewrote (what a rebuild's
            record is checked against).
        targets_param: the plan parameter holding the targets (narrowed to the accepted ones),
            or None when the pass takes no target list.
    """

    module: str
    function: str
    applied_stat: str
    targets_param: str | None = None

    def load(self) -> Refusals:
        """The matcher function (imported lazily: passes import TensorFlow-heavy code)."""
        return getattr(importlib.import_module(self.module), self.function)


MATCHERS: dict[str, Matcher] = {
    "ids_upstream": Matcher(
        "recadvisor.rewrite.matchers", "ids_upstream_refusals", "inputs_changed", "inputs"
    ),
    "merge_duplicates": Matcher("recadvisor.rewrite.merge_duplicates", "refusals", "targets"),
    "drop_unused_inputs": Matcher(
        "recadvisor.rewrite.drop_unused_inputs", "refusals", "unread_inputs"
    ),
}


def pipeline_view(graph: ModelGraph) -> ModelGraph:
    """``graph`` after ``strip_control_deps`` (what every later pass is given), or ``graph``
    itself when that pass has nothing to strip."""
    from recadvisor.rewrite.strip_control_deps import StripControlDepsPass

    try:
        return StripControlDepsPass().apply(graph, {}, RewriteContext({}, {})).graph
    except PassRefused:
        return graph


def refusals(pass_name: str, graph: ModelGraph, targets: Sequence[str]) -> dict[str, str] | None:
    """Ask ``pass_name``'s own matcher which of ``targets`` it will not rewrite on ``graph``.

    Args:
        pass_name: a registry pass name.
        graph: the graph as the pass will see it (:func:`pipeline_view`).
        targets: the suggestion's targets.

    Returns:
        Target -> the matcher's reason for each refused target (empty: all accepted), or None
        when the pass has no matcher (its suggestions cannot be called exact).
    """
    matcher = MATCHERS.get(pass_name)
    if matcher is None:
        return None
    return matcher.load()(graph, targets)


def applied_targets(pass_name: str, stats: Mapping[str, Any]) -> set[str]:
    """The targets an applied pass rewrote, from its stats (:attr:`Matcher.applied_stat`).

    Raises:
        KeyError: the pass has no matcher.
    """
    return set(stats.get(MATCHERS[pass_name].applied_stat, ()))
