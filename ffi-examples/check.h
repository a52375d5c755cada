/*
 * check.h: the few helpers the sgmap examples share.
 *
 * Every example prints one line per thing it checked ("ok   - ..." or
 * "FAIL - ...") and exits with status 1 if anything failed, so a test runner
 * needs only the exit status.
 */
#ifndef SGMAP_EXAMPLES_CHECK_H
#define SGMAP_EXAMPLES_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sgmap.h>

static int check_failures = 0;

/* Records one check: prints it, counts a failure. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        int check_ok_ = (cond) ? 1 : 0;                                    \
        printf("%s", check_ok_ ? "ok   - " : "FAIL - ");                   \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        if (!check_ok_) {                                                  \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* The message of this thread's last sgmap error (a static buffer). */
static inline const char *last_error(void)
{
    static char msg[1024];
    if (sgmap_last_error_message(msg, sizeof msg, NULL) != SGMAP_OK &&
        msg[0] == '\0') {
        return "(no message)";
    }
    return msg;
}

/* Checks that a call returned `want`; on a surprise, prints the last error. */
#define CHECK_RESULT(call, want, what)                                     \
    do {                                                                   \
        sgmap_result got_ = (call);                                        \
        CHECK(got_ == (want), "%s -> %s", (what), sgmap_result_name(got_)); \
        if (got_ != (want)) {                                              \
            printf("       expected %s; last error: %s\n",                \
                   sgmap_result_name(want), last_error());                 \
        }                                                                  \
    } while (0)

/* A call that must succeed for the example to go on. */
#define MUST(call)                                                         \
    do {                                                                   \
        sgmap_result must_ = (call);                                       \
        if (must_ != SGMAP_OK) {                                           \
            printf("FAIL - %s -> %s: %s\n", #call,                        \
                   sgmap_result_name(must_), last_error());                \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* The device to use: argv[1], or $SGMAP_TEST_DEVICE (set by the test bed). */
static inline const char *device_path(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("SGMAP_TEST_DEVICE");
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "usage: %s /dev/sgN   (or set SGMAP_TEST_DEVICE)\n", argv[0]);
        exit(2);
    }
    return path;
}

/* True when the device is Linux's scsi_debug disk (the test bed's). */
static inline int on_scsi_debug(void)
{
    const char *v = getenv("SGMAP_TEST_SCSI_DEBUG");
    return v != NULL && strcmp(v, "1") == 0;
}

/* The exit status: 0 when every check passed. */
static inline int finish(const char *name)
{
    printf("%s: %s\n", name, check_failures == 0 ? "all checks passed" : "FAILED");
    return check_failures == 0 ? 0 : 1;
}

#endif
