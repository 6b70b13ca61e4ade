"""HTML reports: analysis, comparison and an index, rendered from the artifacts' dicts
(``analysis.json``, ``compare.json``, ``rebuild.json``; read by their schemas' exact keys).

Public API::

    render_analysis(analysis_dict, "reports/dssm/report.html")
    render_comparison(compare_dict, "reports/dssm/compare.html", rebuild=rebuild_dict)
    render_index(
        [{"name": "dssm", "analysis": analysis_dict, "comparison": compare_dict,
          "analysis_report": "dssm/analysis/report.html",
          "compare_report": "dssm/compare/compare.html"}],
        "reports/index.html",
    )

``recadvisor.report.tensorboard.profile_summaries`` turns the same profile into TensorBoard
summaries (written by :mod:`recadvisor.model.tensorboard`).
Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from recadvisor.report.render import render_analysis, render_comparison, render_index

__all__ = ["render_analysis", "render_comparison", "render_index"]
