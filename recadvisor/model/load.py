"""Opening a SavedModel: validation, signature choice, and loading.

:func:`inspect_saved_model` reads ``saved_model.pb`` as a protocol buffer without executing
anything, so that corrupt files, unknown signatures and unsafe ops are reported before TensorFlow
runs a single op of the model. :func:`load_model` then loads it (TF2 object-graph SavedModels with
``tf.saved_model.load``; TF1/Estimator exports with a ``tf.compat.v1.Session``).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recadvisor.errors import MemoryLimitError, ModelLoadError, SignatureError
from recadvisor.model.spec import SignatureSpec, TensorInfo
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
MEMORY_LIMIT_ENV = "RECADVISOR_MEMORY_LIMIT"
# loading holds the variables once, freezing copies them into constants, exporting serializes them
MEMORY_FACTOR = 3
_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


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
    meta = next((m for m in sm.meta_graphs if SERVE_TAG in m.meta_info_def.tags), sm.meta_graphs[0])
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


def parse_size(text: str) -> int:
    """Bytes from ``4096``, ``512M``, ``2GiB``, ``1.5 GB`` (case-insensitive).

    Raises:
        ValueError: not a size.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?)?b?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"'{text}' is not a size")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


def memory_limit() -> tuple[int | None, str]:
    """The memory a model may need: ``$RECADVISOR_MEMORY_LIMIT``, else the available memory.

    Returns:
        (bytes or ``None`` when unknown, where the figure came from).

    Raises:
        MemoryLimitError: the environment variable is not a size.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if text:
        try:
            return parse_size(text), MEMORY_LIMIT_ENV
        except ValueError as e:
            raise MemoryLimitError(
                f"{MEMORY_LIMIT_ENV}='{text}' is not a size; give bytes or e.g. 512MiB, 4GB"
            ) from e
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory"
    except (OSError, ValueError, IndexError):
        pass
    return None, "unknown"


def variable_sizes(info: SavedModelInfo) -> dict[str, int]:
    """Variable name -> bytes, from the checkpoint index (nothing is loaded or executed).

    Returns:
        Empty when the model has no readable ``variables/`` index (loading reports that).
    """
    index = Path(info.path) / "variables" / "variables.index"
    if not index.is_file():
        return {}
    tf = import_tf()
    try:
        reader = tf.train.load_checkpoint(str(index.with_suffix("")))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as e:  # noqa: BLE001 - a bad index is reported when the model is loaded
        log.debug("cannot read the checkpoint index of %s: %s", info.path, e)
        return {}
    sizes = {}
    for name, shape in shapes.items():
        dtype = dtypes.get(name)
        width = 0 if dtype is None or dtype == tf.string else dtype.size
        count = 1
        for dim in shape:
            count *= max(int(dim), 0)
        sizes[name.split("/.ATTRIBUTES/")[0]] = count * width  # TF2 checkpoint keys
    return sizes


def check_memory(info: SavedModelInfo) -> None:
    """Refuse, before loading, a model whose variables would not fit the memory limit.

    The estimate is :data:`MEMORY_FACTOR` times the variable bytes (loaded, frozen into
    constants, exported). Set ``RECADVISOR_MEMORY_LIMIT`` (e.g. ``8GiB``) to change the limit.

    Raises:
        MemoryLimitError: the estimate exceeds the limit.
    """
    limit, source = memory_limit()
    sizes = variable_sizes(info)
    if limit is None or not sizes:
        return
    need = MEMORY_FACTOR * sum(sizes.values())
    if need <= limit:
        return
    largest = max(sizes, key=sizes.__getitem__)
    raise MemoryLimitError(
        f"'{info.path}' needs about {need:,} bytes of memory ({MEMORY_FACTOR}x its "
        f"{sum(sizes.values()):,} bytes of variables; largest '{largest}' {sizes[largest]:,} "
        f"bytes), more than the limit of {limit:,} bytes ({source}); it was not loaded; free "
        f"memory or raise {MEMORY_LIMIT_ENV}"
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
        MemoryLimitError: its variables need more memory than :func:`memory_limit` allows.
    """
    info = inspect_saved_model(path)
    spec = info.choose_signature(signature)
    check_memory(info)
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
