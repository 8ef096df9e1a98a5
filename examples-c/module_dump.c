/*
 * module_dump NAME|PID MODULE OUTFILE [CHAIN]: writes the memory image of a module of a
 * process to a file. Pages that cannot be read (not mapped, swapped out) are written as zeros
 * and counted.
 *
 *   module_dump 1234 libc.so.6 libc.bin
 */
#include "common.h"

#include <inttypes.h>
#include <string.h>

#define PAGE 4096u
#define BATCH 64u /* pages per batched read: one call, one translation pass */

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAME|PID MODULE OUTFILE [CHAIN]\n", argv[0]);
        return 2;
    }
    const char *chain = argc > 4 ? argv[4] : "native";
    MfInventory *inv = NULL;
    MfOs *os = NULL;
    MfProcess *proc = NULL;
    MfModuleInfo module;
    FILE *out = NULL;
    unsigned char *buf = malloc((size_t)PAGE * BATCH);
    uint64_t unreadable = 0;
    int status = 1;

    mf_log_init(MF_LOG_WARN);
    if (!buf) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    if (mf_inventory_scan(&inv) != MF_OK || mf_inventory_create_chain(inv, chain, &os) != MF_OK) {
        fail(chain);
        goto out;
    }
    if (open_process(os, argv[1], &proc) != MF_OK) {
        fail(argv[1]);
        goto out;
    }
    if (mf_process_module_by_name(proc, argv[2], &module) != MF_OK) {
        fail(argv[2]);
        goto out;
    }
    if (!(out = fopen(argv[3], "wb"))) {
        perror(argv[3]);
        goto out;
    }

    for (uint64_t done = 0; done < module.size;) {
        MfReadOp ops[BATCH];
        size_t n = 0;
        for (; n < BATCH && done < module.size; n++) {
            uint64_t len = module.size - done < PAGE ? module.size - done : PAGE;
            ops[n].addr = module.base + done;
            ops[n].buf = buf + (size_t)n * PAGE;
            ops[n].len = (size_t)len;
            done += len;
        }
        int32_t rc = mf_process_read_batch(proc, ops, n);
        if (rc != MF_OK && rc != MF_ERR_PARTIAL_READ) { /* partial: each op's result says which */
            fail("read");
            goto out;
        }
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            if (ops[i].result == MF_ERR_PARTIAL_READ)
                unreadable += ops[i].len; /* zero-filled by the library */
            bytes += ops[i].len;
        }
        if (fwrite(buf, 1, bytes, out) != bytes) {
            perror(argv[3]);
            goto out;
        }
    }
    printf("wrote %" PRIu64 " bytes of %s (0x%" PRIx64 "-0x%" PRIx64 ") to %s; %" PRIu64
           " bytes in pages not fully readable\n",
           module.size, module.name, module.base, module.base + module.size, argv[3], unreadable);
    status = 0;

out:
    if (out && fclose(out) != 0 && status == 0) {
        perror(argv[3]);
        status = 1;
    }
    free(buf);
    mf_process_free(proc); /* also ends the life of module's borrowed strings */
    mf_os_free(os);
    mf_inventory_free(inv);
    return status;
}
