"""Running and re-exporting a :class:`ModelGraph`.

One code path serves both: :func:`build_serving_module` wraps the frozen ``GraphDef`` in a
``tf.Module`` whose ``tf.function`` imports the graph with

* each lookup-table placeholder mapped to a re-created ``tf.lookup.StaticHashTable``, and
* large ``Const`` nodes (embedding tables, big dense kernels) kept inline while their total stays
  within a budget (:data:`INLINE_BUDGET_BYTES`), and mapped to variables beyond it, so
  the exported ``GraphDef`` stays small enough (it must stay under 2 GB) while small models keep
  every weight inline. Each variable is one more captured input and ``ReadVariableOp`` per call:
  inlining the sample models' tables measured 2-4% faster at batch 1.

A frozen ``tf.while_loop`` is lowered to ``Enter``/``Merge``/``Exit`` frames. ``tf.function``'s
automatic control dependencies treat every imported ``Merge`` as an op that must run and tie the
outputs to it, across the loop frame, which the executor rejects ("inputs from different
frames"). Graphs with loop frames are therefore traced without them (``_disable_acd``); the
imported graph has no side effects to order. Other graphs keep them: without control outputs,
Grappler will not inline a function holding stateful ops (table lookups), which keeps an extra
call level at run time and makes the exported model impossible to freeze again.

The same module runs the graph in-process (:class:`GraphRunner`, with every large constant a
variable, which is quicker to start) and is what :func:`export_saved_model` saves, so a parity
check of the runner checks the export's ops and values too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.errors import ExportError
from recadvisor.model.graph import ModelGraph, canonical_tensor
from recadvisor.output import atomic_output_dir
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

# Constants at least this big are candidates for variables in the SavedModel ...
VARIABLE_MIN_BYTES = 64 * 1024
# ... and become variables once the big constants kept inline (smallest first) exceed this total.
INLINE_BUDGET_BYTES = 32 * 1024 * 1024
# Ops of a lowered (frozen) tf.while_loop frame.
LOOP_FRAME_OPS = frozenset({"Enter", "RefEnter", "Exit", "RefExit", "NextIteration", "LoopCond"})


@dataclass
class ServingModule:
    """The ``tf.Module`` built for a ModelGraph and its concrete serving function."""

    module: Any
    function: Any
    input_keys: list[str]
    output_keys: list[str]


def _var_name(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", node).strip("/") or "w"


def variable_consts(
    graph: ModelGraph,
    variable_min_bytes: int = VARIABLE_MIN_BYTES,
    inline_budget_bytes: int = INLINE_BUDGET_BYTES,
) -> set[str]:
    """Names of the ``Const`` nodes to export as variables.

    Constants smaller than ``variable_min_bytes`` always stay inline; larger ones stay inline,
    smallest first, while their running total is within ``inline_budget_bytes``; the rest (the
    biggest) become variables.
    """
    big = sorted(
        (graph.const_bytes(n.name), n.name)
        for n in graph.graph_def.node
        if n.op == "Const" and graph.const_bytes(n.name) >= variable_min_bytes
    )
    inline_total = 0
    as_variables = set()
    for size, name in big:
        if inline_total + size <= inline_budget_bytes:
            inline_total += size
        else:
            as_variables.add(name)
    return as_variables


def build_serving_module(
    graph: ModelGraph,
    variable_min_bytes: int = VARIABLE_MIN_BYTES,
    inline_budget_bytes: int = INLINE_BUDGET_BYTES,
) -> ServingModule:
    """Wrap a ModelGraph in a ``tf.Module`` with one concrete serving function.

    Args:
        graph: the graph to serve.
        variable_min_bytes: ``Const`` nodes at least this large may become variables ...
        inline_budget_bytes: ... once the large ones kept inline exceed this total
            (:func:`variable_consts`); 0 turns every large constant into a variable.

    Returns:
        A :class:`ServingModule`; call ``function(*tensors)`` in ``input_keys`` order.
    """
    tf = import_tf()
    graph_def = graph.copy_graph_def()
    module = tf.Module()
    variables: dict[str, Any] = {}
    to_variables = variable_consts(graph, variable_min_bytes, inline_budget_bytes)
    for node in graph_def.node:
        if node.name not in to_variables:
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        variables[node.name] = tf.Variable(value, trainable=False, name=_var_name(node.name))
        dtype = node.attr["dtype"].type
        node.op = "Placeholder"
        for attr in list(node.attr):
            del node.attr[attr]
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    tables: dict[str, Any] = {}
    for name, table in graph.tables.items():
        if table.values.ndim != 1:
            raise ExportError(
                f"lookup table '{name}' maps to {table.values.ndim}-D values; only scalar-valued "
                "tables can be re-created"
            )
        key_dtype = tf.dtypes.as_dtype(table.key_dtype)
        value_dtype = tf.dtypes.as_dtype(table.value_dtype)
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(table.keys, dtype=key_dtype), tf.constant(table.values, dtype=value_dtype)
        )
        default = b"" if value_dtype == tf.string else np.zeros((), value_dtype.as_numpy_dtype)
        tables[name] = tf.lookup.StaticHashTable(init, default_value=default)
    module.recadvisor_variables = list(variables.values())
    module.recadvisor_tables = list(tables.values())

    input_keys = list(graph.signature.inputs)
    output_keys = list(graph.output_tensors)
    inputs = graph.signature.inputs
    specs = [
        tf.TensorSpec(
            None if inputs[k].shape is None else list(inputs[k].shape),
            tf.dtypes.as_dtype(inputs[k].dtype),
            name=k,
        )
        for k in input_keys
    ]
    return_elements = [graph.output_tensors[k] for k in output_keys]

    def serve(*args: Any) -> dict[str, Any]:
        input_map = {graph.input_tensors[k]: a for k, a in zip(input_keys, args, strict=True)}
        for name, var in variables.items():
            input_map[name + ":0"] = var.read_value()
        for name, table in tables.items():
            input_map[name + ":0"] = tf.identity(table.resource_handle)
        outs = tf.graph_util.import_graph_def(
            graph_def, input_map=input_map, return_elements=return_elements, name="model"
        )
        result = {}
        for k, t in zip(output_keys, outs, strict=True):
            out = tf.identity(t, name=op_name_for(k))
            declared = graph.signature.outputs.get(k)
            if declared is not None and declared.shape is not None:
                out.set_shape(declared.shape)  # keep the declared signature shape exactly
            result[k] = out
        return result

    # loop frames: no automatic control dependencies (see the module docstring)
    has_loop_frames = any(n.op in LOOP_FRAME_OPS for n in graph_def.node)
    function = tf.function(
        serve,
        input_signature=specs,
        autograph=False,
        experimental_attributes={"_disable_acd": True} if has_loop_frames else None,
    ).get_concrete_function()
    module.serve = function
    return ServingModule(module, function, input_keys, output_keys)


_OP_NAME_FIRST = re.compile(r"[A-Za-z0-9.]")
_OP_NAME_REST = re.compile(r"[^A-Za-z0-9_.\-/]")


def op_name_for(key: str) -> str:
    """A valid TensorFlow op name for a signature key (the key itself when it is one).

    TF1 signatures can use keys such as ``out"'&`` that are not valid op names; the signature
    keeps the key, only the node that produces it is named differently.
    """
    name = _OP_NAME_REST.sub("_", key) or "output"
    return name if _OP_NAME_FIRST.match(name) else f"o{name}"


class GraphRunner:
    """Runs a ModelGraph on numpy inputs (keyed by signature input key).

    Args:
        graph: the graph to run.
        inline_budget_bytes: as in :func:`build_serving_module`. The default 0 keeps every large
            constant a variable: the values and ops are the same as in the export, and the
            first call is 0.1-0.3 s faster on the samples (instantiating a function runs
            Grappler over its inline constants), which counts in a rebuild that runs a parity
            check after every pass. The export itself is checked after reloading.
    """

    def __init__(self, graph: ModelGraph, inline_budget_bytes: int = 0) -> None:
        self.graph = graph
        self.serving = build_serving_module(graph, inline_budget_bytes=inline_budget_bytes)

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """The call's input tensors, in ``input_keys`` order (convert once, run many times)."""
        tf = import_tf()
        return [
            tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(self.graph.signature.inputs[k].dtype))
            for k in self.serving.input_keys
        ]

    def run(self, args: list[Any]) -> dict[str, np.ndarray]:
        """One call on prepared tensors; numpy outputs keyed by signature output key."""
        return {k: v.numpy() for k, v in self.serving.function(*args).items()}

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on numpy feeds; returns numpy outputs keyed by signature output key."""
        return self.run(self.prepare(feeds))


def export_saved_model(
    graph: ModelGraph,
    out_dir: str | Path,
    force: bool = False,
    signature_keys: list[str] | None = None,
    inline_budget_bytes: int = INLINE_BUDGET_BYTES,
) -> Path:
    """Write a ModelGraph as a SavedModel, atomically.

    Args:
        graph: the graph to export.
        out_dir: target directory (created; must not exist unless ``force``).
        force: replace an existing directory.
        signature_keys: signature keys to publish the function under (default: the graph's
            own key). Keras exports carry ``serve`` and ``serving_default`` for one function.
        inline_budget_bytes: total size of the large constants kept inline; the biggest ones
            beyond it are saved as variables (see :func:`variable_consts`).

    Returns:
        The output directory.

    Raises:
        ExportError: TensorFlow cannot keep an input key as a TF2 signature argument name (TF1
            signatures allow any string; TF2 refuses some keys and renames others, e.g.
            ``a-b`` -> ``a_b``), or it could not save the module. Nothing is written then.
    """
    from recadvisor.model.load import inspect_saved_model

    tf = import_tf()
    serving = build_serving_module(graph, inline_budget_bytes=inline_budget_bytes)
    keys = signature_keys or [graph.signature.key]
    wanted = set(graph.signature.inputs)
    with atomic_output_dir(out_dir, force) as tmp:
        try:
            tf.saved_model.save(
                serving.module, str(tmp), signatures={k: serving.function for k in keys}
            )
        except OSError as e:
            raise ExportError(f"cannot write SavedModel to '{out_dir}': {e}") from e
        except ValueError as e:
            if "argument name" in str(e) or "parameter name" in str(e):
                # TF2 refuses the argument names (e.g. '<script>...', 'in')
                raise _unkept_keys_error(sorted(wanted), str(e)) from e
            raise ExportError(f"TensorFlow could not save the SavedModel: {e}") from e
        saved = set(inspect_saved_model(tmp).signatures[keys[0]].inputs)
        if saved != wanted:
            raise _unkept_keys_error(
                sorted(wanted - saved), f"TensorFlow saved them as {sorted(saved - wanted)}"
            )
    return Path(out_dir)


def _unkept_keys_error(keys: list[str], detail: str) -> ExportError:
    return ExportError(
        f"input key(s) {', '.join(repr(k) for k in keys)} cannot be kept in a TensorFlow 2 "
        f"SavedModel signature ({detail.splitlines()[0] if detail else 'refused'}); rename "
        "them in the original export to rebuild it"
    )


def run_loaded(
    function: Any, spec_inputs: Mapping[str, Any], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run a loaded signature function on numpy feeds."""
    tf = import_tf()
    kwargs = {
        k: tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(spec_inputs[k].dtype))
        for k in spec_inputs
    }
    return {k: v.numpy() for k, v in function(**kwargs).items()}


def probe_tensors(
    graph: ModelGraph, tensors: Iterable[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` and return the values of intermediate ``tensors``.

    Args:
        graph: the graph.
        tensors: tensor names (``node:k``).
        feeds: inputs in the graph's contract.

    Returns:
        tensor name -> numpy value.
    """
    names = [canonical_tensor(t) for t in dict.fromkeys(tensors)]
    if not names:
        return {}
    keys = {f"probe_{i}": t for i, t in enumerate(names)}
    probe = graph.replace(output_tensors=dict(keys))
    outs = GraphRunner(probe)({k: feeds[k] for k in graph.signature.inputs})
    return {keys[k]: v for k, v in outs.items()}
