/*
 * queue_pool.c: many commands in flight at once.
 *
 * A queue keeps up to 16 commands in flight on one fd, with indirect or
 * direct IO; it owns each command's data until the completion is collected.
 * A pool opens N fds, each with its own mapped reserved buffer, for N
 * mmap-ed (zero-copy) commands in flight: the sg driver lets one mmap-ed
 * command at a time use an fd's buffer.
 *
 * The example writes a pattern over 2 MiB with the queue (direct IO), reads
 * it back through the queue in the order the device finishes, then reads it
 * again through a pool of 4 mapped buffers, checking every block.
 *
 *   cc -std=c11 queue_pool.c $(pkg-config --cflags --libs sgmap) -o queue_pool
 *   ./queue_pool /dev/sg0      (it overwrites 2 MiB at 160 MiB into the disk)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sgmap.h>

#include "check.h"

enum { CHUNK = 64 * 1024, CHUNKS = 32 };

static uint8_t pattern_byte(uint64_t byte_offset)
{
    uint64_t block = byte_offset / 512;
    return (uint8_t)(byte_offset * 29u + block * 3u + (block >> 8));
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

/* Checks `len` bytes read from byte offset `off` against the pattern. */
static int matches(const uint8_t *p, size_t len, uint64_t off)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pattern_byte(off + i)) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    const uint64_t base = 160u << 20; /* bytes */

    /* Pass over the UNIT ATTENTION with an ordinary handle first. */
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    uint32_t block = 0;
    MUST(sgmap_block_size(dev, &block));
    sgmap_device_close(dev);

    /* 1. Queue: 32 writes of 64 KiB, direct IO, as fast as the queue takes them. */
    sgmap_queue *q = NULL;
    MUST(sgmap_queue_open(path, 0, &q));
    uint8_t *chunk = malloc(CHUNK);
    if (chunk == NULL) {
        printf("FAIL - out of memory\n");
        return 1;
    }
    uint8_t cdb[16];
    sgmap_command cmd;
    for (int i = 0; i < CHUNKS; i++) {
        uint64_t off = base + (uint64_t)i * CHUNK;
        for (size_t k = 0; k < CHUNK; k++) {
            chunk[k] = pattern_byte(off + k);
        }
        rw16(cdb, 1, off / block, CHUNK / block);
        memset(&cmd, 0, sizeof cmd);
        cmd.cdb = cdb;
        cmd.cdb_len = 16;
        cmd.direction = SGMAP_DIR_TO_DEVICE;
        cmd.mode = SGMAP_MODE_DIRECT;
        cmd.data = chunk; /* copied: `chunk` is ours again at once */
        cmd.data_len = CHUNK;
        MUST(sgmap_queue_submit(q, &cmd, NULL));
    }
    int writes_ok = 0, writes_direct = 0;
    sgmap_completion *c = NULL;
    for (int i = 0; i < CHUNKS; i++) {
        MUST(sgmap_queue_wait(q, &c));
        sgmap_outcome out;
        MUST(sgmap_completion_outcome(c, &out));
        writes_ok += sgmap_completion_check(c) == SGMAP_OK && out.transferred == CHUNK;
        writes_direct += out.mode == SGMAP_MODE_DIRECT;
        sgmap_completion_free(c);
    }
    sgmap_queue_stats st;
    MUST(sgmap_queue_get_stats(q, &st));
    printf("queue: %d writes done, %d of them direct IO; at most %zu in flight at once\n",
           writes_ok, writes_direct, st.peak_in_flight);
    CHECK(writes_ok == CHUNKS, "every queued write completed in full");
    CHECK(st.peak_in_flight > 1 && st.peak_in_flight <= 16,
          "several commands were in flight at once (peak %zu)", st.peak_in_flight);
    CHECK(st.pending == 0 && st.in_flight == 0, "nothing is left pending");

    /* 2. Queue: 32 reads, collected in completion order, matched by ticket. */
    uint64_t tickets[CHUNKS];
    for (int i = 0; i < CHUNKS; i++) {
        uint64_t off = base + (uint64_t)i * CHUNK;
        rw16(cdb, 0, off / block, CHUNK / block);
        memset(&cmd, 0, sizeof cmd);
        cmd.cdb = cdb;
        cmd.cdb_len = 16;
        cmd.direction = SGMAP_DIR_FROM_DEVICE;
        cmd.mode = SGMAP_MODE_INDIRECT;
        cmd.data_len = CHUNK; /* data stays NULL: the bytes come in the completion */
        MUST(sgmap_queue_submit(q, &cmd, &tickets[i]));
    }
    /* The last one first, by ticket; the kernel keeps the others meanwhile. */
    MUST(sgmap_queue_wait_for(q, tickets[CHUNKS - 1], &c));
    int reads_ok = 0;
    for (int n = 0; n < CHUNKS; n++) {
        if (n > 0) {
            MUST(sgmap_queue_wait(q, &c));
        }
        uint64_t t = 0;
        const uint8_t *data = NULL;
        size_t len = 0;
        MUST(sgmap_completion_ticket(c, &t));
        MUST(sgmap_completion_data(c, &data, &len));
        int i = -1;
        for (int k = 0; k < CHUNKS; k++) {
            if (tickets[k] == t) {
                i = k;
            }
        }
        if (i >= 0 && len == CHUNK && matches(data, len, base + (uint64_t)i * CHUNK)) {
            reads_ok++;
        }
        sgmap_completion_free(c);
    }
    CHECK(reads_ok == CHUNKS, "every queued read brought its own chunk back (%d)", reads_ok);
    CHECK_RESULT(sgmap_queue_wait(q, &c), SGMAP_INVALID_REQUEST, "a wait with nothing pending");
    CHECK(c == NULL, "...hands out no completion");
    CHECK_RESULT(sgmap_queue_wait_timeout(q, 0, &c), SGMAP_OK, "a zero wait with nothing pending");
    CHECK(c == NULL, "...finds nothing");
    sgmap_queue_close(q);

    /* 3. Pool: 4 fds with mapped buffers; keep them all busy with mmap-ed reads. */
    sgmap_pool *pool = NULL;
    MUST(sgmap_pool_open(path, 4, CHUNK, &pool));
    sgmap_pool_info info;
    MUST(sgmap_pool_get_info(pool, &info));
    printf("pool: %zu fds, %zu-byte mapped buffers\n", info.fds, info.buffer_len);
    CHECK(info.fds == 4 && info.buffer_len >= (size_t)CHUNK && info.free == 4,
          "4 free buffers of at least 64 KiB");
    int next = 0, done = 0, good = 0;
    uint64_t chunk_of[64];
    while (done < CHUNKS) {
        /* Submit while a buffer is free. */
        while (next < CHUNKS) {
            MUST(sgmap_pool_get_info(pool, &info));
            if (info.free == 0) {
                break;
            }
            uint64_t off = base + (uint64_t)next * CHUNK;
            rw16(cdb, 0, off / block, CHUNK / block);
            memset(&cmd, 0, sizeof cmd);
            cmd.cdb = cdb;
            cmd.cdb_len = 16;
            cmd.direction = SGMAP_DIR_FROM_DEVICE;
            cmd.mode = SGMAP_MODE_MMAP;
            cmd.data_len = CHUNK;
            uint64_t t = 0;
            MUST(sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, &t));
            chunk_of[t % 64] = (uint64_t)next;
            next++;
        }
        /* Take one completion, check its bytes where the device put them, release it. */
        sgmap_pool_completion pc;
        MUST(sgmap_pool_wait(pool, &pc));
        uint64_t i = chunk_of[pc.ticket % 64];
        if (pc.outcome.failure == SGMAP_FAILURE_NONE && pc.outcome.mode == SGMAP_MODE_MMAP &&
            pc.len == CHUNK && matches(pc.data, pc.len, base + i * CHUNK)) {
            good++;
        }
        MUST(sgmap_pool_release(pool, pc.index));
        done++;
    }
    MUST(sgmap_pool_get_info(pool, &info));
    printf("pool: %d mmap-ed reads, %d matched, at most %zu in flight\n", done, good,
           info.peak_in_flight);
    CHECK(good == CHUNKS, "every mmap-ed read found its chunk in its mapped buffer");
    CHECK(info.peak_in_flight == 4, "all 4 buffers were in flight at once");

    /* 4. A pool write: lease a buffer, fill it, submit it. */
    size_t index = 0, len = 0;
    uint8_t *buf = NULL;
    MUST(sgmap_pool_lease(pool, &index, &buf, &len));
    uint64_t off = base + (uint64_t)CHUNKS * CHUNK;
    for (size_t k = 0; k < CHUNK; k++) {
        buf[k] = pattern_byte(off + k);
    }
    rw16(cdb, 1, off / block, CHUNK / block);
    cmd.direction = SGMAP_DIR_TO_DEVICE;
    cmd.mode = SGMAP_MODE_MMAP;
    CHECK_RESULT(sgmap_pool_submit(pool, index, &cmd, NULL), SGMAP_OK, "an mmap-ed write from a leased buffer");
    sgmap_pool_completion pc;
    MUST(sgmap_pool_wait(pool, &pc));
    CHECK(pc.index == index && pc.outcome.failure == SGMAP_FAILURE_NONE && pc.len == CHUNK,
          "the write completed in full from buffer %zu", pc.index);
    /* Until released, that buffer cannot carry another command. */
    memset(&cmd, 0, sizeof cmd);
    rw16(cdb, 0, off / block, CHUNK / block);
    cmd.cdb = cdb;
    cmd.cdb_len = 16;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data_len = CHUNK;
    CHECK_RESULT(sgmap_pool_submit(pool, pc.index, &cmd, NULL), SGMAP_WRONG_STATE,
                 "a submit into a buffer still lent");
    MUST(sgmap_pool_release(pool, pc.index));
    CHECK_RESULT(sgmap_pool_release(pool, pc.index), SGMAP_WRONG_STATE, "a second release");
    uint64_t t = 0;
    MUST(sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, &t));
    MUST(sgmap_pool_wait_for(pool, t, &pc));
    CHECK(pc.len == CHUNK && matches(pc.data, pc.len, off), "reading it back finds the pattern");
    MUST(sgmap_pool_release(pool, pc.index));
    cmd.mode = SGMAP_MODE_INDIRECT;
    CHECK_RESULT(sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, NULL), SGMAP_INVALID_ARGUMENT,
                 "an indirect command in a pool");
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data_len = info.buffer_len + block;
    CHECK_RESULT(sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, NULL), SGMAP_INVALID_REQUEST,
                 "a command longer than the buffers");

    /* 5. SGMAP_POOL_ANY takes any free buffer, also while the buffer freed
     * last still holds a completion the caller has not released. */
    cmd.data_len = CHUNK;
    MUST(sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, &t));
    MUST(sgmap_pool_wait_for(pool, t, &pc));
    sgmap_result r = sgmap_pool_submit(pool, SGMAP_POOL_ANY, &cmd, &t);
    CHECK_RESULT(r, SGMAP_OK, "SGMAP_POOL_ANY with buffer lent and 3 free");
    if (r == SGMAP_OK) {
        sgmap_pool_completion pc2;
        MUST(sgmap_pool_wait_for(pool, t, &pc2));
        CHECK(pc2.index != pc.index && pc2.len == CHUNK && matches(pc2.data, pc2.len, off),
              "...it ran in another buffer (%zu, not the lent %zu) and read the pattern",
              pc2.index, pc.index);
        MUST(sgmap_pool_release(pool, pc2.index));
    }
    size_t leased = 0;
    r = sgmap_pool_lease(pool, &leased, &buf, &len);
    CHECK_RESULT(r, SGMAP_OK, "a lease while a buffer is lent");
    CHECK(r != SGMAP_OK || leased != pc.index, "...never hands out the lent buffer (%zu)", leased);
    MUST(sgmap_pool_release(pool, pc.index));
    /* An index that names no buffer is an argument error, as in sgmap_pool_release. */
    MUST(sgmap_pool_get_info(pool, &info));
    CHECK_RESULT(sgmap_pool_submit(pool, info.fds, &cmd, NULL), SGMAP_INVALID_ARGUMENT,
                 "a submit into buffer 4 of a 4-buffer pool");
    CHECK_RESULT(sgmap_pool_release(pool, info.fds), SGMAP_INVALID_ARGUMENT,
                 "a release of buffer 4 of a 4-buffer pool");
    MUST(sgmap_pool_get_info(pool, &info));
    CHECK(info.free == 4 && info.lent == 0 && info.in_flight == 0, "all 4 buffers free again");
    sgmap_pool_close(pool);

    free(chunk);
    return finish("queue_pool");
}
