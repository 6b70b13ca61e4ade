"""The contract every rewrite pass follows.

A pass is a small class in ``recadvisor/rewrite/<name>.py`` that subclasses :class:`RewritePass`,
says in its docstring what it rewrites, when it refuses and whether it is exact, and implements
:meth:`RewritePass.apply`. ``apply`` never mutates its input ModelGraph: it copies the GraphDef
(``graph.copy_graph_def()``) and returns a new ModelGraph inside a :class:`PassResult`.

A pass that does not apply raises :class:`PassRefused` with the reason; the pipeline records it
and goes on. After each pass the pipeline runs the candidate against the previous stage on the
sample inputs (``recadvisor.verify``); a pass outside its tolerance is rolled back.

Passes that change the serving contract (input dtypes/shapes, e.g. string ids -> int64 bucket
ids) describe each changed input with an :class:`InputEncoding`; the pipeline uses
``InputEncoding.encode`` to turn raw sample inputs into the new inputs for the parity check, and
the rebuilder writes the encodings to ``feature_contract.json`` so clients (and
``recadvisor.encode_inputs``) can compute the new inputs exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

import numpy as np

from recadvisor.errors import RecAdvisorError
from recadvisor.model.graph import ModelGraph

EXACT = "exact"
EXACT_IN_RANGE = "exact-in-range"
LOSSY = "lossy"
EXACTNESS_LEVELS = (EXACT, EXACT_IN_RANGE, LOSSY)


class PassRefused(RecAdvisorError):
    """A pass does not apply to this graph (nothing to do, or unsafe to do); not an error."""

    exit_code = 8


class InputEncodingDict(TypedDict):
    """``InputEncoding.to_dict()``: one entry of ``feature_contract.json``'s ``encodings``."""

    input: str
    kind: str
    source_dtype: str
    target_dtype: str
    params: dict[str, Any]


@dataclass(frozen=True)
class InputEncoding:
    """How a client computes one new input from its raw value.

    Attributes:
        input_key: the signature input key (unchanged name, new dtype/shape).
        kind: ``hash_bucket`` (Fingerprint64 mod ``num_buckets``, TensorFlow's
            ``StringToHashBucketFast``), ``vocabulary`` (table lookup with an OOV rule),
            ``as_string_hash_bucket`` (a number formatted like ``tf.strings.as_string`` then
            hashed), ``bucketize`` (index of the boundary interval), ``broadcast`` and so on.
        source_dtype / target_dtype: dtype names before and after.
        params: everything the encoder needs (e.g. ``num_buckets``, ``vocabulary_file``,
            ``default_value``, ``boundaries``); JSON-serializable.
    """

    input_key: str
    kind: str
    source_dtype: str
    target_dtype: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> InputEncodingDict:
        """JSON form written to ``feature_contract.json``."""
        return {
            "input": self.input_key,
            "kind": self.kind,
            "source_dtype": self.source_dtype,
            "target_dtype": self.target_dtype,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class PassResult:
    """What a pass did.

    Attributes:
        name: the pass name.
        graph: the rewritten ModelGraph (a new object).
        stats: counts and sizes, e.g. ``{"nodes_removed": 12, "bytes_saved": 4096}``.
        encodings: new input encodings when the pass changed the contract.
        notes: human-readable remarks (ranges, fallbacks, what was left alone).
    """

    name: str
    graph: ModelGraph
    stats: dict[str, Any] = field(default_factory=dict)
    encodings: tuple[InputEncoding, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RewriteContext:
    """What a pass may look at besides the graph.

    Attributes:
        feeds: sample inputs in the *current* stage's contract (signature key -> array).
        raw_feeds: the same rows in the original model's contract.
        labels: labels for the sample rows, when the data has them (for accuracy gates).
        log_stats: statistics of the full logs (``recadvisor stats``, a
            :class:`recadvisor.stats.LogStats`), or ``None``: passes that decide from data
            (rows hit, observed values, per-request inputs) prefer them to the sample rows.
    """

    feeds: Mapping[str, np.ndarray]
    raw_feeds: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None
    log_stats: Any = None


class RewritePass:
    """Base class: subclasses set the class attributes and implement :meth:`apply`."""

    name: ClassVar[str] = ""
    exactness: ClassVar[str] = EXACT
    changes_contract: ClassVar[bool] = False
    # max abs diff allowed against the previous stage (exact passes: float reordering only)
    tolerance: ClassVar[float] = 1e-5

    def apply(
        self, graph: ModelGraph, params: Mapping[str, Any], context: RewriteContext
    ) -> PassResult:
        """Rewrite ``graph``; raise :class:`PassRefused` when the pass does not apply.

        Args:
            graph: the current stage (never mutated).
            params: the plan entry's parameters for this pass.
            context: sample inputs and labels.

        Returns:
            A :class:`PassResult` holding the new graph.
        """
        raise NotImplementedError


class ParameterlessPass(RewritePass):
    """Base of the passes that take no parameters: :meth:`check_params` rejects any."""

    def check_params(self, params: Mapping[str, Any], graph: ModelGraph) -> None:
        """Reject any parameter (the plan checker calls this before running the pass).

        Raises:
            ValueError: ``params`` is not empty.
        """
        if params:
            raise ValueError(f"{self.name} takes no params, got {sorted(params)}")


def fallback_row(
    table: np.ndarray, how: str, pass_name: str, mean_of: np.ndarray | None = None
) -> np.ndarray:
    """The one row that ids outside a rewritten (smaller) table read.

    Args:
        table: the original table.
        how: ``zeros``, or ``mean`` (of ``mean_of`` when it has rows, else of the whole table).
        pass_name: for the refusal message.
        mean_of: the rows to average, e.g. the rows a pruning pass dropped.

    Returns:
        One row (shape ``table.shape[1:]``, the table's dtype).

    Raises:
        PassRefused: ``how`` is neither ``mean`` nor ``zeros``.
    """
    if how == "zeros":
        return np.zeros(table.shape[1:], table.dtype)
    if how == "mean":
        rows = mean_of if mean_of is not None and mean_of.shape[0] else table
        return rows.mean(axis=0).astype(table.dtype)
    raise PassRefused(f"{pass_name}: fallback must be 'mean' or 'zeros', got '{how}'")
