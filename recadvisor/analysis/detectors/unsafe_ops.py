"""Unsafe ops: anything in a SavedModel that touches files, the network or Python.

Scanned on the stored ``MetaGraphDef`` (graph plus the whole function library) *before* the model
is loaded or run, so a hostile or careless export is reported without executing it. The CLI and
:func:`recadvisor.analysis.analyze.analyze` refuse to go on (``UnsafeModelError``) unless
``--allow-unsafe-ops`` is given.

Checkpoint I/O is normal in every SavedModel: TF2 exports carry ``__inference__traced_save`` /
``_traced_restore`` functions and TF1 exports a ``save/`` scope, both reached from the
``saver_def``. ``SaveV2``/``RestoreV2``/``MergeV2Checkpoints`` and the like are therefore allowed
inside the saver (graph nodes in the ancestry of the ``saver_def`` tensors and the functions only
they call) and flagged anywhere else. Every other unsafe op is flagged wherever it is, the saver
included. Vocabulary files read by table initializers (``InitializeTableFromTextFile*``) are
SavedModel assets and are not flagged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from recadvisor.analysis.findings import (
    HIGH,
    MEDIUM,
    UNSAFE_OP,
    DetectorContext,
    Finding,
    make_finding,
)
from recadvisor.errors import UnsafeModelError
from recadvisor.model.graph import node_name

NAME = "unsafe_ops"

# checkpoint I/O: fine inside the saver, unsafe anywhere else
CHECKPOINT_OPS = frozenset(
    {"SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints"}
)
UNSAFE_OPS: dict[str, str] = {
    # reading files
    "ReadFile": "reads a file",
    "MatchingFiles": "lists files",
    "ImmutableConst": "maps a file",
    "LoadAndRemapMatrix": "reads a checkpoint",
    "GenerateVocabRemapping": "reads vocabulary files",
    "DecodeProtoV2": "may read a proto descriptor file",
    "TFRecordDataset": "reads files",
    "TFRecordDatasetV2": "reads files",
    "TextLineDataset": "reads files",
    "FixedLengthRecordDataset": "reads files",
    "FixedLengthRecordDatasetV2": "reads files",
    "CSVDataset": "reads files",
    "CSVDatasetV2": "reads files",
    "ExperimentalCSVDataset": "reads files",
    "LMDBDataset": "reads files",
    "ExperimentalLMDBDataset": "reads files",
    "LoadDataset": "reads files",
    "ExperimentalSqlDataset": "reads a database",
    "SqlDataset": "reads a database",
    "SnapshotDataset": "reads and writes files",
    "SnapshotDatasetV2": "reads and writes files",
    # writing files
    "WriteFile": "writes a file",
    "SaveDataset": "writes files",
    "SaveDatasetV2": "writes files",
    "DatasetToTFRecord": "writes files",
    "ExperimentalDatasetToTFRecord": "writes files",
    "CreateSummaryFileWriter": "writes files",
    "CreateSummaryDbWriter": "writes a database",
    "DebugIdentityV2": "dumps tensors to files",
    "DebugIdentityV3": "dumps tensors to files",
    "FileSystemSetConfiguration": "changes file-system settings",
    # Python
    "PyFunc": "runs Python code",
    "PyFuncStateless": "runs Python code",
    "EagerPyFunc": "runs Python code",
    # network
    "DataServiceDataset": "talks to a data service",
    "DataServiceDatasetV2": "talks to a data service",
    "DataServiceDatasetV3": "talks to a data service",
    "DataServiceDatasetV4": "talks to a data service",
    "RegisterDataset": "talks to a data service",
    "RegisterDatasetV2": "talks to a data service",
    "GcsConfigureCredentials": "configures cloud storage access",
    "GcsConfigureBlockCache": "configures cloud storage access",
    "BigQueryReader": "reads from BigQuery",
    "GenerateBigQueryReaderPartitions": "reads from BigQuery",
}
# op-name patterns for the families not worth listing one by one
UNSAFE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Reader(V2)?$"), "reads files"),
    (re.compile(r"^Write\w*Summary$|^ImportEvent$"), "writes summaries to files"),
    (re.compile(r"Rpc"), "makes network calls"),
    (re.compile(r"PyFunc"), "runs Python code"),
)
ALLOWED_OPS = frozenset(
    {
        "InitializeTableFromTextFile",
        "InitializeTableFromTextFileV2",
        "ShardedFilename",
        "ShardedFilespec",
        "ReaderReset",
        "ReaderResetV2",
    }
)
FUNCTION_ATTR_KEYS = ("f", "then_branch", "else_branch", "body", "cond", "branches")


def unsafe_reason(op: str) -> str | None:
    """Why an op type is unsafe outside the saver, or ``None`` when it is not."""
    if op in ALLOWED_OPS:
        return None
    if op in CHECKPOINT_OPS:
        return "reads or writes checkpoint files"
    if op in UNSAFE_OPS:
        return UNSAFE_OPS[op]
    for pattern, reason in UNSAFE_PATTERNS:
        if pattern.search(op):
            return reason
    return None


def _node_reason(node: Any) -> str | None:
    if node.op == "PrintV2":  # prints to stderr unless told to write a file
        return "prints to a file" if node.attr["output_stream"].s.startswith(b"file://") else None
    return unsafe_reason(node.op)


@dataclass(frozen=True)
class UnsafeOpHit:
    """One unsafe node found in the stored model.

    Attributes:
        op: op type.
        node: node name.
        location: ``graph`` or the function it sits in.
        reason: what it does.
    """

    op: str
    node: str
    location: str
    reason: str


def _called_functions(node: Any, library_names: set[str]) -> set[str]:
    called = set()
    if node.op in library_names:
        called.add(node.op)
    for key, value in node.attr.items():
        if value.HasField("func") and (key in FUNCTION_ATTR_KEYS or value.func.name):
            called.add(value.func.name)
        if value.HasField("list"):
            called.update(f.name for f in value.list.func)
    return called & library_names


def _closure(start: Iterable[str], calls: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        stack.extend(calls.get(fn, ()))
    return seen


def _graph_ancestors(nodes: dict[str, Any], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(node_name(i) for i in nodes[name].input if node_name(i) in nodes)
    return seen


def scan_meta_graph(meta_graph: Any) -> list[UnsafeOpHit]:
    """Find unsafe nodes in a MetaGraphDef's graph and function library.

    Args:
        meta_graph: a ``MetaGraphDef`` (e.g. ``SavedModelInfo.meta_graph``).

    Returns:
        Every unsafe node outside the saver, plus non-checkpoint unsafe nodes inside it.
    """
    graph_def = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph_def.library.function}
    names = set(functions)
    calls = {
        name: set().union(*(_called_functions(n, names) for n in fn.node_def))
        if fn.node_def
        else set()
        for name, fn in functions.items()
    }
    nodes = {n.name: n for n in graph_def.node}
    saver = meta_graph.saver_def if meta_graph.HasField("saver_def") else None
    saver_roots = []
    if saver is not None:
        saver_roots = [node_name(t) for t in (saver.save_tensor_name, saver.restore_op_name) if t]
    saver_nodes = _graph_ancestors(nodes, saver_roots)
    # functions reached from anything but the saver's own call nodes count as serving code
    serving_calls: set[str] = set()
    saver_calls: set[str] = set()
    for node in graph_def.node:
        called = _called_functions(node, names)
        is_saver_call = node.name in saver_nodes and node.op in (
            "StatefulPartitionedCall",
            "PartitionedCall",
        )
        (saver_calls if is_saver_call else serving_calls).update(called)
    serving_fns = _closure(serving_calls, calls)
    saver_only = _closure(saver_calls, calls) - serving_fns

    hits: list[UnsafeOpHit] = []
    for node in graph_def.node:
        reason = _node_reason(node)
        if reason is None or (node.op in CHECKPOINT_OPS and node.name in saver_nodes):
            continue
        hits.append(UnsafeOpHit(node.op, node.name, "graph", reason))
    for name, fn in functions.items():
        for node in fn.node_def:
            reason = _node_reason(node)
            if reason is None or (node.op in CHECKPOINT_OPS and name in saver_only):
                continue
            hits.append(UnsafeOpHit(node.op, node.name, name, reason))
    return hits


def find_unsafe_ops(info: Any) -> list[Finding]:
    """Unsafe-op findings for a SavedModel, without executing it.

    Args:
        info: a :class:`~recadvisor.model.load.SavedModelInfo` (its ``meta_graph``).

    Returns:
        One ``unsafe_op`` finding per op type found (empty for a clean model).
    """
    meta_graph = getattr(info, "meta_graph", None)
    if meta_graph is None:
        return []
    by_op: dict[str, list[UnsafeOpHit]] = defaultdict(list)
    for hit in scan_meta_graph(meta_graph):
        by_op[hit.op].append(hit)
    findings = []
    for op, hits in sorted(by_op.items()):
        locations = sorted({h.location for h in hits})
        reason = hits[0].reason
        severity = MEDIUM if op == "DecodeProtoV2" else HIGH
        findings.append(
            make_finding(
                UNSAFE_OP,
                features=(),
                nodes=[f"{h.location}/{h.node}" if h.location != "graph" else h.node for h in hits],
                severity=severity,
                message=(
                    f"{len(hits)} {op} op(s) {reason} (in {', '.join(locations[:3])}"
                    f"{'...' if len(locations) > 3 else ''}); the model was scanned, not run"
                ),
                evidence={"op": op, "count": len(hits), "reason": reason, "locations": locations},
                detector=NAME,
            )
        )
    return findings


def refuse_unsafe(
    findings: list[Finding], model_path: str, allow: bool, command: str = "analyze"
) -> None:
    """Raise :class:`UnsafeModelError` for unsafe findings unless ``allow``.

    Args:
        findings: the result of :func:`find_unsafe_ops`.
        model_path: the SavedModel directory (named in the message).
        allow: ``--allow-unsafe-ops`` was given.
        command: the command that refuses (named in the way out).
    """
    if not findings or allow:
        return
    ops = ", ".join(str(f.evidence.get("op")) for f in findings)
    raise UnsafeModelError(
        f"'{model_path}' contains ops that touch files, the network or Python ({ops}); it was "
        f"not executed; inspect it and pass --allow-unsafe-ops to {command} it anyway"
    )


def detect(ctx: DetectorContext) -> list[Finding]:
    """The detector form: scan ``ctx.info`` (nothing without it)."""
    return find_unsafe_ops(ctx.info) if ctx.info is not None else []
