/* The C API beyond the smoke test, run by tests/tests/ffi.rs plainly, under valgrind and
 * under AddressSanitizer/UBSan: a Linux guest dump through `coredump -> linux` (translation of
 * the kernel address space and of a process, physical memory and CPU state through the OS
 * handle, processes by name, process clones, module strings that outlive later lookups) and
 * this very process through `native` (owned lists of exports, imports, sections and ranges,
 * and what the native layer does not support).
 *
 * Every translation is checked against memory: the bytes at a virtual address equal the
 * bytes at the physical address it translates to.
 *
 * usage: extended DUMP_FILE
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

/* Ranges seen by a page-map or mapped-range callback; stops after `stop_after` if non-zero. */
struct ranges {
    size_t count;
    size_t stop_after;
    MfMemoryRange first;
    uint64_t last_end;
    bool ascending;
};

static bool on_range(void *user, const MfMemoryRange *range) {
    struct ranges *r = (struct ranges *)user;
    if (r->count == 0) {
        r->first = *range;
    } else if (range->base < r->last_end) {
        r->ascending = false;
    }
    r->last_end = range->base + range->size;
    r->count++;
    return r->stop_after == 0 || r->count < r->stop_after;
}

/* The bytes at virtual `va` (read through `os` or `process`) equal those at physical `pa`. */
static bool same_bytes_os(MfOs *os, uint64_t va, uint64_t pa) {
    unsigned char virt[64], phys[64];
    memset(virt, 0x11, sizeof virt);
    memset(phys, 0x22, sizeof phys);
    return mf_os_read(os, va, virt, sizeof virt, NULL) == MF_OK && mf_os_phys_read(os, pa, phys, sizeof phys, NULL) == MF_OK &&
           memcmp(virt, phys, sizeof virt) == 0;
}

static bool same_bytes_process(MfProcess *process, MfOs *os, uint64_t va, uint64_t pa) {
    unsigned char virt[16], phys[16];
    memset(virt, 0x11, sizeof virt);
    memset(phys, 0x22, sizeof phys);
    return mf_process_read(process, va, virt, sizeof virt, NULL) == MF_OK &&
           mf_os_phys_read(os, pa, phys, sizeof phys, NULL) == MF_OK && memcmp(virt, phys, sizeof virt) == 0;
}

/* Physical memory and CPU state of the connector under an OS handle. */
static void physical_through_os(MfOs *os) {
    MfPhysicalMetadata meta;
    unsigned char a[32], b[32], c[32];
    MfReadOp ops[2];
    MfWriteOp wop;
    size_t cpus = 0, done = 0;
    MfX86Registers regs;

    OK(mf_os_phys_metadata(os, &meta));
    CHECK(meta.real_size >= (200u << 20) && meta.max_address > 0x100000);
    OK(mf_os_phys_read(os, 0x100000, a, sizeof a, &done));
    CHECK(done == sizeof a);
    ops[0].addr = 0x100000;
    ops[0].buf = b;
    ops[0].len = sizeof b;
    ops[0].result = 1;
    ops[1].addr = meta.max_address - 7;
    ops[1].buf = c;
    ops[1].len = sizeof c;
    ops[1].result = 1;
    CHECK(mf_os_phys_read_batch(os, ops, 2) == MF_ERR_PARTIAL_READ);
    CHECK(ops[0].result == 0 && ops[1].result == MF_ERR_PARTIAL_READ);
    CHECK(ops[0].done == sizeof b && ops[1].done == 8);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(c[8] == 0 && c[31] == 0);
    CHECK(mf_os_phys_read(os, meta.max_address - 7, c, sizeof c, &done) == MF_ERR_PARTIAL_READ);
    CHECK(done == 8);

    /* Dumps are mapped read-only: writes reach the connector, which refuses them whole. */
    done = 1;
    CHECK(mf_error_kind(mf_os_phys_write(os, 0x100000, a, 1, &done)) == MF_KIND_READ_ONLY && done == 0);
    wop.addr = 0x100000;
    wop.buf = a;
    wop.len = 1;
    wop.result = 1;
    CHECK(mf_error_kind(mf_os_phys_write_batch(os, &wop, 1)) == MF_KIND_READ_ONLY);

    OK(mf_os_cpu_count(os, &cpus));
    CHECK(cpus >= 1);
    OK(mf_os_x86_registers(os, 0, &regs));
    CHECK((regs.valid & MF_X86_REGS_CONTROL) != 0 && regs.page_table_root != 0);
    CHECK(mf_error_kind(mf_os_x86_registers(os, cpus, &regs)) == MF_KIND_NOT_FOUND);
    printf("linux: %llu MiB through the OS handle, %zu CPU(s), cr3 %#llx\n",
           (unsigned long long)(meta.real_size >> 20), cpus, (unsigned long long)regs.cr3);
}

