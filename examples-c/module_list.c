/*
 * module_list NAME|PID [CHAIN]: lists the modules (executable images) of a process, streamed
 * through a callback.
 *
 *   module_list 1234
 *   module_list systemd "coredump:/dumps/guest.elf -> linux"
 */
#include "common.h"

#include <inttypes.h>

static bool print_module(void *user, const MfModuleInfo *m)
{
    size_t *count = user;
    /* `m` and its strings are borrowed for this call only: copy what you keep. */
    printf("0x%016" PRIx64 " %10" PRIu64 "  %-24s %s\n", m->base, m->size, m->name, m->path);
    (*count)++;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s NAME|PID [CHAIN]\n", argv[0]);
        return 2;
    }
    const char *chain = argc > 2 ? argv[2] : "native";
    MfInventory *inv = NULL;
    MfOs *os = NULL;
    MfProcess *proc = NULL;
    size_t count = 0;
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
    printf("%-18s %10s  %-24s %s\n", "BASE", "SIZE", "NAME", "PATH");
    if (mf_process_module_list_callback(proc, print_module, &count) != MF_OK) {
        fail("module list");
        goto out;
    }
    printf("%zu modules\n", count);
    status = 0;

out:
    mf_process_free(proc);
    mf_os_free(os);
    mf_inventory_free(inv);
    return status;
}
