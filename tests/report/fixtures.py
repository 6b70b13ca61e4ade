"""Hand-made report inputs with exactly the keys of the real artifacts.

Each builder checks its dict against the artifact's schema (:mod:`recadvisor.schemas`) before
returning it, so the fixtures cannot drift from what ``analyze``, ``rebuild`` and ``compare``
write. Names carry HTML payloads (``XSS``) so every test also checks escaping: a node, a
feature, an op, an output, a path and a finding message that would run script if inserted raw.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from recadvisor.analysis.analyze import ANALYSIS_SCHEMA_VERSION, AnalysisDict
from recadvisor.analysis.onnx_profile import OnnxProfileDict
from recadvisor.compare import COMPARE_SCHEMA_VERSION, ComparisonDict
from recadvisor.plan import SCHEMA_VERSION as PLAN_SCHEMA_VERSION
from recadvisor.rebuild import REBUILD_SCHEMA_VERSION, RebuildDict
from recadvisor.report.index_view import IndexEntry
from recadvisor.schemas import check_schema

XSS = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2">'
EVIL_NODE = f"tower/{XSS}/MatMul"
EVIL_FEATURE = f"age{XSS_IMG}"
EVIL_OUTPUT = "ctr</script><script>window.__xss=3</script>"


def _latency(
    p50: float, rng: np.random.Generator, batch: int, n: int = 200, samples: bool = True
) -> dict[str, Any]:
    """A ``compare.json`` latency entry (``samples_ms`` empty when ``samples`` is false)."""
    values = np.sort(p50 * np.exp(rng.normal(0, 0.15, n)))
    pcts = np.percentile(values, [50, 90, 99])
    return {
        "batch_size": batch,
        "calls": n,
        "p50_ms": float(pcts[0]),
        "p90_ms": float(pcts[1]),
        "p99_ms": float(pcts[2]),
        "mean_ms": float(values.mean()),
        "rows_per_s": batch / (float(pcts[0]) / 1e3),
        "samples_ms": [round(float(v), 4) for v in rng.permutation(values)] if samples else [],
    }


def _ops(batch: int) -> list[dict[str, Any]]:
    scale = 1.0 if batch == 1 else 6.0
    raw = [
        (
            "user_hash",
            "StringToHashBucketFast",
            ["_TensorToHashBucketFast"],
            30.0,
            ["age/AsString"],
        ),
        ("age/AsString", "AsString", ["AsString"], 12.0, []),
        (EVIL_NODE, "MatMul", ["_MklNativeFusedMatMul"], 40.0, ["tower/BiasAdd", "tower/Relu"]),
        ("user_emb/Gather", "GatherV2", ["GatherV2"], 9.0, []),
        ("cat_lookup", "LookupTableFindV2", ["LookupTableFindV2"], 7.0, []),
        ("concat", "ConcatV2", ["ConcatV2"], 5.0, []),
        ("score", "Sigmoid", ["Sigmoid"], 2.0, []),
    ]
    total = sum(r[3] for r in raw) * scale
    return [
        {
            "node": n,
            "op": op,
            "runtime_ops": rt,
            "self_us": us * scale,
            "share": us * scale / total,
            "fused_nodes": fused,
        }
        for n, op, rt, us, fused in raw
    ]


def _batch_profile(batch: int, p50: float, rng: np.random.Generator) -> dict[str, Any]:
    """One batch of ``analysis.json``'s profile: latency, shares charged like the real
    attribution charges them, and the top ops."""
    ops = _ops(batch)
    total = sum(o["self_us"] for o in ops)
    bucket = {
        "user_hash": "user_id",
        "age/AsString": EVIL_FEATURE,
        EVIL_NODE: "(shared)",
        "user_emb/Gather": "user_id",
        "cat_lookup": "category",
        "concat": "(split)",
        "score": "(shared)",
    }
    feats = {
        "user_hash": ["user_id"],
        "age/AsString": [EVIL_FEATURE],
        EVIL_NODE: ["category", "user_id", EVIL_FEATURE],
        "user_emb/Gather": ["user_id"],
        "cat_lookup": ["category"],
        "concat": ["category", "user_id"],
        "score": ["category", "user_id", EVIL_FEATURE],
    }
    per_feature: dict[str, float] = {
        "user_id": 0.0,
        EVIL_FEATURE: 0.0,
        "category": 0.0,
        "request_id": 0.0,
        "(shared)": 0.0,
        "(no feature)": 0.0,
    }
    per_op: dict[str, float] = {}
    for o in ops:
        share = o["self_us"] / total
        per_op[o["op"]] = per_op.get(o["op"], 0.0) + share
        if bucket[o["node"]] == "(split)":
            for f in feats[o["node"]]:
                per_feature[f] += share / len(feats[o["node"]])
        else:
            per_feature[bucket[o["node"]]] += share
    latency = _latency(p50, rng, batch)
    return {
        "latency": latency,
        "mapped_fraction": 0.93,
        "mapped_us": total,
        "unmapped_us": 8.0,
        "per_op_type": per_op,
        "per_feature": per_feature,
        "per_stage": {
            "string/lookup": 0.38,
            "embedding gather": 0.08,
            "dense/MLP": 0.4,
            "other": 0.14,
        },
        "per_feature_stage": {},
        "per_feature_op_type": {},
        "per_node_bucket": bucket,
        "per_node_features": feats,
        "top_ops": ops,
    }


def _profile() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    batches = {str(bs): _batch_profile(bs, p50, rng) for bs, p50 in ((1, 0.42), (256, 1.9))}
    return {
        "target": "loaded_signature",
        "batch_sizes": [1, 256],
        "reference_batch": 256,
        "latency": {k: b["latency"] for k, b in batches.items()},
        **{
            key: {k: b[key] for k, b in batches.items()}
            for key in ("per_op_type", "per_feature", "per_stage", "per_feature_op_type")
        },
        "batches": batches,
    }


def _column(name: str, kind: str, distinct: int, **overrides: Any) -> dict[str, Any]:
    column = {
        "name": name,
        "kind": kind,
        "is_sequence": False,
        "rows": 1000,
        "values": 1000,
        "distinct": distinct,
        "null_share": 0.0,
        "top_values": [],
        "numeric_min": None,
        "numeric_max": None,
        "all_numeric": False,
        "list_length": None,
        "pad_share": None,
        "signature_dtype": None,
    }
    return column | overrides


def _plan() -> dict[str, Any]:
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "model": {"path": "/models/dssm", "signature": "serving_default", "fingerprint": "3f2a9c"},
        "preset": "fast",
        "rewrites": [
            {"pass": "strip_control_deps", "enabled": True, "params": {}, "comment": "exact"},
            {
                "pass": "ids_upstream",
                "enabled": True,
                "params": {"inputs": ["user_id"]},
                "comment": XSS,
            },
            {
                "pass": "quantize_embeddings",
                "enabled": False,
                "params": {"dtype": "int8"},
                "comment": "",
            },
        ],
    }


def _suggestion(kind: str, message: str, **overrides: Any) -> dict[str, Any]:
    suggestion = {
        "kind": kind,
        "targets": [],
        "message": message,
        "plan_entry": None,
        "exactness": "exact",
        "changes_contract": False,
        "expected_saving": {
            "time_share": None,
            "time_share_by_batch": {},
            "batch_size": None,
            "bytes": None,
        },
        "training_side": "",
        "severity": "low",
        "finding_kinds": [],
        "tables": [],
    }
    return suggestion | overrides


def analysis_dict() -> AnalysisDict:
    """A complete ``analysis.json`` (every section present), checked against its schema."""
    path = f"/models/{XSS}/dssm/saved_model"
    inputs = {
        "user_id": {"dtype": "string", "shape": [None]},
        EVIL_FEATURE: {"dtype": "int64", "shape": [None, 1]},
        "category": {"dtype": "string", "shape": [None]},
        "request_id": {"dtype": "string", "shape": [None]},
    }
    outputs = {
        "score": {"dtype": "float32", "shape": [None]},
        EVIL_OUTPUT: {"dtype": "float32", "shape": [None]},
    }
    sv = [9.0, 6.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1]
    data: dict[str, Any] = {
        "schema_version": ANALYSIS_SCHEMA_VERSION,
        "model": {
            "path": path,
            "source_format": "tf2",
            "signature": "serving_default",
            "available_signatures": ["serving_default", "user_vector"],
            "fingerprint": "3f2a9c",
            "data": {
                "source": "file",
                "path": "/data/sample.parquet",
                "n_rows": 1000,
                "inputs": {k: {"dtype": v["dtype"], "shape": [1000]} for k, v in inputs.items()},
                "labels": {"label": {"dtype": "int64", "positives": 310}},
                "columns": [*inputs, "label", "city"],
                "unused_columns": ["city"],
            },
            "run": {
                "preset": "fast",
                "batch_sizes": [1, 256],
                "profile_calls": 200,
                "allow_unsafe_ops": False,
                "unsafe_ops": [],
                "detectors_failed": {},
                "timings_s": {"profile": 3.2, "total": 5.1},
                "notes": [],
            },
            "log_stats": None,
        },
        "signature": {"key": "serving_default", "inputs": inputs, "outputs": outputs},
        "inventory": {
            "path": path,
            "source_format": "tf2",
            "signature": "serving_default",
            "available_signatures": ["serving_default", "user_vector"],
            "inputs": inputs,
            "outputs": outputs,
            "node_count": 61,
            "op_counts": {
                "Const": 14,
                "Identity": 3,
                "MatMul": 1,
                "StringToHashBucketFast": 2,
                XSS: 1,
            },
            "node_count_loaded": 140,
            "op_counts_loaded": {
                "Const": 20,
                "Identity": 40,
                "MatMul": 1,
                "ReadVariableOp": 9,
                "StringToHashBucketFast": 2,
            },
            "const_count": 14,
            "identity_count": 3,
            "variable_count": 1,
            "variables": [
                {"name": "user_emb", "shape": [500, 8], "dtype": "float32", "bytes": 16000}
            ],
            "variable_bytes": 16000,
            "embedding_tables": [
                {
                    "node": "user_emb",
                    "variable": "user_emb",
                    "rows": 500,
                    "dim": 8,
                    "dtype": "float32",
                    "bytes": 16000,
                    "gathers": ["user_emb/Gather"],
                    "features": ["user_id"],
                },
                {
                    "node": "cat_emb",
                    "variable": f"cat_emb{XSS}",
                    "rows": 6,
                    "dim": 8,
                    "dtype": "float32",
                    "bytes": 192,
                    "gathers": ["cat/Gather"],
                    "features": ["category"],
                },
            ],
            "lookup_tables": [
                {
                    "placeholder": "table_ph",
                    "key_dtype": "string",
                    "value_dtype": "int64",
                    "size": 4,
                    "sample_keys": ["books", XSS],
                    "default_value": 0,
                    "origin": "captured resource",
                    "features": ["category"],
                }
            ],
            "string_ops": [
                {"node": "user_hash", "op": "StringToHashBucketFast", "features": ["user_id"]}
            ],
            "unreachable_nodes": [f"dead/{XSS}"],
            "size_bytes": 123456,
            "notes": [f"inputs never read by the graph: request_id {XSS}"],
        },
        "profile": _profile(),
        "feature_stats": {
            "rows": 1000,
            "columns": {
                "user_id": _column(
                    "user_id",
                    "string",
                    180,
                    top_values=[["u1", 40], [XSS, 12]],
                    signature_dtype="string",
                ),
                EVIL_FEATURE: _column(
                    EVIL_FEATURE,
                    "int",
                    53,
                    null_share=0.01,
                    top_values=[[31, 40]],
                    numeric_min=18,
                    numeric_max=70,
                    signature_dtype="int64",
                ),
                "hist": _column(
                    "hist",
                    "string",
                    300,
                    is_sequence=True,
                    values=8000,
                    top_values=[["i1", 90]],
                    all_numeric=True,
                    numeric_min=1,
                    numeric_max=400,
                    list_length={"min": 1, "max": 20, "mean": 8.5},
                    pad_share=0.2,
                    signature_dtype="string",
                ),
            },
            "identical": [],
            "one_to_one": [
                {"a": "city", "b": "city_code", "relation": "one_to_one", "distinct": 20}
            ],
            "overlaps": [
                {
                    "a": "hist",
                    "b": "user_id",
                    "distinct_a": 300,
                    "distinct_b": 180,
                    "common": 100,
                    "jaccard": 0.26,
                    "containment": 0.55,
                }
            ],
        },
        "findings": [
            {
                "kind": "string_op",
                "features": ["user_id"],
                "nodes": ["user_hash", EVIL_NODE],
                "severity": "high",
                "message": f"string hashing of user_id costs 12% {XSS}",
                "evidence": {
                    "time_share": 0.12,
                    "time_share_by_batch": {"1": 0.2, "256": 0.12},
                    "bytes": 4096,
                    "ops": ["StringToHashBucketFast"],
                },
                "detector": "string_ops",
            },
            {
                "kind": "large_embedding",
                "features": ["user_id"],
                "nodes": ["user_emb", "user_emb/Gather"],
                "severity": "medium",
                "message": "embedding table `user_emb` (500 x 8 float32, 15.6 KiB): only 180 of "
                "500 rows hit",
                "evidence": {
                    "table": "user_emb",
                    "variable": "user_emb",
                    "rows": 500,
                    "dim": 8,
                    "dtype": "float32",
                    "bytes": 16000,
                    "rows_hit": 180,
                    "rows_hit_source": None,
                    "hit_fraction": 0.36,
                    "unused_bytes": 10240,
                    "cardinality": 180,
                    "rule_of_thumb_dim": 22,
                    "dims_95": 2,
                    "dims_99": 4,
                    "singular_values": sv,
                    "time_share": 0.04,
                    "issues": ["oversized", "low_rank"],
                },
                "detector": "embeddings",
            },
            {
                "kind": "unused_input",
                "features": ["request_id"],
                "nodes": [],
                "severity": "low",
                "message": "input request_id is never read",
                "evidence": {},
                "detector": "unused",
            },
        ],
        "suggestions": [
            _suggestion(
                "ids_upstream",
                f"Compute user_id bucket ids upstream {XSS}: the model hashes user_id strings; "
                "send int64 bucket ids instead.",
                targets=["user_id"],
                plan_entry={"pass": "ids_upstream", "params": {"inputs": ["user_id"]}},
                changes_contract=True,
                expected_saving={
                    "time_share": 0.12,
                    "time_share_by_batch": {"1": 0.2, "256": 0.12},
                    "batch_size": 256,
                    "bytes": None,
                },
                training_side=f"ids = tf.strings.to_hash_bucket_fast(user_id, 500)  # {XSS}",
                severity="high",
                finding_kinds=["string_op"],
            ),
            _suggestion(
                "numeric_bucketize",
                "Bucketize age instead of hashing it",
                targets=[EVIL_FEATURE],
                plan_entry={"pass": "numeric_bucketize", "params": {}},
                exactness="exact-in-range",
                training_side="tf.keras.layers.Discretization(bin_boundaries=[...])",
            ),
            _suggestion(
                "quantize",
                "int8 embeddings",
                exactness="lossy",
                expected_saving={
                    "time_share": None,
                    "time_share_by_batch": {},
                    "batch_size": None,
                    "bytes": 11360,
                },
                tables=["user_emb"],
            ),
        ],
        "plan": _plan(),
        "serving_settings": None,
    }
    check_schema(data, AnalysisDict, "fixtures.analysis_dict()")
    return data  # type: ignore[return-value]


def onnx_profile_dict(batch_sizes: list[int]) -> OnnxProfileDict:
    """``compare.json``'s ``onnx_profile`` of one ONNX model (a node name carries HTML)."""
    batches = {}
    for bs in batch_sizes:
        ops = [("Gather", 6, 12.0 + bs / 10), ("Gemm", 4, 9.0 + bs / 20), ("Mul", 2, 3.0)]
        total = sum(us for _, _, us in ops)
        batches[str(bs)] = {
            "batch_size": bs,
            "calls": 50,
            "run_us": total * 1.5,
            "kernel_us": total,
            "kernel_fraction": 1 / 1.5,
            "node_count": sum(n for _, n, _ in ops),
            "top_nodes": [
                {
                    "name": EVIL_NODE,
                    "op_type": "Gather",
                    "us_per_call": 8.0,
                    "share": 8.0 / total,
                    "nodes": 1,
                },
            ],
            "per_op_type": [
                {"name": op, "op_type": "", "us_per_call": us, "share": us / total, "nodes": n}
                for op, n, us in ops
            ],
        }
    return {"path": "/out/rebuilt/model.onnx", "batches": batches}


