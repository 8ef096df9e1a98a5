/*
 * phys_read ADDR LEN [CHAIN]: reads physical memory through a connector and prints it as hex.
 *
 *   phys_read 0x1000 64                                  the C plugin's built-in buffer (`cbuffer`)
 *   phys_read 0x1000 64 coredump:/dumps/guest.elf        a memory dump
 *   phys_read 0 16 cbuffer:/etc/hostname                 any file, through the C plugin
 *
 * The default chain, `cbuffer`, is the connector plugin written in C next to this program
 * (plugin_buffer/): the inventory scans the executable's directory.
 */
#include "common.h"

#include <inttypes.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDR LEN [CHAIN]\n", argv[0]);
        return 2;
    }
    uint64_t addr = strtoull(argv[1], NULL, 0);
    size_t len = (size_t)strtoull(argv[2], NULL, 0);
    const char *chain = argc > 3 ? argv[3] : "cbuffer";
    MfInventory *inv = NULL;
    MfConnector *conn = NULL;
    MfPhysicalMetadata meta;
    unsigned char *buf = malloc(len ? len : 1);
    int status = 1;

    mf_log_init(MF_LOG_WARN);
    if (!buf) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (mf_inventory_scan(&inv) != MF_OK || mf_inventory_create_connector_chain(inv, chain, &conn) != MF_OK) {
        fail(chain);
        goto out;
    }
    if (mf_connector_metadata(conn, &meta) != MF_OK) {
        fail("metadata");
        goto out;
    }
    printf("# %s: %" PRIu64 " bytes backed, highest address 0x%" PRIx64 "%s\n", chain, meta.real_size,
           meta.max_address, meta.readonly ? ", read-only" : "");

    int32_t rc = mf_connector_read(conn, addr, buf, len, NULL);
    if (rc != MF_OK && rc != MF_ERR_PARTIAL_READ) {
        fail("read");
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (i % 16 == 0)
            printf("%s%016" PRIx64 ":", i ? "\n" : "", addr + i);
        printf(" %02x", buf[i]);
    }
    if (len)
        printf("\n");
    if (rc == MF_ERR_PARTIAL_READ) /* some bytes were unreadable; they read as zero */
        printf("# partial read: unreadable bytes are shown as 00\n");
    status = 0;

out:
    free(buf);
    mf_connector_free(conn);
    mf_inventory_free(inv);
    return status;
}
