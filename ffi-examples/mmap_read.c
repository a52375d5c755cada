/*
 * mmap_read.c: a sequential read through the mmap-ed reserved buffer, with a
 * CRC-32 of what was read.
 *
 * The sg driver keeps one reserved buffer per open file. Mapped into the
 * program, the device reads straight into it: no copy through a user buffer.
 * The kernel decides how big it is; sgmap reads the granted size back and
 * maps exactly that.
 *
 * To know what the read must find, the example first writes a pattern with
 * ordinary (indirect) IO through a second handle, and keeps its CRC.
 *
 *   cc -std=c11 mmap_read.c $(pkg-config --cflags --libs sgmap) -o mmap_read
 *   ./mmap_read /dev/sg0        (it overwrites 4 MiB at 64 MiB into the disk)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sgmap.h>

#include "check.h"

/* CRC-32 (IEEE 802.3, as zlib's crc32), bit by bit: short and plain. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

/* A pattern that differs per byte and per block, so misplaced blocks show. */
static void fill_pattern(uint8_t *p, size_t n, uint64_t first_lba, uint32_t block)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t lba = first_lba + i / block;
        p[i] = (uint8_t)(i * 31u + lba * 7u + (lba >> 8));
    }
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    const size_t total = 4u << 20;     /* bytes to read */
    const uint64_t offset = 64u << 20; /* where, in bytes */

    /* The reader: its reserved buffer will be mapped. */
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    sgmap_capacity cap;
    MUST(sgmap_read_capacity(dev, &cap));
    const uint32_t block = cap.block_size;
    const uint64_t lba0 = offset / block;
    if (cap.bytes < offset + total) {
        printf("FAIL - the disk (%llu bytes) is too small for this example\n",
               (unsigned long long)cap.bytes);
        return 1;
    }

    /* 1. Write the pattern with indirect IO through another handle. */
    uint8_t *pattern = malloc(total);
    if (pattern == NULL) {
        printf("FAIL - out of memory\n");
        return 1;
    }
    fill_pattern(pattern, total, lba0, block);
    const uint32_t want_crc = crc32_update(0, pattern, total);
    sgmap_device *writer = NULL;
    MUST(sgmap_device_open(path, 0, &writer));
    sgmap_transfer wt;
    MUST(sgmap_write_blocks(writer, lba0, pattern, total, SGMAP_MODE_INDIRECT, &wt));
    CHECK(wt.bytes == total, "wrote the %zu-byte pattern at LBA %llu in %zu command(s)", wt.bytes,
          (unsigned long long)lba0, wt.commands);
    sgmap_device_close(writer);
    writer = NULL;

    /* 2. Map the reserved buffer: ask for 1 MiB, use what was granted. */
    size_t granted = 0;
    MUST(sgmap_device_map_reserved(dev, 1u << 20, &granted));
    uint8_t *buf = NULL;
    size_t len = 0;
    MUST(sgmap_buffer(dev, &buf, &len));
    printf("asked for 1048576 bytes; the kernel granted %zu; %zu are mapped at %p\n", granted,
           len, (void *)buf);
    CHECK(len > 0 && len <= granted && len % 4096 == 0,
          "the mapping is whole pages within the granted size");
    size_t chunk = len / block * block;
    CHECK(chunk > 0, "the buffer holds at least one block (%zu bytes per command)", chunk);

    /* 3. Read sequentially through the mapping, checksumming as we go. */
    uint32_t crc = 0;
    size_t done = 0, commands = 0;
    int all_mmap = 1;
    while (done < total && chunk > 0) {
        size_t n = total - done < chunk ? total - done : chunk;
        sgmap_transfer t;
        MUST(sgmap_read_blocks(dev, lba0 + done / block, NULL, n, SGMAP_MODE_MMAP, &t));
        if (t.mode != SGMAP_MODE_MMAP || t.bytes != n) {
            all_mmap = 0;
        }
        /* The command has returned: the bytes are ours to read now. */
        crc = crc32_update(crc, buf, n);
        done += n;
        commands++;
    }
    printf("read %zu bytes in %zu mmap-ed commands: crc32 %08x, pattern's %08x\n", done,
           commands, crc, want_crc);
    CHECK(all_mmap, "every read really ran as mmap IO, full length");
    CHECK(crc == want_crc, "the CRC of what was read matches the pattern's");

    /* 4. The same with a raw CDB: READ(10) of one chunk, mmap IO (data = NULL). */
    uint8_t cdb[10] = {0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t lba32 = (uint32_t)lba0;
    uint16_t blocks = (uint16_t)(chunk / block);
    cdb[2] = (uint8_t)(lba32 >> 24);
    cdb[3] = (uint8_t)(lba32 >> 16);
    cdb[4] = (uint8_t)(lba32 >> 8);
    cdb[5] = (uint8_t)lba32;
    cdb[7] = (uint8_t)(blocks >> 8);
    cdb[8] = (uint8_t)blocks;
    memset(buf, 0, chunk);
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = cdb;
    cmd.cdb_len = sizeof cdb;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.mode = SGMAP_MODE_MMAP;
    cmd.data = NULL;
    cmd.data_len = chunk;
    cmd.timeout_ms = 10000;
    sgmap_outcome out;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_OK, "raw READ(10) with SGMAP_MODE_MMAP");
    printf("status %u, transferred %zu of %zu, resid %zu, %u ms, mode %s (asked %s)\n", out.status,
           out.transferred, out.requested, out.resid, out.duration_ms, sgmap_mode_name(out.mode),
           sgmap_mode_name(out.requested_mode));
    CHECK(out.mode == SGMAP_MODE_MMAP && out.transferred == chunk && out.resid == 0,
          "the outcome reports mmap IO of the whole chunk");
    CHECK(memcmp(buf, pattern, chunk) == 0, "the mapped buffer holds the pattern's first chunk");

    sgmap_device_close(dev);
    free(pattern);
    return finish("mmap_read");
}
