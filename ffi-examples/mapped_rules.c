/*
 * mapped_rules.c: what a mapped handle carries, and who may use it.
 *
 * Once a handle's reserved buffer is mapped, the program keeps its data
 * there. The sg driver lends that same buffer to any ordinary (indirect)
 * command whose data fits it, so sgmap sends, on a mapped handle, only
 * SGMAP_MODE_MMAP commands and commands without data; everything else is
 * refused with SGMAP_WRONG_STATE before the kernel sees it, and no helper
 * sends a command of its own through the buffer (the block size is learnt
 * when mapping). The buffer is lent to one thread at a time: an mmap-ed
 * command lends it to the calling thread until sgmap_buffer_release, and a
 * forked child may read it but not run commands on it. A handle opened
 * read-only sends nothing that writes, whoever the caller is. Every open
 * flag works with every helper, and none of them waits for an fd of
 * sgmap's own.
 *
 *   cc -std=c11 mapped_rules.c $(pkg-config --cflags --libs sgmap) -o mapped_rules
 *   ./mapped_rules /dev/sg0     (it overwrites a few MiB at 150 MiB into the disk)
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L /* fork, alarm, waitpid */

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>
#include <unistd.h>

#include <sgmap.h>

#include "check.h"

/* Where this program writes, in bytes into the disk. */
#define BASE (150ull << 20)

static uint32_t block;
static size_t max_transfer;

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 29u + seed * 101u + (i >> 9) * 7u + 1u);
    }
}

static uint64_t lba_at(uint64_t offset) { return (BASE + offset) / block; }

/* C users are told what to call in C, never a Rust name. */
static int speaks_c(const char *msg)
{
    return strstr(msg, "::") == NULL && strstr(msg, "MappedDevice") == NULL &&
           strstr(msg, "DirectBuf") == NULL && strstr(msg, "BlockIo") == NULL;
}

