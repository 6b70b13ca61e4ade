"""Opening a SavedModel: validation, signature choice, and loading.

:func:`inspect_saved_model` reads ``saved_model.pb`` as a protocol buffer without executing
anything, so that corrupt files, unknown signatures and unsafe ops are reported before TensorFlow
runs a single op of the model. :func:`load_model` then loads it (TF2 object-graph SavedModels with
``tf.saved_model.load``; TF1/Estimator exports with a ``tf.compat.v1.Session``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recadvisor.errors import ModelLoadError, SignatureError
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class SavedModelInfo:
    """What ``saved_model.pb`` says, read without executing the model.

    Attributes:
        path: the SavedModel directory.
        source_format: ``tf2`` (written by ``tf.saved_model.save`` / Keras) or ``tf1``.
        tags: tag set of the meta graph used.
        signatures: signature key -> spec, for every serving signature.
        op_counts: op type -> count over the graph and its whole function library, as stored.
        meta_graph: the MetaGraphDef proto (read-only).
    """

    path: str
    source_format: str
    tags: tuple[str, ...]
    signatures: dict[str, SignatureSpec]
    op_counts: dict[str, int] = field(default_factory=dict)
    meta_graph: Any = None

    def choose_signature(self, requested: str | None = None) -> SignatureSpec:
        """Pick the signature to work on.

        Args:
            requested: an explicit key (``--signature``); else ``serving_default``; else the
                only signature there is.

        Returns:
            The chosen signature's spec.

        Raises:
            SignatureError: the key is unknown, or the choice is ambiguous, or it has no outputs.
        """
        available = ", ".join(sorted(self.signatures)) or "(none)"
        if requested is not None:
            if requested not in self.signatures:
                raise SignatureError(
                    f"signature '{requested}' not found in {self.path}; available: {available}"
                )
            spec = self.signatures[requested]
        elif DEFAULT_SIGNATURE in self.signatures:
            spec = self.signatures[DEFAULT_SIGNATURE]
        elif len(self.signatures) == 1:
            spec = next(iter(self.signatures.values()))
        elif not self.signatures:
            raise SignatureError(f"{self.path} has no serving signature; re-export it with one")
        else:
            raise SignatureError(
                f"{self.path} has several signatures and no '{DEFAULT_SIGNATURE}'; "
                f"pick one with --signature: {available}"
            )
        if not spec.outputs:
            raise SignatureError(f"signature '{spec.key}' in {self.path} has no outputs")
        return spec


def _tensor_info(key: str, proto: Any) -> TensorInfo:
    tf = import_tf()
    dtype = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "unknown"
    if proto.HasField("coo_sparse") or proto.HasField("composite_tensor"):
        dtype = f"{dtype}(composite)"
    shape_proto = proto.tensor_shape
    if shape_proto.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in shape_proto.dim)
    return TensorInfo(key, dtype, shape)


def _count_ops(meta_graph: Any) -> dict[str, int]:
    counts: Counter[str] = Counter(n.op for n in meta_graph.graph_def.node)
    for fn in meta_graph.graph_def.library.function:
        counts.update(n.op for n in fn.node_def)
    return dict(counts.most_common())


def resolve_model_dir(path: str | Path) -> Path:
    """Check that ``path`` is a SavedModel directory and return it.

    Raises:
        ModelLoadError: missing path, a file, or a directory with no ``saved_model.pb``.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model directory '{p}' does not exist")
    if p.is_file():
        hint = f"; pass its folder '{p.parent}'" if p.name.startswith("saved_model.pb") else ""
        raise ModelLoadError(f"'{p}' is a file, not a SavedModel directory{hint}")
    if not (p / "saved_model.pb").is_file() and not (p / "saved_model.pbtxt").is_file():
        nested = sorted(q.parent for q in p.glob("*/saved_model.pb"))
        hint = f"; did you mean '{nested[0]}'?" if nested else ""
        raise ModelLoadError(f"'{p}' is not a SavedModel: no saved_model.pb in it{hint}")
    return p


def inspect_saved_model(path: str | Path) -> SavedModelInfo:
    """Read a SavedModel's metadata without executing it.

    Args:
        path: the SavedModel directory.

    Returns:
        A :class:`SavedModelInfo` for the ``serve`` meta graph (or the only one).

    Raises:
        ModelLoadError: not a SavedModel, or ``saved_model.pb`` cannot be parsed.
    """
    p = resolve_model_dir(path)
    tf = import_tf()
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    try:
        if (p / "saved_model.pb").is_file():
            sm.ParseFromString((p / "saved_model.pb").read_bytes())
        else:
            text_format.Parse((p / "saved_model.pbtxt").read_text(), sm)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, RuntimeWarning) as e:
        raise ModelLoadError(f"'{p}/saved_model.pb' is corrupt or truncated ({e})") from e
    if not sm.meta_graphs:
        raise ModelLoadError(f"'{p}/saved_model.pb' holds no meta graph (corrupt or empty file)")
    meta = next(
        (m for m in sm.meta_graphs if SERVE_TAG in m.meta_info_def.tags), sm.meta_graphs[0]
    )
    tags = tuple(meta.meta_info_def.tags)
    is_tf2 = meta.HasField("object_graph_def") and len(meta.object_graph_def.nodes) > 0
    signatures: dict[str, SignatureSpec] = {}
    for key, sig in meta.signature_def.items():
        if key.startswith("__"):  # __saved_model_init_op and friends
            continue
        signatures[key] = SignatureSpec(
            key=key,
            inputs={k: _tensor_info(k, v) for k, v in sorted(sig.inputs.items())},
            outputs={k: _tensor_info(k, v) for k, v in sorted(sig.outputs.items())},
        )
    del tf
    return SavedModelInfo(
        path=str(p),
        source_format="tf2" if is_tf2 else "tf1",
        tags=tags,
        signatures=signatures,
        op_counts=_count_ops(meta),
        meta_graph=meta,
    )


@dataclass
class LoadedModel:
    """A loaded SavedModel and the signature chosen for it.

    For ``tf2`` models ``obj`` is the object ``tf.saved_model.load`` returned and ``function`` the
    signature's concrete function; keep this object alive while using them. For ``tf1`` models
    both are ``None``: freezing loads the model into its own Session.
    """

    info: SavedModelInfo
    spec: SignatureSpec
    obj: Any = None
    function: Any = None

    @property
    def path(self) -> str:
        """The SavedModel directory."""
        return self.info.path


def load_model(path: str | Path, signature: str | None = None) -> LoadedModel:
    """Load a SavedModel and choose its signature.

    Args:
        path: the SavedModel directory.
        signature: signature key; default ``serving_default`` or the only one.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ModelLoadError: the directory is not a loadable SavedModel (e.g. variables missing).
        SignatureError: the signature is unknown or has no outputs.
    """
    info = inspect_saved_model(path)
    spec = info.choose_signature(signature)
    if info.source_format == "tf1":
        return LoadedModel(info=info, spec=spec)
    tf = import_tf()
    try:
        obj = tf.saved_model.load(info.path, tags=list(info.tags) or None)
    except Exception as e:  # TF raises many types here; all mean "cannot load"
        raise ModelLoadError(f"cannot load '{info.path}': {first_line(e)}") from e
    if spec.key not in obj.signatures:
        raise SignatureError(f"signature '{spec.key}' did not load from {info.path}")
    return LoadedModel(info=info, spec=spec, obj=obj, function=obj.signatures[spec.key])


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, shortened."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return type(exc).__name__
