/*
 * direct_write.c: write with direct IO, read it back, and check both what was
 * read and how the kernel really moved the data.
 *
 * Direct IO asks the kernel to use the program's own pages instead of copying
 * through its buffers. It happens only if the sg driver allows it (allow_dio)
 * and the buffer is aligned; otherwise the kernel quietly copies. sgmap
 * reports what really happened, and why not direct.
 *
 *   cc -std=c11 direct_write.c $(pkg-config --cflags --libs sgmap) -o direct_write
 *   ./direct_write /dev/sg0     (it overwrites 256 KiB at 96 MiB into the disk)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sgmap.h>

#include "check.h"

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    const size_t len = 256u << 10;
    const uint64_t offset = 96u << 20;

    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    uint32_t block = 0;
    MUST(sgmap_block_size(dev, &block));
    const uint64_t lba = offset / block;

    int32_t allow_dio = -1;
    MUST(sgmap_allow_dio(&allow_dio));
    printf("allow_dio is %d (1 on, 0 off, -1 unknown)\n", (int)allow_dio);

    /* Page-aligned, zeroed buffers: what direct IO needs. */
    void *wbuf = NULL, *rbuf = NULL;
    MUST(sgmap_direct_buffer_alloc(len, &wbuf));
    MUST(sgmap_direct_buffer_alloc(len, &rbuf));
    for (size_t i = 0; i < len; i++) {
        ((uint8_t *)wbuf)[i] = (uint8_t)(i ^ (i >> 9) ^ 0x5a);
    }

    /* Write, then read back, asking for direct IO both times. */
    sgmap_transfer t;
    MUST(sgmap_write_blocks(dev, lba, wbuf, len, SGMAP_MODE_DIRECT, &t));
    printf("write: %zu bytes in %zu command(s), mode %s%s%s\n", t.bytes, t.commands,
           sgmap_mode_name(t.mode), t.fallback ? ": " : "", sgmap_fallback_text(t.fallback));
    if (allow_dio == 0) {
        CHECK(t.mode == SGMAP_MODE_INDIRECT && t.fallback == SGMAP_FALLBACK_ALLOW_DIO_OFF,
              "with allow_dio off the write was indirect, and sgmap says why");
    } else {
        CHECK(t.mode == SGMAP_MODE_DIRECT && t.fallback == SGMAP_FALLBACK_NONE,
              "the write really was direct IO");
    }
    CHECK(t.bytes == len, "the whole buffer was written");

    MUST(sgmap_read_blocks(dev, lba, rbuf, len, SGMAP_MODE_DIRECT, &t));
    printf("read:  %zu bytes in %zu command(s), mode %s\n", t.bytes, t.commands,
           sgmap_mode_name(t.mode));
    if (allow_dio != 0) {
        CHECK(t.mode == SGMAP_MODE_DIRECT, "the read really was direct IO");
    }
    CHECK(t.bytes == len && memcmp(rbuf, wbuf, len) == 0, "what was read is what was written");

    /* Verify once more through a different path: indirect IO into malloc memory. */
    uint8_t *plain = calloc(1, len);
    if (plain == NULL) {
        printf("FAIL - out of memory\n");
        return 1;
    }
    MUST(sgmap_read_blocks(dev, lba, plain, len, SGMAP_MODE_INDIRECT, &t));
    CHECK(t.mode == SGMAP_MODE_INDIRECT && memcmp(plain, wbuf, len) == 0,
          "an indirect read finds the same bytes");

    /* A misaligned buffer: direct IO is asked for, the kernel copies instead. */
    uint8_t *odd = (uint8_t *)rbuf + 1;
    size_t odd_len = 8 * (size_t)block; /* fits: rbuf has len bytes */
    uint8_t cdb[10] = {0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t lba32 = (uint32_t)lba;
    cdb[2] = (uint8_t)(lba32 >> 24);
    cdb[3] = (uint8_t)(lba32 >> 16);
    cdb[4] = (uint8_t)(lba32 >> 8);
    cdb[5] = (uint8_t)lba32;
    cdb[8] = 8;
    memset(rbuf, 0, len);
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_DIRECT;
    cmd.data = odd;
    cmd.data_len = odd_len;
    sgmap_outcome out;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_OK, "READ(10) asking direct IO into an odd address");
    printf("asked %s, got %s: %s\n", sgmap_mode_name(out.requested_mode), sgmap_mode_name(out.mode),
           sgmap_fallback_text(out.fallback));
    CHECK(out.requested_mode == SGMAP_MODE_DIRECT && out.mode == SGMAP_MODE_INDIRECT,
          "the kernel did indirect IO, and the outcome says so");
    if (allow_dio != 0) {
        CHECK(out.fallback == SGMAP_FALLBACK_MISALIGNED, "the reason given is the alignment");
    }
    CHECK(out.transferred == odd_len && memcmp(odd, wbuf, odd_len) == 0,
          "the data is right all the same");

    free(plain);
    sgmap_direct_buffer_free(wbuf);
    sgmap_direct_buffer_free(rbuf);
    sgmap_device_close(dev);
    return finish("direct_write");
}
