"""Graph queries the layers share: pass-through ops, walks from an input, an input's sub-graph.

One definition of "an op that passes values through" for the detectors, the rewrite passes and
the ONNX lowering (``model/`` imports neither ``rewrite/`` nor ``analysis/``; they import this):

* :data:`IDENTITY_OPS`, :data:`RESHAPE_OPS`, :data:`SLICE_OPS`, :data:`SHAPE_READERS`: the
  building blocks;
* :data:`VALUE_SELECTING_OPS`: ops that select or repeat a tensor's values through their first
  input (the feature-column sparse path gathers the non-ignored values with ``GatherNd``);
* :data:`VALUE_PRESERVING_OPS` / :data:`ID_PRESERVING_OPS`: followed when tracing a tensor back
  to the node that produced its values (ids back to their hash or lookup);
* :data:`CROSS_OPS`: hashed feature crosses;
* :func:`walk_passthrough` (input -> the readers that end its pass-through chain, i.e. the
  transforms that turn it into ids), :func:`walk_data_edges`, :func:`input_subgraph`;
* :func:`static_shapes`: TensorFlow's static shape of every node's first output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recadvisor.model.graph import ModelGraph, is_control_input, node_name
from recadvisor.tfimport import import_tf

Shape = tuple[int | None, ...]

# Ops that pass a tensor through unchanged (value and, for Identity, shape).
IDENTITY_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})
# Ops that change only the shape of a tensor, never its values' order or meaning.
RESHAPE_OPS = frozenset({"Reshape", "Squeeze", "ExpandDims"})
# Ops that select some of a tensor's values without changing them.
SLICE_OPS = frozenset({"StridedSlice", "Slice"})
# Ops that read only a tensor's shape.
SHAPE_READERS = frozenset({"Shape", "Size", "Rank", "ShapeN"})
# Ops that select or repeat a tensor's values (through input 0) without changing them.
VALUE_SELECTING_OPS = SLICE_OPS | frozenset({"GatherNd", "GatherV2", "Tile", "Transpose"})
# Ops that pass values through unchanged up to shape/dtype: followed when tracing sources.
VALUE_PRESERVING_OPS = (
    IDENTITY_OPS
    | RESHAPE_OPS
    | frozenset({"IdentityN", "EnsureShape", "CheckNumerics", "Cast", "ReadVariableOp"})
)
# Ops that select or rearrange ids without changing them: followed from a gather's indices back
# to the hash / lookup that produced them.
ID_PRESERVING_OPS = (
    VALUE_PRESERVING_OPS
    | SLICE_OPS
    | frozenset({"Tile", "Transpose", "BroadcastTo", "Unpack", "SplitV", "ReverseV2"})
)
# Hashed feature crosses (Keras HashedCrossing, feature columns' crossed_column).
CROSS_OPS = frozenset({"SparseCross", "SparseCrossHashed", "SparseCrossV2"})


def walk_data_edges(
    graph: ModelGraph, start: str, follow: Callable[[Any, int, str], bool]
) -> tuple[set[str], list[tuple[str, int, str]]]:
    """Walk the data edges leaving ``start``, going on through the readers ``follow`` accepts.

    Args:
        graph: the graph.
        start: the node whose outputs are followed.
        follow: ``follow(reader_node, input_position, input_string)``: whether the walk goes on
            through this reader.

    Returns:
        (the nodes visited, ``start`` included; the edges not followed as (reader, input
        position, input string), in walk order).
    """
    stopped: list[tuple[str, int, str]] = []
    frontier = [start]
    seen: set[str] = set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        for reader in dict.fromkeys(graph.consumers.get(current, [])):
            node = graph.nodes[reader]
            for pos, inp in enumerate(node.input):
                if is_control_input(inp) or node_name(inp) != current:
                    continue
                if follow(node, pos, inp):
                    frontier.append(reader)
                else:
                    stopped.append((reader, pos, inp))
    return seen, stopped


def reads_later_output(inp: str) -> bool:
    """Whether an input string names an output other than 0 (``x:1``)."""
    return inp.rpartition(":")[2].isdigit() and not inp.endswith(":0")


def walk_passthrough(
    graph: ModelGraph, start: str, extra_ops: frozenset[str] = frozenset()
) -> tuple[set[str], set[str], list[tuple[str, int]]]:
    """Follow a tensor through Identity/Reshape-like nodes that keep its values.

    This is the "input -> transforms" query: the terminals are the readers that transform the
    input (a hash, a lookup, a cross, a comparison, or a plain numeric use).

    Args:
        graph: the graph.
        start: the node whose output 0 is followed (e.g. an input placeholder).
        extra_ops: more op types to follow through their input 0 (e.g.
            :data:`VALUE_SELECTING_OPS`).

    Returns:
        (pass-through nodes, ``Shape``-like readers, terminal (reader, input position) pairs).
    """
    chain: set[str] = set()

    def follow(node: Any, pos: int, inp: str) -> bool:
        keeps_values = node.op in IDENTITY_OPS or node.op in RESHAPE_OPS or node.op in extra_ops
        if reads_later_output(inp) or node.op in SHAPE_READERS or pos != 0 or not keeps_values:
            return False
        chain.add(node.name)
        return True

    _, stopped = walk_data_edges(graph, start, follow)
    shape_readers = {
        reader
        for reader, _, inp in stopped
        if not reads_later_output(inp) and graph.nodes[reader].op in SHAPE_READERS
    }
    terminals = [
        (reader, pos)
        for reader, pos, inp in stopped
        if reads_later_output(inp) or graph.nodes[reader].op not in SHAPE_READERS
    ]
    return chain, shape_readers, terminals


def input_subgraph(graph: ModelGraph, key: str) -> set[str]:
    """The nodes whose data ancestry holds signature input ``key`` (its sub-graph).

    Args:
        graph: the graph.
        key: a signature input key.

    Returns:
        Node names, the input's placeholder included.
    """
    return {name for name, feats in graph.features_of_node.items() if key in feats}


def static_shapes(graph: ModelGraph) -> dict[str, Shape | None]:
    """Static shape of every node's output 0 (``None`` when the rank is unknown).

    The frozen graph is imported into a scratch ``tf.Graph``, whose shape inference reads the
    placeholders' declared shapes and the constants.
    """
    tf = import_tf()
    with tf.Graph().as_default() as scratch:
        tf.graph_util.import_graph_def(graph.graph_def, name="")
    shapes: dict[str, Shape | None] = {}
    for op in scratch.get_operations():
        if not op.outputs:
            continue
        shape = op.outputs[0].shape
        shapes[op.name] = None if shape.rank is None else tuple(shape.as_list())
    return shapes
