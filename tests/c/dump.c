/* Writing dumps through the C API (mf_dump_write), run by tests/tests/ffi.rs plainly, under
 * valgrind and under AddressSanitizer/UBSan: the guest dump is written as an ELF core and as
 * a zstd kdump with a VMCOREINFO text, each opened again through `coredump` and compared
 * page by page with the source, with the same CPU state; the `linux` layer over the guest
 * dump written with mf_os_dump_write carries the kernel's own VMCOREINFO text (its
 * init_uts_ns entry is the layer's symbol) and the same memory; a progress callback that
 * stops leaves no file; bad arguments give their codes.
 *
 * usage: dump DUMP_FILE OUT_DIR
 */
#define _POSIX_C_SOURCE 200809L

#include "memflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define CHUNK (1u << 20)

struct progress {
    uint64_t calls;
    uint64_t last_done;
    uint64_t total;
    bool forward;
    uint64_t stop_after; /* 0: never stop */
};

static bool on_progress(void *user, uint64_t done, uint64_t total) {
    struct progress *p = (struct progress *)user;
    if (done <= p->last_done && p->calls > 0) {
        p->forward = false;
    }
    p->calls++;
    p->last_done = done;
    p->total = total;
    return p->stop_after == 0 || p->calls < p->stop_after;
}

static MfConnector *open_dump(MfInventory *inv, const char *path) {
    char args[4096];
    MfConnector *conn = NULL;
    snprintf(args, sizeof args, "'%s'", path);
    OK(mf_inventory_create_connector(inv, "coredump", args, NULL, &conn));
    return conn;
}

/* The value of `key` (e.g. "SYMBOL(init_uts_ns)=") in the VMCOREINFO text within the
 * first MiB of the file at `path` (where both ELF and kdump files keep their notes), or 0. */
static uint64_t vmcoreinfo_value(const char *path, const char *key) {
    static char head[CHUNK + 1];
    size_t len, klen = strlen(key);
    uint64_t value = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    len = fread(head, 1, CHUNK, f);
    fclose(f);
    head[len] = 0;
    for (size_t at = 0; at + klen <= len; at++) {
        if (memcmp(head + at, key, klen) == 0 && (at == 0 || head[at - 1] == '\n')) {
            value = strtoull(head + at + klen, NULL, 16);
            break;
        }
    }
    return value;
}

/* Every byte of the source's first `size` bytes equals the copy's, and the CPU state too. */
static void same_as_source(MfConnector *src, MfConnector *copy, uint64_t size) {
    unsigned char *a = malloc(CHUNK), *b = malloc(CHUNK);
    size_t cpus_a = 0, cpus_b = 0;
    CHECK(a != NULL && b != NULL);
    for (uint64_t addr = 0; a != NULL && b != NULL && addr < size; addr += CHUNK) {
        OK(mf_connector_read(src, addr, a, CHUNK, NULL));
        OK(mf_connector_read(copy, addr, b, CHUNK, NULL));
        if (memcmp(a, b, CHUNK) != 0) {
            fprintf(stderr, "bytes differ in the 1 MiB at %#llx\n", (unsigned long long)addr);
            failures++;
            break;
        }
    }
    free(a);
    free(b);
    OK(mf_connector_cpu_count(src, &cpus_a));
    OK(mf_connector_cpu_count(copy, &cpus_b));
    CHECK(cpus_a > 0 && cpus_a == cpus_b);
    for (size_t cpu = 0; cpu < cpus_a && cpu < cpus_b; cpu++) {
        MfX86Registers ra, rb;
        OK(mf_connector_x86_registers(src, cpu, &ra));
        OK(mf_connector_x86_registers(copy, cpu, &rb));
        CHECK(ra.valid == rb.valid && ra.rip == rb.rip && ra.rsp == rb.rsp && ra.cr3 == rb.cr3 && ra.cr4 == rb.cr4);
    }
}

