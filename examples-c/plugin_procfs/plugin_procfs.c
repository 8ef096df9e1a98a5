/*
 * procfs: a memflow OS layer plugin written in plain C, for the Linux host it runs on.
 *
 *   procfs                 this machine's processes (takes no arguments and no connector)
 *
 * Processes come from /proc (name, parent, state, executable, command line), their memory
 * through process_vm_readv / process_vm_writev, their modules and mapped ranges from
 * /proc/PID/maps. The host wraps this into the same OS and process objects the Rust `native`
 * layer produces, so every memflow API (Rust, C, C++, chains) works on it.
 *
 * The rules this code follows (README, "Writing plugins in C and C++"):
 *  - records passed to a host callback, and their strings, only need to live during the call;
 *  - strings are NUL-terminated UTF-8 (the host refuses anything else), so text from /proc is
 *    made valid first;
 *  - the host serialises all calls into one OS instance and its processes: no locking here;
 *  - errors are MF_ERROR(origin, kind) codes; host->reason() says why.
 */
#define _GNU_SOURCE /* process_vm_readv, getline */

#include <memflow.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_IOV 1024u       /* remote pages per process_vm_readv call (IOV_MAX) */
#define MAX_IMAGES 65536u   /* modules of one process */
#define TEXT 4096u          /* a name or a path */
#define COMMAND_LINE 65536u /* a command line */

typedef struct {
    const MfCHost *host;
} Os;

typedef struct {
    pid_t pid;
    const MfCHost *host;
} Process;

/* Fails the current call with `code`, giving the host the reason "procfs: <what><detail>". */
static int32_t fail(const MfCHost *host, int32_t code, const char *what, const char *detail)
{
    char line[TEXT + 64];
    snprintf(line, sizeof line, "procfs: %s%s", what, detail);
    host->reason(line);
    return code;
}

/* The architecture of this host, and of 32-bit processes on it. */
static MfArchitecture host_arch(void)
{
#if defined(__x86_64__)
    MfArchitecture a = {MF_ARCH_X86_64, 64, 12, 48};
#elif defined(__aarch64__)
    MfArchitecture a = {MF_ARCH_AARCH64, 64, 12, 48};
#else
#error "procfs knows x86-64 and AArch64 hosts"
#endif
    return a;
}

/* Replaces every byte of `s` that is not part of valid UTF-8 with '?'. */
static void make_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3
                 : *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
        unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
        if (*p == 0xe0) lo = 0xa0;
        if (*p == 0xed) hi = 0x9f;
        if (*p == 0xf0) lo = 0x90;
        if (*p == 0xf4) hi = 0x8f;
        size_t i = 1;
        for (; n && i < n; i++)
            if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
                break;
        if (!n || i < n) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

/* Reads up to `cap - 1` bytes of /proc/PID/NAME into `buf` (NUL-terminated); returns the
   length or -1. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return -1;
    buf[n] = '\0';
    return (ssize_t)n;
}

/* The ELF class (1: 32-bit, 2: 64-bit) of the 5 bytes at `ident`, 0 if they are no ELF
   identification. */
static int elf_class(const unsigned char ident[5])
{
    return memcmp(ident, "\177ELF", 4) == 0 && (ident[4] == 1 || ident[4] == 2) ? ident[4] : 0;
}

static MfArchitecture arch_of_class(int class)
{
    MfArchitecture x86 = {MF_ARCH_X86_32, 32, 12, 32};
    return class == 1 ? x86 : host_arch();
}

/* The strings of one process record. */
typedef struct {
    char name[TEXT];
    char path[TEXT];
    char command_line[COMMAND_LINE];
} Texts;

