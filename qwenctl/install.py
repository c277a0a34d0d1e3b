"""The install lines qwenctl tells users to run, once each (errors and warnings quote them from here).

The CUDA and Metal lines rebuild llama-cpp-python from source with the GPU on: ``--force-reinstall``
replaces a CPU-only build, ``--no-cache-dir`` keeps pip from reusing the wheel it built before
(without it pip reinstalls the cached CPU-only wheel and nothing changes).
"""

from __future__ import annotations

# what to install -> the command
INSTALL = {
    "llama": "pip install 'qwenctl[llama]'",
    "mlx": "pip install 'qwenctl[mlx]'",
    "server": "pip install 'qwenctl[server]'",
    "llama-cuda": 'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python',
    # for one GPU's architecture, {arch} its compute capability without the dot ("61"): what a build lacking it needs
    "llama-cuda-arch": 'CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES={arch}" pip install --force-reinstall '
                       '--no-cache-dir llama-cpp-python',
    "llama-metal": 'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir llama-cpp-python',
    # for this CPU's own instruction sets, where the installed build was compiled for a generic one (hardware.build.as_built)
    "llama-native": 'CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --force-reinstall --no-cache-dir llama-cpp-python',
    # llama.cpp's RPC backend (qwenctl worker, --workers); with CUDA: CMAKE_ARGS="-DGGML_CUDA=on -DGGML_RPC=on"
    "llama-rpc": 'CMAKE_ARGS="-DGGML_RPC=ON" pip install --force-reinstall --no-cache-dir llama-cpp-python',
    "nvml": "pip install nvidia-ml-py",
    "numpy": "pip install numpy",
}