int main(int argc, char **argv) {
    MfInventory *inv = NULL;
    MfConnector *src = NULL;
    MfPhysicalMetadata meta;
    char path[4096];
    if (argc != 3) {
        fprintf(stderr, "usage: %s DUMP_FILE OUT_DIR\n", argv[0]);
        return 2;
    }
    OK(mf_inventory_builtin(&inv));
    src = open_dump(inv, argv[1]);
    if (src == NULL) {
        return 1;
    }
    OK(mf_connector_metadata(src, &meta));

    /* Both formats that carry CPU state; the guest's RAM is its first range (from 0). */
    const uint32_t formats[2] = {MF_DUMP_ELF, MF_DUMP_KDUMP_ZSTD};
    for (size_t i = 0; i < 2; i++) {
        MfDumpOptions options = {formats[i], 0, "OSRELEASE=6.1.0-test\nPAGESIZE=4096\n"};
        struct progress p = {0, 0, 0, true, 0};
        MfDumpSummary summary;
        MfConnector *copy;
        snprintf(path, sizeof path, "%s/out-%u", argv[2], formats[i]);
        OK(mf_dump_write(src, path, &options, on_progress, &p, &summary));
        CHECK(p.calls > 1 && p.forward && p.last_done == p.total && p.total == meta.real_size);
        CHECK(summary.bytes_written == meta.real_size && summary.hole_pages == 0 && summary.holes_listed == 0);
        copy = open_dump(inv, path);
        if (copy != NULL) {
            same_as_source(src, copy, 256u << 20);
            OK(mf_connector_free(copy));
        }
        CHECK(unlink(path) == 0);
    }

    /* The OS layer's dump: the kernel's VMCOREINFO, found by the layer, and the same memory. */
    {
        char chain[4200];
        MfOs *os = NULL;
        uint64_t uts = 0;
        MfDumpOptions options = {MF_DUMP_ELF, 0, NULL};
        MfDumpSummary summary;
        snprintf(chain, sizeof chain, "coredump:'%s' -> linux", argv[1]);
        snprintf(path, sizeof path, "%s/out-os", argv[2]);
        OK(mf_inventory_create_chain(inv, chain, &os));
        if (os != NULL) {
            OK(mf_os_kernel_symbol(os, "init_uts_ns", &uts));
            OK(mf_os_dump_write(os, path, &options, NULL, NULL, &summary));
            CHECK(summary.bytes_written == meta.real_size && summary.hole_pages == 0);
            CHECK(uts != 0 && vmcoreinfo_value(path, "SYMBOL(init_uts_ns)=") == uts);
            CHECK(mf_os_dump_write(os, NULL, &options, NULL, NULL, NULL) == MF_ERR_NULL);
            OK(mf_os_free(os));
            MfConnector *copy = open_dump(inv, path);
            if (copy != NULL) {
                same_as_source(src, copy, 256u << 20);
                OK(mf_connector_free(copy));
            }
            CHECK(unlink(path) == 0);
        }
    }

    /* A callback that stops: cancelled, no file (the one already there is kept). */
    {
        MfDumpOptions options = {MF_DUMP_LIME, 0, NULL};
        struct progress p = {0, 0, 0, true, 2};
        FILE *old;
        snprintf(path, sizeof path, "%s/cancelled", argv[2]);
        old = fopen(path, "w");
        CHECK(old != NULL && fputs("old", old) >= 0 && fclose(old) == 0);
        CHECK(mf_error_kind(mf_dump_write(src, path, &options, on_progress, &p, NULL)) == MF_KIND_CANCELLED);
        CHECK(p.calls == 2);
        old = fopen(path, "r");
        if (old != NULL) {
            char text[8] = {0};
            CHECK(fread(text, 1, sizeof text - 1, old) == 3 && strcmp(text, "old") == 0);
            fclose(old);
        }
        CHECK(unlink(path) == 0);
    }

    /* Bad arguments. */
    {
        MfDumpOptions bad_format = {99, 0, NULL};
        MfDumpOptions bad_machine = {MF_DUMP_RAW, 1, NULL};
        snprintf(path, sizeof path, "%s/bad", argv[2]);
        CHECK(mf_dump_write(src, path, &bad_format, NULL, NULL, NULL) == MF_ERR_INVALID_ARGUMENT);
        CHECK(mf_dump_write(src, path, &bad_machine, NULL, NULL, NULL) == MF_ERR_INVALID_ARGUMENT);
        CHECK(mf_dump_write(src, NULL, &bad_format, NULL, NULL, NULL) == MF_ERR_NULL);
        CHECK(mf_dump_write(src, path, NULL, NULL, NULL, NULL) == MF_ERR_NULL);
        CHECK(access(path, F_OK) != 0);
    }

    OK(mf_connector_free(src));
    OK(mf_inventory_free(inv));
    if (failures > 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("dump ok\n");
    return 0;
}
