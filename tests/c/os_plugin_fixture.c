/*
 * A C OS layer plugin built against a shorter table than memflow.h's: its descriptor type ends
 * after the required entries (an older plugin, or one that needs nothing optional), and its
 * struct_size says so. tests/tests/plugins.rs builds it and loads it from a file.
 *
 * It reports one process, "old" (pid 7), whose memory is a 4 KiB buffer at 0x10000 holding
 * bytes i & 0xff. The create arguments choose hostile behaviour:
 *
 *   endless     the process's module list never ends (the host must stop it)
 *   overcount   reads claim twice the bytes asked for; writes claim -5
 *   badname     the process record's name is not UTF-8
 *   badtable    process_open hands out a table of interface version 99
 *   notable     process_open succeeds but hands out no table
 *   fail        create fails with a reason
 *
 * Compile-time variants of the descriptor (-D...): BAD_VERSION (interface version 1), SHORT
 * (struct_size 24), NULL_OPEN (process_open NULL).
 */
#include <memflow.h>

#include <stdlib.h>
#include <string.h>

/* The descriptor as a plugin of an older header saw it: everything up to process_open. */
typedef struct {
    MfPluginHeader header;
    uint32_t version;
    uint32_t struct_size;
    void *user;
    MfCOsCreateFn create;
    MfCDestroyFn destroy;
    MfCOsInfoFn info;
    MfCProcessListFn process_list;
    MfCProcessOpenFn process_open;
} OldOsPlugin;

/* The process table as an older header saw it: up to module_list. */
typedef struct {
    uint32_t version;
    uint32_t struct_size;
    MfCDestroyFn destroy;
    MfCReadFn read;
    MfCWriteFn write;
    MfCProcessStateFn state;
    MfCModuleListFn module_list;
} OldProcessTable;

#define BASE 0x10000u
#define SIZE 4096u

typedef struct {
    const MfCHost *host;
    char mode[32];
    uint8_t memory[SIZE];
} Os;

static int32_t create(const char *args, void *user, const MfCHost *host, const MfCConnectorInput *input, void **out)
{
    (void)user;
    (void)input;
    if (strcmp(args, "fail") == 0) {
        host->reason("old: asked to fail");
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND);
    }
    Os *os = calloc(1, sizeof *os);
    if (!os)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_OUT_OF_MEMORY);
    os->host = host;
    strncpy(os->mode, args, sizeof os->mode - 1);
    for (unsigned i = 0; i < SIZE; i++)
        os->memory[i] = (uint8_t)i;
    *out = os;
    return 0;
}

static void destroy(void *os)
{
    free(os);
}

static int32_t info(void *os, MfOsInfo *out)
{
    (void)os;
    memset(out, 0, sizeof *out);
    out->arch.kind = MF_ARCH_X86_64;
    return 0;
}

static int32_t process_list(void *os, MfProcessInfoCallback callback, void *context)
{
    const Os *self = os;
    /* The host table works after create too. */
    self->host->log(2, "old: listing processes");
    MfProcessInfo p;
    memset(&p, 0, sizeof p);
    p.address = 7;
    p.pid = 7;
    p.ppid = 1;
    p.state = MF_PROCESS_STATE_ALIVE;
    p.name = strcmp(self->mode, "badname") == 0 ? "bad\xff\xfename" : "old";
    p.sys_arch.kind = MF_ARCH_X86_64;
    p.proc_arch.kind = MF_ARCH_X86_64;
    callback(context, &p);
    return 0;
}

static int64_t proc_read(void *process, uint64_t addr, uint8_t *buf, uint64_t len)
{
    const Os *self = process;
    if (strcmp(self->mode, "overcount") == 0)
        return (int64_t)(2 * len + 1);
    if (addr < BASE || addr >= BASE + SIZE)
        return 0;
    uint64_t n = BASE + SIZE - addr < len ? BASE + SIZE - addr : len;
    memcpy(buf, self->memory + (addr - BASE), n);
    return (int64_t)n;
}

static int64_t proc_write(void *process, uint64_t addr, const uint8_t *buf, uint64_t len)
{
    Os *self = process;
    if (strcmp(self->mode, "overcount") == 0)
        return -5;
    if (addr < BASE || addr >= BASE + SIZE)
        return 0;
    uint64_t n = BASE + SIZE - addr < len ? BASE + SIZE - addr : len;
    memcpy(self->memory + (addr - BASE), buf, n);
    return (int64_t)n;
}

static void proc_destroy(void *process)
{
    (void)process; /* the process is the OS instance itself */
}

static int32_t module_list(void *process, MfModuleInfoCallback callback, void *context)
{
    const Os *self = process;
    MfModuleInfo m;
    memset(&m, 0, sizeof m);
    m.name = "old.so";
    m.path = "/old.so";
    m.arch.kind = MF_ARCH_X86_64;
    m.base = BASE;
    m.size = SIZE;
    do {
        m.address += 1;
    } while (callback(context, &m) && strcmp(self->mode, "endless") == 0);
    return 0;
}

static const OldProcessTable TABLE = {
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(OldProcessTable),
    .destroy = proc_destroy,
    .read = proc_read,
    .write = proc_write,
    .module_list = module_list,
};

static const OldProcessTable BAD_TABLE = {
    .version = 99,
    .struct_size = sizeof(OldProcessTable),
    .destroy = proc_destroy,
};

/* unused in the NULL_OPEN variant */
__attribute__((unused)) static int32_t process_open(void *os, const MfProcessInfo *info, MfCOpenedProcess *out)
{
    const Os *self = os;
    if (info->pid != 7)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND);
    out->table = strcmp(self->mode, "badtable") == 0 ? (const MfCProcessTable *)&BAD_TABLE
                 : strcmp(self->mode, "notable") == 0 ? NULL
                                                      : (const MfCProcessTable *)&TABLE;
    out->process = os;
    return 0;
}

#ifdef BAD_VERSION
#define VERSION 1
#else
#define VERSION MF_C_PLUGIN_VERSION
#endif
#ifdef SHORT
#define SIZE_OF_TABLE 24
#else
#define SIZE_OF_TABLE sizeof(OldOsPlugin)
#endif
#ifdef NULL_OPEN
#define OPEN NULL
#else
#define OPEN process_open
#endif

__attribute__((visibility("default"))) const OldOsPlugin MEMFLOW_PLUGIN = {
    .header = {
        .magic = "MEMFLOW",
        .abi_version = MF_PLUGIN_ABI_VERSION,
        .header_size = sizeof(MfPluginHeader),
        .kind = MF_PLUGIN_KIND_OS,
        .flavor = MF_PLUGIN_FLAVOR_C,
        .umem_bits = 64,
        .name = "old",
        .version = "0.1.0",
        .description = "An OS layer built against a shorter table (test fixture)",
        .help = "old[:MODE]",
    },
    .version = VERSION,
    .struct_size = SIZE_OF_TABLE,
    .create = create,
    .destroy = destroy,
    .info = info,
    .process_list = process_list,
    .process_open = OPEN,
};
