/* What a clock read costs where this runs, and whether the clock of one
 * CPU is ever behind another's: CLOCK_MONOTONIC read 200,000 times in a
 * loop, then two threads, one on each of the first two CPUs, for 3 s,
 * each checking its reading against the latest either has published.
 * Built and run by lab/bench/clock.sh. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic long long latest;
static _Atomic int stop;
static long long behind[2];
static long reads[2];

static long long now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *compare(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	while (!atomic_load(&stop)) {
		long long seen = atomic_load(&latest);
		long long t = now();
		if (seen - t > behind[cpu])
			behind[cpu] = seen - t;
		reads[cpu]++;
		long long cur = atomic_load(&latest);
		while (cur < t && !atomic_compare_exchange_weak(&latest, &cur, t))
			;
	}
	return NULL;
}

int main(void)
{
	char source[64] = "unknown";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (f) {
		if (fscanf(f, "%63s", source) != 1)
			source[0] = 0;
		fclose(f);
	}
	const int n = 200000;
	long long start = now();
	for (int i = 0; i < n; i++)
		now();
	double each = (double)(now() - start) / n;

	pthread_t a, b;
	pthread_create(&a, NULL, compare, (void *)0L);
	pthread_create(&b, NULL, compare, (void *)1L);
	struct timespec run = {3, 0};
	nanosleep(&run, NULL);
	atomic_store(&stop, 1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("clocksource %s: %.0f ns a clock_gettime; over %ld + %ld reads on two CPUs, "
	       "a reading behind the other CPU's earlier one by at most %lld ns\n",
	       source, each, reads[0], reads[1], behind[0] > behind[1] ? behind[0] : behind[1]);
	return 0;
}
