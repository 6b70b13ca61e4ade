"""Running and re-exporting a :class:`ModelGraph`.

One code path serves both: :func:`build_serving_module` wraps the frozen ``GraphDef`` in a
``tf.Module`` whose ``tf.function`` imports the graph with

* each lookup-table placeholder mapped to a re-created ``tf.lookup.StaticHashTable``, and
* each large ``Const`` (embedding tables, big dense kernels) mapped to a ``tf.Variable``, so the
  exported ``GraphDef`` stays small (it must stay under 2 GB) and weights live in ``variables/``.

The same module runs the graph in-process (:class:`GraphRunner`) and is what
:func:`export_saved_model` saves, so a parity check of the runner checks the export too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.errors import ExportError
from recadvisor.model.graph import ModelGraph
from recadvisor.output import atomic_output_dir
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

# Constants at least this big are kept as variables in the SavedModel.
VARIABLE_MIN_BYTES = 64 * 1024


@dataclass
class ServingModule:
    """The ``tf.Module`` built for a ModelGraph and its concrete serving function."""

    module: Any
    function: Any
    input_keys: list[str]
    output_keys: list[str]


def _var_name(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", node).strip("/") or "w"


def build_serving_module(
    graph: ModelGraph, variable_min_bytes: int = VARIABLE_MIN_BYTES
) -> ServingModule:
    """Wrap a ModelGraph in a ``tf.Module`` with one concrete serving function.

    Args:
        graph: the graph to serve.
        variable_min_bytes: ``Const`` nodes at least this large become variables.

    Returns:
        A :class:`ServingModule`; call ``function(*tensors)`` in ``input_keys`` order.
    """
    tf = import_tf()
    graph_def = graph.copy_graph_def()
    module = tf.Module()
    variables: dict[str, Any] = {}
    for node in graph_def.node:
        if node.op != "Const" or graph.const_bytes(node.name) < variable_min_bytes:
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
            out = tf.identity(t, name=k)
            declared = graph.signature.outputs.get(k)
            if declared is not None and declared.shape is not None:
                out.set_shape(declared.shape)  # keep the declared signature shape exactly
            result[k] = out
        return result

    function = tf.function(serve, input_signature=specs, autograph=False).get_concrete_function()
    module.serve = function
    return ServingModule(module, function, input_keys, output_keys)


class GraphRunner:
    """Runs a ModelGraph on numpy inputs (keyed by signature input key)."""

    def __init__(self, graph: ModelGraph) -> None:
        self.graph = graph
        self.serving = build_serving_module(graph)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns numpy outputs keyed by signature output key."""
        tf = import_tf()
        args = [
            tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(self.graph.signature.inputs[k].dtype))
            for k in self.serving.input_keys
        ]
        outs = self.serving.function(*args)
        return {k: v.numpy() for k, v in outs.items()}


def export_saved_model(
    graph: ModelGraph,
    out_dir: str | Path,
    force: bool = False,
    signature_keys: list[str] | None = None,
) -> Path:
    """Write a ModelGraph as a SavedModel, atomically.

    Args:
        graph: the graph to export.
        out_dir: target directory (created; must not exist unless ``force``).
        force: replace an existing directory.
        signature_keys: signature keys to publish the function under (default: the graph's
            own key). Keras exports carry ``serve`` and ``serving_default`` for one function.

    Returns:
        The output directory.

    Raises:
        ExportError: TensorFlow could not save the module.
    """
    tf = import_tf()
    serving = build_serving_module(graph)
    keys = signature_keys or [graph.signature.key]
    with atomic_output_dir(out_dir, force) as tmp:
        try:
            tf.saved_model.save(
                serving.module, str(tmp), signatures={k: serving.function for k in keys}
            )
        except OSError as e:
            raise ExportError(f"cannot write SavedModel to '{out_dir}': {e}") from e
    return Path(out_dir)


def run_loaded(function: Any, spec_inputs: Mapping[str, Any], feeds: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
    """Run a loaded signature function on numpy feeds."""
    tf = import_tf()
    kwargs = {k: tf.constant(feeds[k], dtype=tf.dtypes.as_dtype(spec_inputs[k].dtype))
              for k in spec_inputs}
    return {k: v.numpy() for k, v in function(**kwargs).items()}
