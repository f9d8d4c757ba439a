/*
 * process.c - the process_* metrics of the Prometheus client conventions, read from
 * /proc/self at scrape time (Linux). Each value is computed by a callback gauge/counter, so
 * nothing runs between scrapes and nothing is stored. A value that cannot be read (no
 * /proc, a descriptor limit reached while opening it) is exposed as NaN rather than a
 * plausible-looking 0. Runs on the scraping thread; reads only, no state.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "weft/metrics.h"

/* Fields of /proc/self/stat after the command name: utime(14) stime(15) starttime(22)
 * vsize(23) rss(24), 1-based as in proc(5). */
static int read_stat(double *utime, double *stime, double *start, double *vsize, double *rss)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ') return -1;
    p += 2; /* field 3, the state letter */
    unsigned long long v[25] = {0};
    int i;
    for (i = 3; i <= 24 && *p; i++) {
        if (i > 3) v[i] = strtoull(p, &p, 10);
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
    if (i <= 24) return -1; /* short line */
    double tck = (double)sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    *utime = (double)v[14] / tck;
    *stime = (double)v[15] / tck;
    *start = (double)v[22] / tck;
    *vsize = (double)v[23];
    *rss = (double)v[24] * (double)page;
    return 0;
}

static double cpu_seconds(void *arg)
{
    double u, s, st, vs, rss;
    return read_stat(&u, &s, &st, &vs, &rss) == 0 ? u + s : NAN;
}

static double resident(void *arg)
{
    double u, s, st, vs, rss;
    return read_stat(&u, &s, &st, &vs, &rss) == 0 ? rss : NAN;
}

static double virtual_mem(void *arg)
{
    double u, s, st, vs, rss;
    return read_stat(&u, &s, &st, &vs, &rss) == 0 ? vs : NAN;
}

static double start_time(void *arg)
{
    double u, s, st, vs, rss;
    if (read_stat(&u, &s, &st, &vs, &rss) != 0) return NAN;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return NAN;
    char line[256];
    double btime = NAN;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "btime ", 6) == 0) btime = strtod(line + 6, NULL);
    fclose(f);
    return btime + st;
}

static double open_fds(void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return NAN;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static double max_fds(void *arg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return NAN;
    return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

int weft_metrics_register_process(weft_metrics_registry_t *reg)
{
    int err;
    if ((err = weft_metrics_counter_fn(reg, "process_cpu_seconds_total",
                                       "Total user and system CPU time spent in seconds.",
                                       cpu_seconds, NULL)) ||
        (err = weft_metrics_gauge_fn(reg, "process_resident_memory_bytes",
                                     "Resident memory size in bytes.", resident, NULL)) ||
        (err = weft_metrics_gauge_fn(reg, "process_virtual_memory_bytes",
                                     "Virtual memory size in bytes.", virtual_mem, NULL)) ||
        (err = weft_metrics_gauge_fn(reg, "process_open_fds", "Number of open file descriptors.",
                                     open_fds, NULL)) ||
        (err = weft_metrics_gauge_fn(reg, "process_max_fds",
                                     "Maximum number of open file descriptors.", max_fds, NULL)) ||
        (err = weft_metrics_gauge_fn(reg, "process_start_time_seconds",
                                     "Start time of the process since unix epoch in seconds.",
                                     start_time, NULL)))
        return err;
    return 0;
}
