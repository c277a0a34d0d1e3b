"""Cloud GPUs' llama.cpp CUDA speed from SpareCores' public inspector data, as rows for speed_model_fit.py --score.

    python benchmarks/sparecores_gpu_rows.py MIRROR > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores_gpu.json
    python benchmarks/sparecores_gpu_rows.py MIRROR --several > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores_multigpu.json
    python benchmarks/sparecores_gpu_rows.py MIRROR --host > /tmp/rows.json && cp /tmp/rows.json benchmarks/published_sparecores_gpu_host.json

MIRROR is a git directory of github.com/SpareCores/sc-inspector-data (the `fetch` tool's mirror). Each GPU instance
type's folder holds llama-bench's jsonl output (`llm/stdout`: one prebuilt CUDA build, 51f311e0 (4753), `-fa 1
-ngl 999`, five repetitions per test) and `nvidia-smi -q -x` (`nvidia_smi/stdout`), a real device output: the card's
NVML name, memory, power limit and ECC mode. Kept: instances with one whole GPU (a vGPU profile such as "A10-4Q" is a
time slice), the six models of the benchmark with full offload, pp512 and tg128. With --several: the instances with
two to eight GPUs of one model instead, over which llama-bench splits the layers (its default `-sm layer`, in
proportion to each GPU's free memory): each row carries its GPU count. Nothing is fitted on these rows: every GPU in
them is held out or was fitted from other sources' rows, and the scorer prices each as detection would see its
nvidia-smi capture. With --host: the one-GPU instances' runs with no layer offloaded (`-ngl 0`, mostly the 70B that no
card there holds): the host decodes, and a prompt's batches run on the GPU with the weights copied over for each, so
each row also names its host, a VM described as the CPU file's are (lscpu and bw_mem, `sparecores_rows.host_spec`).
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from sparecores_rows import BUILD_DATES, git, host_key, host_spec, lscpu_fields, read_bandwidth, show  # noqa: E402  (the CPU rows' converter)

from qwenctl.hardware.nvidia_specs import gpu_spec  # noqa: E402

SOURCE = "https://github.com/SpareCores/sc-inspector-data"
# the benchmark's files (llm/stderr names each download), as the scorer's shapes
MODELS = {
    "SmolLM-135M.Q4_K_M.gguf": ("smollm-135m", "QuantFactory/SmolLM-135M-GGUF"),
    "qwen1_5-0_5b-chat-q4_k_m.gguf": ("qwen1.5-0.5b", "Qwen/Qwen1.5-0.5B-Chat-GGUF"),
    "gemma-2b.Q4_K_M.gguf": ("gemma-2b", "mlabonne/gemma-2b-GGUF"),
    "llama-7b.Q4_K_M.gguf": ("llama2-7b", "TheBloke/LLaMA-7b-GGUF"),
    "phi-4-q4.gguf": ("phi-4", "microsoft/phi-4-gguf"),
    "Llama-3.3-70B-Instruct-Q4_K_M.gguf": ("llama3-70b", "bartowski/Llama-3.3-70B-Instruct-GGUF"),
}
# architectures from each model's config.json on Hugging Face; params are llama-bench's model_n_params for the file
SHAPES = {
    "smollm-135m": {"hidden_size": 576, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "head_dim": 64,
                    "intermediate_size": 1536, "vocab_size": 49152, "tied_embeddings": True, "params": 134515008,
                    "source": "HuggingFaceTB/SmolLM-135M config.json; params: llama-bench's model_n_params"},
    "qwen1.5-0.5b": {"hidden_size": 1024, "n_layers": 24, "n_heads": 16, "n_kv_heads": 16, "head_dim": 64,
                     "intermediate_size": 2816, "vocab_size": 151936, "tied_embeddings": False, "params": 619570176,
                     "source": "Qwen/Qwen1.5-0.5B-Chat config.json; params: llama-bench's model_n_params, which count "
                               "an output matrix of its own in Qwen's GGUF file (2 x 151,936 x 1,024 embedding weights)"},
    "gemma-2b": {"hidden_size": 2048, "n_layers": 18, "n_heads": 8, "n_kv_heads": 1, "head_dim": 256,
                 "intermediate_size": 16384, "vocab_size": 256000, "tied_embeddings": True, "params": 2506172416,
                 "source": "google/gemma-2b config.json; params: llama-bench's model_n_params"},
    "phi-4": {"hidden_size": 5120, "n_layers": 40, "n_heads": 40, "n_kv_heads": 10, "head_dim": 128,
              "intermediate_size": 17920, "vocab_size": 100352, "tied_embeddings": False, "params": 14659507200,
              "source": "microsoft/phi-4 config.json; params: llama-bench's model_n_params"},
}
VGPU = re.compile(r"-\d+[A-Z]$")  # a vGPU profile's name: "NVIDIA A10-4Q", "GRID T4-8Q"


def _number(text: str | None) -> float | None:
    m = re.match(r"\s*([\d.]+)", text or "")
    return float(m.group(1)) if m else None


def card(xml_text: str) -> dict | None:
    """The GPUs of an `nvidia-smi -q -x` capture: the first's name, memory, ECC mode, power limit and PCIe link (the
    highest generation it and its slot support, the lanes it trained at), and how many there are; None for GPUs of
    several models or a vGPU."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:  # a capture that is not nvidia-smi's XML (an error message)
        return None
    gpus = root.findall("gpu")
    if not gpus or len({g.findtext("product_name") for g in gpus}) != 1:
        return None
    g = gpus[0]
    name = g.findtext("product_name") or ""
    if VGPU.search(name):
        return None
    ecc = g.findtext("ecc_mode/current_ecc")
    power = next((p for p in (g.find("gpu_power_readings"), g.find("power_readings")) if p is not None), None)
    return {
        "name": name,
        "memory_mib": _number(g.findtext("fb_memory_usage/total")),
        "ecc": {"Enabled": True, "Disabled": False}.get(ecc or ""),
        "power_limit_w": _number(power.findtext("current_power_limit")) if power is not None else None,
        "driver": root.findtext("driver_version"),
        "count": len(gpus),
        "pcie_gen": _number(g.findtext("pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
        "pcie_width": _number(g.findtext("pci/pci_gpu_link_info/link_widths/current_link_width")),
    }


def pcie(gpu: dict) -> dict:
    """The row's fields for the GPU's PCIe link, where its capture gives one."""
    return {"gpu_pcie_gen": int(gpu["pcie_gen"]), "gpu_pcie_width": int(gpu["pcie_width"])} if gpu["pcie_gen"] and gpu["pcie_width"] else {}


def instance(mirror: Path, folder: str) -> tuple[dict, dict, list[dict]] | None:
    """(its GPUs as `card` reads them, their specification, llama-bench's records) of an instance type's folder; None
    where a capture is missing or names a GPU no specification has."""
    smi, out = show(mirror, f"{folder}/nvidia_smi/stdout"), show(mirror, f"{folder}/llm/stdout")
    gpu = card(smi) if smi and out else None
    if gpu is None:
        return None
    spec = gpu_spec(gpu["name"], None, int(gpu["memory_mib"] * 2**20) if gpu["memory_mib"] else None, gpu["power_limit_w"])
    return (gpu, spec, [json.loads(line) for line in out.splitlines() if line.startswith("{")]) if spec else None


def instance_rows(mirror: Path, folder: str, several: bool = False) -> list[dict]:
    found = instance(mirror, folder)
    if found is None or (found[0]["count"] > 1) != several:
        return []
    gpu, spec, records = found
    # llama-bench names every GPU it used ("Tesla T4, Tesla T4"): a run that saw none (an empty name) ran on the CPU
    full = [r for r in records if r.get("gpu_info") == ", ".join([gpu["name"]] * gpu["count"])
            and r.get("backends") == "CUDA" and r["n_gpu_layers"] >= 999 and r.get("split_mode", "layer") == "layer"]
    smi_date = json.loads(show(mirror, f"{folder}/nvidia_smi/meta.json") or "{}").get("start", "")[:10]
    key = folder.removeprefix("data/").replace("/", "-").lower()
    rows = []
    for file, (model, repo) in MODELS.items():
        tg = next((r for r in full if r["model_filename"].endswith(file) and (r["n_prompt"], r["n_gen"]) == (0, 128)), None)
        pp = next((r for r in full if r["model_filename"].endswith(file) and (r["n_prompt"], r["n_gen"]) == (512, 0)), None)
        if tg is None and pp is None:
            continue
        r = tg or pp
        rows.append({
            "id": f"scg-{key}-{model}", "device": f"{folder.split('/')[1]} {folder.split('/')[2]} ({gpu['name']})",
            "device_key": spec["key"], "backend": "cuda", **({"gpus": gpu["count"]} if several else {}),
            "engine": f"llama.cpp build {r['build_commit']} ({r['build_number']}) (llama-bench -fa 1 -ngl 999 -ub 512 -b 2048, "
                      "-p 0 -n 128 and -p 512 -n 0, five repetitions, prebuilt CUDA binary)",
            "date": BUILD_DATES[r["build_commit"]], "model": model, "quant": "q4_k_m", "model_bytes": r["model_size"],
            "params": r["model_n_params"], "n_gpu_layers": r["n_gpu_layers"], "threads": r["n_threads"],
            "flash_attn": bool(r["flash_attn"]),
            "pp": {"n_tokens": 512, "tps": round(pp["avg_ts"], 2)} if pp else None,
            "tg": {"n_tokens": 128, "tps": round(tg["avg_ts"], 2)} if tg else None,
            "host_memory": None, "gpu_power_limit_w": gpu["power_limit_w"], "gpu_ecc": gpu["ecc"],
            **pcie(gpu),
            "source": f"{SOURCE} {folder}/llm/stdout (test_time {r['test_time']}); {folder}/nvidia_smi/stdout "
                      f"(nvidia-smi -q -x, driver {gpu['driver']}, captured {smi_date})",
            "note": f"{file} from huggingface.co/{repo}. GPU facts (ECC mode, power limit) from the instance type's "
                    "nvidia-smi capture, which may come from another launch than the benchmark's.",
        })
    return rows


def host_rows(mirror: Path, folder: str) -> tuple[list[dict], dict]:
    """The runs of a one-GPU instance with no layer on the GPU, and its host: ([rows], {host key: host})."""
    found = instance(mirror, folder)
    cpu_text, bw_text = show(mirror, f"{folder}/lscpu/stdout"), show(mirror, f"{folder}/bw_mem/stdout")
    if found is None or found[0]["count"] != 1 or not cpu_text or not bw_text:
        return [], {}
    gpu, spec, records = found
    cpu, bandwidth = lscpu_fields(cpu_text), read_bandwidth(bw_text)
    if bandwidth is None or cpu.get("Architecture") != "x86_64":
        return [], {}
    none = [r for r in records if r.get("gpu_info") == gpu["name"] and r.get("backends") == "CUDA" and r["n_gpu_layers"] == 0]
    rows = []
    for file, (model, repo) in MODELS.items():
        mine = [r for r in none if r["model_filename"].endswith(file)]
        pp = next((r for r in mine if (r["n_prompt"], r["n_gen"]) == (512, 0)), None)
        tg = max((r for r in mine if r["n_prompt"] == 0 and r["n_gen"] in (16, 128)), key=lambda r: r["n_gen"], default=None)
        if tg is None and pp is None:
            continue
        r = tg or pp
        rows.append({
            "id": f"scg-host-{host_key(folder).removeprefix('sparecores-')}-{model}",
            "device": f"{folder.split('/')[1]} {folder.split('/')[2]} ({gpu['name']}; {cpu['Model name']}, {r['n_threads']} threads)",
            "device_key": spec["key"], "backend": "split", "host_key": host_key(folder),
            "engine": f"llama.cpp build {r['build_commit']} ({r['build_number']}) (llama-bench -fa 1 -ngl 0 -t {r['n_threads']}, "
                      "-p 512 -n 0 and -p 0 -n 16 or 128, five repetitions, prebuilt CUDA binary)",
            "date": BUILD_DATES[r["build_commit"]], "model": model, "quant": "q4_k_m", "model_bytes": r["model_size"],
            "params": r["model_n_params"], "n_gpu_layers": 0, "threads": r["n_threads"], "flash_attn": bool(r["flash_attn"]),
            "pp": {"n_tokens": 512, "tps": round(pp["avg_ts"], 2)} if pp else None,
            "tg": {"n_tokens": tg["n_gen"], "tps": round(tg["avg_ts"], 3)} if tg else None,
            "host_memory": "a cloud VM's share (not a specification)", "gpu_power_limit_w": gpu["power_limit_w"],
            "gpu_ecc": gpu["ecc"], **pcie(gpu),
            "source": f"{SOURCE} {folder}/llm/stdout (test_time {r['test_time']}); {folder}/nvidia_smi/stdout, lscpu/stdout, "
                      "bw_mem/stdout",
            "note": f"{file} from huggingface.co/{repo}, no layer offloaded: the host decodes; a prompt's batches run on the "
                    "GPU, the weights copied over from pageable host memory for each.",
        })
    host = host_spec(folder, cpu, bandwidth, rows[0]["threads"]) if rows else None
    return rows, ({host_key(folder): host} if host else {})


def main() -> None:
    mirror, several, on_host = Path(sys.argv[1]), "--several" in sys.argv[2:], "--host" in sys.argv[2:]
    folders = [f"data/{v}/{i}" for v in git(mirror, "ls-tree", "--name-only", "HEAD:data/").split() if v != ".gitkeep"
               for i in git(mirror, "ls-tree", "--name-only", f"HEAD:data/{v}").split()]
    hosts: dict[str, dict] = {}
    if on_host:
        rows = []
        for folder in folders:
            got, host = host_rows(mirror, folder)
            rows += got
            hosts.update(host)
    else:
        rows = [row for folder in folders for row in instance_rows(mirror, folder, several)]
    head = git(mirror, "rev-parse", "HEAD").strip()
    what = (" Instances with 2 to 8 GPUs of one model, split by layer (`gpus`: how many)." if several else
            " One-GPU instances' runs with no layer offloaded (`-ngl 0`), each on its own host (`cpu_hosts`)." if on_host else "")
    doc = {"about": f"{__doc__.strip().splitlines()[0]}{what} Converted by benchmarks/sparecores_gpu_rows.py from {SOURCE} at {head}.",
           "collected": "2026-12-06", "shapes": SHAPES, "rows": rows, **({"cpu_hosts": hosts} if on_host else {})}
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
