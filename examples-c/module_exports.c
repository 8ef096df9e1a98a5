/*
 * module_exports NAME|PID MODULE [CHAIN]: lists the symbols a module of a process exports,
 * with their addresses in the process.
 *
 *   module_exports 1234 libc.so.6
 */
#include "common.h"

#include <inttypes.h>

typedef struct {
    uint64_t base;
    size_t count;
} Listing;

static bool print_export(void *user, const MfExportInfo *e)
{
    Listing *l = user;
    printf("0x%016" PRIx64 " %s\n", l->base + e->offset, e->name);
    l->count++;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NAME|PID MODULE [CHAIN]\n", argv[0]);
        return 2;
    }
    const char *chain = argc > 3 ? argv[3] : "native";
    MfInventory *inv = NULL;
    MfOs *os = NULL;
    MfProcess *proc = NULL;
    MfModuleInfo module;
    Listing listing = {0, 0};
    int status = 1;

    mf_log_init(MF_LOG_WARN);
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
    listing.base = module.base;
    if (mf_process_module_exports(proc, &module, print_export, &listing) != MF_OK) {
        fail("exports");
        goto out;
    }
    printf("%zu exports in %s\n", listing.count, module.path);
    status = 0;

out:
    mf_process_free(proc);
    mf_os_free(os);
    mf_inventory_free(inv);
    return status;
}
