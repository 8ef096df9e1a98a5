/*
 * find_process NAME|PID [CHAIN]: opens one process and prints what the OS layer knows about it,
 * its main module and a summary of its address space.
 *
 *   find_process bash
 *   find_process 1 "coredump:/dumps/guest.elf -> linux"
 */
#include "common.h"

#include <inttypes.h>

/* Adds up the mapped ranges the callback receives. */
typedef struct {
    size_t ranges;
    uint64_t bytes, writable;
} Summary;

static bool count_range(void *user, const MfMemoryRange *range)
{
    Summary *s = user;
    s->ranges++;
    s->bytes += range->size;
    if (range->flags & MF_PAGE_WRITEABLE)
        s->writable += range->size;
    return true; /* go on */
}

static const char *state_name(MfProcessState state)
{
    switch (state) {
    case MF_PROCESS_STATE_ALIVE: return "alive";
    case MF_PROCESS_STATE_DEAD: return "dead";
    default: return "unknown";
    }
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
    MfProcessInfo info;
    MfModuleInfo main_module;
    Summary summary = {0, 0, 0};
    int status = 1;

    mf_log_init(MF_LOG_WARN);
    if (mf_inventory_scan(&inv) != MF_OK || mf_inventory_create_chain(inv, chain, &os) != MF_OK) {
        fail(chain);
        goto out;
    }
    if (open_process(os, argv[1], &proc) != MF_OK || mf_process_info(proc, &info) != MF_OK) {
        fail(argv[1]);
        goto out;
    }
    /* info's strings are borrowed from `proc`: valid until it is freed. */
    printf("pid %u\nppid %u\nname %s\nstate %s\npath %s\ncommand line %s\n", info.pid, info.ppid, info.name,
           state_name(info.state), info.path, info.command_line);
    printf("pointer bits %u\n", (unsigned)info.proc_arch.pointer_bits);

    if (mf_process_primary_module(proc, &main_module) == MF_OK)
        printf("main module %s at 0x%" PRIx64 ", 0x%" PRIx64 " bytes\n", main_module.name, main_module.base,
               main_module.size);
    else
        printf("main module unknown (%s)\n", mf_last_error_message());

    if (mf_process_mapped_ranges(proc, 0, 0, UINT64_MAX, count_range, &summary) != MF_OK) {
        fail("mapped ranges");
        goto out;
    }
    printf("mapped %zu ranges, %" PRIu64 " KiB, %" PRIu64 " KiB writable\n", summary.ranges, summary.bytes >> 10,
           summary.writable >> 10);
    status = 0;

out:
    mf_process_free(proc);
    mf_os_free(os);
    mf_inventory_free(inv);
    return status;
}
