/* Handle misuse through the C API, run by tests/tests/ffi_misuse.rs plainly, under valgrind
 * and built with -fsanitize=address,undefined: NULL, garbage (small numbers, a heap pointer,
 * a pointer into a string, random values), handles of another type, freed, double-freed and
 * stale handles (after their slot was reused), handles whose parent was freed, a callback
 * calling back with its own handle, and a free racing calls on another thread. Every misuse
 * must give its documented code, never a crash or an invalid read.
 *
 * usage: misuse DUMP_FILE
 */
#define _POSIX_C_SOURCE 200809L

#include "memflow.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;

#define EXPECT(call, want)                                                                      \
    do {                                                                                        \
        int32_t got_ = (call);                                                                  \
        if (got_ != (want)) {                                                                   \
            fprintf(stderr, "%s:%d: %s gave %d, want %d (%s) (last error: %s)\n", __FILE__,    \
                    __LINE__, #call, (int)got_, (int)(want), #want, mf_last_error_message()); \
            failures++;                                                                         \
        }                                                                                       \
    } while (0)

#define OK(call) EXPECT(call, MF_OK)
#define INVALID(call) EXPECT(call, MF_ERR_INVALID_HANDLE)

/* A handle-typed value from any number. */
#define AS(type, value) ((type *)(uintptr_t)(value))

/* Every read-only use of an OS handle must give `want`. */
static void os_calls(MfOs *os, int32_t want) {
    MfOsInfo info;
    MfProcess *process = NULL;
    MfProcessList *list = NULL;
    MfOs *copy = NULL;
    uint64_t symbol = 0;
    unsigned char buf[8];
    EXPECT(mf_os_info(os, &info), want);
    EXPECT(mf_os_clone(os, &copy), want);
    EXPECT(mf_os_process_by_pid(os, 1, &process), want);
    EXPECT(mf_os_process_list(os, &list), want);
    EXPECT(mf_os_kernel_symbol(os, "init_task", &symbol), want);
    EXPECT(mf_os_read(os, 0x1000, buf, sizeof buf, NULL), want);
    EXPECT(mf_os_free(os), want);
    if (copy != NULL || process != NULL || list != NULL) {
        fprintf(stderr, "a failed call wrote its output\n");
        failures++;
    }
}

static void process_calls(MfProcess *process, int32_t want) {
    MfProcessInfo info;
    MfModuleInfo module;
    MfProcessState state;
    MfModuleList *list = NULL;
    unsigned char buf[8];
    EXPECT(mf_process_info(process, &info), want);
    EXPECT(mf_process_state(process, &state), want);
    EXPECT(mf_process_read(process, 0x1000, buf, sizeof buf, NULL), want);
    EXPECT(mf_process_primary_module(process, &module), want);
    EXPECT(mf_process_module_list(process, &list), want);
    EXPECT(mf_process_free(process), want);
}

static void connector_calls(MfConnector *conn, int32_t want) {
    MfPhysicalMetadata meta;
    MfConnector *copy = NULL;
    size_t cpus = 0;
    unsigned char buf[8];
    EXPECT(mf_connector_metadata(conn, &meta), want);
    EXPECT(mf_connector_cpu_count(conn, &cpus), want);
    EXPECT(mf_connector_read(conn, 0x1000, buf, sizeof buf, NULL), want);
    EXPECT(mf_connector_clone(conn, &copy), want);
    EXPECT(mf_connector_free(conn), want);
}

static void inventory_calls(MfInventory *inv, int32_t want) {
    size_t count = 0;
    MfOs *os = NULL;
    EXPECT(mf_inventory_plugin_count(inv, &count), want);
    EXPECT(mf_inventory_create_chain(inv, "native", &os), want);
    EXPECT(mf_inventory_free(inv), want);
}

static void list_calls(MfProcessList *plist, MfModuleList *mlist, int32_t want) {
    const MfProcessInfo *pitems = NULL;
    const MfModuleInfo *mitems = NULL;
    size_t len = 0;
    EXPECT(mf_process_list_get(plist, &pitems, &len), want);
    EXPECT(mf_module_list_get(mlist, &mitems, &len), want);
    EXPECT(mf_process_list_free(plist), want);
    EXPECT(mf_module_list_free(mlist), want);
}

/* Every type of handle with the same bad value. */
static void all_calls(uintptr_t value, int32_t want) {
    os_calls(AS(MfOs, value), want);
    process_calls(AS(MfProcess, value), want);
    connector_calls(AS(MfConnector, value), want);
    inventory_calls(AS(MfInventory, value), want);
    list_calls(AS(MfProcessList, value), AS(MfModuleList, value), want);
}

static void null_handles(void) {
    MfOsInfo info;
    EXPECT(mf_os_info(NULL, &info), MF_ERR_NULL);
    EXPECT(mf_process_read(NULL, 0, NULL, 0, NULL), MF_ERR_NULL);
    EXPECT(mf_connector_read(NULL, 0, NULL, 0, NULL), MF_ERR_NULL);
    /* Freeing NULL is a no-op. */
    OK(mf_os_free(NULL));
    OK(mf_process_free(NULL));
    OK(mf_connector_free(NULL));
    OK(mf_inventory_free(NULL));
    OK(mf_process_list_free(NULL));
    OK(mf_module_list_free(NULL));
}

static void garbage_handles(void) {
    static const char text[] = "memflow handles are not pointers";
    unsigned char *heap = malloc(256);
    uint64_t state = 0x6d656d666c6f77ULL;
    int i;
    if (heap == NULL) {
        failures++;
        return;
    }
    memset(heap, 0xa5, 256);
    all_calls(0x10, MF_ERR_INVALID_HANDLE);
    all_calls(0x1000, MF_ERR_INVALID_HANDLE);
    all_calls((uintptr_t)heap, MF_ERR_INVALID_HANDLE);
    all_calls((uintptr_t)(heap + 3), MF_ERR_INVALID_HANDLE);
    all_calls((uintptr_t)(text + 7), MF_ERR_INVALID_HANDLE);
    all_calls((uintptr_t)&state, MF_ERR_INVALID_HANDLE);
    all_calls(UINTPTR_MAX, MF_ERR_INVALID_HANDLE);
    /* Random values (a fixed seed: the run is reproducible). */
    for (i = 0; i < 2000; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        if ((uintptr_t)state != 0) {
            connector_calls(AS(MfConnector, (uintptr_t)state), MF_ERR_INVALID_HANDLE);
            os_calls(AS(MfOs, (uintptr_t)(state >> 7)), MF_ERR_INVALID_HANDLE);
        }
    }
    free(heap);
}

/* Live handles of every type passed as every other type. */
static void wrong_types(MfInventory *inv, MfConnector *conn, MfOs *os, MfProcess *process,
                        MfProcessList *plist, MfModuleList *mlist) {
    os_calls((MfOs *)(void *)conn, MF_ERR_INVALID_HANDLE);
    os_calls((MfOs *)(void *)process, MF_ERR_INVALID_HANDLE);
    process_calls((MfProcess *)(void *)os, MF_ERR_INVALID_HANDLE);
    process_calls((MfProcess *)(void *)plist, MF_ERR_INVALID_HANDLE);
    connector_calls((MfConnector *)(void *)inv, MF_ERR_INVALID_HANDLE);
    connector_calls((MfConnector *)(void *)mlist, MF_ERR_INVALID_HANDLE);
    inventory_calls((MfInventory *)(void *)os, MF_ERR_INVALID_HANDLE);
    list_calls((MfProcessList *)(void *)mlist, (MfModuleList *)(void *)plist, MF_ERR_INVALID_HANDLE);
    /* The handles survived all that. */
    {
        MfOsInfo info;
        size_t len = 0;
        const MfProcessInfo *items = NULL;
        unsigned char buf[8];
        OK(mf_os_info(os, &info));
        OK(mf_connector_read(conn, 0x1000, buf, sizeof buf, NULL));
        OK(mf_process_list_get(plist, &items, &len));
    }
}

/* Freed, double-freed and stale handles whose slots were reused by newer objects. */
static void freed_and_stale(MfInventory *inv, MfConnector *conn) {
    enum { N = 48 };
    MfConnector *old[N];
    MfConnector *fresh[N];
    int i, j;
    for (i = 0; i < N; i++) {
        OK(mf_connector_clone(conn, &old[i]));
        OK(mf_connector_free(old[i]));
        INVALID(mf_connector_free(old[i])); /* double free */
    }
    for (i = 0; i < N; i++) {
        OK(mf_connector_clone(conn, &fresh[i]));
    }
    for (i = 0; i < N; i++) {
        connector_calls(old[i], MF_ERR_INVALID_HANDLE);
        for (j = 0; j < N; j++) {
            if (old[i] == fresh[j]) {
                fprintf(stderr, "stale handle %p was handed out again\n", (void *)old[i]);
                failures++;
            }
        }
    }
    for (i = 0; i < N; i++) {
        MfPhysicalMetadata meta;
        OK(mf_connector_metadata(fresh[i], &meta));
        OK(mf_connector_free(fresh[i]));
    }
    /* The same for an inventory and an OS. */
    {
        MfInventory *inv2 = NULL;
        MfOs *os = NULL;
        OK(mf_inventory_builtin(&inv2));
        OK(mf_inventory_free(inv2));
        inventory_calls(inv2, MF_ERR_INVALID_HANDLE);
        OK(mf_inventory_create_chain(inv, "native", &os));
        OK(mf_os_free(os));
        os_calls(os, MF_ERR_INVALID_HANDLE);
    }
}

/* A value this process reads from itself through the native OS layer. */
static const uint64_t MARKER = 0x5eed5eedcafef00dULL;

/* Children stay valid when their parent is freed (documented: they are independent). */
static void parent_freed(void) {
    MfInventory *inv = NULL;
    MfOs *os = NULL;
    MfOs *copy = NULL;
    MfProcess *process = NULL;
    MfProcessList *list = NULL;
    MfProcessInfo info;
    const MfProcessInfo *items = NULL;
    size_t len = 0;
    uint64_t value = 0;
    OK(mf_inventory_builtin(&inv));
    OK(mf_inventory_create_chain(inv, "native", &os));
    OK(mf_inventory_free(inv)); /* the OS does not depend on its inventory */
    inventory_calls(inv, MF_ERR_INVALID_HANDLE);
    OK(mf_os_clone(os, &copy));
    OK(mf_os_process_by_pid(os, (uint32_t)getpid(), &process));
    OK(mf_os_process_list(os, &list));
    OK(mf_os_free(os));
    os_calls(os, MF_ERR_INVALID_HANDLE);
    OK(mf_process_info(process, &info));
    EXPECT((int32_t)info.pid, (int32_t)getpid());
    OK(mf_process_read(process, (uint64_t)(uintptr_t)&MARKER, &value, sizeof value, NULL));
    EXPECT(value == MARKER, 1);
    OK(mf_process_list_get(list, &items, &len));
    EXPECT(len > 1, 1);
    OK(mf_process_free(process));
    process_calls(process, MF_ERR_INVALID_HANDLE);
    OK(mf_process_list_free(list));
    OK(mf_os_info(copy, &(MfOsInfo){0}));
    OK(mf_os_free(copy));
}

struct reentry {
    MfOs *os;
    MfOs *other;
    int32_t same;
    int32_t free_result;
    int32_t other_result;
    size_t calls;
};

static bool call_back_in(void *user, const MfProcessInfo *info) {
    struct reentry *r = (struct reentry *)user;
    MfOsInfo os_info;
    (void)info;
    r->same = mf_os_info(r->os, &os_info);
    r->free_result = mf_os_free(r->os);
    r->other_result = mf_os_info(r->other, &os_info);
    r->calls++;
    return false;
}

/* A callback that uses or frees the handle whose call invoked it gets an error, not a
 * deadlock; other handles work. */
static void reentrant_callback(MfOs *os) {
    struct reentry r;
    r.os = os;
    r.other = NULL;
    r.same = 1;
    r.free_result = 1;
    r.other_result = 1;
    r.calls = 0;
    OK(mf_os_clone(os, &r.other));
    OK(mf_os_process_list_callback(os, call_back_in, &r));
    EXPECT(r.calls == 1, 1);
    EXPECT(r.same, MF_ERR_UNSUPPORTED);
    EXPECT(r.free_result, MF_ERR_UNSUPPORTED);
    OK(mf_os_info(os, &(MfOsInfo){0})); /* still live */
    EXPECT(r.other_result, MF_OK);
    OK(mf_os_free(r.other));
}

struct racer {
    MfConnector *conn;
    atomic_int stop;
    atomic_size_t ok;
    size_t invalid;
    size_t other;
};

static void *race_reads(void *arg) {
    struct racer *r = (struct racer *)arg;
    unsigned char buf[64];
    while (!atomic_load(&r->stop)) {
        int32_t got = mf_connector_read(r->conn, 0x2000, buf, sizeof buf, NULL);
        if (got == MF_OK) {
            atomic_fetch_add(&r->ok, 1);
        } else if (got == MF_ERR_INVALID_HANDLE) {
            r->invalid++;
        } else {
            r->other++;
        }
    }
    return NULL;
}

/* One handle freed while other threads are in calls on it: each call either completes or
 * gets MF_ERR_INVALID_HANDLE, and after the free every call gets MF_ERR_INVALID_HANDLE. */
static void free_while_in_use(MfConnector *conn) {
    enum { THREADS = 4, ROUNDS = 8 };
    int round, t;
    for (round = 0; round < ROUNDS; round++) {
        struct racer r[THREADS];
        pthread_t threads[THREADS];
        MfConnector *copy = NULL;
        unsigned char buf[8];
        OK(mf_connector_clone(conn, &copy));
        for (t = 0; t < THREADS; t++) {
            r[t].conn = copy;
            atomic_init(&r[t].stop, 0);
            atomic_init(&r[t].ok, 0);
            r[t].invalid = 0;
            r[t].other = 0;
            if (pthread_create(&threads[t], NULL, race_reads, &r[t]) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                exit(2);
            }
        }
        /* Let them read a little, then free under their feet. */
        while (atomic_load(&r[0].ok) < 50) {
            OK(mf_connector_metadata(conn, &(MfPhysicalMetadata){0}));
        }
        OK(mf_connector_free(copy));
        INVALID(mf_connector_read(copy, 0x2000, buf, sizeof buf, NULL));
        for (t = 0; t < THREADS; t++) {
            atomic_store(&r[t].stop, 1);
        }
        for (t = 0; t < THREADS; t++) {
            pthread_join(threads[t], NULL);
            EXPECT(r[t].other == 0, 1);
        }
        INVALID(mf_connector_free(copy));
    }
}

int main(int argc, char **argv) {
    MfInventory *inv = NULL;
    MfConnector *conn = NULL;
    MfOs *os = NULL;
    MfProcess *process = NULL;
    MfProcessList *plist = NULL;
    MfModuleList *mlist = NULL;
    char chain[4200];
    if (argc != 2) {
        fprintf(stderr, "usage: %s DUMP_FILE\n", argv[0]);
        return 2;
    }
    if (strlen(argv[1]) > 4096) {
        fprintf(stderr, "dump path too long\n");
        return 2;
    }
    snprintf(chain, sizeof chain, "coredump:'%s' -> linux", argv[1]);

    OK(mf_inventory_builtin(&inv));
    OK(mf_inventory_create_connector(inv, "coredump", argv[1], NULL, &conn));
    OK(mf_inventory_create_chain(inv, chain, &os));
    OK(mf_os_process_by_pid(os, 1, &process));
    OK(mf_os_process_list(os, &plist));
    OK(mf_process_module_list(process, &mlist));
    if (failures != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }

    null_handles();
    garbage_handles();
    wrong_types(inv, conn, os, process, plist, mlist);
    freed_and_stale(inv, conn);
    parent_freed();
    reentrant_callback(os);
    free_while_in_use(conn);

    OK(mf_module_list_free(mlist));
    OK(mf_process_list_free(plist));
    OK(mf_process_free(process));
    OK(mf_os_free(os));
    OK(mf_connector_free(conn));
    OK(mf_inventory_free(inv));
    /* Everything is freed now: every old handle is invalid. */
    all_calls((uintptr_t)(void *)os, MF_ERR_INVALID_HANDLE);
    os_calls(os, MF_ERR_INVALID_HANDLE);
    process_calls(process, MF_ERR_INVALID_HANDLE);
    connector_calls(conn, MF_ERR_INVALID_HANDLE);
    inventory_calls(inv, MF_ERR_INVALID_HANDLE);
    list_calls(plist, mlist, MF_ERR_INVALID_HANDLE);

    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("misuse ok\n");
    return 0;
}
