"""The templates ship inside the wheel and render from a fresh install, without TensorFlow."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from recadvisor.report.render import templates_dir
from tests.report import fixtures

pytestmark = pytest.mark.slow  # builds a wheel into a fresh venv

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_FILES = (
    "analysis.html.j2",
    "compare.html.j2",
    "index.html.j2",
    "partials/base.html.j2",
    "partials/macros.html.j2",
    "partials/page.js",
    "partials/style.css",
)

RENDER_IN_VENV = """
import json, sys
from pathlib import Path
import recadvisor.report as report
from recadvisor.report.render import templates_dir
out = Path(sys.argv[1])
data = json.loads(Path(sys.argv[2]).read_text())
report.render_analysis(data["analysis"], out / "report.html")
report.render_comparison(data["comparison"], out / "compare.html", rebuild=data["rebuild"])
report.render_index(data["index"], out / "index.html")
print(json.dumps({"package": report.__file__, "templates": str(templates_dir()),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def test_templates_come_from_the_top_level_folder() -> None:
    assert templates_dir().resolve() == (REPO / "templates").resolve()
    for name in TEMPLATE_FILES:
        assert (REPO / "templates" / name).is_file(), name


def _build_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the sources (the checkout stays untouched)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "recadvisor", src / "recadvisor", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "templates", src / "templates", ignore=ignore)
    dist = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    return next(dist.glob("recadvisor-*.whl"))


def test_wheel_ships_templates_and_renders_in_a_fresh_venv(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in TEMPLATE_FILES:
        assert f"recadvisor/report/_templates/{name}" in names, name
    assert not any(n.startswith("templates/") for n in names)  # nothing outside the package

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(venv_site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # third-party libraries (jinja2, plotly...) from this interpreter, appended after the
    # venv's own site-packages; a .pth line adds a path without running that path's .pth
    # files, so the editable install of the checkout stays out of this venv
    (venv_site / "zz_host_libs.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps(
            {
                "analysis": fixtures.analysis_dict(),
                "comparison": fixtures.comparison_dict(),
                "rebuild": fixtures.rebuild_dict(),
                "index": fixtures.index_entries(),
            }
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [str(python), "-c", RENDER_IN_VENV, str(out), str(inputs)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["package"].startswith(str(venv_site))  # the wheel, not the checkout
    assert info["templates"].startswith(str(venv_site))
    assert not Path(info["templates"]).is_symlink()
    assert info["tensorflow_imported"] is False
    for name in ("report.html", "compare.html", "index.html"):
        html = (out / name).read_text()
        assert "<h1>" in html and fixtures.XSS not in html
