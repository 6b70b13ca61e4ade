"""unsafe_ops detector: scanned without executing the model."""

from __future__ import annotations

import pytest

from recadvisor.analysis.detectors import unsafe_ops
from recadvisor.analysis.detectors.unsafe_ops import find_unsafe_ops, refuse_unsafe, unsafe_reason
from recadvisor.analysis.findings import HIGH, UNSAFE_OP
from recadvisor.errors import UnsafeModelError
from recadvisor.model.load import inspect_saved_model
from tests.analysis.detectors import models
from tests.model.builders import build_tf1_estimator_style


@pytest.fixture(scope="module")
def read_file_info(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("read_file")
    data = tmp / "secret.txt"
    data.write_text("hello")
    return inspect_saved_model(models.build_read_file(tmp / "model", data))


def test_read_file_is_flagged(read_file_info):
    findings = find_unsafe_ops(read_file_info)
    assert [f.evidence["op"] for f in findings] == ["ReadFile"]
    f = findings[0]
    assert f.kind == UNSAFE_OP and f.severity == HIGH
    assert f.evidence["count"] == 1 and "reads a file" in f.message
    assert any("serve" in loc for loc in f.evidence["locations"])


def test_refusal(read_file_info):
    findings = find_unsafe_ops(read_file_info)
    with pytest.raises(UnsafeModelError, match="--allow-unsafe-ops"):
        refuse_unsafe(findings, read_file_info.path, allow=False)
    refuse_unsafe(findings, read_file_info.path, allow=True)
    refuse_unsafe([], read_file_info.path, allow=False)


def test_python_call_is_flagged(tmp_path):
    info = inspect_saved_model(models.build_py_function(tmp_path / "model"))
    assert "EagerPyFunc" in [f.evidence["op"] for f in find_unsafe_ops(info)]


def test_checkpoint_saver_is_not_flagged(clean, tmp_path):
    # TF2 exports carry SaveV2/RestoreV2 in their saver functions; TF1 ones in a save/ scope
    assert "SaveV2" in clean.loaded.info.op_counts
    assert find_unsafe_ops(clean.loaded.info) == []
    assert unsafe_ops.detect(clean.context()) == []
    tf1 = inspect_saved_model(build_tf1_estimator_style(tmp_path / "tf1"))
    assert tf1.source_format == "tf1" and find_unsafe_ops(tf1) == []


def test_detector_without_info(clean):
    assert unsafe_ops.detect(clean.context(info=None)) == []


def test_unsafe_reason():
    assert unsafe_reason("WriteFile") == "writes a file"
    assert unsafe_reason("TFRecordReaderV2") == "reads files"
    assert unsafe_reason("WriteScalarSummary") == "writes summaries to files"
    assert unsafe_reason("SaveV2") is not None
    assert unsafe_reason("InitializeTableFromTextFileV2") is None
    assert unsafe_reason("MatMul") is None
