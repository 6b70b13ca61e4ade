"""Hand-made report inputs shaped like the real ``to_dict()`` outputs.

Names carry HTML payloads (``XSS``) so every test also checks escaping: a node, a feature, an op,
an output, a path and a finding message that would run script if inserted raw.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

XSS = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2">'
EVIL_NODE = f"tower/{XSS}/MatMul"
EVIL_FEATURE = f"age{XSS_IMG}"
EVIL_OUTPUT = "ctr</script><script>window.__xss=3</script>"


def _latency(
    p50: float, rng: np.random.Generator, batch: int, n: int = 200, samples: bool = True
) -> dict[str, Any]:
    values = np.sort(p50 * np.exp(rng.normal(0, 0.15, n)))
    pcts = np.percentile(values, [50, 90, 99])
    d: dict[str, Any] = {
        "batch_size": batch,
        "calls": n,
        "p50_ms": float(pcts[0]),
        "p90_ms": float(pcts[1]),
        "p99_ms": float(pcts[2]),
        "mean_ms": float(values.mean()),
        "rows_per_s": batch / (float(pcts[0]) / 1e3),
    }
    if samples:
        d["samples_ms"] = [round(float(v), 4) for v in rng.permutation(values)]
    return d


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


def _attribution(batch: int) -> dict[str, Any]:
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
    return {
        "batch_size": batch,
        "rule": "split",
        "shared_fraction": 0.5,
        "mapped_fraction": 0.93,
        "per_feature": per_feature,
        "per_op_type": per_op,
        "per_stage": {
            "string/lookup": 0.38,
            "embedding gather": 0.08,
            "dense/MLP": 0.4,
            "other": 0.14,
        },
        "per_feature_stage": {},
        "per_feature_op_type": {},
        "per_node_features": feats,
        "per_node_bucket": bucket,
    }


def analysis_dict() -> dict[str, Any]:
    """A complete analysis dict (every section present)."""
    rng = np.random.default_rng(0)
    batches = []
    for bs, p50 in ((1, 0.42), (256, 1.9)):
        ops = _ops(bs)
        lat = _latency(p50, rng, bs, samples=False)
        lat.pop("rows_per_s")
        batches.append(
            {
                "batch_size": bs,
                "latency": lat,
                "trace_calls": 50,
                "mapped_us": sum(o["self_us"] for o in ops),
                "unmapped_us": 8.0,
                "mapped_fraction": 0.93,
                "ops": ops,
                "unmapped_ops": {"x:Foo": 8.0},
            }
        )
    sv = [9.0, 6.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1]
    return {
        "model": f"/models/{XSS}/dssm/saved_model",
        "signature": "serving_default",
        "inventory": {
            "path": f"/models/{XSS}/dssm/saved_model",
            "source_format": "tf2",
            "signature": "serving_default",
            "available_signatures": ["serving_default", "user_vector"],
            "inputs": {
                "user_id": {"dtype": "string", "shape": [None]},
                EVIL_FEATURE: {"dtype": "int64", "shape": [None, 1]},
                "category": {"dtype": "string", "shape": [None]},
                "request_id": {"dtype": "string", "shape": [None]},
            },
            "outputs": {
                "score": {"dtype": "float32", "shape": [None]},
                EVIL_OUTPUT: {"dtype": "float32", "shape": [None]},
            },
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
            "variable_count": 6,
            "variables": [
                {"name": "user_emb", "shape": [500, 8], "dtype": "float32", "bytes": 16000}
            ],
            "variable_bytes": 20000,
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
                    "keys_sample": ["books", XSS],
                    "default_value": 0,
                }
            ],
            "string_ops": [
                {"node": "user_hash", "op": "StringToHashBucketFast", "features": ["user_id"]}
            ],
            "unreachable_nodes": [f"dead/{XSS}"],
            "size_bytes": 123456,
            "notes": [f"inputs never read by the graph: request_id {XSS}"],
        },
        "profile": {
            "target": "loaded_signature",
            "signature": "serving_default",
            "warmup": 20,
            "calls": 200,
            "trace_calls": 50,
            "batches": batches,
            "attribution": _attribution(256),
        },
        "feature_stats": {
            "rows": 1000,
            "columns": {
                "user_id": {
                    "name": "user_id",
                    "kind": "string",
                    "is_sequence": False,
                    "rows": 1000,
                    "values": 1000,
                    "distinct": 180,
                    "null_share": 0.0,
                    "top_values": [["u1", 40], [XSS, 12]],
                    "numeric_min": None,
                    "numeric_max": None,
                    "all_numeric": False,
                    "list_length": None,
                    "pad_share": None,
                    "signature_dtype": "string",
                },
                EVIL_FEATURE: {
                    "name": EVIL_FEATURE,
                    "kind": "int",
                    "is_sequence": False,
                    "rows": 1000,
                    "values": 1000,
                    "distinct": 53,
                    "null_share": 0.01,
                    "top_values": [[31, 40]],
                    "numeric_min": 18,
                    "numeric_max": 70,
                    "all_numeric": False,
                    "list_length": None,
                    "pad_share": None,
                    "signature_dtype": "int64",
                },
                "hist": {
                    "name": "hist",
                    "kind": "string",
                    "is_sequence": True,
                    "rows": 1000,
                    "values": 8000,
                    "distinct": 300,
                    "null_share": 0.0,
                    "top_values": [["i1", 90]],
                    "all_numeric": True,
                    "numeric_min": 1,
                    "numeric_max": 400,
                    "list_length": {"min": 1, "max": 20, "mean": 8.5},
                    "pad_share": 0.2,
                    "signature_dtype": "string",
                },
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
            {
                "kind": "ids_upstream",
                "title": f"Compute user_id bucket ids upstream {XSS}",
                "message": "The model hashes user_id strings; send int64 bucket ids instead.",
                "exactness": "exact",
                "contract_change": True,
                "expected_savings": {"time_share": 0.12, "text": "~12% of op time at batch 256"},
                "plan_entry": {
                    "pass": "ids_upstream",
                    "enabled": True,
                    "params": {"inputs": ["user_id"]},
                },
                "training_code": f"ids = tf.strings.to_hash_bucket_fast(user_id, 500)  # {XSS}",
                "features": ["user_id"],
                "findings": ["string_op"],
                "confidence": "high",
            },
            {
                "kind": "numeric_bucketize",
                "title": "Bucketize age instead of hashing it",
                "exactness": "exact-in-range",
                "contract_change": False,
                "expected_savings": 0.05,
                "plan_entry": {"pass": "numeric_bucketize"},
                "training_code": {
                    "code": "tf.keras.layers.Discretization(bin_boundaries=[...])",
                    "text": "Train on the numeric value directly.",
                },
            },
            {
                "kind": "quantize",
                "title": "int8 embeddings",
                "exactness": "lossy",
                "expected_savings": "0.29x size",
            },
        ],
        "plan": {
            "schema_version": 1,
            "model": {
                "path": "/models/dssm",
                "signature": "serving_default",
                "fingerprint": "3f2a9c",
            },
            "preset": "fast",
            "rewrites": [
                {"pass": "strip_control_deps", "enabled": True, "params": {}, "comment": "exact"},
                {
                    "pass": "ids_upstream",
                    "enabled": True,
                    "params": {"inputs": ["user_id"]},
                    "comment": XSS,
                },
                {"pass": "quantize_embeddings", "enabled": False, "params": {"dtype": "int8"}},
            ],
        },
        "unexpected_section": {"some": "value"},
    }


def onnx_profile_dict(batch_sizes: list[int]) -> dict[str, Any]:
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


def comparison_dict(samples: bool = True) -> dict[str, Any]:
    """A comparison of a baseline, a rebuilt SavedModel and an ONNX export."""
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
                "node_count": int(140 * factor) or None,
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
                    "score": {"auc": 0.71 - (0.0 if passed is not False else 0.02), "logloss": 0.52}
                },
                "memory": {"peak_rss_mb": 400.0 * factor + 100, "model_rss_mb": 50.0 * factor},
                "encoded_inputs": [] if passed is None else ["user_id"],
                "onnx_profile": onnx_profile_dict(batch_sizes) if kind == "onnx" else None,
            }
        )
    return {
        "baseline": "/models/dssm/saved_model",
        "signature": "serving_default",
        "batch_sizes": batch_sizes,
        "requests": 200,
        "rows": 1000,
        "machine": {"cpu": "Test CPU", "cores": 2, "tensorflow": "2.21"},
        "tolerance": 1e-5,
        "floor": floor,
        "models": models,
        "notes": [f"rebuilt/model.onnx does not return {EVIL_OUTPUT} (pruned outputs)"],
    }


def rebuild_dict() -> dict[str, Any]:
    """A rebuild.json-like record with every pass outcome."""
    return {
        "model": "/models/dssm/saved_model",
        "out": "/out/rebuilt",
        "preset": "fast",
        "passes": [
            {
                "pass": "strip_control_deps",
                "status": "applied",
                "max_abs_diff": 0.0,
                "stats": {"control_edges_removed": 12},
                "exactness": "exact",
            },
            {"pass": "merge_duplicates", "status": "refused", "reason": f"nothing to merge {XSS}"},
            {
                "pass": "ids_upstream",
                "status": "applied",
                "max_abs_diff": 1e-7,
                "stats": {"nodes_removed": 6, "bytes_saved": 2048},
            },
            {
                "pass": "quantize_embeddings",
                "status": "rolled_back",
                "max_abs_diff": 0.02,
                "reason": "max abs diff 0.02 > 0.001",
            },
        ],
        "node_count_before": 140,
        "node_count_after": 88,
    }


def with_nested(d: dict[str, Any]) -> dict[str, Any]:
    """A deep copy (tests mutate their inputs freely)."""
    return copy.deepcopy(d)
