/* Byte counts of single and batched reads and writes through the C API, run by
 * tests/tests/ffi.rs plainly, under valgrind and built with -fsanitize=address,undefined.
 * Every read and write function reports how many bytes from the start of the buffer were
 * transferred before the first one that could not be: all of them (n), all but the last
 * (n - 1) and none (0) must be told apart, and a write to read-only memory (a dump, and a
 * guest's kernel, process and physical memory over it) must fail with kind MF_KIND_READ_ONLY
 * and a count of 0.
 *
 * usage: counts DUMP_FILE
 */
#define _DEFAULT_SOURCE

#include "memflow.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: %s failed (last error: %s)\n", __FILE__, __LINE__, #cond,   \
                    mf_last_error_message());                                                   \
            failures++;                                                                         \
        }                                                                                       \
    } while (0)

/* A read or write must give `code` and the count `want` (the count is preset to garbage). */
#define COUNT(call_with_done, code, want)                                                       \
    do {                                                                                        \
        done = 0xdead;                                                                          \
        int32_t got_ = (call_with_done);                                                        \
        if (got_ != (code) || done != (size_t)(want)) {                                         \
            fprintf(stderr, "%s:%d: %s gave %d with count %zu, want %d with %zu (%s)\n",        \
                    __FILE__, __LINE__, #call_with_done, (int)got_, done, (int)(code),          \
                    (size_t)(want), mf_last_error_message());                                   \
            failures++;                                                                         \
        }                                                                                       \
    } while (0)