/* Fills `info` (pointing into `t`) for `pid`; returns 0, or -1 if the process is gone. */
static int process_record(pid_t pid, MfProcessInfo *info, Texts *t)
{
    char stat[1024];
    if (read_proc(pid, "stat", stat, sizeof stat) < 0)
        return -1;
    char *open = strchr(stat, '('), *close = strrchr(stat, ')');
    char state = 0;
    unsigned ppid = 0;
    if (!open || !close || close < open || sscanf(close + 1, " %c %u", &state, &ppid) != 2)
        return -1;
    size_t len = (size_t)(close - open - 1);
    memcpy(t->name, open + 1, len);
    t->name[len] = '\0';

    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, t->path, sizeof t->path - 1);
    t->path[n > 0 ? n : 0] = '\0'; /* empty where access is denied, or for kernel threads */

    n = read_proc(pid, "cmdline", t->command_line, sizeof t->command_line);
    if (n < 0)
        n = 0;
    if (n > 0 && t->command_line[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++)
        if (t->command_line[i] == '\0')
            t->command_line[i] = ' ';
    t->command_line[n] = '\0';
    make_utf8(t->name);
    make_utf8(t->path);
    make_utf8(t->command_line);

    unsigned char ident[5] = {0};
    if (read_proc(pid, "exe", (char *)ident, sizeof ident) < 4)
        memset(ident, 0, sizeof ident);
    memset(info, 0, sizeof *info);
    info->address = (uint64_t)pid;
    info->pid = (uint32_t)pid;
    info->ppid = ppid;
    info->state = state == 'Z' || state == 'X' || state == 'x' ? MF_PROCESS_STATE_DEAD : MF_PROCESS_STATE_ALIVE;
    info->name = t->name;
    info->path = t->path;
    info->command_line = t->command_line;
    info->sys_arch = host_arch();
    info->proc_arch = arch_of_class(elf_class(ident));
    return 0;
}

/* ---- the OS ----------------------------------------------------------------------------- */

static int32_t os_create(const char *args, void *user, const MfCHost *host, const MfCConnectorInput *input, void **out)
{
    (void)user;
    (void)input; /* the host's own processes: a connector below is not used */
    if (args && *args)
        return fail(host, MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT), "takes no arguments, got: ", args);
    if (access("/proc/self/stat", R_OK) != 0)
        return fail(host, MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND), "/proc is not mounted", "");
    Os *os = calloc(1, sizeof *os);
    if (!os)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_OUT_OF_MEMORY);
    os->host = host;
    host->log(4, "procfs: reading processes from /proc");
    *out = os;
    return 0;
}

static void os_destroy(void *os)
{
    free(os);
}

static int32_t os_info(void *os, MfOsInfo *out)
{
    (void)os;
    memset(out, 0, sizeof *out); /* no kernel image seen from user space */
    out->arch = host_arch();
    return 0;
}

static int32_t os_process_list(void *os, MfProcessInfoCallback callback, void *context)
{
    Os *self = os;
    DIR *dir = opendir("/proc");
    if (!dir)
        return fail(self->host, MF_ERROR(MF_ORIGIN_OS, MF_KIND_IO), "cannot list /proc: ", strerror(errno));
    Texts *t = malloc(sizeof *t);
    if (!t) {
        closedir(dir);
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_OUT_OF_MEMORY);
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        MfProcessInfo info;
        if (*end || pid <= 0 || process_record((pid_t)pid, &info, t) != 0)
            continue; /* not a process, or gone since */
        if (!callback(context, &info))
            break;
    }
    free(t);
    closedir(dir);
    return 0;
}

static int32_t os_process_info(void *os, uint64_t address, MfProcessInfoCallback callback, void *context)
{
    Os *self = os;
    Texts *t = malloc(sizeof *t);
    if (!t)
        return MF_ERROR(MF_ORIGIN_OS, MF_KIND_OUT_OF_MEMORY);
    MfProcessInfo info;
    int32_t rc = 0;
    if (address == 0 || address > 0x7fffffff || process_record((pid_t)address, &info, t) != 0)
        rc = fail(self->host, MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND), "no such process", "");
    else
        callback(context, &info);
    free(t);
    return rc;
}

/* ---- processes -------------------------------------------------------------------------- */

/* Moves up to `len` bytes between `buf` and the process at `addr`, one remote iovec per page
   so that the kernel stops at the first page that fails; returns the bytes moved from the
   start. */
