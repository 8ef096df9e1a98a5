/*
 * cpu_spaces: a memflow OS layer plugin written in plain C that needs no knowledge of any OS.
 *
 *   coredump:/path/guest.elf -> cpu_spaces
 *
 * It sits on any connector with CPU state (a QEMU dump, a live QEMU guest) and shows one
 * "process" per distinct page-table root the vCPUs were running with: process `cpuN` is the
 * address space of vCPU N (later vCPUs with the same root are left out). It never walks a page
 * table itself: its processes report only their architecture and page-table root and have no
 * `read` entry, so the host's translation engine reads their memory. On a Linux guest stopped
 * in the kernel, `cpu0` is the kernel's address space: reading a kernel symbol's address there
 * gives what the Rust `linux` layer reads.
 *
 * Ownership: the records handed to host callbacks live on this plugin's stack for the call.
 * The connector table `input` stays valid until `destroy`. Calls are serialised by the host.
 */
#include <memflow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPACES 256u

#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)

typedef struct {
    uint32_t cpu;       /* the vCPU it was seen on first */
    uint64_t root;      /* physical address of the top-level table */
    MfArchitecture arch;
} Space;

typedef struct {
    size_t count;
    Space spaces[MAX_SPACES];
} Os;

/* The paging mode of a CPU's registers; 0 (MF_ARCH_UNKNOWN) without paging or control
   registers. */
static MfArchitecture paging_mode(const MfX86Registers *r)
{
    MfArchitecture a = {MF_ARCH_UNKNOWN, 0, 12, 0};
    if (!(r->valid & MF_X86_REGS_CONTROL) || !(r->cr0 & CR0_PG))
        return a;
    if (r->valid & MF_X86_REGS_LONG_MODE) {
        int la57 = (r->cr4 & CR4_LA57) != 0;
        a.kind = la57 ? MF_ARCH_X86_64_LA57 : MF_ARCH_X86_64;
        a.pointer_bits = 64;
        a.va_bits = la57 ? 57 : 48;
    } else {
        a.kind = (r->cr4 & CR4_PAE) ? MF_ARCH_X86_PAE : MF_ARCH_X86_32;
        a.pointer_bits = 32;
        a.va_bits = 32;
    }
    return a;
}

static int32_t create(const char *args, void *user, const MfCHost *host, const MfCConnectorInput *input, void **out)
{
    (void)user;
    if (args && *args) {
        host->reason("cpu_spaces: takes no arguments");
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT);
    }
    if (!input) {
        host->reason("cpu_spaces: needs a connector with CPU state below it (e.g. coredump:FILE -> cpu_spaces)");
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT);
    }
    Os *os = calloc(1, sizeof *os);
    if (!os)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_OUT_OF_MEMORY);
    size_t cpus = input->cpu_count(input->connector);
    for (size_t cpu = 0; cpu < cpus && os->count < MAX_SPACES; cpu++) {
        MfX86Registers regs;
        if (input->x86_registers(input->connector, cpu, &regs) != 0)
            continue;
        MfArchitecture arch = paging_mode(&regs);
        if (arch.kind == MF_ARCH_UNKNOWN || regs.page_table_root == 0)
            continue;
        int seen = 0;
        for (size_t i = 0; i < os->count; i++)
            seen |= os->spaces[i].root == regs.page_table_root;
        if (!seen)
            os->spaces[os->count++] = (Space){(uint32_t)cpu, regs.page_table_root, arch};
    }
    if (os->count == 0) {
        free(os);
        host->reason("cpu_spaces: no CPU of the connector has paging on (or it has no CPU state)");
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND);
    }
    char line[96];
    snprintf(line, sizeof line, "cpu_spaces: %zu address space(s) from %zu CPU(s)", os->count, cpus);
    host->log(3, line);
    *out = os;
    return 0;
}

static void destroy(void *os)
{
    free(os);
}

static int32_t info(void *os, MfOsInfo *out)
{
    const Os *self = os;
    memset(out, 0, sizeof *out);
    out->arch = self->spaces[0].arch;
    return 0;
}

/* Calls `callback` with the record of space `i` (handle `i`, pid = its vCPU + 1). */
static int report(const Os *self, size_t i, MfProcessInfoCallback callback, void *context)
{
    char name[16];
    snprintf(name, sizeof name, "cpu%u", self->spaces[i].cpu);
    MfProcessInfo p;
    memset(&p, 0, sizeof p);
    p.address = i;
    p.pid = self->spaces[i].cpu + 1;
    p.state = MF_PROCESS_STATE_ALIVE;
    p.name = name;
    p.path = "";
    p.command_line = "";
    p.sys_arch = self->spaces[i].arch;
    p.proc_arch = self->spaces[i].arch;
    p.table_root = self->spaces[i].root; /* the host translates with this */
    return callback(context, &p);
}

static int32_t process_list(void *os, MfProcessInfoCallback callback, void *context)
{
    const Os *self = os;
    for (size_t i = 0; i < self->count && report(self, i, callback, context); i++) {
    }
    return 0;
}

static int32_t process_info(void *os, uint64_t address, MfProcessInfoCallback callback, void *context)
{
    const Os *self = os;
    if (address >= self->count)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND);
    report(self, (size_t)address, callback, context);
    return 0;
}

static void process_destroy(void *process)
{
    (void)process; /* nothing was allocated: the context is the OS instance */
}

/* No `read`: the host reads the memory through the record's page-table root. */
static const MfCProcessTable SPACE = {
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(MfCProcessTable),
    .destroy = process_destroy,
};

static int32_t process_open(void *os, const MfProcessInfo *info, MfCOpenedProcess *out)
{
    const Os *self = os;
    if (info->address >= self->count)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND);
    out->table = &SPACE;
    out->process = os;
    return 0;
}

__attribute__((visibility("default"))) const MfCOsPlugin MEMFLOW_PLUGIN = {
    .header = {
        .magic = "MEMFLOW",
        .abi_version = MF_PLUGIN_ABI_VERSION,
        .header_size = sizeof(MfPluginHeader),
        .kind = MF_PLUGIN_KIND_OS,
        .flavor = MF_PLUGIN_FLAVOR_C,
        .umem_bits = 64,
        .name = "cpu_spaces",
        .version = "1.0.0",
        .description = "One address space per vCPU page-table root, translated by the host (C)",
        .help = "CONNECTOR -> cpu_spaces\n  takes no arguments; needs a connector with CPU state",
    },
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(MfCOsPlugin),
    .create = create,
    .destroy = destroy,
    .info = info,
    .process_list = process_list,
    .process_open = process_open,
    .process_info = process_info,
};
