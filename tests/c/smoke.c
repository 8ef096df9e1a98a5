/* Smoke test of the C API against the shared library, run by tests/tests/ffi.rs (also under
 * valgrind): a physical dump through the built-in `coredump` connector, this very process
 * through the built-in `native` OS layer, error detail, logging, every free function.
 *
 * usage: smoke DUMP_FILE
 */
#define _POSIX_C_SOURCE 200809L

#include "memflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The SDK library's file name as loaded: its soname carries MF_ABI_VERSION. */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define FFI_SONAME "libmemflow_ffi.so." STRINGIFY(MF_ABI_VERSION)

#include "check.h"

/* A value this process reads from itself through the native OS layer. */
static const unsigned long long MARKER = 0x5eed5eedcafef00dULL;

static size_t log_records = 0;

static void on_log(void *user, const MfLogRecord *record) {
    size_t *count = (size_t *)user;
    if (record->message != NULL && record->target != NULL) {
        (*count)++;
    }
}

static bool count_process(void *user, const MfProcessInfo *info) {
    size_t *count = (size_t *)user;
    CHECK(info->name != NULL && info->path != NULL && info->command_line != NULL);
    (*count)++;
    return true;
}

struct module_search {
    const char *name;
    size_t seen;
    bool found;
};

static bool find_module(void *user, const MfModuleInfo *info) {
    struct module_search *s = (struct module_search *)user;
    s->seen++;
    if (strcmp(info->name, s->name) == 0) {
        s->found = true;
        return false;
    }
    return true;
}

struct export_search {
    size_t count;
    uint64_t mf_version_offset;
};

static bool on_export(void *user, const MfExportInfo *info) {
    struct export_search *s = (struct export_search *)user;
    s->count++;
    if (strcmp(info->name, "mf_version") == 0) {
        s->mf_version_offset = info->offset;
    }
    return true;
}

static bool count_import(void *user, const MfImportInfo *info) {
    (void)info;
    (*(size_t *)user)++;
    return true;
}

static bool count_section(void *user, const MfSectionInfo *info) {
    CHECK(info->name != NULL);
    (*(size_t *)user)++;
    return true;
}

static bool count_range(void *user, const MfMemoryRange *range) {
    CHECK(range->size > 0);
    (*(size_t *)user)++;
    return true;
}

static void physical(MfInventory *inv, const char *dump) {
    char args[4096];
    MfConnector *conn = NULL, *copy = NULL;
    MfPhysicalMetadata meta;
    unsigned char buf[16], tail[16];
    MfReadOp ops[2];
    size_t cpus = 0;
    MfX86Registers regs;

    snprintf(args, sizeof args, "'%s'", dump);
    OK(mf_inventory_create_connector(inv, "coredump", args, NULL, &conn));
    if (conn == NULL) {
        return;
    }
    OK(mf_connector_metadata(conn, &meta));
    CHECK(meta.real_size >= (200u << 20));
    OK(mf_connector_read(conn, 0x1000, buf, sizeof buf, NULL));

    /* One op inside memory, one past its end: the batch is partial, each op says which. */
    ops[0].addr = 0x1000;
    ops[0].buf = buf;
    ops[0].len = sizeof buf;
    ops[0].result = 1;
    ops[1].addr = meta.max_address + 1;
    ops[1].buf = tail;
    ops[1].len = sizeof tail;
    ops[1].result = 1;
    CHECK(mf_connector_read_batch(conn, ops, 2) == MF_ERR_PARTIAL_READ);
    CHECK(ops[0].result == 0);
    CHECK(ops[1].result == MF_ERR_PARTIAL_READ);
    CHECK(tail[0] == 0 && tail[15] == 0);

    OK(mf_connector_cpu_count(conn, &cpus));
    CHECK(cpus >= 1);
    OK(mf_connector_x86_registers(conn, 0, &regs));
    CHECK(regs.cr3 != 0 && (regs.valid & MF_X86_REGS_CONTROL) != 0);
    CHECK(mf_error_kind(mf_connector_x86_registers(conn, cpus, &regs)) == MF_KIND_NOT_FOUND);

    OK(mf_connector_clone(conn, &copy));
    OK(mf_connector_read(copy, 0x1000, tail, sizeof tail, NULL));
    CHECK(memcmp(buf, tail, sizeof buf) == 0);
    OK(mf_connector_free(copy));
    OK(mf_connector_free(conn));
    printf("physical: %llu MiB, %zu CPU(s), cr3 %#llx\n", (unsigned long long)(meta.real_size >> 20), cpus,
           (unsigned long long)regs.cr3);
}

