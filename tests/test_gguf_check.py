"""A damaged or foreign GGUF must become one clear QwenctlError before any engine sees it."""

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenctl.backends.gguf_check import check_gguf, file_type_quant, part_paths, read_gguf_header
from qwenctl.errors import ExitCode, QwenctlError
from qwenctl.testing import models


@pytest.fixture(scope="module")
def tiny(model_cache) -> bytes:
    return models.tiny_gguf(model_cache).read_bytes()


def _write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _error(path: Path) -> QwenctlError:
    with pytest.raises(QwenctlError) as e:
        check_gguf(path)
    return e.value


def test_valid_file_reports_its_header(model_cache):
    info = check_gguf(models.tiny_gguf(model_cache))
    assert info.architecture == "qwen2" and info.version == 3
    assert info.get("block_count") == models.TINY.num_hidden_layers
    assert len(info.tensors) == len(list(models.gguf_tensor_shapes(models._resolve(models.TINY))))
    assert info.data_offset + info.tensor_bytes <= info.file_size


def test_not_a_gguf(tmp_path):
    e = _error(_write(tmp_path, b"<html>404 Not Found</html>"))
    assert e.code == ExitCode.BAD_INPUT
    assert "is not a GGUF file (it starts with b'<htm'" in e.message


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.gguf").code == ExitCode.NOT_FOUND


@pytest.mark.parametrize("version", [1, 4])
def test_unsupported_version(tmp_path, tiny, version):
    e = _error(_write(tmp_path, tiny[:4] + struct.pack("<I", version) + tiny[8:]))
    assert f"is GGUF version {version}" in e.message


def test_truncated_in_the_tensor_data(tmp_path, tiny):
    e = _error(_write(tmp_path, tiny[:-100]))
    assert e.code == ExitCode.BAD_INPUT
    assert "is truncated: tensor 'output_norm.weight' ends at byte" in e.message
    assert f"but the file has {len(tiny) - 100:,} bytes" in e.message
    assert "download it again" in e.hint


def test_truncated_in_the_header(tmp_path, tiny):
    e = _error(_write(tmp_path, tiny[:5000]))
    assert "is truncated (5000 bytes; the file ends at byte 5000, inside the header)" in e.message


def test_corrupt_string_length(tmp_path, tiny):
    # the first key's length field sits right after magic, version and the two counts
    e = _error(_write(tmp_path, tiny[:24] + struct.pack("<Q", 1 << 40) + tiny[32:]))
    assert "has a corrupt GGUF header: a metadata string claims" in e.message


def test_other_architecture(tmp_path):
    from gguf import GGUFWriter

    path = tmp_path / "llama.gguf"
    w = GGUFWriter(path, "llama")
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    e = _error(path)
    assert e.message == f"{path} holds a llama model, not qwen2"
    assert e.code == ExitCode.BAD_INPUT


def test_split_model_parts(tmp_path, tiny):
    first = _write(tmp_path, tiny, "m-00001-of-00002.gguf")
    assert part_paths(first) == [first, tmp_path / "m-00002-of-00002.gguf"]
    e = _error(first)
    assert e.code == ExitCode.NOT_FOUND and "m-00002-of-00002.gguf, part of the split model" in e.message
    assert "load the first part, m-00001-of-00002.gguf" in _error(tmp_path / "m-00002-of-00002.gguf").hint


def test_a_missing_file_is_not_called_a_split_models_part(tmp_path):
    e = _error(tmp_path / "gone.gguf")
    assert (e.message, e.code) == (f"no such file: {tmp_path / 'gone.gguf'}", ExitCode.NOT_FOUND)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_is_a_qwenctl_error_or_a_valid_header(tmp_path, tiny, data):
    """Truncate anywhere and flip a few bytes anywhere: parsing never raises anything but QwenctlError."""
    buf = bytearray(tiny[: data.draw(st.integers(0, len(tiny)), label="length")])
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if buf:
            i = data.draw(st.integers(0, len(buf) - 1), label="at")
            buf[i] = data.draw(st.integers(0, 255), label="byte")
    path = _write(tmp_path, bytes(buf))
    try:
        info = read_gguf_header(path)
    except QwenctlError as e:
        assert e.code == ExitCode.BAD_INPUT
    else:
        assert all(info.data_offset + t.offset + t.n_bytes <= info.file_size for t in info.tensors)


def test_damaged_file_never_reaches_the_engine(tmp_path, tiny):
    """Through the real backend, in a child process, so an engine abort could not take the test run down."""
    pytest.importorskip("llama_cpp")
    path = _write(tmp_path, tiny[: len(tiny) // 2])
    code = (
        "import sys; from pathlib import Path\n"
        "from qwenctl.backends import load_backend, LoadOptions\n"
        "from qwenctl.errors import QwenctlError\n"
        "try:\n    load_backend('llama.cpp', Path(sys.argv[1]), LoadOptions(n_ctx=128))\n"
        "except QwenctlError as e:\n    print(e.code.name, e.message); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("BAD_INPUT ") and "is truncated" in r.stdout
    assert r.stderr == ""


def test_file_type_names_the_catalog_quant(model_cache):
    """general.file_type as llama.cpp's quantizer writes it, read back from a generated file."""
    pytest.importorskip("llama_cpp")
    q8 = check_gguf(models.gguf_model(model_cache, models.TINY, "Q8_0"))
    assert file_type_quant(q8.metadata["general.file_type"]) == "q8_0"
    assert [file_type_quant(t) for t in (1, 12, 15, 17, 18)] == ["fp16", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"]
    assert file_type_quant(13) is None and file_type_quant(None) is None  # Q3_K_L: no catalog quant
