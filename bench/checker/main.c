/*
 * bench/checker - what the health checker costs: N HTTP checks at one interval against one
 * HTTP server, for a while; prints the checker thread's CPU as a share of one core and how
 * late runs started (p99 and max over the last 10 s, from weft_checker_stats).
 *
 *   checker --port P [--host 127.0.0.1] [--path /health] [--checks 10000]
 *           [--interval-ms 1000] [--seconds 20] [--warmup 3] [--server-pid PID]
 *
 * The checks are added at once (their first runs are spread over the first interval, as the
 * checker staggers them), then `warmup` seconds pass before the measurement starts, so that
 * connections are pooled and every check has run. The checker's thread is found by its name
 * ("weft-checker") under /proc/self/task; its CPU time comes from schedstat (nanoseconds),
 * read at the start and the end of the window. Every second a line shows runs/s, skipped
 * runs, p99 and max lateness and the thread's CPU in that second. With --server-pid the
 * server's CPU (all its threads, /proc/PID/stat) is shown too. bench/checker/run starts
 * examples/hello and this driver together.
 *
 * The health of each check is not the point: they start passing and a change is only
 * counted. The run fails (exit 1) when any check reported a change (the server did not
 * answer 2xx to every run) or when the checker thread cannot be found.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/checker.h"

static atomic_ullong changes;

static void on_change(void *arg, uint64_t key, weft_health_t status, const char *output)
{
    if (atomic_fetch_add(&changes, 1) < 3)
        fprintf(stderr, "change: key %" PRIu64 " %s: %s\n", key,
                status == 0 ? "passing" : "not passing", output);
}

/* The task id of this process's thread named name, or 0. */
static long find_thread(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    struct dirent *e;
    long tid = 0;
    while (!tid && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof(comm), f)) comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        if (strcmp(comm, name) == 0) tid = strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return tid;
}

/* CPU time of a thread of this process, ns (schedstat's first field). */
static uint64_t thread_cpu_ns(long tid)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f) {
        if (fscanf(f, "%llu", &ns) != 1) ns = 0;
        fclose(f);
    }
    return ns;
}

/* utime + stime of a whole process, ns (clock ticks from /proc/PID/stat). */
static uint64_t process_cpu_ns(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) continue;
}

static void usage(void)
{
    fprintf(stderr, "usage: checker --port P [--host H] [--path /health] [--checks N] "
                    "[--interval-ms MS] [--seconds S] [--warmup S] [--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/health";
    long port = 0, checks = 10000, interval = 1000, seconds = 20, warmup = 3, spid = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *a = argv[i], *v = argv[++i];
        if (strcmp(a, "--port") == 0)
            port = atol(v);
        else if (strcmp(a, "--host") == 0)
            host = v;
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--checks") == 0)
            checks = atol(v);
        else if (strcmp(a, "--interval-ms") == 0)
            interval = atol(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atol(v);
        else if (strcmp(a, "--warmup") == 0)
            warmup = atol(v);
        else if (strcmp(a, "--server-pid") == 0)
            spid = atol(v);
        else
            usage();
    }
    if (port <= 0 || port > 65535 || checks <= 0 || interval <= 0 || seconds <= 0 || warmup < 0)
        usage();

    weft_checker_options_t o;
    weft_checker_options_init(&o);
    o.on_change = on_change;
    weft_checker_t *c;
    int err = weft_checker_new(&o, &c);
    if (err) {
        fprintf(stderr, "checker: weft_checker_new: %d\n", err);
        return 1;
    }
    char url[512];
    snprintf(url, sizeof(url), "http://%s:%ld%s", host, port, path);
    weft_check_spec_t s = {.kind = WEFT_CHECK_HTTP,
                           .target = url,
                           .interval_ms = (uint64_t)interval,
                           .initial = WEFT_HEALTH_PASSING};
    for (long i = 0; i < checks; i++) {
        s.key = (uint64_t)i;
        if ((err = weft_checker_add(c, &s)) != 0) {
            fprintf(stderr, "checker: weft_checker_add: %d\n", err);
            return 1;
        }
    }
    long tid = find_thread("weft-checker");
    if (!tid) {
        fprintf(stderr, "checker: no thread named weft-checker\n");
        return 1;
    }
    printf("%ld HTTP checks every %ld ms against %s, %ld s warm-up, %ld s measured\n", checks,
           interval, url, warmup, seconds);
    uint64_t t = now_ns() + (uint64_t)warmup * 1000000000ull;
    sleep_until(t);

    weft_checker_stats_t st0 = weft_checker_stats(c), prev = st0;
    uint64_t cpu0 = thread_cpu_ns(tid), cpu_prev = cpu0, t0 = now_ns(), t_prev = t0;
    uint64_t scpu0 = spid ? process_cpu_ns(spid) : 0, worst_p99 = 0, worst_max = 0;
    printf("%4s %8s %8s %10s %10s %8s\n", "s", "runs/s", "skipped", "p99 us", "max us", "cpu %");
    for (long i = 1; i <= seconds; i++) {
        sleep_until(t0 + (uint64_t)i * 1000000000ull);
        weft_checker_stats_t now = weft_checker_stats(c);
        uint64_t cpu = thread_cpu_ns(tid), t1 = now_ns();
        printf("%4ld %8" PRIu64 " %8" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8.1f\n", i,
               now.runs - prev.runs, now.skipped - prev.skipped, now.late_p99_us, now.late_max_us,
               100.0 * (double)(cpu - cpu_prev) / (double)(t1 - t_prev));
        if (now.late_p99_us > worst_p99) worst_p99 = now.late_p99_us;
        if (now.late_max_us > worst_max) worst_max = now.late_max_us;
        prev = now;
        cpu_prev = cpu;
        t_prev = t1;
    }
    uint64_t cpu1 = thread_cpu_ns(tid), t1 = now_ns();
    uint64_t scpu1 = spid ? process_cpu_ns(spid) : 0;
    weft_checker_stats_t st1 = weft_checker_stats(c);
    double secs = (double)(t1 - t0) / 1e9, runs = (double)(st1.runs - st0.runs);
    printf("checker thread CPU: %.1f%% of one core (%.2f us per run)\n",
           100.0 * (double)(cpu1 - cpu0) / (double)(t1 - t0),
           runs > 0 ? (double)(cpu1 - cpu0) / 1e3 / runs : 0.0);
    printf("runs: %.0f/s, skipped: %" PRIu64 ", changes: %llu\n", runs / secs,
           st1.skipped - st0.skipped, (unsigned long long)atomic_load(&changes));
    printf("lateness (last 10 s): p99 %" PRIu64 " us, max %" PRIu64
           " us; worst of the per-second readings: p99 %" PRIu64 " us, max %" PRIu64 " us\n",
           st1.late_p99_us, st1.late_max_us, worst_p99, worst_max);
    if (spid)
        printf("server CPU (pid %ld): %.1f%% of one core\n", spid,
               100.0 * (double)(scpu1 - scpu0) / (double)(t1 - t0));
    weft_checker_free(c);
    return atomic_load(&changes) ? 1 : 0;
}