def comparison_dict(samples: bool = True) -> ComparisonDict:
    """A comparison of a baseline, a rebuilt SavedModel and an ONNX export that differs."""
    rng = np.random.default_rng(1)
    batch_sizes = [1, 32, 256]
    base = {1: 0.5, 32: 0.8, 256: 2.4}
    specs = [
        ("dssm", "saved_model", 1.0, None),
        (f"rebuilt{XSS}", "saved_model", 0.62, True),
        ("rebuilt/model.onnx", "onnx", 0.1, False),
    ]
    floor = {str(bs): _latency(0.2 + 0.001 * bs, rng, bs, samples=samples) for bs in batch_sizes}
    models = []
    for label, kind, factor, passed in specs:
        lat = {str(bs): _latency(base[bs] * factor, rng, bs, samples=samples) for bs in batch_sizes}
        models.append(
            {
                "label": label,
                "kind": kind,
                "path": f"/out/{label}",
                "size_bytes": int(5e5 * factor),
                "node_count": int(140 * factor),
                "latency": lat,
                "ratio_vs_baseline": {
                    str(bs): lat[str(bs)]["p50_ms"] / base[bs] for bs in batch_sizes
                },
                "ratio_vs_floor": {
                    str(bs): lat[str(bs)]["p50_ms"] / floor[str(bs)]["p50_ms"] for bs in batch_sizes
                },
                "parity": None
                if passed is None
                else ({"score": 0.0, EVIL_OUTPUT: 2e-7} if passed else {"score": 0.043}),
                "parity_passed": passed,
                "quality": {
                    "score": {
                        "auc": 0.71 - (0.0 if passed is not False else 0.02),
                        "logloss": 0.52,
                        "label": "label",
                    }
                },
                "memory": {
                    "peak_rss_mb": 400.0 * factor + 100,
                    "import_rss_mb": 100.0,
                    "model_rss_mb": 50.0 * factor,
                },
                "encoded_inputs": [] if passed is None else ["user_id"],
                "onnx_profile": onnx_profile_dict(batch_sizes) if kind == "onnx" else None,
            }
        )
    data: dict[str, Any] = {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "baseline": "/models/dssm/saved_model",
        "signature": "serving_default",
        "batch_sizes": batch_sizes,
        "requests": 200,
        "rows": 1000,
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "python": "3.11.0",
            "tensorflow": "2.21.0",
            "platform": "Linux",
            "onnxruntime": None,
        },
        "tolerance": 1e-5,
        "call": "keyword",
        "burst": 8,
        "runtime": "python",
        "serving": {},
        "floor": floor,
        "models": models,
        "notes": [f"rebuilt/model.onnx does not return {EVIL_OUTPUT} (pruned outputs)"],
    }
    check_schema(data, ComparisonDict, "fixtures.comparison_dict()")
    return data  # type: ignore[return-value]


