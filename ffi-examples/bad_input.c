/*
 * bad_input.c: every misuse a C caller can make by mistake gets a documented
 * result, and nothing crashes.
 *
 * Part 1 needs no device: NULL handles and pointers, zero and oversize
 * lengths, paths that are not sg devices, too-small output buffers.
 * Part 2 uses the device in $SGMAP_TEST_DEVICE (or argv[1]) when there is
 * one: state errors around the mapped reserved buffer, bad CDBs and
 * lengths, and the documented contract against a double close.
 *
 *   cc -std=c11 bad_input.c $(pkg-config --cflags --libs sgmap) -o bad_input
 *   ./bad_input [/dev/sg0]
 */
#define _POSIX_C_SOURCE 200809L /* fork, setrlimit, waitpid */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scsi/sg.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sgmap.h>

#include "check.h"

static void without_a_device(void)
{
    static int sentinel;
    sgmap_device *dev = (sgmap_device *)(void *)&sentinel; /* must be overwritten with NULL */
    size_t n = 0;
    uint32_t u = 0;
    uint8_t *p = NULL;
    char text[64];
    sgmap_outcome out;
    sgmap_transfer tr;
    sgmap_device_info info;

    printf("-- NULL arguments\n");
    CHECK_RESULT(sgmap_device_open(NULL, 0, &dev), SGMAP_NULL_PARAMETER, "open(NULL path)");
    CHECK(dev == NULL, "the out-pointer is set to NULL on failure");
    CHECK_RESULT(sgmap_device_open("/dev/sg0", 0, NULL), SGMAP_NULL_PARAMETER, "open(NULL out)");
    CHECK_RESULT(sgmap_device_get_info(NULL, &info), SGMAP_NULL_PARAMETER, "info(NULL handle)");
    CHECK_RESULT(sgmap_device_path(NULL, text, sizeof text, &n), SGMAP_NULL_PARAMETER,
                 "path(NULL handle)");
    CHECK_RESULT(sgmap_device_reserved_size(NULL, &n), SGMAP_NULL_PARAMETER,
                 "reserved_size(NULL handle)");
    CHECK_RESULT(sgmap_device_set_reserved_size(NULL, 4096, &n), SGMAP_NULL_PARAMETER,
                 "set_reserved_size(NULL handle)");
    CHECK_RESULT(sgmap_device_map_reserved(NULL, 4096, &n), SGMAP_NULL_PARAMETER,
                 "map_reserved(NULL handle)");
    CHECK_RESULT(sgmap_buffer(NULL, &p, &n), SGMAP_NULL_PARAMETER, "buffer(NULL handle)");
    CHECK_RESULT(sgmap_execute(NULL, NULL, &out), SGMAP_NULL_PARAMETER, "execute(NULL, NULL)");
    CHECK_RESULT(sgmap_read_blocks(NULL, 0, text, 512, SGMAP_MODE_INDIRECT, &tr),
                 SGMAP_NULL_PARAMETER, "read_blocks(NULL handle)");
    CHECK(tr.bytes == 0 && tr.commands == 0, "the transfer report is zeroed when nothing ran");
    CHECK_RESULT(sgmap_write_blocks(NULL, 0, text, 512, SGMAP_MODE_INDIRECT, NULL),
                 SGMAP_NULL_PARAMETER, "write_blocks(NULL handle)");
    CHECK_RESULT(sgmap_inquiry(NULL, NULL), SGMAP_NULL_PARAMETER, "inquiry(NULL, NULL)");
    CHECK_RESULT(sgmap_read_capacity(NULL, NULL), SGMAP_NULL_PARAMETER, "read_capacity(NULL)");
    CHECK_RESULT(sgmap_block_size(NULL, &u), SGMAP_NULL_PARAMETER, "block_size(NULL handle)");
    CHECK_RESULT(sgmap_wait_ready(NULL), SGMAP_NULL_PARAMETER, "wait_ready(NULL)");
    CHECK_RESULT(sgmap_test_unit_ready(NULL), SGMAP_NULL_PARAMETER, "test_unit_ready(NULL)");
    CHECK_RESULT(sgmap_synchronize_cache(NULL), SGMAP_NULL_PARAMETER, "synchronize_cache(NULL)");
    CHECK_RESULT(sgmap_device_scsi_id(NULL, NULL), SGMAP_NULL_PARAMETER, "scsi_id(NULL, NULL)");
    CHECK_RESULT(sgmap_device_max_transfer(NULL, &n), SGMAP_NULL_PARAMETER, "max_transfer(NULL)");
    CHECK_RESULT(sgmap_device_reset(NULL, SGMAP_RESET_DEVICE), SGMAP_NULL_PARAMETER,
                 "reset(NULL)");
    CHECK_RESULT(sgmap_list_devices(NULL), SGMAP_NULL_PARAMETER, "list_devices(NULL)");
    CHECK_RESULT(sgmap_device_list_get(NULL, 0, NULL), SGMAP_NULL_PARAMETER,
                 "device_list_get(NULL)");
    CHECK(sgmap_device_list_len(NULL) == 0, "device_list_len(NULL) is 0");
    CHECK_RESULT(sgmap_allow_dio(NULL), SGMAP_NULL_PARAMETER, "allow_dio(NULL)");
    CHECK_RESULT(sgmap_direct_buffer_alloc(4096, NULL), SGMAP_NULL_PARAMETER,
                 "direct_buffer_alloc(NULL out)");
    CHECK_RESULT(sgmap_sense_describe(NULL, 18, text, sizeof text, NULL), SGMAP_NULL_PARAMETER,
                 "sense_describe(NULL sense)");
    CHECK_RESULT(sgmap_last_error_info(NULL), SGMAP_NULL_PARAMETER, "last_error_info(NULL)");

    printf("-- NULL queues, pools and completions\n");
    sgmap_queue *q = (sgmap_queue *)(void *)&sentinel;
    sgmap_completion *c = (sgmap_completion *)(void *)&sentinel;
    sgmap_pool *pool = (sgmap_pool *)(void *)&sentinel;
    sgmap_pool_completion pc;
    uint64_t ticket = 0;
    CHECK_RESULT(sgmap_queue_open(NULL, 0, &q), SGMAP_NULL_PARAMETER, "queue_open(NULL path)");
    CHECK(q == NULL, "...sets the out-pointer to NULL");
    CHECK_RESULT(sgmap_queue_submit(NULL, NULL, &ticket), SGMAP_NULL_PARAMETER,
                 "queue_submit(NULL, NULL)");
    CHECK_RESULT(sgmap_queue_wait(NULL, &c), SGMAP_NULL_PARAMETER, "queue_wait(NULL queue)");
    CHECK(c == NULL, "...sets the completion to NULL");
    CHECK_RESULT(sgmap_queue_wait_timeout(NULL, 0, NULL), SGMAP_NULL_PARAMETER,
                 "queue_wait_timeout(NULL, NULL)");
    CHECK_RESULT(sgmap_completion_check(NULL), SGMAP_NULL_PARAMETER, "completion_check(NULL)");
    CHECK_RESULT(sgmap_completion_data(NULL, NULL, NULL), SGMAP_NULL_PARAMETER,
                 "completion_data(NULL...)");
    CHECK_RESULT(sgmap_pool_open(NULL, 4, 65536, &pool), SGMAP_NULL_PARAMETER,
                 "pool_open(NULL path)");
    CHECK(pool == NULL, "...sets the out-pointer to NULL");
    CHECK_RESULT(sgmap_pool_open("/dev/null", 0, 65536, &pool), SGMAP_INVALID_ARGUMENT,
                 "pool_open with 0 fds");
    CHECK_RESULT(sgmap_pool_open("/dev/null", (size_t)-1, 65536, &pool), SGMAP_INVALID_ARGUMENT,
                 "pool_open with SIZE_MAX fds");
    CHECK_RESULT(sgmap_pool_open("/dev/null", 2, 0, &pool), SGMAP_INVALID_ARGUMENT,
                 "pool_open with 0-byte buffers");
    CHECK_RESULT(sgmap_pool_open("/dev/null", 2, 65536, &pool), SGMAP_NOT_SG,
                 "pool_open(/dev/null)");
    CHECK_RESULT(sgmap_pool_wait(NULL, &pc), SGMAP_NULL_PARAMETER, "pool_wait(NULL pool)");
    CHECK_RESULT(sgmap_pool_submit(NULL, SGMAP_POOL_ANY, NULL, NULL), SGMAP_NULL_PARAMETER,
                 "pool_submit(NULL...)");
    CHECK_RESULT(sgmap_pool_release(NULL, 0), SGMAP_NULL_PARAMETER, "pool_release(NULL, 0)");
    sgmap_queue_close(NULL);
    sgmap_completion_free(NULL);
    sgmap_pool_close(NULL);
    CHECK(1, "queue_close(NULL), completion_free(NULL), pool_close(NULL) returned");

    printf("-- releasing NULL does nothing\n");
    sgmap_device_close(NULL);
    sgmap_device_list_free(NULL);
    sgmap_direct_buffer_free(NULL);
    CHECK(1, "close(NULL), list_free(NULL), direct_buffer_free(NULL) returned");

    printf("-- paths that are not sg devices\n");
    CHECK_RESULT(sgmap_device_open("", 0, &dev), SGMAP_INVALID_ARGUMENT, "open(\"\")");
    CHECK_RESULT(sgmap_device_open("/etc/hostname", SGMAP_OPEN_READ_ONLY, &dev), SGMAP_NOT_SG,
                 "open(/etc/hostname)");
    CHECK(dev == NULL && strstr(last_error(), "/etc/hostname") != NULL,
          "no handle; the message names the path: %s", last_error());
    CHECK_RESULT(sgmap_device_open("/dev/null", 0, &dev), SGMAP_NOT_SG, "open(/dev/null)");
    CHECK_RESULT(sgmap_device_open("/", SGMAP_OPEN_READ_ONLY, &dev), SGMAP_NOT_SG,
                 "open(/), a directory");
    CHECK_RESULT(sgmap_device_open("/nonexistent/sg9", 0, &dev), SGMAP_OPEN_FAILED,
                 "open(/nonexistent/sg9)");
    sgmap_error_info err;
    CHECK_RESULT(sgmap_last_error_info(&err), SGMAP_OK, "last_error_info");
    CHECK(err.result == SGMAP_OPEN_FAILED && err.os_errno == ENOENT && !err.has_outcome,
          "last error: SGMAP_OPEN_FAILED with errno ENOENT");
    CHECK_RESULT(sgmap_device_open("/dev/null", 0x80, &dev), SGMAP_INVALID_ARGUMENT,
                 "open with unknown flag bits");

    printf("-- output buffers and lengths\n");
    /* The last error is now the unknown-flags message: read it in pieces. */
    size_t full = 0;
    CHECK_RESULT(sgmap_last_error_message(text, 0, &full), SGMAP_BUFFER_TOO_SMALL,
                 "last_error_message into 0 bytes");
    CHECK(full > 8, "...reports the length needed (%zu)", full);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK_RESULT(sgmap_last_error_message(small, sizeof small, NULL), SGMAP_BUFFER_TOO_SMALL,
                 "last_error_message into 8 bytes");
    CHECK(small[7] == '\0' && strlen(small) == 7, "...cut to 7 bytes and NUL-terminated");
    CHECK_RESULT(sgmap_last_error_message(NULL, 10, NULL), SGMAP_NULL_PARAMETER,
                 "last_error_message(NULL buffer)");
    char *big = malloc(full + 1);
    if (big != NULL) {
        CHECK_RESULT(sgmap_last_error_message(big, full + 1, NULL), SGMAP_OK,
                     "last_error_message into exactly enough");
        CHECK(strlen(big) == full && strstr(big, "sgmap_device_open") != NULL,
              "the whole message, naming the function: %s", big);
        free(big);
    }
    void *mem = (void *)&mem;
    CHECK_RESULT(sgmap_direct_buffer_alloc(0, &mem), SGMAP_INVALID_ARGUMENT,
                 "direct_buffer_alloc(0)");
    CHECK(mem == NULL, "...sets the out-pointer to NULL");
    CHECK_RESULT(sgmap_direct_buffer_alloc((size_t)1 << 50, &mem), SGMAP_OS_ERROR,
                 "direct_buffer_alloc(1 PiB) fails cleanly");
    CHECK_RESULT(sgmap_last_error_info(&err), SGMAP_OK, "last_error_info");
    CHECK(err.os_errno == ENOMEM, "...with ENOMEM");
    uint8_t junk[18] = {0x11, 0x22};
    CHECK_RESULT(sgmap_sense_describe(junk, sizeof junk, text, sizeof text, NULL),
                 SGMAP_INVALID_ARGUMENT, "sense_describe of bytes that are not sense");
    uint8_t sense[18] = {0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x11, 0x00};
    CHECK_RESULT(sgmap_sense_describe(sense, sizeof sense, text, sizeof text, &n), SGMAP_OK,
                 "sense_describe of a MEDIUM ERROR");
    CHECK(strstr(text, "MEDIUM ERROR") != NULL, "...says so: %s", text);

    printf("-- names of unknown values\n");
    CHECK(strcmp(sgmap_result_name(SGMAP_SCSI_ERROR), "SGMAP_SCSI_ERROR") == 0,
          "result_name(SGMAP_SCSI_ERROR)");
    CHECK(strcmp(sgmap_result_name(99999), "SGMAP_UNKNOWN_RESULT") == 0, "result_name(99999)");
    CHECK(strcmp(sgmap_mode_name(SGMAP_MODE_MMAP), "mmap") == 0, "mode_name(SGMAP_MODE_MMAP)");
    CHECK(strcmp(sgmap_mode_name(77), "unknown") == 0, "mode_name(77)");
    CHECK(strcmp(sgmap_fallback_text(77), "unknown") == 0, "fallback_text(77)");
    CHECK(strcmp(sgmap_sense_key_name(0x15), "ILLEGAL REQUEST") == 0,
          "sense_key_name uses the low nibble");

    printf("-- discovery\n");
    sgmap_device_list *list = NULL;
    sgmap_result r = sgmap_list_devices(&list);
    if (r == SGMAP_OS_ERROR) {
        /* Documented: no /sys/class/scsi_generic (the sg driver is not loaded). */
        CHECK_RESULT(sgmap_last_error_info(&err), SGMAP_OK, "last_error_info");
        CHECK(err.os_errno == ENOENT && list == NULL,
              "list_devices without the sg driver: ENOENT, no list: %s", last_error());
    } else {
        CHECK(r == SGMAP_OK && list != NULL, "list_devices -> %s", sgmap_result_name(r));
    }
    sgmap_device_entry e;
    if (list != NULL) {
        CHECK_RESULT(sgmap_device_list_get(list, sgmap_device_list_len(list), &e),
                     SGMAP_INVALID_ARGUMENT, "device_list_get one past the end");
        CHECK_RESULT(sgmap_device_list_get(list, (size_t)-1, &e), SGMAP_INVALID_ARGUMENT,
                     "device_list_get(SIZE_MAX)");
        CHECK_RESULT(sgmap_device_list_get(list, 0, NULL), SGMAP_NULL_PARAMETER,
                     "device_list_get(NULL out)");
    }
    sgmap_device_list_free(list);
    list = NULL;
    sgmap_device_list_free(list); /* the documented way: NULL after freeing */
    CHECK(1, "a list freed, then NULL freed again");
}

