/* slow_disk.c - a disk that takes its time to sync, for end-to-end tests
 * (LD_PRELOAD).  fdatasync and fsync do what they always do, after
 * MG_SLOW_SYNC_MS milliseconds (fdatasync only; fsync too with
 * MG_SLOW_FSYNC set), and with MG_SYNC_LOG each names the file it synced,
 * a line each, in that file.  What a busy machine's journal does to a
 * writer now and then (seconds per sync), on demand. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void note(int fd)
{
    const char *log = getenv("MG_SYNC_LOG");
    if (!log)
        return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return;
    path[n] = 0;
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out >= 0) {
        dprintf(out, "%s\n", path);
        close(out);
    }
}

static void wait_ms(const char *var)
{
    const char *v = getenv(var);
    long ms = v ? atol(v) : 0;
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_ms("MG_SLOW_SYNC_MS");
    int r = real(fd);
    note(fd);
    return r;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (getenv("MG_SLOW_FSYNC"))
        wait_ms("MG_SLOW_SYNC_MS");
    int r = real(fd);
    note(fd);
    return r;
}
