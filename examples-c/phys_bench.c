/*
 * phys_bench [CHAIN] [MILLISECONDS]: measures physical reads through the C API: 8-byte and
 * 4 KiB reads at random aligned addresses, one read per call and 64 reads per batched call.
 * Prints reads/s and MB/s for each (MB = 10^6 bytes).
 *
 *   phys_bench                                  the C plugin's built-in buffer (`cbuffer`)
 *   phys_bench coredump:/dumps/guest.elf 2000
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */

#include "common.h"

#include <inttypes.h>
#include <time.h>

#define MAX_BATCH 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64: cheap, so the generator does not dominate 8-byte reads. */
static uint64_t next_random(void)
{
    static uint64_t x = 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Reads `size`-byte blocks at random `size`-aligned addresses below `limit`, `batch` per call,
   for `seconds`. Returns 0, or 1 if a read failed outright. */
static int bench(MfConnector *conn, uint64_t limit, size_t size, size_t batch, double seconds)
{
    MfReadOp ops[MAX_BATCH];
    unsigned char *buf = malloc(size * batch);
    uint64_t slots = limit / size, reads = 0, partial = 0;
    double start = now(), elapsed;
    if (!buf || slots == 0) {
        fprintf(stderr, "error: %s\n", buf ? "memory smaller than one read" : "out of memory");
        free(buf);
        return 1;
    }
    do {
        for (int round = 0; round < 64; round++) { /* look at the clock only now and then */
            for (size_t i = 0; i < batch; i++) {
                ops[i].addr = next_random() % slots * size;
                ops[i].buf = buf + i * size;
                ops[i].len = size;
            }
            int32_t rc = batch == 1 ? mf_connector_read(conn, ops[0].addr, buf, size, NULL)
                                    : mf_connector_read_batch(conn, ops, batch);
            if (rc != MF_OK && rc != MF_ERR_PARTIAL_READ) {
                free(buf);
                return fail("read");
            }
            if (rc == MF_ERR_PARTIAL_READ) /* holes in physical memory read as zeros */
                for (size_t i = 0; i < batch; i++)
                    partial += batch == 1 || ops[i].result == MF_ERR_PARTIAL_READ;
            reads += batch;
        }
        elapsed = now() - start;
    } while (elapsed < seconds);
    free(buf);
    printf("%5zu B reads, %2zu per call: %12.0f reads/s %10.1f MB/s   (%" PRIu64 " reads in %.2f s, %" PRIu64
           " partial)\n",
           size, batch, (double)reads / elapsed, (double)reads * (double)size / elapsed / 1e6, reads, elapsed, partial);
    return 0;
}

int main(int argc, char **argv)
{
    const char *chain = argc > 1 ? argv[1] : "cbuffer";
    double seconds = (argc > 2 ? atof(argv[2]) : 1000.0) / 1000.0;
    MfInventory *inv = NULL;
    MfConnector *conn = NULL;
    MfPhysicalMetadata meta;
    int status = 1;

    mf_log_init(MF_LOG_WARN);
    if (mf_inventory_scan(&inv) != MF_OK || mf_inventory_create_connector_chain(inv, chain, &conn) != MF_OK) {
        fail(chain);
        goto out;
    }
    if (mf_connector_metadata(conn, &meta) != MF_OK) {
        fail("metadata");
        goto out;
    }
    /* Random addresses up to the backed size (holes in the physical map give partial reads). */
    uint64_t limit = meta.real_size < meta.max_address ? meta.real_size : meta.max_address + 1;
    printf("# %s: reading below 0x%" PRIx64 "\n", chain, limit);
    if (bench(conn, limit, 8, 1, seconds) || bench(conn, limit, 4096, 1, seconds) ||
        bench(conn, limit, 8, MAX_BATCH, seconds) || bench(conn, limit, 4096, MAX_BATCH, seconds))
        goto out;
    status = 0;

out:
    mf_connector_free(conn);
    mf_inventory_free(inv);
    return status;
}
