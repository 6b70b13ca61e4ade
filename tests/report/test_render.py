"""The HTML reports: content, escaping, self-containment, and views that read the artifacts'
schema keys exactly (a renamed key fails here)."""

from __future__ import annotations

import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from recadvisor.report import charts, render_analysis, render_comparison, render_index
from recadvisor.report.analysis_view import (
    analysis_view,
    attributions,
    profile_batches,
    sunburst_leaves,
)
from recadvisor.report.compare_view import comparison_view, pass_records
from recadvisor.report.formatting import format_value
from recadvisor.report.index_view import best_exact, index_view
from recadvisor.report.render import code_spans
from tests.report import fixtures
from tests.report.fixtures import EVIL_FEATURE, EVIL_NODE, EVIL_OUTPUT, XSS, XSS_IMG

PLOTLY_MARK = "* plotly.js v"


class _Page(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_script = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse(path: Path) -> tuple[str, _Page]:
    html = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return html, page


def chart_specs(page: _Page) -> dict[str, dict[str, Any]]:
    """chart id -> decoded figure, from the page's JSON script elements."""
    specs = {}
    script_tags = [attrs for tag, attrs in page.tags if tag == "script"]
    for attrs, body in zip(script_tags, page.scripts, strict=True):
        if attrs.get("type") == "application/json":
            specs[str(attrs["data-chart-for"])] = json.loads(body)
    return specs


def assert_self_contained(page: _Page) -> None:
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "srcset", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not re.match(r"^(https?:|//|ftp:|ws:)", value), f"<{tag} {name}={value}>"
        assert not (tag == "script" and attrs.get("src")), "external script"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "external stylesheet"


def assert_escaped(html: str, page: _Page) -> None:
    for payload in (XSS, XSS_IMG, EVIL_OUTPUT):
        assert payload not in html, f"raw payload in the HTML: {payload}"
    text = "".join(page.text)
    assert XSS in text  # shown, as text


def test_analysis_report_shows_every_section(tmp_path: Path, analysis_dict: dict) -> None:
    out = render_analysis(analysis_dict, tmp_path / "report.html")
    html, page = parse(out)
    ids = {attrs.get("id") for _, attrs in page.tags}
    for section in (
        "summary",
        "model",
        "cost",
        "findings",
        "suggestions",
        "embeddings",
        "data",
        "plan",
        "op-table",
        "suggestion-1",
        "suggestion-3",
    ):
        assert section in ids
    text = " ".join("".join(page.text).split())
    assert "12.0% of op time at batch 256" in text  # top win with its expected saving
    assert "11.1 KiB of weights" in text
    assert "exact-in-range" in text and "lossy" in text
    assert "yes: clients must send new inputs" in text  # contract change
    assert "pass: ids_upstream" in text  # plan entry as YAML
    assert "tf.keras.layers.Discretization" in text  # training-side code
    assert "15.6 KiB" in text and "36.0%" in text  # embedding size and rows hit
    assert "numbers as strings" in text  # feature profile flags numeric strings
    assert "one to one" in text and "containment 55.0%" in text
    assert text.count("not measured") < 10
    specs = chart_specs(page)
    titles = {json.dumps(s["layout"].get("title", "")) for s in specs.values()}
    assert len(specs) == 8, titles
    sunburst = [s for s in specs.values() if s["data"][0]["type"] == "sunburst"]
    assert len(sunburst) == 2  # smallest and largest batch size
    energy = [s for s in specs.values() if s["data"][0]["type"] == "scatter"]
    assert energy and energy[0]["data"][0]["y"][-1] == pytest.approx(100.0)


def test_op_table_rows_and_sort_keys(tmp_path: Path, analysis_dict: dict) -> None:
    view = analysis_view(analysis_dict)
    rows = view["op_table"]["rows"]
    assert [r["node"] for r in rows][:2] == [EVIL_NODE, "user_hash"]  # most expensive first
    assert rows[0]["us"] == {1: 40.0, 256: 240.0}
    assert rows[0]["kernels"] == ["_MklNativeFusedMatMul"]
    assert rows[0]["fused"] == ["tower/BiasAdd", "tower/Relu"]
    concat = next(r for r in rows if r["node"] == "concat")
    assert concat["charged_to"] == "(split)" and concat["features"] == ["category", "user_id"]
    out = render_analysis(analysis_dict, tmp_path / "r.html")
    html = out.read_text()
    table = html[html.index('id="op-table"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 1 + len(rows)
    assert 'data-sort="240.0"' in table  # numeric sort keys, not formatted text


def test_plotly_is_inlined_once_and_nothing_is_remote(
    tmp_path: Path, analysis_dict: dict, comparison_dict: dict, rebuild_dict: dict
) -> None:
    reports = [
        render_analysis(analysis_dict, tmp_path / "a.html"),
        render_comparison(comparison_dict, tmp_path / "c.html", rebuild=rebuild_dict),
    ]
    for out in reports:
        html, page = parse(out)
        assert html.count(PLOTLY_MARK) == 1
        assert html.count(charts.plotly_js()[:2000]) == 1
        assert_self_contained(page)
        assert_escaped(html, page)
        n_charts = len(chart_specs(page))
        # plotly.js + the page script + one JSON element per chart: no other script
        assert html.count("<script") == 2 + n_charts
        assert n_charts >= 6
    index = render_index(fixtures.index_entries(), tmp_path / "index.html")
    html, page = parse(index)
    assert html.count(PLOTLY_MARK) == 1  # one chart across models, plotly inlined once
    assert_self_contained(page)
    assert_escaped(html, page)


def test_model_supplied_names_render_as_text_in_charts(analysis_dict: dict) -> None:
    view = analysis_view(analysis_dict)
    figure = json.loads(view["charts"]["op_counts"].figure_json)
    labels = figure["data"][0]["y"]
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in labels  # entity-escaped for plotly
    raw = view["charts"]["op_counts"].figure_json
    assert "<" not in raw and ">" not in raw  # cannot close the <script> element it sits in


def test_sections_the_schema_allows_to_be_null_say_not_measured(
    tmp_path: Path, analysis_dict: dict
) -> None:
    """No profile and no sample data (``null`` in analysis.json): the report says so."""
    analysis_dict["profile"] = None
    analysis_dict["feature_stats"] = None
    html, page = parse(render_analysis(analysis_dict, tmp_path / "a.html"))
    text = "".join(page.text)
    assert "Per-op profile: not measured" in text
    assert "Feature data: not measured" in text
    specs = chart_specs(page)
    assert len(specs) == 3  # op counts, rows used and energy (from the inventory and findings)
    assert html.count(PLOTLY_MARK) == 1


@pytest.mark.parametrize(
    ("artifact", "path"),
    [
        ("analysis", ("findings", 0, "message")),
        ("analysis", ("suggestions", 0, "expected_saving")),
        ("analysis", ("inventory", "embedding_tables", 0, "variable")),
        ("analysis", ("profile", "batches", "256", "top_ops")),
        ("analysis", ("feature_stats", "columns", "user_id", "top_values")),
        ("analysis", ("plan", "rewrites", 0, "pass")),
        ("comparison", ("models", 1, "parity_passed")),
        ("comparison", ("models", 0, "latency")),
        ("comparison", ("floor",)),
        ("rebuild", ("passes", "passes", 1, "status")),
        ("rebuild", ("parity", "exported_vs_original")),
    ],
)
def test_a_renamed_key_fails_instead_of_rendering_as_missing(
    tmp_path: Path, artifact: str, path: tuple[Any, ...]
) -> None:
    """The views read the schema's keys: a key renamed by a writer raises KeyError (this test
    fails loudly) instead of the report quietly showing "not measured" or "details"."""
    data = {
        "analysis": fixtures.analysis_dict,
        "comparison": fixtures.comparison_dict,
        "rebuild": fixtures.rebuild_dict,
    }[artifact]()
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[f"renamed_{path[-1]}"] = parent.pop(path[-1])
    with pytest.raises(KeyError, match=str(path[-1])):
        if artifact == "analysis":
            render_analysis(data, tmp_path / "a.html")
        elif artifact == "comparison":
            render_comparison(data, tmp_path / "c.html")
        else:
            render_comparison(fixtures.comparison_dict(), tmp_path / "c.html", rebuild=data)
    assert not (tmp_path / "a.html").exists() and not (tmp_path / "c.html").exists()


def test_sunburst_leaves_match_the_attribution(analysis_dict: dict) -> None:
    profile = analysis_dict["profile"]
    batches = {b["batch_size"]: b for b in profile_batches(profile)}
    attribution = attributions(profile)[256]
    levels, leaves = sunburst_leaves(batches[256], attribution)
    assert levels == ("feature", "stage", "op type")
    assert sum(share for _, share in leaves) == pytest.approx(1.0)
    for feature, expected in attribution["per_feature"].items():
        got = sum(share for path, share in leaves if path[0] == feature)
        assert got == pytest.approx(expected), feature
    assert (EVIL_FEATURE, "string/lookup", "AsString") in [p for p, _ in leaves]


def test_sunburst_fills_the_ops_not_listed(analysis_dict: dict) -> None:
    """analysis.json lists only the top ops: the rest of each feature's stage share becomes
    '(smaller ops)', so rings still add up to the attribution."""
    profile = analysis_dict["profile"]
    batch = profile_batches(profile)[-1]
    attribution = attributions(profile)[256]
    per_feature_stage: dict[str, dict[str, float]] = {}
    for path, share in sunburst_leaves(batch, attribution)[1]:
        stages = per_feature_stage.setdefault(path[0], {})
        stages[path[1]] = stages.get(path[1], 0.0) + share
    attribution["per_feature_stage"] = per_feature_stage
    top = dict(batch, ops=batch["ops"][:3])
    _, leaves = sunburst_leaves(top, attribution)
    assert sum(s for _, s in leaves) == pytest.approx(1.0)
    assert any(path[2] == "(smaller ops)" for path, _ in leaves)
    for feature, stages in per_feature_stage.items():
        for stage, expected in stages.items():
            got = sum(s for p, s in leaves if p[:2] == (feature, stage))
            assert got == pytest.approx(expected)


def test_real_analysis_json_renders(tmp_path: Path, real_analysis: dict) -> None:
    view = analysis_view(real_analysis)
    assert len(view["findings"]) == len(real_analysis["findings"]) > 0
    assert len(view["suggestions"]) == len(real_analysis["suggestions"]) > 0
    assert [c for c in view["sunbursts"]], "cost breakdown chart"
    assert all(v for k, v in view["charts"].items() if k != "rows_used"), view["charts"]
    assert view["wins"] and view["wins"][0]["savings"]
    html, page = parse(render_analysis(real_analysis, tmp_path / "report.html"))
    assert html.count(PLOTLY_MARK) == 1
    assert_self_contained(page)
    text = "".join(page.text)
    assert "StringToHashBucketFast" in text and "user_id" in text


def test_real_analysis_sunburst_has_three_rings(real_analysis: dict) -> None:
    """analysis.json carries per-node charges and per_feature_op_type, so the cost breakdown
    goes feature -> stage -> op type (not just feature -> stage) and still adds up."""
    profile = real_analysis["profile"]
    batches = {b["batch_size"]: b for b in profile_batches(profile)}
    attrs = attributions(profile)
    assert sorted(attrs) == [1, 32]
    for bs, attribution in attrs.items():
        levels, leaves = sunburst_leaves(batches[bs], attribution)
        assert levels == ("feature", "stage", "op type")
        assert sum(share for _, share in leaves) == pytest.approx(1.0, abs=1e-6)
        assert ("age", "string/lookup", "StringToHashBucketFast") in {p for p, _ in leaves}
        # without the per-node charges, per_feature_op_type alone still gives three rings
        by_op = dict(attribution, per_node_bucket={}, per_node_features={})
        assert sunburst_leaves(None, by_op)[0] == ("feature", "stage", "op type")


def test_comparison_report_content(
    tmp_path: Path, comparison_dict: dict, rebuild_dict: dict
) -> None:
    out = render_comparison(comparison_dict, tmp_path / "compare.html", rebuild=rebuild_dict)
    html, page = parse(out)
    text = " ".join("".join(page.text).split())
    assert "2 applied" in text and "1 refused" in text and "1 rolled back" in text
    assert "nothing to merge" in text and "max abs diff 0.02 on score > 0.001" in text
    assert "1 disabled" in text
    assert "not returned" in text  # an output the ONNX model pruned
    assert "AUC 0.6900 (-0.0200)" in text
    assert "(call floor)" in text and "trivial signature" in text
    assert re.search(r'class="num bad">4\.3e-02<', html)  # a parity failure stands out
    assert re.search(r'class="num ok">2\.0e-07<', html)
    specs = chart_specs(page)
    assert len(specs) == 6
    kinds = sorted(s["data"][0]["type"] for s in specs.values())
    assert kinds.count("bar") == 5 and kinds.count("scatter") == 1


def test_cdf_uses_raw_samples_and_falls_back_to_percentiles() -> None:
    with_samples = comparison_view(fixtures.comparison_dict(samples=True))
    cdf = json.loads(with_samples["charts"]["cdf"].figure_json)
    solid = [t for t in cdf["data"] if t["line"]["dash"] == "solid"]
    assert len(solid) == 3 * 3  # 3 models x 3 batch sizes
    assert all(len(t["x"]) == 200 for t in solid)
    assert all(t["x"] == sorted(t["x"]) for t in solid)
    assert solid[0]["y"][-1] == pytest.approx(1.0)
    without = comparison_view(fixtures.comparison_dict(samples=False))
    chart = without["charts"]["cdf"]
    cdf = json.loads(chart.figure_json)
    assert all(len(t["x"]) == 3 and t["y"] == [0.5, 0.9, 0.99] for t in cdf["data"])
    assert "p50/p90/p99 points" in chart.caption


def test_pass_records_follow_the_pipeline_statuses(rebuild_dict: dict) -> None:
    records = pass_records(rebuild_dict)
    assert [(r["name"], r["status"], r["status_class"]) for r in records] == [
        ("strip_control_deps", "applied", "ok"),
        ("merge_duplicates", "refused", "neutral"),
        ("ids_upstream", "applied", "ok"),
        ("quantize_embeddings", "rolled back", "bad"),
        ("prune_embedding_rows", "disabled", "neutral"),
    ]
    assert records[2]["stats"] == "nodes 128 -> 88; nodes_removed: 6, bytes_saved: 2.0 KiB"
    assert records[3]["parity_class"] == "bad" and records[0]["parity"] == "0"
    rebuild_dict["passes"]["passes"][0]["status"] = "ok"  # not a pipeline status
    with pytest.raises(KeyError, match="ok"):
        pass_records(rebuild_dict)


def test_index_page_answers_what_was_gained(tmp_path: Path) -> None:
    entries = fixtures.index_entries()
    reports = tmp_path / "reports"
    (reports / "dssm" / "analysis").mkdir(parents=True)
    out = render_index(entries, reports)
    assert out == reports / "index.html"
    html, page = parse(out)
    text = " ".join("".join(page.text).split())
    first = entries[0]["comparison"]
    best = best_exact(first)
    assert best is not None and best["label"] == f"rebuilt{XSS}"  # the ONNX one differs
    for bs in (1, 32, 256):
        assert f"{best['ratio_vs_baseline'][str(bs)]:.2f}x" in text
    assert "0.62x 302.7 KiB of 488.3 KiB" in text  # size vs the baseline
    assert "none exact" in text and "not measured" not in text
    assert "match" in text and "2.0e-07" in text  # parity of the best exact variant
    assert "1 of 2 variants exact" in text and "0 of 2 variants exact" in text
    assert "no exact variant" in text  # the second model: nothing to recommend
    findings = [f["message"] for f in entries[0]["analysis"]["findings"]]
    assert all(m.replace("`", "") in text.replace("`", "") for m in findings[:3])
    assert "Top findings" in text
    specs = chart_specs(page)
    assert len(specs) == 1
    (gains,) = specs.values()
    assert [t["name"] for t in gains["data"]] == ["batch 1", "batch 32", "batch 256"]
    assert gains["data"][0]["y"][0] == pytest.approx(best["ratio_vs_baseline"]["1"])
    assert gains["data"][0]["y"][1] is None  # no exact variant: no bar
    hrefs = [a.get("href") for tag, a in page.tags if tag == "a"]
    assert "dssm/analysis/report.html" in hrefs and "dssm/compare/compare.html" in hrefs
    assert "esmm/compare/compare.html" in hrefs
    assert not any(h and h.startswith("http") for h in hrefs)  # a remote target is not linked
    assert "not a local report: https://example.com/esmm/report.html" in text
    assert_self_contained(page)
    assert_escaped(html, page)


def test_index_page_shows_the_per_request_gain(tmp_path: Path) -> None:
    """With a per-request comparison (compare --request N), the index adds the best exact
    variant's ratio per request and candidates scored per second; without one, no column."""
    entries = fixtures.index_entries()
    request = fixtures.comparison_dict()
    request["batch_sizes"] = [32]
    labels = [m["label"] for m in request["models"]]
    request["serving"] = {
        "runtime": "tf-c",
        "request": {
            "candidates": 32,
            "models": {
                label: {"p50_ms": 1.0, "p99_ms": 2.0, "candidates_per_s": 1000.0 * (i + 1)}
                for i, label in enumerate(labels)
            },
        },
    }
    entries[0]["request_comparison"] = request
    entries[0]["request_report"] = "dssm/request-compare/compare.html"
    out = render_index(entries, tmp_path / "index.html")
    html, page = parse(out)
    text = " ".join("".join(page.text).split())
    best = best_exact(request)
    assert best is not None
    assert "per request vs baseline" in text
    assert f"{best['ratio_vs_baseline']['32']:.2f}x" in text
    assert "1 user x 32 candidates: 2,000 vs 1,000 candidates/s" in text  # baseline's second
    hrefs = [a.get("href") for tag, a in page.tags if tag == "a"]
    assert "dssm/request-compare/compare.html" in hrefs
    plain, _ = parse(render_index(fixtures.index_entries(), tmp_path / "plain.html"))
    assert "per request vs baseline" not in plain


def test_index_view_picks_the_fastest_exact_variant() -> None:
    comparison = fixtures.comparison_dict()
    comparison["models"][2]["parity_passed"] = True  # now the ONNX file (0.1x) is exact too
    assert best_exact(comparison)["label"] == "rebuilt/model.onnx"
    assert best_exact(comparison, "saved_model")["label"] == f"rebuilt{XSS}"
    (entry, _) = fixtures.index_entries()
    entry["comparison"] = comparison
    row = index_view([entry], lambda path: path)["rows"][0]
    assert (
        row["variant"] == "rebuilt/model.onnx" and row["saved_model"]["variant"] == f"rebuilt{XSS}"
    )
    assert row["saved_model"]["ratios"][0] == (1, comparison["models"][1]["ratio_vs_baseline"]["1"])
    comparison["models"][1]["parity_passed"] = comparison["models"][2]["parity_passed"] = None
    assert best_exact(comparison) is None
    (entry, _) = fixtures.index_entries()
    del entry["analysis"]["findings"][0]["severity"]
    with pytest.raises(KeyError, match="severity"):
        index_view([entry], lambda path: path)


def test_writes_atomically_with_shareable_permissions(tmp_path: Path) -> None:
    out_dir = tmp_path / "new" / "dir"
    out_dir.mkdir(parents=True)
    out = render_analysis(fixtures.analysis_dict(), out_dir)
    assert out == out_dir / "report.html"
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    out2 = render_comparison(fixtures.comparison_dict(), tmp_path / "deeper" / "compare.html")
    assert out2.is_file()


def test_format_value_picks_units_from_key_names() -> None:
    assert format_value("unused_bytes", 10240) == "10.0 KiB"
    assert format_value("time_share", 0.071) == "7.1%"
    assert format_value("time_share_by_batch", {"1": 0.2, "256": 0.12}) == "1: 20.0%, 256: 12.0%"
    assert format_value("p50_ms", 0.4234) == "0.423 ms"
    assert format_value("max_abs_diff", 3e-7) == "3.0e-07"
    assert format_value("values", list(range(20))).endswith("… (+8 more)")
    assert format_value("missing", None) == "not measured"
    assert format_value("flag", True) == "yes"


def test_code_spans_escape_then_mark_up() -> None:
    assert str(code_spans("table `<b>emb</b>` is big")) == (
        "table <code>&lt;b&gt;emb&lt;/b&gt;</code> is big"
    )
    assert str(code_spans("odd ` count <i>")) == "odd ` count &lt;i&gt;"


def test_real_comparison_and_rebuild_render(
    tmp_path: Path, real_comparison: tuple[dict, dict]
) -> None:
    comparison, rebuild = real_comparison
    view = comparison_view(comparison, rebuild)
    statuses = {r["name"]: r["status"] for r in view["rebuild"]["passes"]}
    assert statuses and set(statuses.values()) <= {
        "applied",
        "refused",
        "rolled back",
        "failed",
        "disabled",
    }
    assert len(statuses) == len(rebuild["passes"]["passes"])
    applied = [name for name, status in statuses.items() if status == "applied"]
    assert applied == rebuild["passes"]["applied"]
    assert all(chart is not None for key, chart in view["charts"].items() if key != "memory")
    cdf = json.loads(view["charts"]["cdf"].figure_json)
    assert len(cdf["data"][0]["x"]) == 30  # every timed call of the baseline at batch 1
    html, page = parse(render_comparison(comparison, tmp_path / "compare.html", rebuild=rebuild))
    assert html.count(PLOTLY_MARK) == 1
    assert_self_contained(page)
    text = " ".join("".join(page.text).split())
    assert f"{len(applied)} applied" in text and "match" in text