static void native(MfInventory *inv) {
    MfOs *os = NULL, *os2 = NULL;
    MfOsInfo info;
    MfProcess *self = NULL;
    MfProcessInfo pinfo;
    MfProcessList *plist = NULL;
    MfModuleList *mlist = NULL;
    const MfProcessInfo *procs = NULL;
    const MfModuleInfo *mods = NULL;
    MfModuleInfo lib, primary;
    size_t nprocs = 0, counted = 0, nmods = 0, imports = 0, sections = 0, ranges = 0;
    unsigned long long value = 0;
    struct module_search search = {FFI_SONAME, 0, false};
    struct export_search exports = {0, 0};
    uint64_t addr = 0;
    MfProcessState state = 0;
    char *lib_name = NULL;

    OK(mf_inventory_create_chain(inv, "native", &os));
    if (os == NULL) {
        return;
    }
    OK(mf_os_info(os, &info));
    CHECK(info.arch.pointer_bits == 64);
    OK(mf_os_clone(os, &os2));
    OK(mf_os_free(os2));

    OK(mf_os_process_list_callback(os, count_process, &counted));
    CHECK(counted >= 1);
    OK(mf_os_process_list(os, &plist));
    OK(mf_process_list_get(plist, &procs, &nprocs));
    CHECK(nprocs >= 1 && procs != NULL);
    OK(mf_process_list_free(plist));

    OK(mf_os_process_by_pid(os, (uint32_t)getpid(), &self));
    CHECK(mf_error_kind(mf_os_process_by_name(os, "no-such-process-name", &self)) == MF_KIND_NOT_FOUND);
    OK(mf_os_free(os)); /* the process handle does not depend on the OS handle */
    if (self == NULL) {
        return;
    }
    OK(mf_process_info(self, &pinfo));
    CHECK(pinfo.pid == (uint32_t)getpid());
    OK(mf_process_state(self, &state));
    CHECK(state == MF_PROCESS_STATE_ALIVE);
    OK(mf_process_read(self, (uint64_t)(uintptr_t)&MARKER, &value, sizeof value, NULL));
    CHECK(value == MARKER);

    OK(mf_process_module_list_callback(self, find_module, &search));
    CHECK(search.found);
    OK(mf_process_module_list(self, &mlist));
    OK(mf_module_list_get(mlist, &mods, &nmods));
    CHECK(nmods >= search.seen && mods != NULL);
    OK(mf_module_list_free(mlist));

    OK(mf_process_module_by_name(self, FFI_SONAME, &lib));
    lib_name = strdup(lib.name); /* borrowed from `self` until the next lookup */
    OK(mf_process_module_exports(self, &lib, on_export, &exports));
    CHECK(exports.count >= 50 && exports.mf_version_offset != 0);
    OK(mf_process_export_address(self, &lib, "mf_version", &addr));
    CHECK(addr == lib.base + exports.mf_version_offset);
    OK(mf_process_module_imports(self, &lib, count_import, &imports));
    CHECK(imports >= 1);
    OK(mf_process_module_sections(self, &lib, count_section, &sections));
    CHECK(sections >= 1);
    OK(mf_process_primary_module(self, &primary));
    CHECK(strcmp(primary.name, "smoke") == 0);
    OK(mf_process_mapped_ranges(self, 0, 0, UINT64_MAX, count_range, &ranges));
    CHECK(ranges >= 3);
    OK(mf_process_free(self));
    printf("native: %zu processes, %zu modules, %zu exports in %s, %zu ranges\n", nprocs, nmods, exports.count,
           lib_name, ranges);
    free(lib_name);
}

