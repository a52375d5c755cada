/*
 * scsi_error.c: what a SCSI error looks like through sgmap, and how to handle it.
 *
 * A SCSI error is not an errno: the command ran, and the device answered
 * CHECK CONDITION with sense data saying what went wrong. sgmap returns
 * SGMAP_SCSI_ERROR and gives the status bytes and the decoded sense both in
 * the command's outcome and in the thread's last error.
 *
 * Shown here: a read past the end of the disk (ILLEGAL REQUEST, LBA out of
 * range), an opcode the device does not know (ILLEGAL REQUEST, invalid
 * command operation code) and, when SGMAP_MEDIUM_ERROR_LBA is set, an
 * unrecoverable read error at that LBA in each transfer mode. On the test
 * bed the job arms it: `echo 2 > /sys/bus/pseudo/drivers/scsi_debug/opts`
 * makes scsi_debug fail reads of LBA 0x1234 with MEDIUM ERROR.
 *
 *   cc -std=c11 scsi_error.c $(pkg-config --cflags --libs sgmap) -o scsi_error
 *   ./scsi_error /dev/sg0
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sgmap.h>

#include "check.h"

/* Prints an outcome's status and sense the way a log line would. */
static void print_outcome(const sgmap_outcome *o)
{
    printf("       status 0x%02x host 0x%02x driver 0x%02x", o->status, o->host_status,
           o->driver_status);
    if (o->has_sense) {
        char text[256];
        sgmap_sense_describe(o->sense, o->sense_len, text, sizeof text, NULL);
        printf(", sense %s (%u/%02x/%02x): %s", sgmap_sense_key_name(o->sense_key), o->sense_key,
               o->asc, o->ascq, text);
    }
    printf("\n");
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    }
}

/* Sets scsi_debug's live knob `name` to `value`, saving the old value in
 * `old` (for knob_restore). Returns 0 on success. */