/* Translation of the kernel address space: one address, a batch, the page map. */
static void kernel_translation(MfOs *os) {
    MfOsInfo info;
    uint64_t pa = 0, unmapped = 0;
    MfTranslateOp ops[4];
    struct ranges cb = {0, 0, {0, 0, 0}, 0, true}, first = {0, 1, {0, 0, 0}, 0, true};
    MfMemoryRangeList *list = NULL;
    const MfMemoryRange *items = NULL;
    size_t len = 0, i;

    OK(mf_os_info(os, &info));
    CHECK(info.base != 0 && info.size != 0);
    OK(mf_os_virt_to_phys(os, info.base, &pa));
    CHECK(pa != 0 && same_bytes_os(os, info.base, pa));
    CHECK(mf_os_virt_to_phys(os, 0, &unmapped) < 0 && unmapped == 0);
    CHECK(mf_error_kind(mf_last_error_code()) == MF_KIND_UNMAPPED);

    memset(ops, 0xff, sizeof ops);
    ops[0].addr = info.base;
    ops[1].addr = info.base + 0x1000;
    ops[2].addr = 0; /* user space: not in the kernel's tables */
    ops[3].addr = info.base;
    OK(mf_os_virt_to_phys_batch(os, ops, 4));
    CHECK(ops[0].result == 0 && ops[0].phys == pa && ops[0].page_size >= 0x1000);
    CHECK(ops[1].result == 0 && same_bytes_os(os, ops[1].addr, ops[1].phys));
    CHECK(mf_error_kind(ops[2].result) == MF_KIND_UNMAPPED && ops[2].phys == 0 && ops[2].flags == 0);
    CHECK(ops[3].result == 0 && ops[3].phys == pa && ops[3].flags == ops[0].flags);
    OK(mf_os_virt_to_phys_batch(os, NULL, 0));

    /* The kernel image: the callback and the owned list see the same ranges. */
    OK(mf_os_page_map_callback(os, 0, info.base, info.base + info.size, on_range, &cb));
    CHECK(cb.count >= 1 && cb.ascending);
    CHECK(cb.first.base <= info.base && cb.first.base + cb.first.size > info.base);
    OK(mf_os_page_map_callback(os, 0, info.base, info.base + info.size, on_range, &first));
    CHECK(first.count == 1); /* returning false stops */
    OK(mf_os_page_map(os, 0, info.base, info.base + info.size, &list));
    OK(mf_memory_range_list_get(list, &items, &len));
    CHECK(len == cb.count && items != NULL);
    for (i = 0; i < len && items != NULL; i++) {
        CHECK(items[i].size > 0);
    }
    CHECK(len == 0 || (items[0].base == cb.first.base && items[0].size == cb.first.size));
    OK(mf_memory_range_list_free(list));
    printf("linux: kernel %#llx -> %#llx, %zu page-map ranges in the image\n", (unsigned long long)info.base,
           (unsigned long long)pa, cb.count);
}

/* All processes of one name: the most frequent name of the full list. */
static void processes_by_name(MfOs *os) {
    MfProcessList *all = NULL, *named = NULL, *none = NULL;
    const MfProcessInfo *procs = NULL, *hits = NULL;
    size_t n = 0, nhits = 0, i, j, best = 0, best_count = 0;

    OK(mf_os_process_list(os, &all));
    OK(mf_process_list_get(all, &procs, &n));
    CHECK(n >= 5);
    for (i = 0; i < n; i++) {
        size_t count = 0;
        for (j = 0; j < n; j++) {
            count += strcmp(procs[i].name, procs[j].name) == 0;
        }
        if (count > best_count) {
            best = i;
            best_count = count;
        }
    }
    if (n > 0) {
        OK(mf_os_process_list_by_name(os, procs[best].name, &named));
        OK(mf_process_list_get(named, &hits, &nhits));
        CHECK(nhits == best_count);
        for (i = 0; i < nhits; i++) {
            CHECK(strcmp(hits[i].name, procs[best].name) == 0);
        }
        printf("linux: %zu processes, %zu named %s\n", n, nhits, procs[best].name);
        OK(mf_process_list_free(named));
    }
    OK(mf_os_process_list_by_name(os, "no-such-process-name", &none));
    OK(mf_process_list_get(none, &hits, &nhits));
    CHECK(nhits == 0 && hits == NULL);
    OK(mf_process_list_free(none));
    OK(mf_process_list_free(all));
}