int main(int argc, char **argv) {
    MfInventory *inv = NULL, *scanned = NULL;
    MfPluginInfo plugin;
    MfOs *missing = NULL;
    size_t count = 0, i, full;
    const char *first_name;
    char name_copy[64], cut[8], *dump_dir;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DUMP_FILE\n", argv[0]);
        return 2;
    }
    CHECK(mf_abi_version() == MF_ABI_VERSION);
    CHECK(strlen(mf_version()) >= 5);

    /* Logging: init is safe twice; a callback gets records (an error's reason is logged at
       debug level: it is returned, not warned about). */
    OK(mf_log_init(MF_LOG_DEBUG));
    OK(mf_log_init(MF_LOG_DEBUG));
    OK(mf_log_set_callback(on_log, &log_records));

    OK(mf_inventory_builtin(&inv));
    OK(mf_inventory_plugin_count(inv, &count));
    CHECK(count >= 2);
    for (i = 0; i < count; i++) {
        OK(mf_inventory_plugin_at(inv, i, &plugin));
        CHECK(plugin.path == NULL && plugin.name[0] != '\0' && plugin.help != NULL);
    }
    CHECK(mf_inventory_plugin_at(inv, count, &plugin) == MF_ERR_INVALID_ARGUMENT);

    /* Strings handed out belong to the inventory until it is freed: adding a directory (here
       the dump's, which holds no plugins) rebuilds its records but keeps them. */
    OK(mf_inventory_plugin_at(inv, 0, &plugin));
    first_name = plugin.name;
    snprintf(name_copy, sizeof name_copy, "%s", first_name);
    dump_dir = strdup(argv[1]);
    CHECK(dump_dir != NULL && strrchr(dump_dir, '/') != NULL);
    if (dump_dir != NULL && strrchr(dump_dir, '/') != NULL) {
        *strrchr(dump_dir, '/') = '\0';
        (void)mf_inventory_add_dir(inv, dump_dir, NULL); /* refused or not, the records are rebuilt */
    }
    free(dump_dir);
    CHECK(strcmp(first_name, name_copy) == 0);

    /* A failure carries detail, and its logged reason reached the callback. */
    CHECK(mf_error_kind(mf_inventory_create_os(inv, "no-such-os", NULL, NULL, &missing)) == MF_KIND_NOT_FOUND);
    CHECK(missing == NULL);
    CHECK(strstr(mf_last_error_message(), "no-such-os") != NULL);
    /* The message copied into a buffer of ours, cut like snprintf. */
    full = mf_last_error_copy(cut, sizeof cut);
    CHECK(full == strlen(mf_last_error_message()) && full > sizeof cut);
    CHECK(strlen(cut) == sizeof cut - 1 && strncmp(cut, mf_last_error_message(), sizeof cut - 1) == 0);
    CHECK(mf_last_error_copy(NULL, 0) == full);
    CHECK(log_records >= 1);
    OK(mf_log_set_callback(NULL, NULL));
    OK(mf_log_set_level(MF_LOG_OFF));

    physical(inv, argv[1]);
    native(inv);

    OK(mf_inventory_scan(&scanned));
    OK(mf_inventory_free(scanned));
    OK(mf_inventory_free(inv));
    OK(mf_inventory_free(NULL));

    if (failures != 0) {
        fprintf(stderr, "smoke: %d check(s) failed\n", failures);
        return 1;
    }
    printf("smoke ok\n");
    return 0;
}