static void fill_read10(uint8_t cdb[10], uint32_t lba, uint16_t blocks)
{
    memset(cdb, 0, 10);
    cdb[0] = 0x28;
    cdb[2] = (uint8_t)(lba >> 24);
    cdb[3] = (uint8_t)(lba >> 16);
    cdb[4] = (uint8_t)(lba >> 8);
    cdb[5] = (uint8_t)lba;
    cdb[7] = (uint8_t)(blocks >> 8);
    cdb[8] = (uint8_t)blocks;
}

/* The process's address space size in bytes (VmSize), or 0. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmSize:", 7) == 0) {
            kb = (size_t)strtoull(line + 7, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb * 1024;
}

/*
 * A failed mmap must leave the handle usable. In a child process, the
 * address space is limited to what is in use plus 256 KiB, so mapping a
 * 1 MiB buffer fails with ENOMEM after the reserved size was granted; the
 * handle must then be unmapped, working, and able to map once the limit is
 * lifted. The exit status says which step went wrong.
 */
static void map_failure_keeps_the_handle(const char *path)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "vgpreload") != NULL) {
        /* Valgrind manages the address space itself; RLIMIT_AS means
           something else under it. */
        printf("note - under valgrind: the failed-mmap check did not run\n");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sgmap_device *d = NULL;
        size_t g = 0;
        if (sgmap_device_open(path, 0, &d) != SGMAP_OK) {
            _exit(10);
        }
        /* State of this very fd, which a reopened node would not have. */
        int fd_before = -1, fd_after = -2;
        int ticks = 4321;
        if (sgmap_device_fd(d, &fd_before) != SGMAP_OK ||
            ioctl(fd_before, SG_SET_TIMEOUT, &ticks) != 0) {
            _exit(17);
        }
        struct rlimit old, low;
        if (getrlimit(RLIMIT_AS, &old) != 0) {
            _exit(11);
        }
        low = old;
        low.rlim_cur = vm_size() + 256 * 1024;
        if (setrlimit(RLIMIT_AS, &low) != 0) {
            _exit(11);
        }
        sgmap_result r = sgmap_device_map_reserved(d, 1u << 20, &g);
        setrlimit(RLIMIT_AS, &old);
        if (r == SGMAP_OK) {
            _exit(12); /* the limit did not make mmap fail */
        }
        sgmap_error_info info;
        sgmap_last_error_info(&info);
        if (r != SGMAP_OS_ERROR || info.os_errno != ENOMEM) {
            fprintf(stderr, "map_reserved -> %s: %s\n", sgmap_result_name(r), last_error());
            _exit(13);
        }
        sgmap_device_info di;
        if (sgmap_device_get_info(d, &di) != SGMAP_OK || di.mapped || di.lost) {
            _exit(14);
        }
        if (sgmap_device_fd(d, &fd_after) != SGMAP_OK || fd_after != fd_before ||
            ioctl(fd_after, SG_GET_TIMEOUT, 0) != ticks) {
            _exit(18); /* the handle's fd is not the one it had */
        }
        if (sgmap_test_unit_ready(d) != SGMAP_OK) {
            _exit(15);
        }
        if (sgmap_device_map_reserved(d, 1u << 20, &g) != SGMAP_OK) {
            _exit(16);
        }
        sgmap_device_close(d);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "a failed mmap (ENOMEM) leaves the handle unmapped, on the same fd, and working "
          "(child exit %d; 18 = another fd)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void with_a_device(const char *path)
{
    sgmap_device *dev = NULL;
    size_t n = 0, granted = 0, len = 0;
    uint8_t *buf = NULL;
    uint8_t data[8192];
    uint8_t cdb[32];
    sgmap_command cmd;
    sgmap_outcome out;
    sgmap_device_info info;

    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    uint32_t block = 0;
    MUST(sgmap_block_size(dev, &block));

    printf("-- before mapping\n");
    CHECK_RESULT(sgmap_buffer(dev, &buf, &len), SGMAP_WRONG_STATE, "buffer() before mapping");
    CHECK(strstr(last_error(), "sgmap_device_map_reserved") != NULL, "...says what to call: %s",
          last_error());
    fill_read10(cdb, 0, 1);
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = 10;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data_len = block;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_WRONG_STATE, "an mmap command before mapping");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, NULL, block, SGMAP_MODE_MMAP, NULL), SGMAP_WRONG_STATE,
                 "read_blocks(SGMAP_MODE_MMAP) before mapping");
    /* A READ of 8 blocks into one block's buffer, and a WRITE of 8 blocks
     * from one block's data: refused before the kernel sees them. */
    fill_read10(cdb, 0, 8);
    cmd.mode = SGMAP_MODE_INDIRECT;
    cmd.data = data;
    cmd.data_len = block;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "a READ of 8 blocks into a buffer of 1");
    CHECK(strstr(last_error(), "names 8 blocks") != NULL, "...names the need: %s", last_error());
    cdb[0] = 0x2a; /* WRITE(10), same LBA and length */
    cmd.direction = SGMAP_DIR_TO_DEVICE;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "a WRITE of 8 blocks from the data of 1");
    cmd.data_len = 8u * block <= sizeof data ? 8u * block : sizeof data;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "a WRITE CDB with a buffer to read into");
    fill_read10(cdb, 0, 1);
    cmd.data = NULL;
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data_len = block;
    CHECK_RESULT(sgmap_device_map_reserved(dev, 0, &granted), SGMAP_INVALID_ARGUMENT,
                 "map_reserved(0 bytes)");
    CHECK_RESULT(sgmap_device_set_reserved_size(dev, (size_t)-1, &n), SGMAP_INVALID_REQUEST,
                 "set_reserved_size(SIZE_MAX)");
    CHECK_RESULT(sgmap_device_set_reserved_size(dev, 64u << 10, NULL), SGMAP_NULL_PARAMETER,
                 "set_reserved_size(NULL granted)");
    CHECK_RESULT(sgmap_device_get_info(dev, &info), SGMAP_OK, "info");
    CHECK(!info.mapped && !info.lost, "after those failures the handle is unmapped and usable");
    CHECK_RESULT(sgmap_device_set_reserved_size(dev, 128u << 10, &n), SGMAP_OK,
                 "set_reserved_size(128 KiB) before mapping");
    CHECK(n > 0 && n <= (128u << 10), "...granted %zu bytes", n);

    printf("-- mapping\n");
    CHECK_RESULT(sgmap_device_map_reserved(dev, 64u << 10, &granted), SGMAP_OK,
                 "map_reserved(64 KiB)");
    CHECK_RESULT(sgmap_device_map_reserved(dev, 64u << 10, &granted), SGMAP_WRONG_STATE,
                 "map_reserved a second time");
    CHECK_RESULT(sgmap_device_set_reserved_size(dev, 32u << 10, &n), SGMAP_WRONG_STATE,
                 "set_reserved_size after mapping");
    CHECK(strstr(last_error(), "frozen") != NULL, "...explains: %s", last_error());
    CHECK_RESULT(sgmap_device_reserved_size(dev, &n), SGMAP_OK, "reserved_size after mapping");
    CHECK(n == granted, "...still the granted %zu bytes", granted);
    CHECK_RESULT(sgmap_buffer(dev, NULL, &len), SGMAP_NULL_PARAMETER, "buffer(NULL ptr)");
    CHECK_RESULT(sgmap_buffer(dev, &buf, NULL), SGMAP_NULL_PARAMETER, "buffer(NULL len)");
    CHECK_RESULT(sgmap_buffer(dev, &buf, &len), SGMAP_OK, "buffer()");
    CHECK_RESULT(sgmap_device_get_info(dev, &info), SGMAP_OK, "info");
    CHECK(info.mapped && info.buffer_writable && info.buffer_len == len && info.granted == granted,
          "info agrees: mapped, writable, %zu bytes", len);

    printf("-- lengths against the mapped buffer\n");
    size_t too_long = len + block;
    fill_read10(cdb, 0, (uint16_t)(too_long / block));
    cmd.data_len = too_long;
    memset(&out, 0xff, sizeof out);
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "an mmap command one block longer than the mapping");
    CHECK(out.requested == 0 && out.status == 0 && out.sense_len == 0,
          "...refused before the kernel: the outcome is all zero");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, NULL, too_long, SGMAP_MODE_MMAP, NULL),
                 SGMAP_INVALID_REQUEST, "read_blocks(mmap) longer than the mapping");
    cmd.data_len = block;
    cmd.data = data;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_ARGUMENT,
                 "an mmap command with a data pointer");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, data, block, SGMAP_MODE_MMAP, NULL),
                 SGMAP_INVALID_ARGUMENT, "read_blocks(mmap) with a buffer");

    printf("-- bad commands\n");
    CHECK_RESULT(sgmap_execute(dev, NULL, &out), SGMAP_NULL_PARAMETER, "execute(NULL command)");
    memset(&cmd, 0, sizeof cmd);
    cmd.direction = SGMAP_DIR_NONE;
    cmd.cdb_len = 6;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_NULL_PARAMETER, "execute(NULL cdb)");
    memset(cdb, 0, sizeof cdb);
    cmd.cdb = cdb;
    cmd.cdb_len = 4;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_CDB, "a 4-byte CDB");
    cmd.cdb_len = 0;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_CDB, "a 0-byte CDB");
    /* A length no CDB has is a CDB error, found before the bytes are read. */
    cmd.cdb_len = SIZE_MAX;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_CDB, "a SIZE_MAX-byte CDB");
    cmd.cdb_len = 33;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_CDB, "a 33-byte CDB");
    cmd.cdb_len = 6;
    cmd.direction = 7;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_ARGUMENT, "direction 7");
    cmd.direction = SGMAP_DIR_NONE;
    cmd.mode = 9;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_ARGUMENT, "mode 9");
    cmd.mode = SGMAP_MODE_INDIRECT;
    cmd.flags = 0x100;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_ARGUMENT, "unknown command flags");
    cmd.flags = 0;
    cmd.data_len = 512;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_ARGUMENT,
                 "SGMAP_DIR_NONE with a length");
    fill_read10(cdb, 0, 1);
    cmd.cdb_len = 10;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.data = NULL;
    cmd.data_len = block;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_NULL_PARAMETER,
                 "a read into a NULL buffer");
    cmd.data = data;
    cmd.data_len = (size_t)256 << 20;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST,
                 "a 256 MiB transfer (the driver's limit), refused before the kernel");
    cmd.data_len = (size_t)-1;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_INVALID_REQUEST, "a SIZE_MAX transfer");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, data, 0, SGMAP_MODE_INDIRECT, NULL),
                 SGMAP_INVALID_ARGUMENT, "read_blocks of 0 bytes");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, NULL, block + 1, SGMAP_MODE_MMAP, NULL),
                 SGMAP_INVALID_REQUEST, "read_blocks of a block and a byte");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, data, block, SGMAP_MODE_INDIRECT, NULL),
                 SGMAP_WRONG_STATE,
                 "an indirect read on a mapped handle (its data would pass through the buffer)");
    CHECK_RESULT(sgmap_read_blocks(dev, 0, data, block, 42, NULL), SGMAP_INVALID_ARGUMENT,
                 "read_blocks in mode 42");
    CHECK_RESULT(sgmap_device_reset(dev, 99), SGMAP_INVALID_ARGUMENT, "reset(99)");

    printf("-- small output buffers\n");
    char tiny[5];
    CHECK_RESULT(sgmap_device_path(dev, tiny, sizeof tiny, &n), SGMAP_BUFFER_TOO_SMALL,
                 "device_path into 5 bytes");
    CHECK(n == strlen(path) && strncmp(tiny, path, 4) == 0 && tiny[4] == '\0',
          "...cut to '%s', full length %zu", tiny, n);
    size_t count = 99;
    CHECK_RESULT(sgmap_device_requests(dev, NULL, 0, &count), SGMAP_OK,
                 "device_requests with no room");
    CHECK(count == 0, "...no request is active");
    uint8_t vpd[2];
    sgmap_device *plain = NULL;
    MUST(sgmap_device_open(path, 0, &plain)); /* a mapped handle sends no INQUIRY */
    CHECK_RESULT(sgmap_inquiry_vpd(plain, 0x00, vpd, sizeof vpd, &n), SGMAP_BUFFER_TOO_SMALL,
                 "inquiry_vpd into 2 bytes");
    CHECK(n > 2 && vpd[1] == 0x00, "...the first 2 bytes, full length %zu", n);
    sgmap_device_close(plain);

    printf("-- the handle still works\n");
    sgmap_transfer t;
    CHECK_RESULT(sgmap_read_blocks(dev, 0, NULL, block, SGMAP_MODE_MMAP, &t), SGMAP_OK,
                 "an mmap read of block 0");
    CHECK(t.mode == SGMAP_MODE_MMAP && t.bytes == block, "...ran as mmap IO");

    printf("-- closing\n");
    sgmap_device_close(dev);
    dev = NULL; /* the contract: a closed handle is never used again */
    sgmap_device_close(dev);
    CHECK(1, "closed, set to NULL, and the second close was a no-op");

    printf("-- queues and pools\n");
    sgmap_queue *q = NULL;
    CHECK_RESULT(sgmap_queue_open(path, SGMAP_OPEN_READ_ONLY, &q), SGMAP_INVALID_ARGUMENT,
                 "a read-only queue");
    MUST(sgmap_queue_open(path, 0, &q));
    fill_read10(cdb, 0, 1);
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = 10;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data_len = block;
    CHECK_RESULT(sgmap_queue_submit(q, &cmd, NULL), SGMAP_INVALID_ARGUMENT,
                 "an mmap-ed command in a queue");
    cmd.mode = SGMAP_MODE_INDIRECT;
    cmd.data = data;
    CHECK_RESULT(sgmap_queue_submit(q, &cmd, NULL), SGMAP_INVALID_ARGUMENT,
                 "a queued read with a data pointer");
    sgmap_completion *c = NULL;
    CHECK_RESULT(sgmap_queue_wait_for(q, 12345, &c), SGMAP_INVALID_REQUEST,
                 "wait_for a ticket never given");
    cmd.data = NULL;
    uint64_t ticket = 0;
    MUST(sgmap_queue_submit(q, &cmd, &ticket));
    MUST(sgmap_queue_wait_for(q, ticket, &c));
    CHECK_RESULT(sgmap_completion_check(c), SGMAP_OK, "a queued read of block 0");
    sgmap_completion_free(c);
    CHECK_RESULT(sgmap_queue_wait_for(q, ticket, &c), SGMAP_INVALID_REQUEST,
                 "wait_for a ticket already collected");
    sgmap_queue_close(q);
    sgmap_pool *pool = NULL;
    MUST(sgmap_pool_open(path, 2, 4096, &pool));
    CHECK_RESULT(sgmap_pool_release(pool, 5), SGMAP_INVALID_ARGUMENT, "pool_release(5) of 2 buffers");
    CHECK_RESULT(sgmap_pool_release(pool, 0), SGMAP_WRONG_STATE, "pool_release of a free buffer");
    sgmap_pool_close(pool);

    map_failure_keeps_the_handle(path);

    /* A read-only handle maps its buffer read-only. */
    MUST(sgmap_device_open(path, SGMAP_OPEN_READ_ONLY, &dev));
    MUST(sgmap_device_map_reserved(dev, 4096, NULL));
    MUST(sgmap_device_get_info(dev, &info));
    CHECK(info.mapped && !info.buffer_writable, "a read-only handle's mapping is not writable");
    sgmap_device_close(dev);
}

int main(int argc, char **argv)
{
    without_a_device();
    const char *path = argc > 1 ? argv[1] : getenv("SGMAP_TEST_DEVICE");
    if (path != NULL && path[0] != '\0') {
        with_a_device(path);
    } else {
        printf("note - no device given: only the device-free checks ran\n");
    }
    return finish("bad_input");
}
