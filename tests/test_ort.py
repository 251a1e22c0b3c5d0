import ast
import os
import subprocess
import sys
from pathlib import Path

import bgbias
from bgbias.ort import TELEMETRY_VARIABLE, import_onnxruntime
from tests.helpers import write_onnx_masker

PACKAGE = Path(bgbias.__file__).parent


def test_onnxruntime_is_imported_only_through_import_onnxruntime():
    """Any other import could run first and start onnxruntime's telemetry."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n.split(".")[0] == "onnxruntime" for n in names) and path.name != "ort.py":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_a_mask_session_leaves_no_device_id_and_no_files(tmp_path):
    """onnxruntime >= 1.29 writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid and
    uploads telemetry on import unless ORT_DISABLE_TELEMETRY=1 is set before it."""
    home, work = tmp_path / "home", tmp_path / "work"
    for folder in (home, work, tmp_path / "model"):
        folder.mkdir()
    model = write_onnx_masker(tmp_path / "model" / "masker.onnx")
    drop = (TELEMETRY_VARIABLE, "ORT_RUNNING_UNIT_TESTS", "CI", "XDG_CACHE_HOME", "HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"HOME": str(home)}
    script = (
        "import sys; from bgbias.masks.predictors import OnnxU2NetPredictor; "
        "OnnxU2NetPredictor(sys.argv[1], device='cpu').predict([__import__('numpy')"
        ".zeros((3, 320, 320), 'float32')])"
    )
    subprocess.run([sys.executable, "-c", script, str(model)], cwd=work, env=env, check=True)
    assert [str(p.relative_to(tmp_path)) for p in (*home.rglob("*"), *work.rglob("*"))] == []


def test_an_explicit_user_choice_is_kept(monkeypatch):
    monkeypatch.setenv(TELEMETRY_VARIABLE, "0")
    import_onnxruntime()
    assert os.environ[TELEMETRY_VARIABLE] == "0"
