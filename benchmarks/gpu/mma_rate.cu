// Throughput of the legacy warp-level tensor-core instruction (mma.sync) on the GPU this runs on.
//
// Why: llama.cpp's quantized prompt kernels (MMQ) multiply int8 blocks with mma.sync m16n8k32, not
// with Hopper's warpgroup wgmma, and NVIDIA's published dense peaks are wgmma's. This measures what
// mma.sync itself can issue, per SM per clock (clock64 on the SM, so the figure does not depend on
// the clock the GPU ran at), which is the peak qwenctl's speed model scales llama.cpp's int8 prompt
// work against (hardware/data/devices.json nvidia_arch, int8_mma_sync_share).
//
//   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o mma_rate mma_rate.cu && ./mma_rate
//
// One block of 512 threads per SM (16 warps), each warp running 4 independent accumulator chains on
// register operands for 20,000 iterations; then again with all-zero operands and with 1,024 threads,
// which must not change the rate if it is the instruction's throughput rather than a latency.
#include <cstdio>

#define MMA(shape, out, in) asm volatile("mma.sync.aligned." shape ";" : out : in);
#define ACC4_I "+r"(acc_i[j][0]), "+r"(acc_i[j][1]), "+r"(acc_i[j][2]), "+r"(acc_i[j][3])
#define ACC4_F "+f"(acc_f[j][0]), "+f"(acc_f[j][1]), "+f"(acc_f[j][2]), "+f"(acc_f[j][3])
#define ACC2_H "+r"(acc_i[j][0]), "+r"(acc_i[j][1])
#define AB_6 "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1)
#define AB_3 "r"(a0), "r"(a1), "r"(b0)
#define REGS_4 " {%0,%1,%2,%3},{%4,%5,%6,%7},{%8,%9},{%0,%1,%2,%3}"

enum Kind { S8_K32, F16_F32, F16_F16, S8_K16, E4M3_K32 };

template <Kind K>
__global__ void spin(int *out, long long *cycles, int iterations, int zero) {
    unsigned a0 = zero ? 0 : threadIdx.x + 0x3c003c00, a1 = a0 ^ 1, a2 = zero ? 0 : a0 * 7, a3 = a0 ^ 3;
    unsigned b0 = zero ? 0 : a0 * 3 + 0x3c00, b1 = zero ? 0 : a0 * 5;
    int acc_i[4][4] = {};
    float acc_f[4][4] = {};
    long long start = clock64();
    for (int i = 0; i < iterations; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (K == S8_K32) MMA("m16n8k32.row.col.s32.s8.s8.s32" REGS_4, ACC4_I, AB_6)
            if (K == F16_F32) MMA("m16n8k16.row.col.f32.f16.f16.f32" REGS_4, ACC4_F, AB_6)
            if (K == F16_F16) MMA("m16n8k16.row.col.f16.f16.f16.f16 {%0,%1},{%2,%3,%4,%5},{%6,%7},{%0,%1}", ACC2_H, AB_6)
            if (K == S8_K16) MMA("m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3},{%4,%5},{%6},{%0,%1,%2,%3}", ACC4_I, AB_3)
            if (K == E4M3_K32) MMA("m16n8k32.row.col.f32.e4m3.e4m3.f32" REGS_4, ACC4_F, AB_6)
        }
    }
    long long end = clock64();
    if (threadIdx.x == 0 && blockIdx.x == 0) *cycles = end - start;
    int sum = 0;  // keep every accumulator live
    for (int j = 0; j < 4; j++)
        for (int q = 0; q < 4; q++) sum += acc_i[j][q] + (int)acc_f[j][q];
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
}

template <Kind K>
void measure(const char *name, double ops_per_instruction, int zero, int threads) {
    int sms;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int iterations = 20000;
    int *out;
    long long *cycles, host_cycles;
    cudaMalloc(&out, sms * threads * sizeof(int));
    cudaMalloc(&cycles, sizeof(long long));
    spin<K><<<sms, threads>>>(out, cycles, 100, zero);  // warm-up
    cudaEvent_t t0, t1;
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    cudaEventRecord(t0);
    spin<K><<<sms, threads>>>(out, cycles, iterations, zero);
    cudaEventRecord(t1);
    cudaEventSynchronize(t1);
    float ms;
    cudaEventElapsedTime(&ms, t0, t1);
    cudaMemcpy(&host_cycles, cycles, sizeof(long long), cudaMemcpyDeviceToHost);
    double total = ops_per_instruction * 4.0 * iterations * (threads / 32) * sms;
    printf("%-22s threads=%4d zero=%d  %8.1f T(FL)OPS  %7.0f ops/SM/clock  (clock %.0f MHz)  %s\n", name, threads, zero,
           total / ms / 1e9, total / sms / host_cycles, host_cycles / ms / 1e3, cudaGetErrorString(cudaGetLastError()));
    cudaFree(out);
    cudaFree(cycles);
}

int main() {
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("%s, %d SMs, compute capability %d.%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);
    for (int variant = 0; variant < 3; variant++) {
        int threads = variant == 2 ? 1024 : 512, zero = variant == 1;
        measure<S8_K32>("s8 m16n8k32 -> s32", 8192, zero, threads);
        measure<S8_K16>("s8 m16n8k16 -> s32", 4096, zero, threads);
        measure<F16_F32>("f16 m16n8k16 -> f32", 4096, zero, threads);
        measure<F16_F16>("f16 m16n8k16 -> f16", 4096, zero, threads);
        measure<E4M3_K32>("e4m3 m16n8k32 -> f32", 8192, zero, threads);
    }
    return 0;
}