static int64_t transfer(const Process *p, uint64_t addr, uint8_t *buf, uint64_t len, int write)
{
    static const struct iovec none = {0};
    struct iovec remote[MAX_IOV];
    uint64_t done = 0;
    while (done < len) {
        size_t n = 0;
        uint64_t chunk = 0;
        while (n < MAX_IOV && done + chunk < len) {
            uint64_t at = addr + done + chunk;
            uint64_t piece = PAGE - (at % PAGE);
            if (piece > len - done - chunk)
                piece = len - done - chunk;
            remote[n] = none;
            remote[n].iov_base = (void *)(uintptr_t)at;
            remote[n].iov_len = (size_t)piece;
            n++;
            chunk += piece;
        }
        struct iovec local = {buf + done, (size_t)chunk};
        ssize_t got = write ? process_vm_writev(p->pid, &local, 1, remote, n, 0)
                            : process_vm_readv(p->pid, &local, 1, remote, n, 0);
        if (got <= 0)
            break;
        done += (uint64_t)got;
        if ((uint64_t)got < chunk)
            break;
    }
    return (int64_t)done;
}

static int64_t proc_read(void *process, uint64_t addr, uint8_t *buf, uint64_t len)
{
    return transfer(process, addr, buf, len, 0);
}

static int64_t proc_write(void *process, uint64_t addr, const uint8_t *buf, uint64_t len)
{
    return transfer(process, addr, (uint8_t *)buf, len, 1);
}

static void proc_destroy(void *process)
{
    free(process);
}

static MfProcessState proc_state(void *process)
{
    const Process *p = process;
    char stat[1024];
    if (read_proc(p->pid, "stat", stat, sizeof stat) < 0)
        return MF_PROCESS_STATE_DEAD;
    const char *close = strrchr(stat, ')');
    char state = close && close[1] ? close[2] : 0;
    return state == 'Z' || state == 'X' || state == 'x' ? MF_PROCESS_STATE_DEAD : MF_PROCESS_STATE_ALIVE;
}

/* One line of /proc/PID/maps. `path` points into the line (empty without a file). */
typedef struct {
    uint64_t start, end, offset;
    char perms[5];
    char *path;
} Mapping;

/* Parses `line` (modified: the path is cut at its newline); returns 0 or -1. */
static int parse_mapping(char *line, Mapping *m)
{
    int path_at = 0;
    unsigned long long start, end, offset;
    if (sscanf(line, "%llx-%llx %4s %llx %*s %*s %n", &start, &end, m->perms, &offset, &path_at) != 4)
        return -1;
    m->start = start;
    m->end = end;
    m->offset = offset;
    m->path = line + path_at;
    m->path[strcspn(m->path, "\n")] = '\0';
    return 0;
}

/* An ELF image: a file's mapping at offset 0 and the later mappings of the same file. */
typedef struct {
    uint64_t base, end;
    char *path; /* owned */
} Image;

/* The images mapped into the process, in the order of their bases; the caller frees them with
   free_images. Returns the count, or -1 (with a reason given). */
static long read_images(const Process *p, Image **out)
{
    char name[64];
    snprintf(name, sizeof name, "/proc/%d/maps", (int)p->pid);
    FILE *f = fopen(name, "re");
    if (!f)
        return fail(p->host, MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE), "cannot read ", name), -1;
    Image *images = NULL;
    size_t count = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    Mapping m;
    while (getline(&line, &line_cap, f) > 0) {
        if (parse_mapping(line, &m) != 0 || m.path[0] != '/')
            continue;
        if (m.offset != 0) { /* extends the latest image of its file */
            for (size_t i = count; i-- > 0;)
                if (strcmp(images[i].path, m.path) == 0) {
                    if (m.end > images[i].end)
                        images[i].end = m.end;
                    break;
                }
            continue;
        }
        if (count == MAX_IMAGES)
            break;
        if (count == cap) {
            size_t grown = cap ? 2 * cap : 64;
            Image *bigger = realloc(images, grown * sizeof *images);
            if (!bigger)
                break;
            images = bigger;
            cap = grown;
        }
        char *path = strdup(m.path);
        if (!path)
            break;
        images[count++] = (Image){m.start, m.end, path};
    }
    free(line);
    fclose(f);
    *out = images;
    return (long)count;
}