static int knob_set(const char *name, const char *value, char *old, size_t oldlen)
{
    char file[128];
    snprintf(file, sizeof file, "/sys/bus/pseudo/drivers/scsi_debug/%s", name);
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        return -1;
    }
    if (fgets(old, (int)oldlen, f) == NULL) {
        old[0] = '\0';
    }
    fclose(f);
    old[strcspn(old, "\n")] = '\0';
    f = fopen(file, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fputs(value, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void knob_restore(const char *name, const char *old)
{
    char file[128];
    snprintf(file, sizeof file, "/sys/bus/pseudo/drivers/scsi_debug/%s", name);
    FILE *f = fopen(file, "w");
    if (f != NULL) {
        fputs(old, f);
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, 0, &dev));
    MUST(sgmap_wait_ready(dev));
    sgmap_capacity cap;
    MUST(sgmap_read_capacity(dev, &cap));
    uint8_t *buf = calloc(16, cap.block_size);
    if (buf == NULL) {
        printf("FAIL - out of memory\n");
        return 1;
    }

    /* 1. READ(16) of the block just past the end, as a raw command. */
    uint8_t read16[16] = {0x88};
    put_be(read16 + 2, cap.blocks, 8); /* LBA = capacity: one past the last */
    put_be(read16 + 10, 1, 4);         /* one block */
    sgmap_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = read16;
    cmd.cdb_len = sizeof read16;
    cmd.direction = SGMAP_DIR_FROM_DEVICE;
    cmd.data = buf;
    cmd.data_len = cap.block_size;
    sgmap_outcome out;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_SCSI_ERROR, "READ(16) past the end");
    print_outcome(&out);
    CHECK(out.status == 0x02 && out.failure == SGMAP_FAILURE_CHECK_CONDITION,
          "status CHECK CONDITION");
    CHECK(out.has_sense && out.sense_key == 0x5 && out.asc == 0x21 && out.ascq == 0x00,
          "sense ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (5/21/00)");
    CHECK(out.sense_len >= 8 && out.sense_len <= SGMAP_SENSE_MAX, "%u raw sense bytes kept",
          out.sense_len);
    const char *msg = last_error();
    printf("       last error: %s\n", msg);
    CHECK(strstr(msg, path) != NULL && strstr(msg, "READ(16)") != NULL,
          "the message names the device and the command");
    sgmap_error_info info;
    MUST(sgmap_last_error_info(&info));
    CHECK(info.result == SGMAP_SCSI_ERROR && info.has_outcome && info.os_errno == 0 &&
              info.outcome.sense_key == 0x5 && info.outcome.asc == 0x21,
          "the last error carries the same outcome, and no errno");

    /* 2. An opcode the device does not implement (0x02 is unused in SPC/SBC). */
    uint8_t bogus[6] = {0x02, 0, 0, 0, 0, 0};
    memset(&cmd, 0, sizeof cmd);
    cmd.cdb = bogus;
    cmd.cdb_len = sizeof bogus;
    cmd.direction = SGMAP_DIR_NONE;
    CHECK_RESULT(sgmap_execute(dev, &cmd, &out), SGMAP_SCSI_ERROR, "unknown opcode 0x02");
    print_outcome(&out);
    CHECK(out.sense_key == 0x5 && out.asc == 0x20,
          "sense ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (5/20)");

    /* 3. The typed helper reports the same failure the same way. */
    CHECK_RESULT(sgmap_read_blocks(dev, cap.blocks, buf, cap.block_size, SGMAP_MODE_INDIRECT, NULL),
                 SGMAP_SCSI_ERROR, "sgmap_read_blocks past the end");
    MUST(sgmap_last_error_info(&info));
    CHECK(info.has_outcome && info.outcome.sense_key == 0x5 && info.outcome.asc == 0x21,
          "its last error has the sense");

    /* 4. A medium error, in each of the three modes, when the test armed one. */
    const char *armed = getenv("SGMAP_MEDIUM_ERROR_LBA");
    if (armed != NULL) {
        uint64_t bad = strtoull(armed, NULL, 0);
        size_t len = 4 * (size_t)cap.block_size;
        void *dbuf = NULL;
        MUST(sgmap_direct_buffer_alloc(len, &dbuf));
        sgmap_device *mapped = NULL;
        MUST(sgmap_device_open(path, 0, &mapped));
        MUST(sgmap_device_map_reserved(mapped, 64u << 10, NULL));
        struct {
            const char *name;
            sgmap_device *dev;
            void *buf;
            sgmap_mode mode;
        } ways[3] = {
            {"indirect", dev, buf, SGMAP_MODE_INDIRECT},
            {"direct", dev, dbuf, SGMAP_MODE_DIRECT},
            {"mmap", mapped, NULL, SGMAP_MODE_MMAP},
        };
        for (int i = 0; i < 3; i++) {
            printf("medium error at LBA 0x%llx, %s IO:\n", (unsigned long long)bad, ways[i].name);
            CHECK_RESULT(sgmap_read_blocks(ways[i].dev, bad, ways[i].buf, len, ways[i].mode, NULL),
                         SGMAP_SCSI_ERROR, "read of the bad block");
            MUST(sgmap_last_error_info(&info));
            print_outcome(&info.outcome);
            printf("       last error: %s\n", last_error());
            CHECK(info.has_outcome && info.outcome.sense_key == 0x3 && info.outcome.asc == 0x11 &&
                      info.outcome.ascq == 0x00,
                  "MEDIUM ERROR, UNRECOVERED READ ERROR (3/11/00)");
            CHECK(info.outcome.has_information && info.outcome.information == bad,
                  "the sense's INFORMATION field is the failing LBA (0x%llx)",
                  (unsigned long long)info.outcome.information);
        }
        sgmap_device_close(mapped);
        sgmap_direct_buffer_free(dbuf);
    } else {
        printf("note - SGMAP_MEDIUM_ERROR_LBA is not set: the medium error part did not run\n");
    }

    /* 5. A block transfer that stops part way says how far it got. A split
     * read whose third command runs past the end of the disk: two whole
     * commands moved their data, the third failed and moved nothing. */
    size_t max = 0;
    MUST(sgmap_device_max_transfer(dev, &max));
    size_t chunk = max / cap.block_size * cap.block_size;
    size_t len3 = 3 * chunk;
    uint8_t *big = malloc(len3);
    if (big == NULL) {
        printf("FAIL - out of memory\n");
        return 1;
    }
    uint64_t start = cap.blocks - (2 * chunk + chunk / 2) / cap.block_size;
    sgmap_transfer t;
    memset(&t, 0xff, sizeof t);
    CHECK_RESULT(sgmap_read_blocks(dev, start, big, len3, SGMAP_MODE_INDIRECT, &t),
                 SGMAP_SCSI_ERROR, "a split read whose third command runs past the end");
    printf("       last error: %s\n", last_error());
    CHECK(t.bytes == 2 * chunk && t.commands == 3,
          "*out says %zu bytes in %zu commands (want %zu bytes in 3)", t.bytes, t.commands,
          2 * chunk);
    MUST(sgmap_last_error_info(&info));
    CHECK(info.has_outcome && info.outcome.sense_key == 0x5 && info.outcome.transferred == 0,
          "the failed command claims no bytes (transferred %zu of %zu, resid %zu)",
          info.outcome.transferred, info.outcome.requested, info.outcome.resid);

    /* 6. A short transfer (scsi_debug's injected one: opts=0x100, every_nth=1)
     * ran and moved less than asked: it is reported as that, with its
     * outcome and residual, not as a request refused before the kernel. */
    if (on_scsi_debug()) {
        char old_stats[32], old_nth[32], old_opts[32];
        int armed_short = knob_set("statistics", "1", old_stats, sizeof old_stats) == 0 &&
                          knob_set("every_nth", "1", old_nth, sizeof old_nth) == 0 &&
                          knob_set("opts", "0x100", old_opts, sizeof old_opts) == 0;
        sgmap_result r = SGMAP_OTHER;
        size_t want = 8 * (size_t)cap.block_size;
        memset(&t, 0xff, sizeof t);
        if (armed_short) {
            r = sgmap_read_blocks(dev, 0, big, want, SGMAP_MODE_INDIRECT, &t);
            MUST(sgmap_last_error_info(&info));
        }
        knob_restore("opts", old_opts);
        knob_restore("every_nth", old_nth);
        knob_restore("statistics", old_stats);
        CHECK(armed_short, "scsi_debug's short-transfer fault armed");
        CHECK_RESULT(r, SGMAP_SHORT_TRANSFER, "a read that moved half its length");
        CHECK(info.result == r && info.has_outcome && info.outcome.resid > 0 &&
                  info.outcome.transferred + info.outcome.resid == want,
              "the last error has its outcome: %zu of %zu bytes, resid %zu",
              info.outcome.transferred, want, info.outcome.resid);
        CHECK(t.commands == 1 && t.bytes == info.outcome.transferred,
              "*out says %zu bytes in %zu command(s)", t.bytes, t.commands);
    }
    free(big);

    /* 7. After all that the device still works. */
    CHECK_RESULT(sgmap_read_blocks(dev, 0, buf, cap.block_size, SGMAP_MODE_INDIRECT, NULL), SGMAP_OK,
                 "a good read afterwards");

    /* 8. An errno-level failure for contrast: a non-sg node. */
    sgmap_device *none = NULL;
    CHECK_RESULT(sgmap_device_open("/dev/null", 0, &none), SGMAP_NOT_SG, "opening /dev/null");
    CHECK(none == NULL, "no handle is returned");
    CHECK_RESULT(sgmap_device_open("/dev/sg-does-not-exist", 0, &none), SGMAP_OPEN_FAILED,
                 "opening a missing node");
    MUST(sgmap_last_error_info(&info));
    CHECK(info.os_errno == ENOENT && !info.has_outcome, "errno ENOENT, no outcome: %s",
          last_error());

    free(buf);
    sgmap_device_close(dev);
    return finish("scsi_error");
}
