// Host-to-GPU copy rates, pageable and pinned: what a prompt of host layers pays to copy their weights each batch
// (speed_model.json links: host_to_gpu_pageable_bytes_per_s, pcie_link_source).
//
//   nvcc -O2 -o /tmp/h2d_copy benchmarks/gpu/h2d_copy.cu && /tmp/h2d_copy [MiB]
//
// Prints one JSON line per kind: the best of five copies of the whole buffer (default 1024 MiB; pageable memory is
// malloc'd and touched first, as an mmap'd model file's pages are once read).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

static double best_gbs(void *dst, const void *src, size_t bytes) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    float best = 1e30f;
    for (int i = 0; i < 5; i++) {
        cudaEventRecord(a);
        cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        if (ms < best) best = ms;
    }
    return bytes / (best / 1e3) / 1e9;
}

int main(int argc, char **argv) {
    size_t bytes = (size_t)(argc > 1 ? atoi(argv[1]) : 1024) << 20;
    void *device = nullptr, *pinned = nullptr;
    if (cudaMalloc(&device, bytes) != cudaSuccess || cudaMallocHost(&pinned, bytes) != cudaSuccess) {
        fprintf(stderr, "h2d_copy: could not allocate %zu bytes\n", bytes);
        return 1;
    }
    char *pageable = (char *)malloc(bytes);
    memset(pageable, 1, bytes);
    memset(pinned, 1, bytes);
    printf("{\"kind\": \"pageable\", \"bytes\": %zu, \"gb_per_s\": %.2f}\n", bytes, best_gbs(device, pageable, bytes));
    printf("{\"kind\": \"pinned\", \"bytes\": %zu, \"gb_per_s\": %.2f}\n", bytes, best_gbs(device, pinned, bytes));
    return 0;
}