static void free_images(Image *images, long count)
{
    for (long i = 0; i < count; i++)
        free(images[i].path);
    free(images);
}

static int32_t proc_module_list(void *process, MfModuleInfoCallback callback, void *context)
{
    const Process *p = process;
    Image *images;
    long count = read_images(p, &images);
    if (count < 0)
        return MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE);
    for (long i = 0; i < count; i++) {
        unsigned char ident[5];
        if (transfer(p, images[i].base, ident, sizeof ident, 0) != sizeof ident || !elf_class(ident))
            continue; /* not an ELF image (a data file, a font) */
        make_utf8(images[i].path);
        const char *slash = strrchr(images[i].path, '/');
        MfModuleInfo info = {
            .address = images[i].base,
            .parent = (uint64_t)p->pid,
            .base = images[i].base,
            .size = images[i].end - images[i].base,
            .name = slash ? slash + 1 : images[i].path,
            .path = images[i].path,
            .arch = arch_of_class(elf_class(ident)),
        };
        if (!callback(context, &info))
            break;
    }
    free_images(images, count);
    return 0;
}

static int32_t proc_mapped_ranges(void *process, uint64_t start, uint64_t end, MfMemoryRangeCallback callback,
                                  void *context)
{
    const Process *p = process;
    char name[64];
    snprintf(name, sizeof name, "/proc/%d/maps", (int)p->pid);
    FILE *f = fopen(name, "re");
    if (!f)
        return MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE);
    char *line = NULL;
    size_t cap = 0;
    Mapping m;
    while (getline(&line, &cap, f) > 0) {
        if (parse_mapping(line, &m) != 0 || m.perms[0] != 'r' || m.end <= start || m.start >= end)
            continue;
        MfMemoryRange range = {m.start, m.end - m.start, MF_PAGE_USER};
        if (m.perms[1] == 'w')
            range.flags |= MF_PAGE_WRITEABLE;
        if (m.perms[2] != 'x')
            range.flags |= MF_PAGE_NOEXEC;
        if (!callback(context, &range))
            break;
    }
    free(line);
    fclose(f);
    return 0;
}

static const MfCProcessTable PROCESS = {
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(MfCProcessTable),
    .destroy = proc_destroy,
    .read = proc_read,
    .write = proc_write,
    .state = proc_state,
    .module_list = proc_module_list,
    .mapped_ranges = proc_mapped_ranges,
    /* exports, imports, sections: NULL, so the host answers "unsupported" */
};

static int32_t os_process_open(void *os, const MfProcessInfo *info, MfCOpenedProcess *out)
{
    Os *self = os;
    char stat[64];
    snprintf(stat, sizeof stat, "/proc/%u/stat", info->pid);
    if (access(stat, R_OK) != 0)
        return fail(self->host, MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE), "the process is gone: ", info->name);
    Process *p = malloc(sizeof *p);
    if (!p)
        return MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_OUT_OF_MEMORY);
    p->pid = (pid_t)info->pid;
    p->host = self->host;
    out->table = &PROCESS;
    out->process = p;
    return 0;
}

/* The descriptor, the only exported symbol (the library is built with hidden visibility). */
__attribute__((visibility("default"))) const MfCOsPlugin MEMFLOW_PLUGIN = {
    .header = {
        .magic = "MEMFLOW",
        .abi_version = MF_PLUGIN_ABI_VERSION,
        .header_size = sizeof(MfPluginHeader),
        .kind = MF_PLUGIN_KIND_OS,
        .flavor = MF_PLUGIN_FLAVOR_C,
        .umem_bits = 64,
        .name = "procfs",
        .version = "1.0.0",
        .description = "This machine's processes from /proc (an OS layer written in C)",
        .help = "procfs\n  takes no arguments",
    },
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(MfCOsPlugin),
    .create = os_create,
    .destroy = os_destroy,
    .info = os_info,
    .process_list = os_process_list,
    .process_open = os_process_open,
    .process_info = os_process_info,
};
