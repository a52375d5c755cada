/*
 * signals.c: signals that arrive while a command is in the device.
 *
 * A program gets signals: a timer's SIGALRM, a SIGCHLD, a terminal's
 * SIGTSTP and SIGCONT. sgmap_execute must not return while the kernel may
 * still use the command's memory (the caller would then free or reuse it),
 * and must not send a command twice without saying so. This program makes
 * every command slow (scsi_debug's ndelay, 300 ms), sends signals while one
 * is in the device, and checks, in each mode (indirect, direct, mmap) for a
 * read and a write:
 *   - sgmap_execute returns SGMAP_OK with the command's own outcome,
 *   - the driver holds nothing for the handle's fd afterwards
 *     (SG_GET_REQUEST_TABLE),
 *   - the device saw the command once (scsi_debug's cmnd_count),
 *   - the buffer (and the medium) hold the right bytes.
 * Signals come from a child process: SIGUSR1 with a handler installed
 * without SA_RESTART, then with SA_RESTART, then SIGSTOP and SIGCONT.
 * Last, a handle opened read-only (whose commands go by SG_IO): there a
 * restarted ioctl can send a command again, and sgmap must say so
 * (SGMAP_OS_ERROR, errno EINTR, "sent N times") rather than return OK.
 *
 * It needs scsi_debug (root, sysfs knobs); elsewhere it says so and passes.
 *
 *   cc -std=c11 signals.c $(pkg-config --cflags --libs sgmap) -o signals
 *   SGMAP_TEST_SCSI_DEBUG=1 ./signals /dev/sg0  (overwrites 64 KiB at 250 MiB)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <scsi/sg.h>

#include <sgmap.h>

#include "check.h"

#define KNOBS "/sys/bus/pseudo/drivers/scsi_debug/"
#define LATENCY_NS 300000000L

/* ---- scsi_debug's knobs and counters ---- */

