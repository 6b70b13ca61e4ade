"""Reports escape every model- and data-supplied string (issue #7), on real tiny models.

``tests/report`` checks escaping on hand-made dicts; here the payloads come from the models
themselves: a vocabulary (lookup-table keys), TF1 signature keys (feature and output names, which
TF1 lets be any text) and the sample data's values, through ``analyze`` and ``render_analysis``.
Node names cannot carry HTML: TensorFlow refuses ``<`` and quotes in them.
"""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import escape

from recadvisor.analysis.analyze import analyze
from recadvisor.report import render_analysis
from tests.reliability.models import QUOTES, XSS


def _render(model: Path, tmp_path: Path, data: Path | None = None, profile: bool = True) -> str:
    result = analyze(model, data=data, batch_sizes=(1,), profile_calls=10, profile=profile)
    return render_analysis(result.to_dict(), tmp_path / "report.html").read_text("utf-8")


def _assert_escaped(page: str, payload: str) -> None:
    assert str(escape(payload)) in page, payload  # shown, as text
    assert payload not in re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.DOTALL)


def test_vocabulary_and_data_values_are_escaped(
    ranker_dir: Path, ranker_data: Path, tmp_path: Path
) -> None:
    page = _render(ranker_dir, tmp_path, ranker_data)
    assert "<script>alert" not in page
    _assert_escaped(page, XSS)
    _assert_escaped(page, f"q{QUOTES}q")


def test_feature_and_output_names_are_escaped(tf1_dir: Path, tmp_path: Path) -> None:
    # not profiled: the profiler's runner names ops after the output keys, which TF refuses here
    page = _render(tf1_dir, tmp_path, profile=False)
    assert "<script>alert" not in page
    _assert_escaped(page, XSS)  # the input (feature) name
    _assert_escaped(page, f"out{QUOTES}")  # the output name
