// SPDX-License-Identifier: Apache-2.0
/*
 * sysloop: the syscall micro-benchmark. Times a tight loop of getppid(2), issued through
 * syscall(2) so no libc caching can skip the kernel, and prints nanoseconds per call.
 *
 *   sysloop ITERATIONS BATCHES [CPU]
 *                                time BATCHES batches of ITERATIONS calls, pinned to CPU if
 *                                given; print each batch's ns/call (thread CPU time, and
 *                                wall-clock time for reference) and then "median <ns>", the
 *                                median over batches of the CPU-time figure (what the
 *                                harness uses)
 *   sysloop forever              call getppid in a loop until killed (the "syscall storm")
 *
 * Built static by bench/run.sh so the same binary runs on the host and, bind-mounted, in a
 * busybox container. getppid is about the cheapest syscall there is: nearly all of its cost is
 * the entry/exit path, which is exactly where a sys_enter program adds its cost.
 *
 * Pinning matters: on the 2-vCPU machines this was written on, the same program costs up to
 * 60 ns/call more on one CPU than on the other (bpftrace's classic tracepoint in particular),
 * so the harness measures on every CPU in turn rather than wherever the scheduler puts it.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

/*
 * The thread's own CPU time (the scheduler's precise runtime, user + kernel), not wall-clock
 * time: on a shared 2-CPU machine the loop is often preempted by other work, which would add
 * the other work's time to ours. Time spent in our own syscalls, and in BPF programs they
 * trigger, is charged to this thread, so it is all counted. Two real syscalls per batch.
 */
static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: not a syscall */
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "forever") == 0) {
		for (;;)
			syscall(SYS_getppid);
	}
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: sysloop ITERATIONS BATCHES [CPU] | sysloop forever\n");
		return 2;
	}
	long iterations = strtol(argv[1], NULL, 10);
	int batches = (int)strtol(argv[2], NULL, 10);

	if (iterations <= 0 || batches <= 0 || batches > 1000) {
		fprintf(stderr, "sysloop: ITERATIONS and BATCHES must be positive (BATCHES <= 1000)\n");
		return 2;
	}
	if (argc == 4) {
		cpu_set_t set;
		int cpu = (int)strtol(argv[3], NULL, 10);

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (cpu < 0 || cpu >= CPU_SETSIZE || sched_setaffinity(0, sizeof(set), &set)) {
			perror("sysloop: sched_setaffinity");
			return 1;
		}
	}
	double *ns = calloc((size_t)batches, sizeof(*ns));
	double *wall = calloc((size_t)batches, sizeof(*wall));

	if (!ns || !wall)
		return 1;
	/* Warm-up: fault in the code path and let the CPU settle before timing. */
	for (long i = 0; i < iterations / 10; i++)
		syscall(SYS_getppid);
	for (int b = 0; b < batches; b++) {
		double w0 = wall_ns(), t0 = cpu_ns();

		for (long i = 0; i < iterations; i++)
			syscall(SYS_getppid);
		ns[b] = (cpu_ns() - t0) / (double)iterations;
		wall[b] = (wall_ns() - w0) / (double)iterations;
		printf("batch %d %.2f wall %.2f\n", b, ns[b], wall[b]);
	}
	qsort(ns, (size_t)batches, sizeof(*ns), cmp_double);
	qsort(wall, (size_t)batches, sizeof(*wall), cmp_double);
	printf("median %.2f wall %.2f\n", ns[batches / 2], wall[batches / 2]);
	free(ns);
	free(wall);
	return 0;
}
