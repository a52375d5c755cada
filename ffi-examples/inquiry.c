/*
 * inquiry.c: find sg devices, open one, and ask who it is and how big.
 *
 *   cc -std=c11 inquiry.c $(pkg-config --cflags --libs sgmap) -o inquiry
 *   ./inquiry /dev/sg0
 */
#include <stdio.h>
#include <string.h>

#include <sgmap.h>

#include "check.h"

#if !SGMAP_CHECK_VERSION(0, 1, 0)
#error "this example needs sgmap 0.1.0 or newer"
#endif

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);

    /* The header and the library must be the same version. */
    printf("sgmap %s (header %s)\n", sgmap_version(), SGMAP_VERSION_STRING);
    CHECK(strcmp(sgmap_version(), SGMAP_VERSION_STRING) == 0 &&
              sgmap_version_number() == SGMAP_VERSION_NUMBER,
          "library version %u matches the header's %u", sgmap_version_number(),
          (unsigned)SGMAP_VERSION_NUMBER);
    CHECK(SGMAP_CHECK_VERSION(SGMAP_VERSION_MAJOR, SGMAP_VERSION_MINOR, SGMAP_VERSION_PATCH) &&
              SGMAP_CHECK_VERSION(0, 0, 99) && !SGMAP_CHECK_VERSION(SGMAP_VERSION_MAJOR + 1, 0, 0) &&
              !SGMAP_CHECK_VERSION(SGMAP_VERSION_MAJOR, SGMAP_VERSION_MINOR + 1, 0),
          "SGMAP_CHECK_VERSION: true for this version and older, false for newer");

    /* Discovery: what sysfs knows. The strings live until the list is freed. */
    sgmap_device_list *list = NULL;
    MUST(sgmap_list_devices(&list));
    size_t n = sgmap_device_list_len(list);
    int listed = 0;
    for (size_t i = 0; i < n; i++) {
        sgmap_device_entry e;
        MUST(sgmap_device_list_get(list, i, &e));
        printf("  %-6s %-10s %-8s %-16s %-4s type %d", e.name, e.path, e.vendor, e.model,
               e.revision, (int)e.device_type);
        if (e.has_hctl) {
            printf("  [%u:%u:%u:%llu]", e.host, e.channel, e.target,
                   (unsigned long long)e.lun);
        }
        printf("%s%s\n", e.block_device[0] ? "  block " : "", e.block_device);
        if (strcmp(e.path, path) == 0) {
            listed = 1;
        }
    }
    CHECK(listed || strncmp(path, "/dev/sg", 7) != 0, "%s is among the %zu devices listed",
          path, n);
    sgmap_device_list_free(list);

    /* INQUIRY and READ CAPACITY are read-safe: a read-only open is enough. */
    sgmap_device *dev = NULL;
    MUST(sgmap_device_open(path, SGMAP_OPEN_READ_ONLY, &dev));
    MUST(sgmap_wait_ready(dev)); /* passes over the UNIT ATTENTION after power on */

    sgmap_device_info info;
    MUST(sgmap_device_get_info(dev, &info));
    printf("sg driver %u.%u.%u, %s node, mmap IO %s\n", info.driver_version / 10000,
           info.driver_version / 100 % 100, info.driver_version % 100,
           info.node_kind == SGMAP_NODE_SG ? "sg" : "block",
           info.supports_mmap ? "supported" : "not supported");
    CHECK(info.read_only && !info.mapped, "the handle is read-only and not mapped");
    CHECK(info.node_kind == SGMAP_NODE_SG && info.supports_mmap && info.driver_version >= 30122,
          "an sg node whose driver (%u) supports mmap-ed IO", info.driver_version);

    sgmap_inquiry_data inq;
    MUST(sgmap_inquiry(dev, &inq));
    printf("INQUIRY: vendor '%s' product '%s' revision '%s', type %u, SPC version %u\n",
           inq.vendor, inq.product, inq.revision, inq.device_type, inq.version);
    if (on_scsi_debug()) {
        CHECK(strcmp(inq.vendor, "Linux") == 0 && strcmp(inq.product, "scsi_debug") == 0,
              "scsi_debug answers as Linux scsi_debug");
    }

    sgmap_scsi_id id;
    MUST(sgmap_device_scsi_id(dev, &id));
    printf("SCSI address %u:%u:%u:%llu, queue depth %u\n", id.host, id.channel, id.target,
           (unsigned long long)id.lun, id.queue_depth);
    CHECK(id.device_type == inq.device_type, "SG_GET_SCSI_ID and INQUIRY agree on the type (%u)",
          inq.device_type);

    sgmap_capacity cap;
    MUST(sgmap_read_capacity(dev, &cap));
    printf("capacity: %llu blocks of %u bytes = %llu MiB\n", (unsigned long long)cap.blocks,
           cap.block_size, (unsigned long long)(cap.bytes >> 20));
    CHECK(cap.blocks > 0 && cap.bytes == cap.blocks * cap.block_size,
          "capacity in bytes = blocks x block size");
    CHECK(cap.block_size == 512 || cap.block_size == 1024 || cap.block_size == 2048 ||
              cap.block_size == 4096,
          "block size %u is a usual one", cap.block_size);
    uint32_t block = 0;
    MUST(sgmap_block_size(dev, &block));
    CHECK(block == cap.block_size, "sgmap_block_size agrees (%u)", block);
    if (on_scsi_debug()) {
        /* The test bed loads scsi_debug with dev_size_mb=256. */
        CHECK(cap.bytes == 256u << 20, "scsi_debug's disk is 256 MiB");
    }

    /* VPD page 0x00 lists the supported pages, starting with 0x00 itself. */
    uint8_t vpd[255];
    size_t vpd_len = 0;
    MUST(sgmap_inquiry_vpd(dev, 0x00, vpd, sizeof vpd, &vpd_len));
    CHECK(vpd_len >= 5 && vpd[1] == 0x00 && vpd[4] == 0x00,
          "VPD page 0x00 (%zu bytes) lists page 0x00 first", vpd_len);
    printf("supported VPD pages:");
    for (size_t i = 4; i < vpd_len && i < sizeof vpd; i++) {
        printf(" %02x", vpd[i]);
    }
    printf("\n");

    size_t max = 0;
    MUST(sgmap_device_max_transfer(dev, &max));
    size_t reserved = 0;
    MUST(sgmap_device_reserved_size(dev, &reserved));
    printf("largest transfer per command %zu bytes; reserved buffer now %zu bytes\n", max,
           reserved);
    CHECK(max >= cap.block_size, "one command carries at least a block");

    sgmap_device_close(dev);
    return finish("inquiry");
}