def _parity(max_abs_diff: float, passed: bool = True, tolerance: float = 1e-5) -> dict[str, Any]:
    summary = f"max abs diff {max_abs_diff:.3g} on score {'<=' if passed else '>'} {tolerance:.3g}"
    return {
        "passed": passed,
        "tolerance": tolerance,
        "rows": 64,
        "max_abs_diff": max_abs_diff,
        "summary": summary,
        "outputs": {
            "score": {
                "key": "score",
                "dtype": "float32",
                "shape_match": True,
                "max_abs_diff": max_abs_diff,
                "mean_abs_diff": max_abs_diff / 2,
                "mismatches": 0 if passed else 3,
                "passed": passed,
                "note": "",
            }
        },
    }


def _record(name: str, status: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "name": name,
        "status": status,
        "exactness": "exact",
        "reason": "",
        "stats": {},
        "notes": [],
        "parity": None,
        "gates": {},
        "tolerance": 1e-5,
        "seconds": 0.1,
        "nodes_before": 140,
        "nodes_after": 140,
        "encodings": [],
    }
    return record | overrides


def rebuild_dict() -> RebuildDict:
    """A ``rebuild.json`` with every pass outcome, checked against its schema."""
    encoding = {
        "input": "user_id",
        "kind": "hash_bucket",
        "source_dtype": "string",
        "target_dtype": "int64",
        "params": {"num_buckets": 500},
    }
    records = [
        _record(
            "strip_control_deps",
            "applied",
            parity=_parity(0.0),
            stats={"control_edges_removed": 12},
            nodes_after=128,
        ),
        _record(
            "merge_duplicates",
            "refused",
            reason=f"nothing to merge {XSS}",
            nodes_before=128,
            nodes_after=128,
        ),
        _record(
            "ids_upstream",
            "applied",
            parity=_parity(1e-7),
            stats={"nodes_removed": 6, "bytes_saved": 2048},
            nodes_before=128,
            nodes_after=88,
            encodings=[encoding],
        ),
        _record(
            "quantize_embeddings",
            "rolled_back",
            exactness="lossy",
            parity=_parity(0.02, passed=False, tolerance=0.001),
            reason="rolled back: max abs diff 0.02 on score > 0.001",
            tolerance=0.001,
            nodes_before=88,
            nodes_after=88,
        ),
        _record(
            "prune_embedding_rows",
            "disabled",
            exactness="",
            tolerance=None,
            seconds=0.0,
            nodes_before=88,
            nodes_after=88,
        ),
    ]
    signature = {
        "key": "serving_default",
        "inputs": {"user_id": {"dtype": "int64", "shape": [None]}},
        "outputs": {"score": {"dtype": "float32", "shape": [None]}},
    }
    data: dict[str, Any] = {
        "schema_version": REBUILD_SCHEMA_VERSION,
        "model": {
            "path": "/models/dssm/saved_model",
            "signature": "serving_default",
            "source_format": "tf2",
            "fingerprint": "3f2a9c",
        },
        "output": {
            "dir": "/out/rebuilt",
            "saved_model": "/out/rebuilt/saved_model",
            "signature_keys": ["serving_default"],
        },
        "plan": {"preset": "fast", "file": "plan.yaml"},
        "passed": True,
        "data": {
            "source": "file",
            "path": "/data/sample.parquet",
            "rows": 1000,
            "labels": True,
            "note": "",
        },
        "passes": {
            "applied": ["strip_control_deps", "ids_upstream"],
            "refused": ["merge_duplicates"],
            "rolled_back": ["quantize_embeddings"],
            "failed": [],
            "disabled": ["prune_embedding_rows"],
            "nodes_before": 140,
            "nodes_after": 88,
            "contract_changed": True,
            "encodings": [encoding],
            "passes": records,
        },
        "parity": {
            "freeze_vs_original": _parity(0.0),
            "final_vs_original": _parity(1e-7),
            "exported_vs_original": _parity(1e-7),
        },
        "signature_after": signature,
        "sizes": {
            "original_bytes": 500000,
            "saved_model_bytes": 310000,
            "variables_bytes": 300000,
            "frozen_const_bytes": 290000,
            "final_const_bytes": 280000,
            "onnx_bytes": None,
        },
        "nodes": {"original": 140, "frozen": 128, "final": 88},
        "op_counts": {
            "original": {"Const": 20, "StringToHashBucketFast": 2},
            "frozen": {"Const": 14, "StringToHashBucketFast": 2},
            "final": {"Const": 12},
        },
        "timings": {"load_and_freeze": 1.2, "pipeline": 2.5, "export_and_check": 1.1, "total": 4.8},
        "notes": ["input contract changed for user_id: see feature_contract.json"],
        "onnx": None,
    }
    check_schema(data, RebuildDict, "fixtures.rebuild_dict()")
    return data  # type: ignore[return-value]


def index_entries() -> list[IndexEntry]:
    """Two models for the landing page: one with an exact variant, one without."""
    first = comparison_dict()
    second = comparison_dict(samples=False)
    for model in second["models"][1:]:
        model["parity_passed"] = False
        model["parity"] = {"score": 0.5}
    analysis = analysis_dict()
    return [
        {
            "name": f"dssm{XSS}",
            "analysis": analysis,
            "comparison": first,
            "analysis_report": "dssm/analysis/report.html",
            "compare_report": "dssm/compare/compare.html",
        },
        {
            "name": "esmm",
            "analysis": analysis_dict(),
            "comparison": second,
            "analysis_report": "https://example.com/esmm/report.html",
            "compare_report": "esmm/compare/compare.html",
        },
    ]


def with_nested(d: dict[str, Any]) -> dict[str, Any]:
    """A deep copy (tests mutate their inputs freely)."""
    return copy.deepcopy(d)
