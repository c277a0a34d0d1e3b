"""SpareCores' cloud GPU rows: what benchmarks/sparecores_gpu_rows.py keeps of an instance's folder, on a throwaway git
mirror holding an AWS g4dn.xlarge's own files (tests/fixtures/sparecores: its `nvidia-smi -q -x` trimmed to the elements
read, verbatim otherwise, and two of its llama-bench records verbatim, from SpareCores/sc-inspector-data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_scripts import load
from test_sparecores_rows import mirror

FIXTURES = Path(__file__).parent / "fixtures" / "sparecores"
SMI = (FIXTURES / "g4dn.xlarge-nvidia-smi.xml").read_text()
LLM = (FIXTURES / "g4dn.xlarge-llm-llama-7b.jsonl").read_text()
SMI_4 = (FIXTURES / "g4dn.12xlarge-nvidia-smi.xml").read_text()  # four T4s
LLM_4 = (FIXTURES / "g4dn.12xlarge-llm-llama-7b.jsonl").read_text()
META = '{"start":"2026-02-12T22:02:17.085293","exit_code":0}'


@pytest.fixture
def converter():
    return load("sparecores_gpu_rows.py")


def test_a_single_gpu_instance_gives_rows_priced_as_its_capture_describes_the_card(converter, tmp_path):
    """The T4's rows carry the card's key, its 70 W limit and ECC mode from nvidia-smi, and the build's own date (February
    2025), not the day the benchmark ran: kernel paths are dated by build. A CPU-only record of the same file is not a
    GPU's figure and is left out."""
    cpu_only = json.loads(LLM.splitlines()[0]) | {"n_gpu_layers": 0}
    root = mirror(tmp_path, {"data/aws/g4dn.xlarge": {
        "nvidia_smi/stdout": SMI, "nvidia_smi/meta.json": META, "llm/stdout": json.dumps(cpu_only) + "\n" + LLM}})
    rows = converter.instance_rows(root, "data/aws/g4dn.xlarge")
    assert [(r["id"], r["device_key"], r["model"], r["tg"]["tps"], r["pp"]["tps"]) for r in rows] == [
        ("scg-aws-g4dn.xlarge-llama2-7b", "t4", "llama2-7b", 42.48, 1276.09)]
    row = rows[0]
    assert (row["gpu_power_limit_w"], row["gpu_ecc"], row["date"], row["n_gpu_layers"]) == (70.0, True, "2025-02-21", 999)
    assert "captured 2026-02-12" in row["source"] and row["engine"].startswith("llama.cpp build 51f311e0 (4753)")


@pytest.mark.parametrize("edit", [
    lambda smi: smi.replace("<product_name>Tesla T4</product_name>", "<product_name>GRID T4-8Q</product_name>"),
    lambda smi: smi.replace("</gpu>", "</gpu>\n\t<gpu id=\"00000000:00:1F.0\"><product_name>Tesla T4</product_name></gpu>"),
    lambda smi: "nvidia-smi: command not found",
], ids=["a vGPU profile", "two GPUs", "no XML"])
def test_an_instance_whose_capture_is_not_one_whole_gpu_gives_no_rows(converter, tmp_path, edit):
    """A vGPU profile is a time slice of a card, and llama-bench splits a model over every GPU it sees: neither is the
    card's own speed (several GPUs are the --several file's). A capture that is not nvidia-smi's XML says nothing of the
    card."""
    root = mirror(tmp_path, {"data/aws/g4dn.xlarge": {"nvidia_smi/stdout": edit(SMI), "llm/stdout": LLM}})
    assert converter.instance_rows(root, "data/aws/g4dn.xlarge") == []


def test_several_gpus_of_one_model_give_rows_with_their_count(converter, tmp_path):
    """A g4dn.12xlarge (four T4s, its own nvidia-smi and llama-bench records): with --several its rows carry the GPU
    count and the first card's facts; llama-bench's name for the four ("Tesla T4, Tesla T4, ...") is what marks a run
    that used them, so a record that saw no GPU (an empty name) is left out. A single-GPU instance gives no --several
    rows, nor do GPUs of two models."""
    no_gpu = json.loads(LLM_4.splitlines()[0]) | {"gpu_info": ""}
    root = mirror(tmp_path, {"data/aws/g4dn.12xlarge": {
        "nvidia_smi/stdout": SMI_4, "nvidia_smi/meta.json": META, "llm/stdout": json.dumps(no_gpu) + "\n" + LLM_4},
        "data/aws/g4dn.xlarge": {"nvidia_smi/stdout": SMI, "llm/stdout": LLM},
        "data/aws/mixed": {"nvidia_smi/stdout": SMI_4.replace("<product_name>Tesla T4<", "<product_name>Tesla V100<", 1),
                           "llm/stdout": LLM_4}})
    (row,) = converter.instance_rows(root, "data/aws/g4dn.12xlarge", several=True)
    assert (row["device_key"], row["gpus"], row["gpu_power_limit_w"], row["gpu_ecc"]) == ("t4", 4, 70.0, True)
    assert (row["tg"]["tps"], row["pp"]["tps"], row["date"]) == (29.81, 1305.96, "2025-02-21")
    assert converter.instance_rows(root, "data/aws/g4dn.12xlarge") == []
    assert converter.instance_rows(root, "data/aws/g4dn.xlarge", several=True) == []
    assert converter.instance_rows(root, "data/aws/mixed", several=True) == []


def test_a_run_with_no_layer_offloaded_is_a_split_row_on_its_own_host(converter, tmp_path):
    """A g4dn.4xlarge ran the 70B with `-ngl 0` (no T4 holds it): its row is a split of no GPU layers whose host is the
    VM as its lscpu and bw_mem describe it (the CPU file's host_spec), at llama-bench's threads; the longest decode it
    ran (16 tokens) and its pp512, whose batches run on the T4 with the weights copied over."""
    F = FIXTURES
    root = mirror(tmp_path, {"data/aws/g4dn.4xlarge": {
        "nvidia_smi/stdout": (F / "g4dn.4xlarge-nvidia-smi.xml").read_text(),
        "llm/stdout": (F / "g4dn.4xlarge-llm-llama-70b-ngl0.jsonl").read_text() + LLM,
        "lscpu/stdout": (F / "g4dn.4xlarge-lscpu.json").read_text(), "bw_mem/stdout": (F / "g4dn.4xlarge-bw_mem.txt").read_text()}})
    rows, hosts = converter.host_rows(root, "data/aws/g4dn.4xlarge")
    (row,) = rows  # the 7B records of LLM offloaded every layer: not this file's
    assert (row["backend"], row["device_key"], row["model"], row["n_gpu_layers"], row["threads"]) == ("split", "t4", "llama3-70b", 0, 8)
    assert (row["tg"], row["pp"]["tps"]) == ({"n_tokens": 16, "tps": 1.211}, 42.88)
    host = hosts[row["host_key"]]
    assert (host["cores"]["performance"], host["memory"]["bandwidth_gbs"], host["memory"]["measured"]) == (8, 90.03, True)
    assert host["cpu"].startswith("Intel(R) Xeon(R) Platinum 8259CL")
    assert converter.host_rows(root, "data/aws/absent") == ([], {})
