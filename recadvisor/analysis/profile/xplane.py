"""Reading TensorFlow profiler traces (``.xplane.pb``): self time per executed kernel."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RuntimeOpTime:
    """Total self time of one runtime kernel (one node of the executed graph) in a trace."""

    name: str
    op: str
    self_ps: int
    events: int


_OP_EVENT_NAME = re.compile(r"^(?P<node>[^:\s][^:]*):(?P<op>_?[A-Za-z][A-Za-z0-9_]*)$")


def _load_xspace(path: Path) -> Any:
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # older/newer layouts ship it as a top-level tsl package
        from tsl.profiler.protobuf import xplane_pb2  # type: ignore[no-redef]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    return space


def read_xplane_op_times(path: str | Path) -> list[RuntimeOpTime]:
    """Sum the self time of every kernel event in an ``.xplane.pb`` trace, per runtime node.

    Kernel events are recognized by their metadata: name ``node:OpType`` (with ``OpType`` as
    display name for expensive kernels, none for inline ones). A kernel's self time is its
    duration minus the kernel events nested inside it
    on the same thread (e.g. a function call op running its body inline).

    Args:
        path: the ``.xplane.pb`` file ``tf.profiler`` wrote.

    Returns:
        One :class:`RuntimeOpTime` per (runtime node name, kernel), largest first.
    """
    space = _load_xspace(Path(path))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for plane in space.planes:
        kernels: dict[int, tuple[str, str]] = {}
        for md_id, md in plane.event_metadata.items():
            m = _OP_EVENT_NAME.match(md.name)
            # expensive kernels carry the op type as display name; inexpensive ones (run
            # inline, traced at host_tracer_level 3) carry only the "node:OpType" name
            if m is not None and md.display_name in ("", m.group("op")):
                kernels[md_id] = (m.group("node"), m.group("op"))
        if not kernels:
            continue
        for line in plane.lines:
            events = sorted(
                (e.offset_ps, e.offset_ps + e.duration_ps, kernels[e.metadata_id])
                for e in line.events
                if e.metadata_id in kernels
            )
            self_time = [end - start for start, end, _ in events]
            stack: list[tuple[int, int]] = []  # (end, index) of enclosing kernel events
            for i, (start, end, _) in enumerate(events):
                while stack and stack[-1][0] <= start:
                    stack.pop()
                if stack and end <= stack[-1][0]:
                    self_time[stack[-1][1]] -= end - start
                stack.append((end, i))
            for (_, _, key), spent in zip(events, self_time, strict=True):
                acc = totals[key]
                acc[0] += max(spent, 0)
                acc[1] += 1
    result = [RuntimeOpTime(n, op, ps, cnt) for (n, op), (ps, cnt) in totals.items()]
    return sorted(result, key=lambda r: (-r.self_ps, r.name))
