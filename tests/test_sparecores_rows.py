"""SpareCores' cloud VM rows: what benchmarks/sparecores_rows.py (x86) and sparecores_arm_rows.py (Arm) keep of an instance's folder, on a throwaway git mirror
holding the AWS r8a.medium's own files (lscpu trimmed to the fields read; the llama-bench record and bw_mem lines verbatim
from SpareCores/sc-inspector-data data/aws/r8a.medium)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from benchmark_scripts import load

TG_RECORD = '{"build_commit": "51f311e0", "build_number": 4753, "cpu_info": "AMD EPYC 9R45", "gpu_info": "", "backends": "CPU", "model_filename": "/models/llama-7b.Q4_K_M.gguf", "model_type": "llama 7B Q4_K - Medium", "model_size": 4080263168, "model_n_params": 6738415616, "n_batch": 2048, "n_ubatch": 512, "n_threads": 1, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 0, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": true, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 0, "n_gen": 128, "test_time": "2025-11-04T21:41:28Z", "avg_ns": 18314300149, "stddev_ns": 41870690, "avg_ts": 6.989103, "stddev_ts": 0.015975, "samples_ns": [ 18354063634, 18277939661, 18308071686, 18270620881, 18360804884 ],"samples_ts": [ 6.97393, 7.00298, 6.99145, 7.00578, 6.97137 ]}'
LSCPU = '{"lscpu": [{"field": "Architecture:", "data": "x86_64"}, {"field": "CPU(s):", "data": "1"}, {"field": "Vendor ID:", "data": "AuthenticAMD"}, {"field": "Model name:", "data": "AMD EPYC 9R45"}, {"field": "CPU family:", "data": "26"}, {"field": "Model:", "data": "2"}, {"field": "Thread(s) per core:", "data": "1"}, {"field": "BogoMIPS:", "data": "5199.99"}, {"field": "Flags:", "data": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid aperfmperf tsc_known_freq pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cr8_legacy abm sse4a misalignsse 3dnowprefetch topoext perfctr_core ssbd perfmon_v2 ibrs ibpb stibp ibrs_enhanced vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 clzero xsaveerptr rdpru wbnoinvd arat avx512vbmi pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid movdiri movdir64b fsrm avx512_vp2intersect flush_l1d"}, {"field": "Hypervisor vendor:", "data": "KVM"}]}'
BW_MEM = "rd 0.016384 221653.47\nrd 256.00 47994.00\nrd 512.00 45665.36\nwr 512.00 33272.68\n"


@pytest.fixture
def converter():
    return load("sparecores_rows.py")


def mirror(tmp_path: Path, folders: dict[str, dict[str, str]]) -> Path:
    for folder, files in folders.items():
        for name, text in files.items():
            path = tmp_path / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "data"]):
        subprocess.run([*git, *args], check=True)
    return tmp_path


def test_a_vm_is_a_host_of_its_own_with_its_cpuid_tsc_clock_and_measured_read_bandwidth(converter, tmp_path):
    gpu = json.loads(TG_RECORD) | {"gpu_info": "NVIDIA L4", "backends": "CUDA"}  # a GPU instance's record: not a CPU's decode
    arm = json.loads(LSCPU)
    arm["lscpu"] = [f if f["field"] != "Architecture:" else {"field": "Architecture:", "data": "aarch64"} for f in arm["lscpu"]]
    root = mirror(tmp_path, {
        "data/aws/r8a.medium": {"llm/stdout": TG_RECORD + "\n", "lscpu/stdout": LSCPU, "bw_mem/stdout": BW_MEM},
        "data/aws/g6.xlarge": {"llm/stdout": json.dumps(gpu) + "\n", "lscpu/stdout": LSCPU, "bw_mem/stdout": BW_MEM},
        "data/aws/c8g.medium": {"llm/stdout": TG_RECORD + "\n", "lscpu/stdout": json.dumps(arm), "bw_mem/stdout": BW_MEM},
    })
    rows, host = converter.instance_rows(root, "data/aws/r8a.medium")
    assert [(r["id"], r["threads"], r["tg"]["tps"], r["model_bytes"], r["model"]) for r in rows] == [
        ("sparecores-aws-r8a.medium-t1", 1, 6.9891, 4080263168, "llama2-7b")]
    spec = host["sparecores-aws-r8a.medium"]
    assert spec["cpuid"] == {"vendor_id": "AuthenticAMD", "family": 26, "model": 2}
    assert spec["clock_ghz"]["base"] == 2.6  # BogoMIPS 5199.99 / 2: the TSC rate detection reads in a VM
    assert spec["memory"]["bandwidth_gbs"] == 45.67 and spec["memory"]["measured"]  # bw_mem's read at 512 MB
    assert converter.instance_rows(root, "data/aws/g6.xlarge") == ([], None)
    assert converter.instance_rows(root, "data/aws/c8g.medium") == ([], None)


def test_a_run_on_other_hardware_than_lscpu_describes_is_flagged(converter):
    """Azure's Standard_D16_v5: lscpu lists an Ice Lake 8370C (AVX-512 VNNI, no AMX), but its llama-bench log loaded the
    `sapphirerapids` CPU variant (SpareCores/sc-inspector-data data/azure/Standard_D16_v5/llm/stderr, verbatim line), and
    prompted at 90 tok/s where the same type's other VMs ran 33: the two captures came from two hosts."""
    icelake = set(json.loads(LSCPU)["lscpu"][-2]["data"].split()) - {"avx_vnni", "avx512_bf16"}  # the 8370C's AVX-512 set
    spr = "load_backend: loaded CPU backend from ./libggml-cpu-sapphirerapids.so\n"
    assert "amx_int8" in converter.other_hardware(spr, icelake)
    assert converter.other_hardware(spr.replace("sapphirerapids", "icelake"), icelake) is None
    assert "runs icelake" in converter.other_hardware(spr.replace("sapphirerapids", "haswell"), icelake)  # AVX-512 unseen
    assert converter.other_hardware("", icelake) is None  # no log: nothing to tell