/* Writes `n` bytes of pattern `seed` at `lba` through a plain handle. */
static void put(const char *path, uint64_t lba, size_t n, unsigned seed)
{
    sgmap_device *w = NULL;
    MUST(sgmap_device_open(path, 0, &w));
    uint8_t *p = malloc(n);
    if (p == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(p, n, seed);
    MUST(sgmap_write_blocks(w, lba, p, n, SGMAP_MODE_INDIRECT, NULL));
    free(p);
    sgmap_device_close(w);
}

/* Reads `n` bytes at `lba` through a plain handle and compares with `seed`. */
static int holds(const char *path, uint64_t lba, size_t n, unsigned seed)
{
    sgmap_device *r = NULL;
    MUST(sgmap_device_open(path, 0, &r));
    uint8_t *got = malloc(n), *want = malloc(n);
    if (got == NULL || want == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(want, n, seed);
    MUST(sgmap_read_blocks(r, lba, got, n, SGMAP_MODE_INDIRECT, NULL));
    int same = memcmp(got, want, n) == 0;
    free(got);
    free(want);
    sgmap_device_close(r);
    return same;
}

/* 1. The first mmap-ed write of a fresh handle writes exactly the bytes
 *    the program put in the buffer. */
static void first_mmap_write(const char *path)
{
    printf("-- the first mmap-ed write of a fresh handle\n");
    const size_t n = 16 * (size_t)block;
    const uint64_t lba = lba_at(0);
    put(path, lba, n, 1);
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    MUST(sgmap_device_map_reserved(dev, 64u << 10, NULL));
    uint8_t *buf = NULL;
    size_t len = 0;
    MUST(sgmap_buffer(dev, &buf, &len));
    fill(buf, n, 2);
    sgmap_transfer t;
    CHECK_RESULT(sgmap_write_blocks(dev, lba, NULL, n, SGMAP_MODE_MMAP, &t), SGMAP_OK,
                 "write_blocks(SGMAP_MODE_MMAP) right after mapping");
    uint8_t want[64];
    fill(want, sizeof want, 2);
    CHECK(memcmp(buf, want, sizeof want) == 0, "the buffer's first bytes are still the program's");
    CHECK(holds(path, lba, n, 2), "the disk holds exactly the bytes the program filled");
    sgmap_device_close(dev);
}

/* 2. On a mapped handle nothing but mmap-ed commands and commands without
 *    data runs: the bytes kept in the buffer survive every helper. */
static void nothing_through_the_buffer(const char *path)
{
    printf("-- helpers and caller-buffer commands on a mapped handle\n");
    const size_t n = 8 * (size_t)block;
    const uint64_t lba = lba_at(1u << 20);
    put(path, lba, n, 3);
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    MUST(sgmap_device_map_reserved(dev, 64u << 10, NULL));
    uint8_t *buf = NULL;
    size_t len = 0;
    MUST(sgmap_buffer(dev, &buf, &len));
    uint8_t *kept = malloc(len), *mine = malloc(n);
    void *dbuf = NULL;
    MUST(sgmap_direct_buffer_alloc(n, &dbuf));
    if (kept == NULL || mine == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(kept, len, 4);
    memcpy(buf, kept, len);

#define REFUSED(call, what)                                                              \
    do {                                                                                 \
        CHECK_RESULT(call, SGMAP_WRONG_STATE, what);                                     \
        CHECK(speaks_c(last_error()) && strstr(last_error(), "sgmap_device_open") != NULL, \
              "...and says what to do, in C: %s", last_error());                         \
        CHECK(memcmp(buf, kept, len) == 0, "...and the mapped buffer is untouched");     \
    } while (0)

    sgmap_inquiry_data inq;
    REFUSED(sgmap_inquiry(dev, &inq), "sgmap_inquiry");
    uint8_t vpd[255];
    REFUSED(sgmap_inquiry_vpd(dev, 0, vpd, sizeof vpd, NULL), "sgmap_inquiry_vpd");
    sgmap_capacity cap;
    REFUSED(sgmap_read_capacity(dev, &cap), "sgmap_read_capacity");
    REFUSED(sgmap_read_blocks(dev, lba, mine, n, SGMAP_MODE_INDIRECT, NULL),
            "sgmap_read_blocks(SGMAP_MODE_INDIRECT)");
    REFUSED(sgmap_read_blocks(dev, lba, dbuf, n, SGMAP_MODE_DIRECT, NULL),
            "sgmap_read_blocks(SGMAP_MODE_DIRECT)");
    fill(mine, n, 3);
    REFUSED(sgmap_write_blocks(dev, lba, mine, n, SGMAP_MODE_INDIRECT, NULL),
            "sgmap_write_blocks(SGMAP_MODE_INDIRECT)");
    uint8_t cdb[6] = {0x12, 0, 0, 0, 96, 0}; /* INQUIRY, 96 bytes */
    uint8_t data[96];
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_INDIRECT;
    cmd.data = data;
    cmd.data_len = sizeof data;
    sgmap_outcome out;
    REFUSED(sgmap_execute(dev, &cmd, &out), "sgmap_execute(INQUIRY, SGMAP_MODE_INDIRECT)");
#undef REFUSED

    CHECK_RESULT(sgmap_test_unit_ready(dev), SGMAP_OK, "sgmap_test_unit_ready (no data)");
    CHECK_RESULT(sgmap_synchronize_cache(dev), SGMAP_OK, "sgmap_synchronize_cache (no data)");
    uint32_t b = 0;
    CHECK_RESULT(sgmap_block_size(dev, &b), SGMAP_OK, "sgmap_block_size (learnt when mapping)");
    CHECK(b == block, "...is %u", b);
    size_t mt = 0;
    CHECK_RESULT(sgmap_device_max_transfer(dev, &mt), SGMAP_OK, "sgmap_device_max_transfer");
    CHECK(mt == max_transfer, "...is the queue's limit, %zu (got %zu)", max_transfer, mt);
    CHECK(memcmp(buf, kept, len) == 0, "the mapped buffer is untouched by all of them");
    CHECK_RESULT(sgmap_read_blocks(dev, lba, NULL, n, SGMAP_MODE_MMAP, NULL), SGMAP_OK,
                 "an mmap-ed read still runs");
    fill(mine, n, 3);
    CHECK(memcmp(buf, mine, n) == 0, "...and brings the disk's bytes into the buffer");
    sgmap_direct_buffer_free(dbuf);
    free(kept);
    free(mine);
    sgmap_device_close(dev);
}

/* 3. Each open flag with each helper, unmapped and mapped. */
static void every_open_flag(const char *path)
{
    static const struct {
        const char *name;
        uint32_t flags;
    } cases[] = {
        {"0", 0},
        {"SGMAP_OPEN_NONBLOCK", SGMAP_OPEN_NONBLOCK},
        {"SGMAP_OPEN_READ_ONLY", SGMAP_OPEN_READ_ONLY},
        {"SGMAP_OPEN_READ_ONLY | SGMAP_OPEN_NONBLOCK", SGMAP_OPEN_READ_ONLY | SGMAP_OPEN_NONBLOCK},
        {"SGMAP_OPEN_EXCLUSIVE | SGMAP_OPEN_NONBLOCK", SGMAP_OPEN_EXCLUSIVE | SGMAP_OPEN_NONBLOCK},
        {"SGMAP_OPEN_EXCLUSIVE", SGMAP_OPEN_EXCLUSIVE},
    };
    const size_t n = 16 * (size_t)block;
    const uint64_t lba = lba_at(2u << 20);
    put(path, lba, n, 5);
    uint8_t *mine = malloc(n), *want = malloc(n);
    void *dbuf = NULL;
    MUST(sgmap_direct_buffer_alloc(n, &dbuf));
    if (mine == NULL || want == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(want, n, 5);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const uint32_t flags = cases[k].flags;
        const int ro = (flags & SGMAP_OPEN_READ_ONLY) != 0;
        const sgmap_result writes = ro ? SGMAP_INVALID_REQUEST : SGMAP_OK;
        printf("-- open flags %s\n", cases[k].name);
        fflush(stdout);
        alarm(60); /* a hang ends the program (SIGALRM) instead of the run */
        sgmap_device *dev = NULL;
        MUST(sgmap_device_open(path, flags, &dev));
        CHECK_RESULT(sgmap_wait_ready(dev), SGMAP_OK, "sgmap_wait_ready");
        CHECK_RESULT(sgmap_test_unit_ready(dev), SGMAP_OK, "sgmap_test_unit_ready");
        sgmap_inquiry_data inq;
        CHECK_RESULT(sgmap_inquiry(dev, &inq), SGMAP_OK, "sgmap_inquiry");
        uint8_t vpd[255];
        CHECK_RESULT(sgmap_inquiry_vpd(dev, 0, vpd, sizeof vpd, NULL), SGMAP_OK,
                     "sgmap_inquiry_vpd");
        sgmap_capacity cap;
        CHECK_RESULT(sgmap_read_capacity(dev, &cap), SGMAP_OK, "sgmap_read_capacity");
        uint32_t b = 0;
        CHECK_RESULT(sgmap_block_size(dev, &b), SGMAP_OK, "sgmap_block_size");
        CHECK(b == block, "...is %u", b);
        size_t mt = 0;
        CHECK_RESULT(sgmap_device_max_transfer(dev, &mt), SGMAP_OK, "sgmap_device_max_transfer");
        CHECK(mt == max_transfer, "...is %zu (got %zu)", max_transfer, mt);
        sgmap_scsi_id id;
        CHECK_RESULT(sgmap_device_scsi_id(dev, &id), SGMAP_OK, "sgmap_device_scsi_id");
        uint32_t u = 0;
        CHECK_RESULT(sgmap_device_sg_table_size(dev, &u), SGMAP_OK, "sgmap_device_sg_table_size");
        CHECK_RESULT(sgmap_device_default_timeout_ms(dev, &u), SGMAP_OK,
                     "sgmap_device_default_timeout_ms");
        size_t z = 0;
        CHECK_RESULT(sgmap_device_reserved_size(dev, &z), SGMAP_OK, "sgmap_device_reserved_size");
        CHECK_RESULT(sgmap_device_num_waiting(dev, &z), SGMAP_OK, "sgmap_device_num_waiting");
        sgmap_request_info reqs[16];
        CHECK_RESULT(sgmap_device_requests(dev, reqs, 16, &z), SGMAP_OK, "sgmap_device_requests");
        memset(mine, 0, n);
        CHECK_RESULT(sgmap_read_blocks(dev, lba, mine, n, SGMAP_MODE_INDIRECT, NULL), SGMAP_OK,
                     "sgmap_read_blocks(SGMAP_MODE_INDIRECT)");
        CHECK(memcmp(mine, want, n) == 0, "...read the disk's bytes");
        memset(dbuf, 0, n);
        CHECK_RESULT(sgmap_read_blocks(dev, lba, dbuf, n, SGMAP_MODE_DIRECT, NULL), SGMAP_OK,
                     "sgmap_read_blocks(SGMAP_MODE_DIRECT)");
        CHECK(memcmp(dbuf, want, n) == 0, "...read the disk's bytes");
        CHECK_RESULT(sgmap_write_blocks(dev, lba, want, n, SGMAP_MODE_INDIRECT, NULL), writes,
                     "sgmap_write_blocks(SGMAP_MODE_INDIRECT)");
        CHECK_RESULT(sgmap_synchronize_cache(dev), writes, "sgmap_synchronize_cache");
        sgmap_device_close(dev);

        /* A fresh handle, mapped before anything is known about the device. */
        MUST(sgmap_device_open(path, flags, &dev));
        CHECK_RESULT(sgmap_device_map_reserved(dev, 64u << 10, NULL), SGMAP_OK,
                     "sgmap_device_map_reserved");
        uint8_t *buf = NULL;
        size_t len = 0;
        MUST(sgmap_buffer(dev, &buf, &len));
        CHECK_RESULT(sgmap_read_blocks(dev, lba, NULL, n, SGMAP_MODE_MMAP, NULL), SGMAP_OK,
                     "mapped: sgmap_read_blocks(SGMAP_MODE_MMAP)");
        CHECK(memcmp(buf, want, n) == 0, "...read the disk's bytes");
        CHECK_RESULT(sgmap_write_blocks(dev, lba, NULL, n, SGMAP_MODE_MMAP, NULL), writes,
                     "mapped: sgmap_write_blocks(SGMAP_MODE_MMAP)");
        CHECK_RESULT(sgmap_device_max_transfer(dev, &mt), SGMAP_OK,
                     "mapped: sgmap_device_max_transfer");
        CHECK(mt == max_transfer, "...is %zu (got %zu)", max_transfer, mt);
        CHECK_RESULT(sgmap_block_size(dev, &b), SGMAP_OK, "mapped: sgmap_block_size");
        CHECK_RESULT(sgmap_test_unit_ready(dev), SGMAP_OK, "mapped: sgmap_test_unit_ready");
        CHECK_RESULT(sgmap_inquiry(dev, &inq), SGMAP_WRONG_STATE,
                     "mapped: sgmap_inquiry is refused");
        sgmap_device_close(dev);
        alarm(0);
    }
    free(mine);
    free(want);
    sgmap_direct_buffer_free(dbuf);
    printf("-- open flags SGMAP_OPEN_EXCLUSIVE | SGMAP_OPEN_READ_ONLY\n");
    sgmap_device *dev = NULL;
    CHECK_RESULT(sgmap_device_open(path, SGMAP_OPEN_EXCLUSIVE | SGMAP_OPEN_READ_ONLY, &dev),
                 SGMAP_OPEN_FAILED, "the kernel refuses an exclusive read-only open");
    CHECK(strstr(last_error(), "exclusive") != NULL && strstr(last_error(), "read-write") != NULL,
          "...and the message says to open it read-write: %s", last_error());
}

/* 4. A read-only handle sends nothing that writes, even for root. */
static void read_only_writes_nothing(const char *path)
{
    printf("-- a read-only handle (this runs as uid %d)\n", (int)geteuid());
    const size_t n = 8 * (size_t)block;
    const uint64_t lba = lba_at(3u << 20);
    put(path, lba, n, 6);
    uint8_t *other = malloc(n);
    if (other == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(other, n, 7);
    sgmap_device *ro = NULL;
    MUST(sgmap_device_open(path, SGMAP_OPEN_READ_ONLY, &ro));
    MUST(sgmap_wait_ready(ro));
    CHECK_RESULT(sgmap_write_blocks(ro, lba, other, n, SGMAP_MODE_INDIRECT, NULL),
                 SGMAP_INVALID_REQUEST, "sgmap_write_blocks is refused");
    CHECK(strstr(last_error(), "read-only") != NULL && speaks_c(last_error()),
          "...saying why, in C: %s", last_error());
    uint8_t cdb[10] = {0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0}; /* WRITE(10) */
    uint32_t l32 = (uint32_t)lba;
    cdb[2] = (uint8_t)(l32 >> 24);
    cdb[3] = (uint8_t)(l32 >> 16);
    cdb[4] = (uint8_t)(l32 >> 8);
    cdb[5] = (uint8_t)l32;
    cdb[8] = (uint8_t)(n / block);
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = SGMAP_DIR_TO_DEVICE;
    cmd.data = other;
    cmd.data_len = n;
    sgmap_outcome out;
    CHECK_RESULT(sgmap_execute(ro, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "sgmap_execute(WRITE(10)) is refused");
    CHECK_RESULT(sgmap_synchronize_cache(ro), SGMAP_INVALID_REQUEST,
                 "SYNCHRONIZE CACHE (not read-safe) is refused");
    uint8_t *mine = malloc(n);
    if (mine == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    CHECK_RESULT(sgmap_read_blocks(ro, lba, mine, n, SGMAP_MODE_INDIRECT, NULL), SGMAP_OK,
                 "reads still run");
    sgmap_device_close(ro);
    MUST(sgmap_device_open(path, SGMAP_OPEN_READ_ONLY, &ro));
    MUST(sgmap_device_map_reserved(ro, 64u << 10, NULL));
    CHECK_RESULT(sgmap_read_blocks(ro, lba, NULL, n, SGMAP_MODE_MMAP, NULL), SGMAP_OK,
                 "mapped read-only: an mmap-ed read runs");
    CHECK_RESULT(sgmap_write_blocks(ro, lba + 64, NULL, n, SGMAP_MODE_MMAP, NULL),
                 SGMAP_INVALID_REQUEST, "mapped read-only: an mmap-ed write is refused");
    sgmap_device_close(ro);
    CHECK(holds(path, lba, n, 6), "the disk is unchanged");
    free(other);
    free(mine);
}

/* 5. Threads sharing one mapped handle: the buffer is lent to one thread
 *    at a time, from its mmap-ed command until sgmap_buffer_release. */
#define THREADS 4
#define ROUNDS 200

struct reader {
    sgmap_device *dev;
    const uint8_t *buf;
    uint64_t lba;
    size_t n;
    unsigned seed;
    unsigned verified, wrong, refused, errors;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    uint8_t *want = malloc(r->n);
    if (want == NULL) {
        r->errors++;
        return NULL;
    }
    fill(want, r->n, r->seed);
    while (r->verified + r->wrong < ROUNDS && r->errors == 0) {
        sgmap_result got = sgmap_read_blocks(r->dev, r->lba, NULL, r->n, SGMAP_MODE_MMAP, NULL);
        if (got == SGMAP_WRONG_STATE) {
            r->refused++; /* another thread holds the buffer: wait for it */
            sched_yield();
            continue;
        }
        if (got != SGMAP_OK) {
            r->errors++;
            break;
        }
        sched_yield(); /* let the others try while this thread holds the buffer */
        if (memcmp(r->buf, want, r->n) == 0) {
            r->verified++;
        } else {
            r->wrong++;
        }
        if (sgmap_buffer_release(r->dev) != SGMAP_OK) {
            r->errors++;
        }
    }
    free(want);
    return NULL;
}

struct lease_arg {
    sgmap_device *dev;
    uint64_t lba;
    size_t n;
    sgmap_result r;
};

/* One mmap-ed read from another thread. */
static void *read_from_other(void *p)
{
    struct lease_arg *a = p;
    a->r = sgmap_read_blocks(a->dev, a->lba, NULL, a->n, SGMAP_MODE_MMAP, NULL);
    return NULL;
}

static void threads_share_a_mapping(const char *path)
{
    printf("-- %d threads reading through one mapped handle\n", THREADS);
    const size_t n = 16 * (size_t)block;
    for (unsigned t = 0; t < THREADS; t++) {
        put(path, lba_at((4u << 20) + t * n), n, 10 + t);
    }
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_device_map_reserved(dev, 64u << 10, NULL));
    uint8_t *buf = NULL;
    size_t len = 0;
    MUST(sgmap_buffer(dev, &buf, &len));
    struct reader r[THREADS];
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        r[t] = (struct reader){dev, buf, lba_at((4u << 20) + t * n), n, 10 + t, 0, 0, 0, 0};
        CHECK(pthread_create(&th[t], NULL, read_loop, &r[t]) == 0, "thread %u starts", t);
    }
    unsigned verified = 0, wrong = 0, refused = 0, errors = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        verified += r[t].verified;
        wrong += r[t].wrong;
        refused += r[t].refused;
        errors += r[t].errors;
    }
    printf("       %u verified, %u with another thread's data, %u refused while lent, %u errors\n",
           verified, wrong, refused, errors);
    CHECK(wrong == 0, "no OK read ever held another thread's data");
    CHECK(verified == THREADS * ROUNDS && errors == 0, "every thread verified %d reads", ROUNDS);

    /* The lease itself: held by one thread, refused to another. */
    uint8_t *p = NULL;
    CHECK_RESULT(sgmap_buffer_lease(dev, &p, &len), SGMAP_OK, "sgmap_buffer_lease");
    CHECK(p == buf, "...lends the same buffer");
    struct lease_arg a = {dev, lba_at(4u << 20), n, SGMAP_OK};
    pthread_t other;
    CHECK(pthread_create(&other, NULL, read_from_other, &a) == 0, "another thread starts");
    pthread_join(other, NULL);
    CHECK(a.r == SGMAP_WRONG_STATE,
          "another thread's mmap-ed read is refused while the buffer is lent (%s)",
          sgmap_result_name(a.r));
    CHECK_RESULT(sgmap_buffer_release(dev), SGMAP_OK, "sgmap_buffer_release");
    CHECK_RESULT(sgmap_read_blocks(dev, a.lba, NULL, n, SGMAP_MODE_MMAP, NULL), SGMAP_OK,
                 "after the release, a read runs");
    sgmap_device_close(dev);
}

/* 6. fork(): the child inherits the fd and the mapped buffer; it may read
 *    the buffer, but its mmap-ed commands are refused, so the parent's
 *    reads neither fail EBUSY nor get the child's data. */
static void fork_shares_a_mapping(const char *path)
{
    printf("-- fork() with a mapped handle\n");
    const size_t n = 16 * (size_t)block;
    const uint64_t lba_p = lba_at(5u << 20), lba_c = lba_at(6u << 20);
    put(path, lba_p, n, 20);
    put(path, lba_c, n, 21);
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_device_map_reserved(dev, 64u << 10, NULL));
    uint8_t *buf = NULL;
    size_t len = 0;
    MUST(sgmap_buffer(dev, &buf, &len));
    MUST(sgmap_read_blocks(dev, lba_p, NULL, n, SGMAP_MODE_MMAP, NULL));
    uint8_t *want = malloc(n);
    if (want == NULL) {
        printf("FAIL - out of memory\n");
        exit(1);
    }
    fill(want, n, 20);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int code = 0;
        if (memcmp(buf, want, n) != 0) {
            code = 2; /* cannot read what the parent fetched */
        }
        for (int i = 0; i < 200 && code == 0; i++) {
            sgmap_result r = sgmap_read_blocks(dev, lba_c, NULL, n, SGMAP_MODE_MMAP, NULL);
            if (r == SGMAP_OK) {
                code = 3;
            } else if (r != SGMAP_WRONG_STATE || strstr(last_error(), "fork") == NULL) {
                fprintf(stderr, "child: %s: %s\n", sgmap_result_name(r), last_error());
                code = 4;
            }
        }
        if (code == 0 && sgmap_test_unit_ready(dev) != SGMAP_OK) {
            code = 5;
        }
        /* The child's copy of the handle: closing it leaves the parent's alone. */
        sgmap_device_close(dev);
        free(want);
        _exit(code);
    }
    unsigned good = 0, bad = 0;
    for (int i = 0; i < 200; i++) {
        sgmap_result r = sgmap_read_blocks(dev, lba_p, NULL, n, SGMAP_MODE_MMAP, NULL);
        if (r == SGMAP_OK && memcmp(buf, want, n) == 0) {
            good++;
        } else {
            bad++;
        }
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "the child ran");
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECK(code == 0,
          "the child read the parent's bytes and every mmap-ed command of its own was refused, "
          "naming fork (child exit %d: 3 = one ran, 4 = another error)",
          code);
    CHECK(good == 200 && bad == 0, "the parent's 200 reads all ran with its own data (%u bad)",
          bad);
    free(want);
    sgmap_device_close(dev);
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    MUST(sgmap_block_size(dev, &block));
    /* The queue's limit, found another way than sgmap_device_max_transfer:
       the kernel clamps a reserved buffer to it. */
    MUST(sgmap_device_set_reserved_size(dev, 1u << 30, &max_transfer));
    sgmap_device_close(dev); /* an exclusive open below needs the device unused */

    first_mmap_write(path);
    nothing_through_the_buffer(path);
    read_only_writes_nothing(path);
    threads_share_a_mapping(path);
    fork_shares_a_mapping(path);
    every_open_flag(path); /* last: a hang there holds the device */
    return finish("mapped_rules");
}