static int all_zero(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static const uint64_t MARKER = 0x0123456789abcdefull;

/* A read-only dump: reads counted at the end of memory, writes refused as READ_ONLY. */
static void read_only_dump(MfInventory *inv, const char *dump) {
    MfConnector *conn = NULL;
    MfPhysicalMetadata meta;
    unsigned char buf[16];
    size_t done = 0;
    CHECK(mf_inventory_create_connector(inv, "coredump", dump, NULL, &conn) == MF_OK);
    CHECK(mf_connector_metadata(conn, &meta) == MF_OK);
    CHECK(meta.readonly);
    uint64_t end = meta.max_address + 1;

    COUNT(mf_connector_read(conn, 0x1000, buf, sizeof buf, &done), MF_OK, sizeof buf);
    memset(buf, 0xff, sizeof buf);
    COUNT(mf_connector_read(conn, end - 15, buf, sizeof buf, &done), MF_ERR_PARTIAL_READ, 15);
    CHECK(buf[15] == 0);
    memset(buf, 0xff, sizeof buf);
    COUNT(mf_connector_read(conn, end, buf, sizeof buf, &done), MF_ERR_PARTIAL_READ, 0);
    CHECK(all_zero(buf, sizeof buf));
    COUNT(mf_connector_read(conn, end, NULL, 0, &done), MF_OK, 0);
    CHECK(mf_connector_read(conn, end - 15, buf, sizeof buf, NULL) == MF_ERR_PARTIAL_READ);

    /* Batches: one op of each count; a failed batch leaves the ops alone. */
    unsigned char a[8], b[8], c[8];
    MfReadOp ops[3] = {{0x2000, a, 8, 1, 1}, {end - 7, b, 8, 1, 1}, {end + 0x1000, c, 8, 1, 1}};
    CHECK(mf_connector_read_batch(conn, ops, 3) == MF_ERR_PARTIAL_READ);
    CHECK(ops[0].result == MF_OK && ops[0].done == 8);
    CHECK(ops[1].result == MF_ERR_PARTIAL_READ && ops[1].done == 7);
    CHECK(ops[2].result == MF_ERR_PARTIAL_READ && ops[2].done == 0);

    int32_t code = mf_connector_write(conn, 0x1000, buf, sizeof buf, &done);
    CHECK(mf_error_kind(code) == MF_KIND_READ_ONLY && done == 0);
    MfWriteOp writes[1] = {{0x1000, buf, sizeof buf, 1, 1}};
    code = mf_connector_write_batch(conn, writes, 1);
    CHECK(mf_error_kind(code) == MF_KIND_READ_ONLY);
    CHECK(writes[0].result == 1 && writes[0].done == 1);
    CHECK(mf_connector_free(conn) == MF_OK);
}

/* 4 KiB of writable memory: writes and reads counted at its end. */
static void writable_memory(MfInventory *inv) {
    MfConnector *conn = NULL;
    unsigned char data[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8];
    size_t done = 0;
    CHECK(mf_inventory_create_connector(inv, "dummy", "4096", NULL, &conn) == MF_OK);
    COUNT(mf_connector_write(conn, 0x100, data, 8, &done), MF_OK, 8);
    COUNT(mf_connector_write(conn, 4089, data, 8, &done), MF_ERR_PARTIAL_WRITE, 7);
    COUNT(mf_connector_write(conn, 4096, data, 8, &done), MF_ERR_PARTIAL_WRITE, 0);
    COUNT(mf_connector_read(conn, 4089, back, 8, &done), MF_ERR_PARTIAL_READ, 7);
    CHECK(memcmp(back, data, 7) == 0 && back[7] == 0);
    COUNT(mf_connector_read(conn, 0x100, back, 8, &done), MF_OK, 8);
    CHECK(memcmp(back, data, 8) == 0);

    MfWriteOp ops[3] = {{0x200, data, 8, 1, 1}, {4089, data, 8, 1, 1}, {8192, data, 8, 1, 1}};
    CHECK(mf_connector_write_batch(conn, ops, 3) == MF_ERR_PARTIAL_WRITE);
    CHECK(ops[0].result == MF_OK && ops[0].done == 8);
    CHECK(ops[1].result == MF_ERR_PARTIAL_WRITE && ops[1].done == 7);
    CHECK(ops[2].result == MF_ERR_PARTIAL_WRITE && ops[2].done == 0);
    CHECK(mf_connector_free(conn) == MF_OK);
}

/* This process's own memory: a page followed by an unmapped one. */
static void process_memory(MfInventory *inv) {
    MfOs *os = NULL;
    MfProcess *self = NULL;
    size_t done = 0;
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *pages = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pages != MAP_FAILED);
    if (pages == MAP_FAILED) {
        return;
    }
    CHECK(munmap(pages + page, (size_t)page) == 0);
    memset(pages, 0x5a, (size_t)page);
    uint64_t edge = (uint64_t)(uintptr_t)(pages + page);
    unsigned char buf[8];
    uint64_t value = 0;

    CHECK(mf_inventory_create_chain(inv, "native", &os) == MF_OK);
    CHECK(mf_os_process_by_pid(os, (uint32_t)getpid(), &self) == MF_OK);
    COUNT(mf_process_read(self, (uint64_t)(uintptr_t)&MARKER, &value, sizeof value, &done), MF_OK, 8);
    CHECK(value == MARKER);
    COUNT(mf_process_read(self, edge - 7, buf, 8, &done), MF_ERR_PARTIAL_READ, 7);
    CHECK(buf[0] == 0x5a && buf[6] == 0x5a && buf[7] == 0);
    COUNT(mf_process_read(self, edge, buf, 8, &done), MF_ERR_PARTIAL_READ, 0);
    unsigned char data[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    COUNT(mf_process_write(self, edge - 8, data, 8, &done), MF_OK, 8);
    CHECK(pages[page - 1] == 9);
    COUNT(mf_process_write(self, edge - 7, data, 8, &done), MF_ERR_PARTIAL_WRITE, 7);
    COUNT(mf_process_write(self, edge, data, 8, &done), MF_ERR_PARTIAL_WRITE, 0);

    MfReadOp ops[2] = {{(uint64_t)(uintptr_t)&MARKER, &value, 8, 1, 1}, {edge - 3, buf, 8, 1, 1}};
    CHECK(mf_process_read_batch(self, ops, 2) == MF_ERR_PARTIAL_READ);
    CHECK(ops[0].done == 8 && ops[1].done == 3);

    /* The native layer has no kernel space and no physical memory: nothing is read. */
    int32_t code = mf_os_read(os, 0x1000, buf, 8, &done);
    CHECK(mf_error_kind(code) == MF_KIND_UNSUPPORTED && done == 0);
    done = 0xdead;
    code = mf_os_phys_read(os, 0x1000, buf, 8, &done);
    CHECK(mf_error_kind(code) == MF_KIND_UNSUPPORTED && done == 0);
    CHECK(mf_process_free(self) == MF_OK);
    CHECK(mf_os_free(os) == MF_OK);
    CHECK(munmap(pages, (size_t)page) == 0);
}

/* The synthetic OS's kernel space, and the writable physical memory under it. */
static void kernel_memory(MfInventory *inv) {
    MfOs *os = NULL;
    MfOsInfo info;
    MfPhysicalMetadata meta;
    unsigned char buf[8], back[8], data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t done = 0;
    CHECK(mf_inventory_create_chain(inv, "dummy", &os) == MF_OK);
    CHECK(mf_os_info(os, &info) == MF_OK);
    COUNT(mf_os_read(os, info.base, buf, 4, &done), MF_OK, 4);
    CHECK(memcmp(buf, "\x7f" "ELF", 4) == 0);
    COUNT(mf_os_read(os, 0x10, buf, 8, &done), MF_ERR_PARTIAL_READ, 0);

    CHECK(mf_os_phys_metadata(os, &meta) == MF_OK);
    CHECK(!meta.readonly);
    uint64_t end = meta.max_address + 1;
    COUNT(mf_os_phys_write(os, end - 8, data, 8, &done), MF_OK, 8);
    COUNT(mf_os_phys_write(os, end - 7, data, 8, &done), MF_ERR_PARTIAL_WRITE, 7);
    COUNT(mf_os_phys_write(os, end, data, 8, &done), MF_ERR_PARTIAL_WRITE, 0);
    COUNT(mf_os_phys_read(os, end - 7, back, 8, &done), MF_ERR_PARTIAL_READ, 7);
    CHECK(memcmp(back, data, 7) == 0 && back[7] == 0);
    COUNT(mf_os_phys_read(os, end, back, 8, &done), MF_ERR_PARTIAL_READ, 0);
    MfWriteOp writes[2] = {{end - 16, data, 8, 1, 1}, {end - 3, data, 8, 1, 1}};
    CHECK(mf_os_phys_write_batch(os, writes, 2) == MF_ERR_PARTIAL_WRITE);
    CHECK(writes[0].result == MF_OK && writes[0].done == 8);
    CHECK(writes[1].result == MF_ERR_PARTIAL_WRITE && writes[1].done == 3);
    MfReadOp reads[2] = {{end - 16, back, 8, 1, 1}, {end - 5, buf, 8, 1, 1}};
    CHECK(mf_os_phys_read_batch(os, reads, 2) == MF_ERR_PARTIAL_READ);
    CHECK(reads[0].result == MF_OK && reads[0].done == 8 && memcmp(back, data, 8) == 0);
    CHECK(reads[1].result == MF_ERR_PARTIAL_READ && reads[1].done == 5);
    CHECK(mf_os_free(os) == MF_OK);
}

/* A guest's kernel and process over the read-only dump: writes are refused as READ_ONLY. */
static void read_only_guest(MfInventory *inv, const char *dump) {
    char chain[4200];
    MfOs *os = NULL;
    MfProcess *init = NULL;
    MfOsInfo info;
    unsigned char buf[8];
    size_t done = 0;
    snprintf(chain, sizeof chain, "coredump:'%s' -> linux", dump);
    CHECK(mf_inventory_create_chain(inv, chain, &os) == MF_OK);
    CHECK(mf_os_info(os, &info) == MF_OK);
    COUNT(mf_os_read(os, info.base, buf, sizeof buf, &done), MF_OK, sizeof buf);
    done = 0xdead;
    CHECK(mf_error_kind(mf_os_write(os, info.base, buf, sizeof buf, &done)) == MF_KIND_READ_ONLY && done == 0);
    COUNT(mf_os_phys_read(os, 0x1000, buf, sizeof buf, &done), MF_OK, sizeof buf);
    done = 0xdead;
    CHECK(mf_error_kind(mf_os_phys_write(os, 0x1000, buf, sizeof buf, &done)) == MF_KIND_READ_ONLY && done == 0);
    MfWriteOp writes[1] = {{0x1000, buf, sizeof buf, 1, 1}};
    CHECK(mf_error_kind(mf_os_phys_write_batch(os, writes, 1)) == MF_KIND_READ_ONLY);
    CHECK(writes[0].result == 1 && writes[0].done == 1);
    CHECK(mf_os_process_by_pid(os, 1, &init) == MF_OK);
    done = 0xdead;
    CHECK(mf_error_kind(mf_process_write(init, info.base, buf, sizeof buf, &done)) == MF_KIND_READ_ONLY && done == 0);
    CHECK(mf_process_free(init) == MF_OK);
    CHECK(mf_os_free(os) == MF_OK);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DUMP_FILE\n", argv[0]);
        return 2;
    }
    MfInventory *inv = NULL;
    CHECK(mf_inventory_builtin(&inv) == MF_OK);
    read_only_dump(inv, argv[1]);
    read_only_guest(inv, argv[1]);
    writable_memory(inv);
    process_memory(inv);
    kernel_memory(inv);
    CHECK(mf_inventory_free(inv) == MF_OK);
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("counts ok\n");
    return 0;
}
