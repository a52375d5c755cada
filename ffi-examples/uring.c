/*
 * uring.c: SCSI commands through io_uring on the bsg node (Linux 7.1+).
 *
 * A ring keeps many commands in flight, submits them in batches with one
 * system call, and moves the data in buffers it registers with the kernel
 * once and owns. A buffer is in flight from the submit that names it until
 * its completion is returned; only outside that may the program touch it.
 *
 * The example writes a pattern over 2 MiB at depth 8 (8 registered buffers
 * of 64 KiB), reads it back in the order the device finishes, checks every
 * byte, then checks the error paths (bad arguments, a buffer in flight, a
 * SCSI error, a READ naming more blocks than its buffer holds), and waits
 * for a completion through the ring's eventfd with poll(2). On kernels without io_uring passthrough it checks that the
 * open fails saying Linux 7.1 is needed, and skips the rest.
 *
 *   cc -std=c11 uring.c $(pkg-config --cflags --libs sgmap) -o uring
 *   ./uring /dev/sg0      (it overwrites 2 MiB at 192 MiB into the disk)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sgmap.h>

#include "check.h"

enum { DEPTH = 8, CHUNK = 64 * 1024, CHUNKS = 32 };

static uint8_t pattern_byte(uint64_t byte_offset)
{
    uint64_t block = byte_offset / 512;
    return (uint8_t)(byte_offset * 31u + block * 7u + (block >> 8) + 1u);
}

/* A READ(16) or WRITE(16) CDB. */
static void rw16(uint8_t cdb[16], int write, uint64_t lba, uint32_t blocks)
{
    memset(cdb, 0, 16);
    cdb[0] = write ? 0x8a : 0x88;
    for (int i = 0; i < 8; i++) {
        cdb[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
        cdb[10 + i] = (uint8_t)(blocks >> (24 - 8 * i));
    }
}

/* True when the running kernel is Linux 7.1 or later. */
static int kernel_has_uring_passthrough(const char **release)
{
    static struct utsname u;
    if (uname(&u) != 0) {
        *release = "?";
        return 0;
    }
    *release = u.release;
    int major = 0, minor = 0;
    if (sscanf(u.release, "%d.%d", &major, &minor) != 2) {
        return 0;
    }
    return major > 7 || (major == 7 && minor >= 1);
}

/* Waits (forever) for one completion that must come. */
static sgmap_ring_completion wait_one(sgmap_ring *r)
{
    sgmap_ring_completion c;
    bool got = false;
    MUST(sgmap_ring_wait(r, -1, &c, &got));
    if (!got) {
        printf("FAIL - sgmap_ring_wait(-1) returned without a completion\n");
        exit(1);
    }
    return c;
}

/* Writes (write = 1) or reads back and checks all CHUNKS, DEPTH at a time. */
static void pass(sgmap_ring *r, uint8_t *bufs[DEPTH], uint64_t base, uint32_t block, int write)
{
    uint64_t chunk_of[DEPTH];     /* which chunk each buffer carries */
    uint64_t ticket_of[DEPTH];
    bool busy[DEPTH] = { false };
    int next = 0, done = 0, good = 0, matched = 0, peak = 0;
    uint8_t cdb[16];
    while (done < CHUNKS) {
        /* Fill every idle buffer with a command, then hand them all over. */
        int queued = 0;
        for (int b = 0; b < DEPTH && next < CHUNKS; b++) {
            if (busy[b]) {
                continue;
            }
            uint64_t off = base + (uint64_t)next * CHUNK;
            if (write) {
                for (size_t i = 0; i < CHUNK; i++) {
                    bufs[b][i] = pattern_byte(off + i);
                }
            } else {
                memset(bufs[b], 0xee, CHUNK);
            }
            rw16(cdb, write, off / block, CHUNK / block);
            sgmap_command cmd;
            memset(&cmd, 0, sizeof cmd);
            cmd.cdb = cdb;
            cmd.cdb_len = 16;
            cmd.direction = write ? SGMAP_DIR_TO_DEVICE : SGMAP_DIR_FROM_DEVICE;
            cmd.data_len = CHUNK;
            MUST(sgmap_ring_submit(r, &cmd, (uint32_t)b, &ticket_of[b]));
            chunk_of[b] = (uint64_t)next;
            busy[b] = true;
            next++;
            queued++;
        }
        size_t in_flight = 0;
        MUST(sgmap_ring_in_flight(r, &in_flight));
        if ((int)in_flight > peak) {
            peak = (int)in_flight;
        }
        if (queued > 0) {
            size_t went = 0;
            MUST(sgmap_ring_flush(r, &went));
            if ((int)went != queued) {
                printf("FAIL - flush handed %zu commands to the kernel, %d were queued\n", went,
                       queued);
                check_failures++;
            }
        }
        sgmap_ring_completion c = wait_one(r);
        if (c.buffer >= DEPTH || !busy[c.buffer] || c.ticket != ticket_of[c.buffer]) {
            printf("FAIL - completion for ticket %llu names buffer %u, not a command in flight\n",
                   (unsigned long long)c.ticket, c.buffer);
            exit(1);
        }
        busy[c.buffer] = false;
        done++;
        if (c.os_errno == 0 && c.outcome.failure == SGMAP_FAILURE_NONE &&
            c.outcome.transferred == CHUNK) {
            good++;
        }
        if (!write) {
            uint64_t off = base + chunk_of[c.buffer] * CHUNK;
            int ok = 1;
            for (size_t i = 0; i < CHUNK; i++) {
                if (bufs[c.buffer][i] != pattern_byte(off + i)) {
                    ok = 0;
                    break;
                }
            }
            matched += ok;
        }
    }
    CHECK(good == CHUNKS, "%s: %d of %d commands of 64 KiB completed GOOD with every byte moved",
          write ? "write" : "read", good, CHUNKS);
    CHECK(peak == DEPTH, "%s: %d commands in flight at once (depth %d)",
          write ? "write" : "read", peak, DEPTH);
    if (!write) {
        CHECK(matched == CHUNKS, "read back: %d of %d chunks match the pattern byte for byte",
              matched, CHUNKS);
    }
}

/* The error paths that need no kernel support: checked before the open. */
static void bad_open_arguments(const char *path)
{
    sgmap_ring *r = (sgmap_ring *)&r; /* must be overwritten with NULL */
    CHECK_RESULT(sgmap_ring_open(NULL, DEPTH, 0, &r), SGMAP_NULL_PARAMETER, "open(NULL path)");
    CHECK(r == NULL, "a failed open stores NULL in *out");
    CHECK_RESULT(sgmap_ring_open(path, DEPTH, 0, NULL), SGMAP_NULL_PARAMETER, "open(NULL out)");
    CHECK_RESULT(sgmap_ring_open(path, 0, 0, &r), SGMAP_INVALID_ARGUMENT, "open(depth 0)");
    CHECK_RESULT(sgmap_ring_open(path, SGMAP_RING_MAX_DEPTH + 1, 0, &r), SGMAP_INVALID_ARGUMENT,
                 "open(depth SGMAP_RING_MAX_DEPTH + 1)");
    CHECK_RESULT(sgmap_ring_open(path, DEPTH, 0x80, &r), SGMAP_INVALID_ARGUMENT,
                 "open(unknown flag 0x80)");
    CHECK_RESULT(sgmap_ring_open("/dev/null", DEPTH, 0, &r), SGMAP_NOT_SG,
                 "open(/dev/null): no SCSI device behind it");

    /* NULL rings and outputs. */
    size_t n = 0;
    bool got = true;
    sgmap_ring_completion c;
    CHECK_RESULT(sgmap_ring_in_flight(NULL, &n), SGMAP_NULL_PARAMETER, "in_flight(NULL ring)");
    CHECK_RESULT(sgmap_ring_flush(NULL, NULL), SGMAP_NULL_PARAMETER, "flush(NULL ring)");
    CHECK_RESULT(sgmap_ring_wait(NULL, 0, &c, &got), SGMAP_NULL_PARAMETER, "wait(NULL ring)");
    CHECK(!got, "a failed wait stores false in *completed");
    CHECK_RESULT(sgmap_ring_register_buffers(NULL, 1, 4096, NULL), SGMAP_NULL_PARAMETER,
                 "register_buffers(NULL ring)");
    CHECK_RESULT(sgmap_ring_buffer(NULL, 0, NULL, NULL), SGMAP_NULL_PARAMETER,
                 "buffer(NULL ring)");
    CHECK_RESULT(sgmap_ring_submit(NULL, NULL, 0, NULL), SGMAP_NULL_PARAMETER,
                 "submit(NULL ring)");
    sgmap_ring_close(NULL); /* does nothing */
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    const uint64_t base = 192u << 20; /* bytes */

    /* Pass over the UNIT ATTENTION with an ordinary handle first. */
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    sgmap_capacity cap;
    MUST(sgmap_read_capacity(dev, &cap));
    uint32_t block = cap.block_size;
    sgmap_device_close(dev);

    bad_open_arguments(path);

    const char *release = NULL;
    int has_uring = kernel_has_uring_passthrough(&release);
    sgmap_ring *r = NULL;
    sgmap_result opened = sgmap_ring_open(path, DEPTH, 0, &r);
    if (!has_uring) {
        CHECK(opened == SGMAP_OPEN_FAILED, "open on Linux %s fails -> %s", release,
              sgmap_result_name(opened));
        const char *msg = last_error();
        CHECK(strstr(msg, "Linux 7.1") != NULL, "the message says Linux 7.1 is needed: %s", msg);
        CHECK(strstr(msg, "sgmap_queue_open") != NULL && strstr(msg, "Queue or Pool") == NULL,
              "  ... and names the C functions to use instead");
        CHECK(r == NULL, "no ring is handed out");
        if (r != NULL) {
            sgmap_ring_close(r);
        }
        printf("skip - Linux %s has no SCSI passthrough through io_uring: nothing more to run\n",
               release);
        return finish("uring");
    }
    CHECK(opened == SGMAP_OK, "open %s on Linux %s, depth %d -> %s", path, release, DEPTH,
          sgmap_result_name(opened));
    if (opened != SGMAP_OK) {
        printf("       last error: %s\n", last_error());
        return finish("uring");
    }

    /* Before any buffer is registered, no index is valid. */
    uint8_t cdb[16];
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    rw16(cdb, 0, base / block, CHUNK / block);
    cmd.cdb = cdb;
    cmd.cdb_len = 16;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.data_len = CHUNK;
    CHECK_RESULT(sgmap_ring_submit(r, &cmd, 0, NULL), SGMAP_INVALID_ARGUMENT,
                 "submit on buffer 0 before any is registered");

    /* Registered buffers: page-aligned, owned by the ring. */
    uint8_t *bufs[DEPTH] = { NULL };
    CHECK_RESULT(sgmap_ring_register_buffers(r, 0, CHUNK, bufs), SGMAP_INVALID_REQUEST,
                 "register 0 buffers");
    MUST(sgmap_ring_register_buffers(r, DEPTH, CHUNK, bufs));
    long page = sysconf(_SC_PAGESIZE);
    int aligned = 0, sized = 0;
    for (int b = 0; b < DEPTH; b++) {
        uint8_t *p = NULL;
        size_t capacity = 0;
        MUST(sgmap_ring_buffer(r, (uint32_t)b, &p, &capacity));
        aligned += p == bufs[b] && p != NULL && (uintptr_t)p % (uintptr_t)page == 0;
        sized += capacity >= CHUNK && capacity % (size_t)page == 0;
    }
    CHECK(aligned == DEPTH, "%d of %d registered buffers are page-aligned, as handed out", aligned,
          DEPTH);
    CHECK(sized == DEPTH, "%d of %d have a page-multiple capacity of at least 64 KiB", sized,
          DEPTH);
    CHECK_RESULT(sgmap_ring_register_buffers(r, DEPTH, CHUNK, NULL), SGMAP_INVALID_REQUEST,
                 "register a second time");
    CHECK_RESULT(sgmap_ring_buffer(r, DEPTH, NULL, NULL), SGMAP_INVALID_ARGUMENT,
                 "buffer(index 8 of 8)");

    /* 1. Write the pattern, 2. read it back, DEPTH in flight. */
    pass(r, bufs, base, block, 1);
    pass(r, bufs, base, block, 0);

    /* 3. Error paths around a buffer in flight. */
    uint64_t t0 = 0;
    MUST(sgmap_ring_submit(r, &cmd, 0, &t0));
    CHECK_RESULT(sgmap_ring_submit(r, &cmd, 0, NULL), SGMAP_WRONG_STATE,
                 "submit on buffer 0 while it is in flight");
    CHECK_RESULT(sgmap_ring_submit(r, &cmd, DEPTH, NULL), SGMAP_INVALID_ARGUMENT,
                 "submit on buffer index 8 of 8");
    CHECK_RESULT(sgmap_ring_submit(r, &cmd, SGMAP_RING_NO_BUFFER, NULL), SGMAP_INVALID_ARGUMENT,
                 "a read with SGMAP_RING_NO_BUFFER");
    CHECK_RESULT(sgmap_ring_submit(r, NULL, 1, NULL), SGMAP_NULL_PARAMETER, "submit(NULL cmd)");
    sgmap_command bad = cmd;
    bad.data = bufs[1];
    CHECK_RESULT(sgmap_ring_submit(r, &bad, 1, NULL), SGMAP_INVALID_ARGUMENT,
                 "submit with cmd->data set");
    bad = cmd;
    bad.data_len = 1u << 30;
    CHECK_RESULT(sgmap_ring_submit(r, &bad, 1, NULL), SGMAP_INVALID_ARGUMENT,
                 "submit of 1 GiB on a 64 KiB buffer");
    bad = cmd;
    bad.data_len = 0;
    CHECK_RESULT(sgmap_ring_submit(r, &bad, 1, NULL), SGMAP_INVALID_ARGUMENT,
                 "a read of 0 bytes on a buffer");
    bad = cmd;
    bad.mode = SGMAP_MODE_MMAP;
    CHECK_RESULT(sgmap_ring_submit(r, &bad, 1, NULL), SGMAP_INVALID_ARGUMENT,
                 "submit with SGMAP_MODE_MMAP");
    bad = cmd;
    bad.cdb_len = 3;
    CHECK_RESULT(sgmap_ring_submit(r, &bad, 1, NULL), SGMAP_INVALID_CDB, "a 3-byte CDB");
    size_t n = 0;
    MUST(sgmap_ring_in_flight(r, &n));
    CHECK(n == 1, "the refused submits left %zu command in flight (1)", n);
    sgmap_ring_completion c;
    bool got = false;
    CHECK_RESULT(sgmap_ring_wait(r, -2, &c, &got), SGMAP_INVALID_ARGUMENT, "wait(timeout -2)");
    CHECK_RESULT(sgmap_ring_wait(r, -1, &c, NULL), SGMAP_NULL_PARAMETER, "wait(NULL completed)");
    CHECK_RESULT(sgmap_ring_wait(r, -1, NULL, &got), SGMAP_NULL_PARAMETER, "wait(NULL out)");
    c = wait_one(r);
    CHECK(c.ticket == t0 && c.buffer == 0 && c.outcome.failure == SGMAP_FAILURE_NONE,
          "the read on buffer 0 completed GOOD (ticket %llu, buffer %u)",
          (unsigned long long)c.ticket, c.buffer);
    int same = 1;
    for (size_t i = 0; i < CHUNK; i++) {
        same &= bufs[0][i] == pattern_byte(base + i);
    }
    CHECK(same, "buffer 0 holds the first chunk again");

    /* Nothing pending: a timed wait gives nothing, an endless one refuses. */
    MUST(sgmap_ring_in_flight(r, &n));
    CHECK(n == 0, "%zu commands in flight after the last completion", n);
    CHECK_RESULT(sgmap_ring_wait(r, 0, &c, &got), SGMAP_OK, "wait(0) with nothing pending");
    CHECK(!got, "  ... and no completion");
    CHECK_RESULT(sgmap_ring_wait(r, -1, &c, &got), SGMAP_INVALID_REQUEST,
                 "wait(-1) with nothing pending");

    /* 4. A command without data, and a SCSI error as a completion. */
    uint8_t tur[6] = { 0 };
    sgmap_command none;
    memset(&none, 0, sizeof none);
    none.cdb = tur;
    none.cdb_len = 6;
    none.direction = SGMAP_DIR_NONE;
    CHECK_RESULT(sgmap_ring_submit(r, &none, 2, NULL), SGMAP_INVALID_ARGUMENT,
                 "TEST UNIT READY naming buffer 2");
    MUST(sgmap_ring_submit(r, &none, SGMAP_RING_NO_BUFFER, NULL));
    c = wait_one(r);
    CHECK(c.buffer == SGMAP_RING_NO_BUFFER && c.outcome.failure == SGMAP_FAILURE_NONE &&
              c.outcome.status == 0,
          "TEST UNIT READY: GOOD, no buffer (%u)", c.buffer);

    rw16(cdb, 0, cap.blocks, 1); /* one block past the end */
    cmd.data_len = block;
    MUST(sgmap_ring_submit(r, &cmd, 3, NULL));
    c = wait_one(r);
    CHECK(c.os_errno == 0 && c.outcome.failure == SGMAP_FAILURE_CHECK_CONDITION &&
              c.outcome.has_sense && c.outcome.sense_key == 5 && c.outcome.transferred == 0,
          "READ past the end: CHECK CONDITION, ILLEGAL REQUEST (key %u, asc %#x), 0 bytes",
          c.outcome.sense_key, c.outcome.asc);
    CHECK(c.buffer == 3, "  ... and buffer 3 is idle again (%u)", c.buffer);

    /* 5. A READ naming more blocks than its buffer holds is refused. */
    rw16(cdb, 0, base / block, 2 * CHUNK / block);
    cmd.data_len = CHUNK;
    CHECK_RESULT(sgmap_ring_submit(r, &cmd, 4, NULL), SGMAP_INVALID_REQUEST,
                 "a READ of 128 KiB into a 64 KiB buffer");
    CHECK(strstr(last_error(), "names") != NULL, "  ... saying what it needs: %s", last_error());
    MUST(sgmap_ring_in_flight(r, &n));
    CHECK(n == 0, "  ... and nothing went in flight (%zu)", n);

    /* 6. The caller's event loop: poll the ring's eventfd. */
    int efd = -1, efd2 = -2;
    CHECK_RESULT(sgmap_ring_event_fd(NULL, &efd), SGMAP_NULL_PARAMETER, "event_fd(NULL ring)");
    CHECK_RESULT(sgmap_ring_event_fd(r, NULL), SGMAP_NULL_PARAMETER, "event_fd(NULL out)");
    MUST(sgmap_ring_event_fd(r, &efd));
    MUST(sgmap_ring_event_fd(r, &efd2));
    CHECK(efd >= 0 && efd == efd2, "the ring's eventfd %d, the same on a second call (%d)", efd,
          efd2);
    rw16(cdb, 0, base / block, CHUNK / block);
    uint64_t t5 = 0;
    MUST(sgmap_ring_submit(r, &cmd, 5, &t5));
    MUST(sgmap_ring_flush(r, NULL));
    struct pollfd p = { .fd = efd, .events = POLLIN };
    int ready = poll(&p, 1, 10000);
    CHECK(ready == 1 && (p.revents & POLLIN), "poll: the eventfd is readable once the read is done");
    CHECK_RESULT(sgmap_ring_wait(r, 0, &c, &got), SGMAP_OK, "wait(0) after poll");
    CHECK(got && c.ticket == t5 && c.buffer == 5 && c.outcome.failure == SGMAP_FAILURE_NONE,
          "  ... gives the read (ticket %llu, buffer %u)", (unsigned long long)c.ticket, c.buffer);
    same = 1;
    for (size_t i = 0; i < CHUNK; i++) {
        same &= bufs[5][i] == pattern_byte(base + i);
    }
    CHECK(same, "  ... with the pattern in buffer 5");
    CHECK_RESULT(sgmap_ring_wait(r, 0, &c, &got), SGMAP_OK, "wait(0) again");
    CHECK(!got, "  ... finds nothing");
    p.revents = 0;
    CHECK(poll(&p, 1, 0) == 0, "and the eventfd no longer polls readable");

    /* 7. Close with commands in flight: it waits for them. */
    rw16(cdb, 0, base / block, CHUNK / block);
    cmd.data_len = CHUNK;
    for (uint32_t b = 0; b < DEPTH; b++) {
        MUST(sgmap_ring_submit(r, &cmd, b, NULL));
    }
    MUST(sgmap_ring_flush(r, NULL));
    MUST(sgmap_ring_in_flight(r, &n));
    CHECK(n == DEPTH, "%zu reads in flight before close (%d)", n, DEPTH);
    sgmap_ring_close(r); /* waits for them before it frees the buffers */
    return finish("uring");
}
