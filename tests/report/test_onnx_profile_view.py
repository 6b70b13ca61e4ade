"""The per-node ONNX profile in the comparison report: one table per ONNX model and batch size,
op types with their share, model-supplied node names escaped."""

from __future__ import annotations

from pathlib import Path

from recadvisor.report.compare_view import comparison_view
from recadvisor.report.render import render_comparison
from tests.report import fixtures


def test_onnx_profile_view_rows() -> None:
    view = comparison_view(fixtures.comparison_dict())
    (profile,) = view["onnx_profiles"]  # only the ONNX model has one
    assert profile["label"] == "rebuilt/model.onnx"
    assert [b["batch_size"] for b in profile["batches"]] == [1, 32, 256]
    first = profile["batches"][0]
    assert [o["name"] for o in first["op_types"]] == ["Gather", "Gemm", "Mul"]
    assert sum(o["share"] for o in first["op_types"]) == 1.0
    assert first["top_nodes"][0]["name"] == fixtures.EVIL_NODE


def test_onnx_profile_table_renders_escaped(tmp_path: Path) -> None:
    out = render_comparison(fixtures.comparison_dict(), tmp_path / "compare.html")
    html = out.read_text()
    section = html[html.index('id="onnx-profile"') :]
    section = section[: section.index("</section>")]
    assert "Where the ONNX time goes" in html and 'href="#onnx-profile"' in html
    assert section.count("<caption>") == 3  # one table per batch size
    assert "batch 256: 12 nodes" in section and "Gather" in section
    assert fixtures.XSS not in html and "&lt;script&gt;" in section


def test_no_onnx_profile_no_section(tmp_path: Path) -> None:
    data = fixtures.comparison_dict()
    for model in data["models"]:
        model["onnx_profile"] = None
    out = render_comparison(data, tmp_path / "compare.html")
    assert 'id="onnx-profile"' not in out.read_text()
