/* The clock one x86-64 core runs at: a chain of dependent integer adds retires one add a cycle on every x86 core
 * since the P6, so adds per second is cycles per second. A VM's /proc/cpuinfo shows the TSC rate (its host's base
 * clock), not this: the development VM's Zen 4 reports 2,596 MHz and runs 3.66 GHz here
 * (benchmarks/results/zen4-dev-vm/README.md). Prints three one-second-ish readings; asserts nothing.
 *
 *     gcc -O1 -o core_clock benchmarks/core_clock.c && ./core_clock
 *     taskset -c 3 ./core_clock           # one core; several at once show the clock with those cores busy
 */
#include <stdio.h>
#include <time.h>

int main(void) {
    const long adds = 2000000000L;
    for (int run = 0; run < 3; run++) {
        struct timespec start, end;
        unsigned long x = 0;
        clock_gettime(CLOCK_MONOTONIC, &start);
        __asm__ volatile("mov %1, %%rcx\n"
                         "1:\n"
                         "add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n"
                         "sub $4, %%rcx\n"
                         "jnz 1b\n"
                         : "+r"(x) : "r"(adds) : "rcx", "cc");
        clock_gettime(CLOCK_MONOTONIC, &end);
        double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
        printf("%.3f GHz\n", (double)adds / seconds / 1e9);
    }
    return 0;
}