static int read_knob(const char *name, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, KNOBS "%s", name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    int ok = fgets(out, (int)len, f) != NULL;
    fclose(f);
    if (!ok) {
        return -1;
    }
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

static int write_knob(const char *name, const char *value)
{
    char path[256];
    snprintf(path, sizeof path, KNOBS "%s", name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fputs(value, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Commands scsi_debug has received (cmnd_count in /proc/scsi/scsi_debug/N). */
static long command_count(void)
{
    DIR *d = opendir("/proc/scsi/scsi_debug");
    if (d == NULL) {
        return -1;
    }
    long total = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[300], line[512];
        snprintf(path, sizeof path, "/proc/scsi/scsi_debug/%s", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        while (fgets(line, sizeof line, f) != NULL) {
            const char *p = strstr(line, "cmnd_count=");
            if (p != NULL) {
                total = (total < 0 ? 0 : total) + strtol(p + strlen("cmnd_count="), NULL, 10);
            }
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

/* Requests the driver holds for `fd`, in any state; -1 if it cannot tell. */
static int driver_requests(int fd)
{
    sg_req_info_t t[SG_MAX_QUEUE];
    memset(t, 0, sizeof t);
    if (ioctl(fd, SG_GET_REQUEST_TABLE, t) != 0) {
        return -1;
    }
    int n = 0;
    for (int i = 0; i < SG_MAX_QUEUE; i++) {
        n += t[i].req_state != 0;
    }
    return n;
}

/* ---- the signals ---- */

enum hit { HANDLER, RESTARTING_HANDLER, STOP_CONTINUE };
static const char *const HIT_NAMES[] = {"SIGUSR1 without SA_RESTART", "SIGUSR1 with SA_RESTART",
                                        "SIGSTOP then SIGCONT"};

static volatile sig_atomic_t handled = 0;

static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Starts a child that signals this process while the next command runs:
 * a few signals, a bounded number (a call that re-sent its command on each
 * one would otherwise never finish). The child is a shell, so that nothing
 * of this process (its heap, its stdio buffers) lives on in it. */
static pid_t start_signals(enum hit hit)
{
    const char *script = hit == STOP_CONTINUE
                             ? "sleep 0.06; kill -STOP $PPID; sleep 0.06; kill -CONT $PPID; "
                               "sleep 0.04; kill -STOP $PPID; sleep 0.25; kill -CONT $PPID"
                             : "sleep 0.06; kill -USR1 $PPID; sleep 0.07; kill -USR1 $PPID; "
                               "sleep 0.07; kill -USR1 $PPID";
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    return child;
}

/* Waits for the child, through the signals it sends us. */
static int wait_child(pid_t child)
{
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return status;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- the commands ---- */

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void rw10(uint8_t cdb[10], int write, uint64_t lba, uint16_t blocks)
{
    memset(cdb, 0, 10);
    cdb[0] = write ? 0x2a : 0x28;
    cdb[2] = (uint8_t)(lba >> 24);
    cdb[3] = (uint8_t)(lba >> 16);
    cdb[4] = (uint8_t)(lba >> 8);
    cdb[5] = (uint8_t)lba;
    cdb[7] = (uint8_t)(blocks >> 8);
    cdb[8] = (uint8_t)blocks;
}

enum way { INDIRECT, DIRECT, MMAP };
static const char *const WAY_NAMES[] = {"indirect", "direct", "mmap"};

/* One command hit by `hit`, checked. `plain` is a quiet handle for setting
 * up and checking the medium. */
static void one(const char *path, sgmap_device *plain, uint32_t block, enum hit hit, enum way way,
                int write, uint64_t lba)
{
    const size_t len = 8 * (size_t)block;
    char what[160];
    snprintf(what, sizeof what, "%s, %s %s", HIT_NAMES[hit], WAY_NAMES[way],
             write ? "write" : "read");
    /* `check` is malloc'd: under memcheck, what sgmap reads into it must
     * count as written by the kernel, whichever way the command went. */
    uint8_t *before = calloc(1, len), *fresh = calloc(1, len), *check = malloc(len);
    if (before == NULL || fresh == NULL || check == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(before, len, (unsigned)lba);
    fill(fresh, len, (unsigned)lba ^ 0xa5a5u);
    MUST(sgmap_write_blocks(plain, lba, before, len, SGMAP_MODE_INDIRECT, NULL));

    /* The handle under test, ready before anything is counted. */
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    uint32_t b = 0;
    MUST(sgmap_block_size(dev, &b));
    uint8_t *data = NULL, *buf = NULL;
    size_t buf_len = 0;
    if (way == MMAP) {
        MUST(sgmap_device_map_reserved(dev, len, NULL));
        MUST(sgmap_buffer(dev, &buf, &buf_len));
        if (buf_len < len) {
            printf("FAIL - %s: mapped only %zu bytes\n", what, buf_len);
            exit(1);
        }
    } else if (way == DIRECT) {
        void *p = NULL;
        MUST(sgmap_direct_buffer_alloc(len, &p));
        data = p;
    } else {
        data = calloc(1, len);
    }
    uint8_t *io = way == MMAP ? buf : data;
    if (write) {
        memcpy(io, fresh, len);
    } else {
        memset(io, 0, len);
    }
    int fd = -1;
    MUST(sgmap_device_fd(dev, &fd));

    uint8_t cdb[10];
    rw10(cdb, write, lba, (uint16_t)(len / block));
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = write ? SGMAP_DIR_TO_DEVICE : SGMAP_DIR_FROM_DEVICE;
    cmd.mode = way == MMAP ? SGMAP_MODE_MMAP : way == DIRECT ? SGMAP_MODE_DIRECT : SGMAP_MODE_INDIRECT;
    cmd.data = way == MMAP ? NULL : data;
    cmd.data_len = len;

    MUST(write_knob("delay", "0") == 0 && write_knob("ndelay", "300000000") == 0
             ? SGMAP_OK
             : SGMAP_OTHER);
    long count0 = command_count();
    handled = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t child = start_signals(hit);
    sgmap_outcome out;
    sgmap_result r = sgmap_execute(dev, &cmd, &out);
    int left = driver_requests(fd);
    double took = seconds_since(&t0);
    int status = wait_child(child);
    nap_ms(2 * LATENCY_NS / 1000000); /* anything still in the device lands */
    long sent = command_count() - count0;
    write_knob("ndelay", "0");
    write_knob("delay", "0");

    CHECK(child > 0 && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s: the signalling child ran", what);
    if (hit != STOP_CONTINUE) {
        CHECK(handled > 0, "%s: %d signal(s) reached the handler", what, (int)handled);
    }
    CHECK_RESULT(r, SGMAP_OK, what);
    CHECK(left == 0, "%s: the driver holds %d request(s) for the fd after the call", what, left);
    CHECK(sent == 1, "%s: the device received the command %ld time(s)", what, sent);
    CHECK(took >= 0.15, "%s: returned after %.3f s, once the command had completed", what, took);
    CHECK(out.transferred == len, "%s: outcome says %zu bytes moved", what, out.transferred);
    if (way == DIRECT) {
        CHECK(out.mode == SGMAP_MODE_DIRECT, "%s: ran as %s", what, sgmap_mode_name(out.mode));
    }
    MUST(sgmap_read_blocks(plain, lba, check, len, SGMAP_MODE_INDIRECT, NULL));
    if (write) {
        CHECK(memcmp(check, fresh, len) == 0, "%s: the medium holds what was written", what);
    } else {
        CHECK(memcmp(io, before, len) == 0, "%s: the buffer holds what the medium holds", what);
    }
    sgmap_device_close(dev);
    if (way == DIRECT) {
        sgmap_direct_buffer_free(data);
    } else {
        free(data);
    }
    free(before);
    free(fresh);
    free(check);
}

/* A read-only handle, a restarting handler: OK once, or an honest EINTR. */
static void read_only(const char *path, sgmap_device *plain, uint32_t block, uint64_t lba)
{
    const size_t len = 8 * (size_t)block;
    uint8_t *want = calloc(1, len), *got = calloc(1, len);
    if (want == NULL || got == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(want, len, 77);
    MUST(sgmap_write_blocks(plain, lba, want, len, SGMAP_MODE_INDIRECT, NULL));
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, SGMAP_OPEN_READ_ONLY, &dev));
    MUST(sgmap_wait_ready(dev));
    int fd = -1;
    MUST(sgmap_device_fd(dev, &fd));
    uint8_t cdb[10];
    rw10(cdb, 0, lba, (uint16_t)(len / block));
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_INDIRECT;
    cmd.data = got;
    cmd.data_len = len;

    MUST(write_knob("delay", "0") == 0 && write_knob("ndelay", "300000000") == 0
             ? SGMAP_OK
             : SGMAP_OTHER);
    long count0 = command_count();
    pid_t child = start_signals(RESTARTING_HANDLER);
    sgmap_result r = sgmap_execute(dev, &cmd, NULL);
    sgmap_error_info info;
    memset(&info, 0, sizeof info);
    sgmap_last_error_info(&info);
    char msg[1024] = "";
    sgmap_last_error_message(msg, sizeof msg, NULL);
    int left = driver_requests(fd);
    int status = wait_child(child);
    nap_ms(2 * LATENCY_NS / 1000000);
    long sent = command_count() - count0;
    write_knob("ndelay", "0");
    write_knob("delay", "0");

    CHECK(child > 0 && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "read-only: the signalling child ran");
    CHECK(left == 0, "read-only: the driver holds %d request(s) for the fd after the call", left);
    if (r == SGMAP_OK) {
        CHECK(sent == 1, "read-only: OK, and the device received the command %ld time(s)", sent);
        CHECK(memcmp(got, want, len) == 0, "read-only: the data read is right");
    } else {
        char says[64];
        snprintf(says, sizeof says, "sent the command %ld times", sent);
        CHECK(r == SGMAP_OS_ERROR && info.os_errno == EINTR && strstr(msg, says) != NULL,
              "read-only: %s, errno %d, and the message says \"%s\": %s", sgmap_result_name(r),
              info.os_errno, says, msg);
        CHECK(strstr(msg, "Rust") == NULL && strstr(msg, "Error::") == NULL,
              "read-only: the message names no Rust type");
    }
    sgmap_device_close(dev);
    free(want);
    free(got);
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    char ndelay[64] = "", delay[64] = "", stats[64] = "";
    if (!on_scsi_debug() || read_knob("ndelay", ndelay, sizeof ndelay) != 0 ||
        read_knob("delay", delay, sizeof delay) != 0 ||
        read_knob("statistics", stats, sizeof stats) != 0) {
        printf("signals: needs the scsi_debug disk and its knobs (SGMAP_TEST_SCSI_DEBUG=1): skipped\n");
        return 0;
    }
    if (write_knob("statistics", "1") != 0 || command_count() < 0) {
        printf("FAIL - cannot turn on scsi_debug's statistics or read its cmnd_count\n");
        return 1;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);

    sgmap_device *plain = NULL;
    MUST(sgmap_device_open(path, 0, &plain));
    MUST(sgmap_wait_ready(plain));
    uint32_t block = 0;
    MUST(sgmap_block_size(plain, &block));
    const uint64_t base = (250ull << 20) / block;

    for (int hit = HANDLER; hit <= STOP_CONTINUE; hit++) {
        sa.sa_flags = hit == RESTARTING_HANDLER ? SA_RESTART : 0;
        sigaction(SIGUSR1, &sa, &old);
        for (int way = INDIRECT; way <= MMAP; way++) {
            for (int write = 0; write <= 1; write++) {
                uint64_t lba = base + (uint64_t)(way * 2 + write) * 16;
                one(path, plain, block, (enum hit)hit, (enum way)way, write, lba);
            }
        }
        sigaction(SIGUSR1, &old, NULL);
    }
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, &old);
    read_only(path, plain, block, base + 100);
    sigaction(SIGUSR1, &old, NULL);

    sgmap_device_close(plain);
    write_knob("ndelay", ndelay);
    write_knob("delay", delay);
    write_knob("statistics", stats);
    return finish("signals");
}
