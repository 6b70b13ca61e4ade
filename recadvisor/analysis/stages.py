"""Which serving stage an op belongs to: ``string/lookup``, ``embedding gather``, ``dense/MLP``
or ``other``.

A recommender's CPU time splits into three stages worth telling apart, because each has its own
remedy:

* ``string/lookup``: string formatting and parsing, hashing, vocabulary lookups and bucketizing,
  i.e. turning raw feature values into ids (remedy: move ids upstream, ``Bucketize``, ...);
* ``embedding gather``: reading rows of embedding tables (remedy: smaller/shared/fp16 tables);
* ``dense/MLP``: matrix products, bias adds, activations, normalization, softmax, including the
  fused oneDNN kernels Grappler substitutes at run time (``_MklNativeFusedMatMul``...).

:func:`stage_of` decides from the op type alone (graph or runtime op type). :func:`stage_of_node`
also looks at the node's neighbours in a :class:`~recadvisor.model.graph.ModelGraph`: a gather
counts as an embedding gather only when it reads a table-like weight (a constant or resource of
rank >= 2), a string ``Equal`` is a string op, and an ``Add`` fed by a ``MatMul`` is a bias add.
"""

from __future__ import annotations

from recadvisor.model.graph import (
    GATHER_OPS,
    STRING_OPS,
    TABLE_CREATE_OPS,
    TABLE_OPS,
    ModelGraph,
    is_control_input,
    node_name,
)
from recadvisor.model.queries import CROSS_OPS, READ_THROUGH_OPS

STRING_LOOKUP = "string/lookup"
EMBEDDING_GATHER = "embedding gather"
DENSE_MLP = "dense/MLP"
OTHER = "other"
STAGES: tuple[str, ...] = (STRING_LOOKUP, EMBEDDING_GATHER, DENSE_MLP, OTHER)

# Feature crosses (``tf.feature_column.crossed_column``, Keras ``HashedCrossing``): the values of
# several inputs formatted, concatenated and hashed into one id per combination.
FEATURE_CROSS_OPS = CROSS_OPS
# Turning raw values into ids: hashing, vocabulary tables, bucketizing, crossing.
_ID_OPS = frozenset({"Bucketize", "_TensorToHashBucketFast"}) | FEATURE_CROSS_OPS
# Embedding reads beyond the gathers the graph module lists: oneDNN's fused kernel.
_EXTRA_GATHER_OPS = frozenset({"_MklEmbeddingBag"})
# Ops that do the heavy lifting of a dense layer (the "head" of a Grappler fusion).
DENSE_HEAD_OPS = frozenset(
    {
        "MatMul",
        "BatchMatMul",
        "BatchMatMulV2",
        "BatchMatMulV3",
        "Einsum",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "SparseMatMul",
    }
)
# Element-wise ops Grappler folds into a preceding MatMul/Conv (the "tail" of a fusion).
DENSE_TAIL_OPS = frozenset(
    {
        "BiasAdd",
        "Relu",
        "Relu6",
        "Elu",
        "Selu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Softplus",
        "Softsign",
        "Gelu",
    }
)
_DENSE_OTHER_OPS = frozenset(
    {
        "Softmax",
        "LogSoftmax",
        "FusedBatchNorm",
        "FusedBatchNormV2",
        "FusedBatchNormV3",
        "_FusedBatchNormEx",
        "_MklLayerNorm",
        "_MklFusedMish",
        "_MklSwish",
    }
)
_DENSE_OPS = DENSE_HEAD_OPS | DENSE_TAIL_OPS | _DENSE_OTHER_OPS
_ADD_OPS = frozenset({"Add", "AddV2"})
_EQUALITY_OPS = frozenset({"Equal", "NotEqual"})
_DT_STRING = 7  # tensorflow DataType enum value of tf.string


def is_dense_kernel(op_type: str) -> bool:
    """True for runtime kernels like ``_MklNativeFusedMatMul``, ``_FusedConv2D``, ``_MklMatMul``."""
    if not op_type.startswith("_"):
        return False
    return any(word in op_type for word in ("MatMul", "Conv", "Einsum"))


def stage_of(op_type: str) -> str:
    """The serving stage of an op type.

    Args:
        op_type: a graph op type (``StringToHashBucketFast``) or runtime kernel name
            (``_TensorToHashBucketFast``, ``_MklNativeFusedMatMul``).

    Returns:
        One of :data:`STAGES`: ``string/lookup`` for string ops, hashing, table lookups,
        ``Bucketize`` and feature crosses; ``embedding gather`` for gathers and sparse segment
        reductions; ``dense/MLP`` for matrix products, bias adds, activations, softmax, batch
        norm and fused matmul/conv kernels; ``other`` for everything else.
    """
    if op_type in STRING_OPS or op_type in TABLE_OPS or op_type in TABLE_CREATE_OPS:
        return STRING_LOOKUP
    if op_type in _ID_OPS:
        return STRING_LOOKUP
    if op_type in GATHER_OPS or op_type in _EXTRA_GATHER_OPS:
        return EMBEDDING_GATHER
    if op_type in _DENSE_OPS or is_dense_kernel(op_type):
        return DENSE_MLP
    return OTHER


def _weight_rank(graph: ModelGraph, tensor: str) -> int | None:
    """Rank of a weight read through Identity-like nodes; None when it is not a weight."""
    name = node_name(tensor)
    for _ in range(64):
        node = graph.nodes.get(name)
        if node is None:
            return None
        if node.op == "Const":
            return len(node.attr["value"].tensor.tensor_shape.dim)
        if node.op in ("Placeholder", "VarHandleOp", "VariableV2") and name not in set(
            graph.input_nodes.values()
        ):
            shape = node.attr["shape"].shape
            if node.attr["dtype"].type == 20:  # DT_RESOURCE: a variable handle, rank unknown
                return 2
            return None if shape.unknown_rank else len(shape.dim)
        if node.op not in READ_THROUGH_OPS or not node.input:
            return None
        name = node_name(node.input[0])
    return None


def stage_of_node(graph: ModelGraph, name: str) -> str:
    """The serving stage of one node of a ModelGraph, refined by its neighbours.

    Refinements over :func:`stage_of`: a gather whose params are not a weight of rank >= 2
    (e.g. a gather over activations or shapes) is ``other``; ``Equal``/``NotEqual`` on strings is
    ``string/lookup``; ``Add``/``AddV2`` reading a ``MatMul``-like node is a bias add
    (``dense/MLP``).

    Args:
        graph: the frozen graph.
        name: a node name in ``graph`` (unknown names fall back to ``other``).

    Returns:
        One of :data:`STAGES`.
    """
    node = graph.nodes.get(name)
    if node is None:
        return OTHER
    stage = stage_of(node.op)
    if stage == EMBEDDING_GATHER and node.op in ("GatherV2", "Gather", "ResourceGather"):
        rank = _weight_rank(graph, node.input[0]) if node.input else None
        return EMBEDDING_GATHER if rank is not None and rank >= 2 else OTHER
    if stage != OTHER:
        return stage
    if node.op in _EQUALITY_OPS and node.attr["T"].type == _DT_STRING:
        return STRING_LOOKUP
    if node.op in _ADD_OPS:
        for inp in node.input:
            if is_control_input(inp):
                continue
            src = graph.nodes.get(node_name(inp))
            if src is not None and (src.op in DENSE_HEAD_OPS or is_dense_kernel(src.op)):
                return DENSE_MLP
    return OTHER