/* A guest process: translation, page map, clones, module strings. */
static void guest_process(MfOs *os) {
    MfProcess *process = NULL, *copy = NULL;
    MfMemoryRangeList *map = NULL;
    const MfMemoryRange *ranges = NULL;
    size_t nranges = 0;
    struct ranges cb = {0, 0, {0, 0, 0}, 0, true};
    uint64_t va = 0, pa = 0;
    MfTranslateOp ops[2];
    MfModuleInfo primary, again;
    char *primary_name = NULL;
    unsigned char a[16], b[16];

    OK(mf_os_process_by_name(os, "mfprobe_marker", &process));
    if (process == NULL) {
        return;
    }
    OK(mf_process_page_map(process, 0, 0, UINT64_MAX, &map));
    OK(mf_memory_range_list_get(map, &ranges, &nranges));
    OK(mf_process_page_map_callback(process, 0, 0, UINT64_MAX, on_range, &cb));
    CHECK(nranges >= 3 && cb.count == nranges && cb.ascending);
    if (nranges > 0) {
        va = ranges[0].base;
        OK(mf_process_virt_to_phys(process, va, &pa));
        CHECK(same_bytes_process(process, os, va, pa));
        ops[0].addr = va;
        ops[1].addr = ranges[nranges - 1].base + ranges[nranges - 1].size - 1;
        ops[0].result = ops[1].result = 1;
        OK(mf_process_virt_to_phys_batch(process, ops, 2));
        CHECK(ops[0].result == 0 && ops[0].phys == pa && ops[1].result == 0);
    }
    OK(mf_memory_range_list_free(map));

    /* A clone reads the same bytes and outlives the original. */
    OK(mf_process_clone(process, &copy));
    OK(mf_process_read(process, va, a, sizeof a, NULL));

    /* Module strings belong to the process: a later lookup does not invalidate them. */
    OK(mf_process_primary_module(process, &primary));
    primary_name = strdup(primary.name);
    CHECK(mf_error_kind(mf_process_module_by_name(process, "no-such-module", &again)) == MF_KIND_NOT_FOUND);
    OK(mf_process_primary_module(process, &again));
    OK(mf_process_module_by_name(process, primary_name, &again));
    CHECK(strcmp(primary.name, primary_name) == 0 && again.name == primary.name);
    OK(mf_process_free(process));

    OK(mf_process_read(copy, va, b, sizeof b, NULL));
    CHECK(memcmp(a, b, sizeof a) == 0);
    OK(mf_process_free(copy));
    printf("linux: mfprobe_marker maps %zu ranges, %#llx -> %#llx, primary module %s\n", nranges,
           (unsigned long long)va, (unsigned long long)pa, primary_name);
    free(primary_name);
}

static void linux_guest(MfInventory *inv, const char *dump) {
    char chain[4096];
    MfOs *os = NULL;

    snprintf(chain, sizeof chain, "coredump:'%s' -> linux", dump);
    OK(mf_inventory_create_chain(inv, chain, &os));
    if (os == NULL) {
        return;
    }
    physical_through_os(os);
    kernel_translation(os);
    processes_by_name(os);
    guest_process(os);
    OK(mf_os_free(os));
}

static bool count(void *user, const void *record) {
    (void)record;
    (*(size_t *)user)++;
    return true;
}

static bool count_export(void *user, const MfExportInfo *info) { return count(user, info); }
static bool count_import(void *user, const MfImportInfo *info) { return count(user, info); }
static bool count_section(void *user, const MfSectionInfo *info) { return count(user, info); }
static bool first_range(void *user, const MfMemoryRange *range) {
    *(MfMemoryRange *)user = *range;
    return false;
}

