"""Freezing a loaded SavedModel signature into a :class:`ModelGraph`.

TF2 models: ``convert_variables_to_constants_v2`` on the signature's concrete function. It folds
variables into ``Const`` nodes but leaves every lookup table as a free ``Placeholder`` of dtype
``resource``; we export each table's contents with ``LookupTableExportV2`` from the live captured
handle and keep them in ``ModelGraph.tables`` keyed by that placeholder.

TF1/Estimator models: load into a ``tf.compat.v1.Session`` (which runs the main op, so tables are
initialized), freeze with ``graph_util.convert_variables_to_constants``, export each table's
contents from the session and replace its ``HashTableV2`` node by the same resource placeholder, so
both kinds of model end up in one representation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from recadvisor.errors import FreezeError, ModelLoadError
from recadvisor.model.graph import (
    TABLE_CREATE_OPS,
    TABLE_OPS,
    LookupTable,
    ModelGraph,
    node_name,
    source_through,
)
from recadvisor.model.load import LoadedModel, first_line
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)


def freeze(loaded: LoadedModel) -> ModelGraph:
    """Freeze the loaded model's chosen signature.

    Args:
        loaded: the result of :func:`recadvisor.model.load.load_model`.

    Returns:
        A self-contained :class:`ModelGraph`.

    Raises:
        FreezeError: the graph uses a resource that is neither a variable nor a lookup table.
    """
    if loaded.info.source_format == "tf1":
        return _freeze_tf1(loaded)
    return _freeze_tf2(loaded)


def _table_dtypes(graph_def: Any, placeholder: str) -> tuple[Any, Any, Any] | None:
    """(key dtype, value dtype, default node name) of the find op reading ``placeholder``."""
    readers: dict[str, list[Any]] = {}
    for n in graph_def.node:
        for inp in n.input:
            readers.setdefault(node_name(inp), []).append(n)
    frontier, seen = [placeholder], set()
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        for n in readers.get(name, []):
            if n.op in ("Identity", "IdentityN"):
                frontier.append(n.name)
            elif n.op in ("LookupTableFindV2", "LookupTableFind"):
                default = node_name(n.input[2]) if len(n.input) > 2 else None
                return n.attr["Tin"].type, n.attr["Tout"].type, default
            elif n.op in ("LookupTableImportV2", "LookupTableInsertV2"):
                return n.attr["Tin"].type, n.attr["Tout"].type, None
    return None


def _const_value(graph_def: Any, name: str | None) -> Any:
    tf = import_tf()
    if name is None:
        return None
    nodes = {n.name: n for n in graph_def.node}
    node = nodes.get(source_through(nodes, name, ("Identity", "Snapshot"), limit=32))
    if node is None or node.op != "Const":
        return None
    value = tf.make_ndarray(node.attr["value"].tensor)
    return value.item() if value.ndim == 0 else value


def _has_readers(graph_def: Any, name: str) -> bool:
    return any(node_name(i) == name for n in graph_def.node for i in n.input)


def _export_table(handle: Any, key_dtype: Any, value_dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    tf = import_tf()
    keys, values = tf.raw_ops.LookupTableExportV2(
        table_handle=handle,
        Tkeys=tf.dtypes.as_dtype(key_dtype),
        Tvalues=tf.dtypes.as_dtype(value_dtype),
    )
    return keys.numpy(), values.numpy()


def _freeze_tf2(loaded: LoadedModel) -> ModelGraph:
    tf = import_tf()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    func = loaded.function
    try:
        frozen = convert_variables_to_constants_v2(func)
    except Exception as e:  # noqa: BLE001 - grappler raises assorted types
        # A variable read no output needs (e.g. an unused ``tf.gather(variable, ids)``) is a
        # stateful op without a control edge to the outputs: grappler then refuses to inline
        # the function, and reads inside a function are not converted ("expected type
        # resource != float"). Aggressive inlining inlines anyway and prunes such reads; the
        # frozen graph is still checked against the model by its callers.
        try:
            frozen = convert_variables_to_constants_v2(func, aggressive_inlining=True)
        except Exception:  # noqa: BLE001
            raise FreezeError(
                f"cannot freeze signature '{loaded.spec.key}' of {loaded.path}: {first_line(e)}"
            ) from e
        log.info("froze %s with aggressive inlining (%s)", loaded.path, first_line(e))
    graph_def = frozen.graph.as_graph_def()
    present = {n.name for n in graph_def.node}

    args, kwargs = func.structured_input_signature
    if args or not isinstance(kwargs, dict) or not isinstance(func.structured_outputs, dict):
        raise FreezeError(f"signature '{loaded.spec.key}' does not take and return dicts")
    arg_keys = sorted(kwargs)  # tf.nest flattens dicts in sorted key order
    n_sig = len(arg_keys)
    input_tensors = {}
    for arg, tensor in zip(arg_keys, func.inputs[:n_sig], strict=True):
        # TF2 turns a signature key that is no Python argument name ("user-id") into one
        # ("user_id") and keeps the key as the TensorSpec's name
        spec_name = kwargs[arg].name
        renamed = arg not in loaded.spec.inputs and spec_name in loaded.spec.inputs
        key = spec_name if renamed else arg
        input_tensors[key] = tensor.name
        if node_name(tensor.name) not in present:
            # an input the graph never reads can vanish during freezing; put it back
            ph = graph_def.node.add()
            ph.name = node_name(tensor.name)
            ph.op = "Placeholder"
            ph.attr["dtype"].type = tensor.dtype.as_datatype_enum
            ph.attr["shape"].shape.CopyFrom(tensor.shape.as_proto())
    out_keys = sorted(func.structured_outputs)
    output_tensors = {k: t.name for k, t in zip(out_keys, frozen.outputs, strict=True)}
    missing = set(loaded.spec.inputs) - set(input_tensors)
    if missing or set(output_tensors) != set(loaded.spec.outputs):
        raise FreezeError(
            f"frozen signature '{loaded.spec.key}' does not match its declaration "
            f"(inputs missing: {sorted(missing)}, outputs: {sorted(output_tensors)})"
        )

    captured = {t.name: h for t, h in zip(func.inputs[n_sig:], func.captured_inputs, strict=True)}
    variable_names = _variable_names(func, captured, present)
    tables: dict[str, LookupTable] = {}
    sig_nodes = {node_name(t) for t in input_tensors.values()}
    for node in list(graph_def.node):
        if node.op != "Placeholder" or node.name in sig_nodes:
            continue
        if node.attr["dtype"].type != tf.resource.as_datatype_enum:
            continue
        dtypes = _table_dtypes(graph_def, node.name)
        if dtypes is None:
            if _has_readers(graph_def, node.name):
                raise FreezeError(
                    f"resource '{node.name}' in signature '{loaded.spec.key}' is read by ops "
                    "recadvisor cannot freeze (not a variable or lookup table)"
                )
            graph_def.node.remove(node)
            continue
        handle = captured.get(node.name + ":0")
        if handle is None:
            raise FreezeError(f"no captured handle found for table placeholder '{node.name}'")
        key_dtype, value_dtype, default_node = dtypes
        try:
            keys, values = _export_table(handle, key_dtype, value_dtype)
        except Exception as e:  # noqa: BLE001
            raise FreezeError(f"cannot read lookup table '{node.name}': {first_line(e)}") from e
        tables[node.name] = LookupTable(
            placeholder=node.name,
            key_dtype=tf.dtypes.as_dtype(key_dtype).name,
            value_dtype=tf.dtypes.as_dtype(value_dtype).name,
            keys=keys,
            values=values,
            default_value=_const_value(graph_def, default_node),
            origin="captured table resource",
        )
    return ModelGraph(
        graph_def=graph_def,
        signature=loaded.spec,
        input_tensors=input_tensors,
        output_tensors=output_tensors,
        tables=tables,
        source=loaded.path,
        source_format="tf2",
        variable_names=variable_names,
    )


def _variable_names(func: Any, captured: dict[str, Any], present: set[str]) -> dict[str, str]:
    """Frozen const node name -> variable name, matching captured handles to the variables."""
    by_handle = {}
    for var in getattr(func, "variables", ()):
        try:
            by_handle[id(var.handle)] = var.name.split(":")[0]
        except (AttributeError, ValueError):
            continue
    names = {}
    for tensor_name, handle in captured.items():
        node = node_name(tensor_name)
        if node in present and id(handle) in by_handle:
            names[node] = by_handle[id(handle)]
    return names


def _freeze_tf1(loaded: LoadedModel) -> ModelGraph:
    tf = import_tf()
    v1 = tf.compat.v1
    sig_def = loaded.info.meta_graph.signature_def[loaded.spec.key]
    input_tensors = {k: v.name for k, v in sig_def.inputs.items()}
    output_tensors = {k: v.name for k, v in sig_def.outputs.items()}
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        try:
            v1.saved_model.loader.load(sess, list(loaded.info.tags), loaded.path)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"cannot load '{loaded.path}': {first_line(e)}") from e
        out_nodes = sorted({node_name(t) for t in output_tensors.values()})
        try:
            graph_def = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), out_nodes
            )
        except Exception as e:  # noqa: BLE001
            raise FreezeError(f"cannot freeze '{loaded.path}': {first_line(e)}") from e
        present = {n.name for n in graph_def.node}
        for key, tname in input_tensors.items():
            if node_name(tname) not in present:
                src = graph.get_operation_by_name(node_name(tname)).node_def
                graph_def.node.add().CopyFrom(src)
                log.debug("kept unread input %s", key)
        tables: dict[str, LookupTable] = {}
        for node in graph_def.node:
            if node.op not in TABLE_CREATE_OPS:
                continue
            if node.op == "HashTable":
                raise FreezeError(
                    f"table '{node.name}' is a legacy reference-type HashTable; re-export the "
                    "model with TF >= 1.13 (HashTableV2)"
                )
            key_dtype, value_dtype = node.attr["key_dtype"].type, node.attr["value_dtype"].type
            handle = graph.get_tensor_by_name(node.name + ":0")
            export = v1.raw_ops.LookupTableExportV2(
                table_handle=handle,
                Tkeys=tf.dtypes.as_dtype(key_dtype),
                Tvalues=tf.dtypes.as_dtype(value_dtype),
            )
            keys, values = sess.run(export)
            default_node = None
            for reader in graph_def.node:
                reads_table = reader.input and node_name(reader.input[0]) == node.name
                if reader.op in TABLE_OPS and reads_table:
                    if reader.op == "LookupTableFindV2":
                        default_node = node_name(reader.input[2])
            tables[node.name] = LookupTable(
                placeholder=node.name,
                key_dtype=tf.dtypes.as_dtype(key_dtype).name,
                value_dtype=tf.dtypes.as_dtype(value_dtype).name,
                keys=keys,
                values=values,
                default_value=_const_value(graph_def, default_node),
                origin=f"TF1 {node.op} initialized by the main op",
            )
    for node in graph_def.node:
        if node.name in tables:
            node.op = "Placeholder"
            for attr in list(node.attr):
                del node.attr[attr]
            node.attr["dtype"].type = tf.resource.as_datatype_enum
            node.attr["shape"].shape.CopyFrom(tf.TensorShape([]).as_proto())
            del node.input[:]
    return ModelGraph(
        graph_def=graph_def,
        signature=loaded.spec,
        input_tensors=input_tensors,
        output_tensors=output_tensors,
        tables=tables,
        source=loaded.path,
        source_format="tf1",
    )