GRAVITON3_TG = '{"build_commit": "51f311e0", "build_number": 4753, "cpu_info": "CPU", "gpu_info": "", "backends": "CPU", "model_filename": "/models/llama-7b.Q4_K_M.gguf", "model_type": "llama 7B Q4_K - Medium", "model_size": 4080263168, "model_n_params": 6738415616, "n_batch": 2048, "n_ubatch": 512, "n_threads": 8, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 0, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": true, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 0, "n_gen": 128, "test_time": "2025-04-19T13:17:55Z", "avg_ns": 11965329230, "stddev_ns": 120691984, "avg_ts": 10.698444, "stddev_ts": 0.107811, "samples_ns": [ 11822330157, 11949271518, 11883685213, 12116707453, 12054651809 ],"samples_ts": [ 10.827, 10.712, 10.7711, 10.5639, 10.6183 ]}'
GRAVITON3_LSCPU = '{"lscpu": [{"field": "Architecture:", "data": "aarch64"}, {"field": "CPU(s):", "data": "8"}, {"field": "Vendor ID:", "data": "ARM"}, {"field": "BIOS Vendor ID:", "data": "AWS"}, {"field": "Model name:", "data": "Neoverse-V1"}, {"field": "BIOS Model name:", "data": "AWS Graviton3 AWS Graviton3 CPU @ 2.6GHz"}, {"field": "Thread(s) per core:", "data": "1"}, {"field": "BogoMIPS:", "data": "2100.00"}, {"field": "Flags:", "data": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng"}]}'
GRAVITON3_BW_MEM = "rd 256.00 149937.67\nrd 512.00 150940.14\nwr 64.00 65762.42\n"


def test_an_arm_vm_is_a_host_of_its_own_with_its_core_smbios_clock_and_measured_read_bandwidth(tmp_path):
    """AWS's c7g.2xlarge (SpareCores/sc-inspector-data data/aws/c7g.2xlarge, commit 1184816c: the llama-bench record
    verbatim, lscpu trimmed to the fields read, bw_mem's read lines): a Graviton3's 8 vCPUs, each a whole Neoverse-V1
    core. Its clock is the one its SMBIOS names (an Arm VM's BogoMIPS is the timer's, not the core's); an x86 VM is the
    other converter's."""
    arm = load("sparecores_arm_rows.py")
    root = mirror(tmp_path, {
        "data/aws/c7g.2xlarge": {"llm/stdout": GRAVITON3_TG + "\n", "lscpu/stdout": GRAVITON3_LSCPU, "bw_mem/stdout": GRAVITON3_BW_MEM},
        "data/aws/r8a.medium": {"llm/stdout": TG_RECORD + "\n", "lscpu/stdout": LSCPU, "bw_mem/stdout": BW_MEM},
    })
    cores = arm.arm_cores()
    rows, host = arm.instance_rows(root, "data/aws/c7g.2xlarge", cores)
    assert [(r["id"], r["threads"], r["tg"]["tps"], r["date"]) for r in rows] == [
        ("sparecores-aws-c7g.2xlarge-t8", 8, 10.6984, "2025-02-21")]
    spec = host["sparecores-aws-c7g.2xlarge"]
    assert spec["clock_ghz"]["base"] == 2.6 and spec["cores"]["performance"] == 8
    assert spec["isa"] == ["dotprod", "fp16", "i8mm", "neon", "sve"]
    assert spec["core_type"].startswith("ARM Neoverse-V1 (AWS Graviton3")
    assert spec["memory"]["bandwidth_gbs"] == 150.94 and spec["memory"]["measured"]
    assert arm.instance_rows(root, "data/aws/r8a.medium", cores) == ([], None)
    assert arm.nominal_clock_ghz({"BIOS Model name": "  CPU @ 0.0GHz"}) is None  # a1.metal's: no clock, not zero
    assert arm.nominal_clock_ghz({"CPU max MHz": "3000.0000", "BIOS Model name": "virt CPU @ 2.0GHz"}) == 3.0


def test_the_other_models_of_a_vm_are_rows_of_their_own(tmp_path):
    """SpareCores' runs hold six models per VM (benchmarks/sparecores_models_rows.py keeps the five that are not LLaMA-7B,
    by the same rules as the 7B converters): the r8a.medium's record again, as Qwen1.5-0.5B's file, beside its 7B."""
    models = load("sparecores_models_rows.py")
    qwen = json.loads(TG_RECORD) | {"model_filename": "/models/qwen1_5-0_5b-chat-q4_k_m.gguf", "model_size": 401210368,
                                    "model_n_params": 619570176, "avg_ts": 40.5}
    root = mirror(tmp_path, {"data/aws/r8a.medium": {"llm/stdout": TG_RECORD + "\n" + json.dumps(qwen) + "\n",
                                                     "lscpu/stdout": LSCPU, "bw_mem/stdout": BW_MEM}})
    rows, hosts = models.instance_rows(root, "data/aws/r8a.medium", set())
    assert [(r["id"], r["model"], r["tg"]["tps"], r["model_bytes"]) for r in rows] == [
        ("sparecores-aws-r8a.medium-t1-qwen1.5-0.5b", "qwen1.5-0.5b", 40.5, 401210368)]
    assert rows[0]["note"].startswith("qwen1_5-0_5b-chat-q4_k_m.gguf from huggingface.co/Qwen/")
    assert set(hosts) == {"sparecores-aws-r8a.medium"}