/* Owned lists of this very process, compared with the callbacks. */
static void native_lists(MfInventory *inv) {
    MfOs *os = NULL;
    MfProcess *self = NULL;
    MfModuleInfo lib;
    MfExportList *exports = NULL;
    MfImportList *imports = NULL;
    MfSectionList *sections = NULL;
    MfMemoryRangeList *ranges = NULL;
    const MfExportInfo *e = NULL;
    const MfImportInfo *im = NULL;
    const MfSectionInfo *s = NULL;
    const MfMemoryRange *r = NULL;
    size_t ne = 0, ni = 0, ns = 0, nr = 0, ce = 0, ci = 0, cs = 0, i, cpus = 7;
    MfMemoryRange first = {0, 0, 0};
    uint64_t mf_version_at = 0, out = 0;
    unsigned char buf[8];
    MfX86Registers regs;
    MfTranslateOp op = {0x1000, 0, 0, 0, 1};
    MfProcessList *list = NULL;
    const MfProcessInfo *procs = NULL;
    size_t nprocs = 0;
    MfProcessInfo info;
    bool found_self = false;

    OK(mf_inventory_create_chain(inv, "native", &os));
    if (os == NULL) {
        return;
    }
    OK(mf_os_process_by_pid(os, (uint32_t)getpid(), &self));
    if (self == NULL) {
        OK(mf_os_free(os));
        return;
    }
    OK(mf_process_module_by_name(self, FFI_SONAME, &lib));

    OK(mf_process_module_export_list(self, &lib, &exports));
    OK(mf_export_list_get(exports, &e, &ne));
    OK(mf_process_module_exports(self, &lib, count_export, &ce));
    CHECK(ne >= 50 && ne == ce);
    for (i = 0; i < ne; i++) {
        if (strcmp(e[i].name, "mf_version") == 0) {
            mf_version_at = lib.base + e[i].offset;
        }
    }
    OK(mf_process_export_address(self, &lib, "mf_version", &out));
    CHECK(mf_version_at != 0 && mf_version_at == out);
    OK(mf_export_list_free(exports));

    OK(mf_process_module_import_list(self, &lib, &imports));
    OK(mf_import_list_get(imports, &im, &ni));
    OK(mf_process_module_imports(self, &lib, count_import, &ci));
    CHECK(ni >= 1 && ni == ci && im[0].name != NULL);
    OK(mf_import_list_free(imports));

    OK(mf_process_module_section_list(self, &lib, &sections));
    OK(mf_section_list_get(sections, &s, &ns));
    OK(mf_process_module_sections(self, &lib, count_section, &cs));
    CHECK(ns >= 1 && ns == cs && s[0].name != NULL);
    OK(mf_section_list_free(sections));

    OK(mf_process_mapped_range_list(self, 0, 0, UINT64_MAX, &ranges));
    OK(mf_memory_range_list_get(ranges, &r, &nr));
    OK(mf_process_mapped_ranges(self, 0, 0, UINT64_MAX, first_range, &first));
    /* The mappings of a running process change as it allocates (under valgrind at every call):
     * compare the lowest range, the executable's. */
    CHECK(nr >= 3 && first.base == r[0].base && first.size == r[0].size);
    OK(mf_memory_range_list_free(ranges));

    /* This process by its own name (not "extended" under valgrind): at least itself. */
    OK(mf_process_info(self, &info));
    OK(mf_os_process_list_by_name(os, info.name, &list));
    OK(mf_process_list_get(list, &procs, &nprocs));
    CHECK(nprocs >= 1);
    for (i = 0; i < nprocs; i++) {
        found_self |= procs[i].pid == info.pid;
    }
    CHECK(found_self);
    OK(mf_process_list_free(list));

    /* The native layer has no physical memory, CPU state or page tables of its own. */
    CHECK(mf_os_phys_read(os, 0, buf, sizeof buf, NULL) == MF_ERR_UNSUPPORTED);
    OK(mf_os_cpu_count(os, &cpus));
    CHECK(cpus == 0);
    CHECK(mf_os_x86_registers(os, 0, &regs) == MF_ERR_UNSUPPORTED);
    CHECK(mf_os_virt_to_phys(os, 0x1000, &out) == MF_ERR_UNSUPPORTED);
    CHECK(mf_process_virt_to_phys_batch(self, &op, 1) == MF_ERR_UNSUPPORTED);

    OK(mf_process_free(self));
    OK(mf_os_free(os));
    printf("native: %zu exports, %zu imports, %zu sections, %zu mapped ranges\n", ne, ni, ns, nr);
}

int main(int argc, char **argv) {
    MfInventory *inv = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DUMP_FILE\n", argv[0]);
        return 2;
    }
    /* Error codes are MF_ERROR(origin, kind). */
    CHECK(MF_ERROR(MF_ORIGIN_FFI, MF_KIND_NULL_POINTER) == MF_ERR_NULL);
    CHECK(MF_ERROR(MF_ORIGIN_MEMORY, MF_KIND_PARTIAL_READ) == MF_ERR_PARTIAL_READ);
    CHECK(mf_error_kind(MF_ERROR(MF_ORIGIN_CONNECTOR, MF_KIND_IO)) == MF_KIND_IO);
    CHECK(mf_error_origin(MF_ERROR(MF_ORIGIN_CONNECTOR, MF_KIND_IO)) == MF_ORIGIN_CONNECTOR);

    OK(mf_inventory_builtin(&inv));
    if (inv == NULL) {
        return 1;
    }
    linux_guest(inv, argv[1]);
    native_lists(inv);
    OK(mf_inventory_free(inv));

    if (failures != 0) {
        fprintf(stderr, "extended: %d check(s) failed\n", failures);
        return 1;
    }
    printf("extended ok\n");
    return 0;
}
