/* Threads through the C API, run by tests/tests/ffi_misuse.rs: 8 threads share one MfConnector,
 * one MfOs and one MfProcess (calls on one handle are serialised inside the library) and
 * hammer reads and lists; then 8 threads each use their own clones. Every result is compared
 * with what a single thread read first, so a race that corrupts anything shows up as a wrong
 * byte or count (or a crash). Also lists threads: this process's (a named one among them)
 * and the guest's init's.
 *
 * usage: threads DUMP_FILE [ITERATIONS]
 */
#define _GNU_SOURCE /* pthread_setname_np */

#include "memflow.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { THREADS = 8, ADDRS = 16, PAGE = 4096, KERNEL_BYTES = 256, LIST_EVERY = 16 };

static atomic_int failures = 0;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, mf_last_error_message());                                           \
            atomic_fetch_add(&failures, 1);                                                    \
        }                                                                                      \
    } while (0)

#define OK(call) CHECK((call) == MF_OK)

/* What one thread reads first: the expected results of every later read. */
struct reference {
    uint64_t phys[ADDRS];
    int32_t phys_code[ADDRS];
    unsigned char phys_data[ADDRS][PAGE];
    uint64_t module_base;
    int32_t module_code;
    unsigned char module_data[PAGE];
    uint64_t kernel_addr;
    unsigned char kernel_data[KERNEL_BYTES];
    size_t processes;
};

static struct reference ref;
static int iterations = 256;

/* The handles one worker uses: shared with the others or its own clones. */
struct worker {
    MfConnector *conn;
    MfOs *os;
    MfProcess *process;
    int seed;
};

static void take_reference(MfConnector *conn, MfOs *os, MfProcess *process) {
    MfPhysicalMetadata meta;
    MfModuleInfo module;
    MfProcessList *list = NULL;
    const MfProcessInfo *items = NULL;
    int i;
    OK(mf_connector_metadata(conn, &meta));
    for (i = 0; i < ADDRS; i++) {
        ref.phys[i] = (meta.max_address / ADDRS) * (uint64_t)i & ~(uint64_t)(PAGE - 1);
        /* Holes in the physical memory map read as partial. */
        ref.phys_code[i] = mf_connector_read(conn, ref.phys[i], ref.phys_data[i], PAGE, NULL);
        CHECK(ref.phys_code[i] == MF_OK || ref.phys_code[i] == MF_ERR_PARTIAL_READ);
    }
    OK(mf_process_primary_module(process, &module));
    ref.module_base = module.base;
    ref.module_code = mf_process_read(process, ref.module_base, ref.module_data, PAGE, NULL);
    CHECK(ref.module_code == MF_OK || ref.module_code == MF_ERR_PARTIAL_READ);
    OK(mf_os_kernel_symbol(os, "init_task", &ref.kernel_addr));
    OK(mf_os_read(os, ref.kernel_addr, ref.kernel_data, KERNEL_BYTES, NULL));
    OK(mf_os_process_list(os, &list));
    OK(mf_process_list_get(list, &items, &ref.processes));
    CHECK(ref.processes > 1);
    OK(mf_process_list_free(list));
}

static bool count_one(void *user, const MfProcessInfo *info) {
    (void)info;
    (*(size_t *)user)++;
    return true;
}

static void *work(void *arg) {
    struct worker *w = (struct worker *)arg;
    unsigned char *buf = malloc(PAGE);
    int i;
    if (buf == NULL) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    for (i = 0; i < iterations; i++) {
        int a = (i * 7 + w->seed) % ADDRS;
        MfOsInfo info;
        MfProcessInfo pinfo;
        CHECK(mf_connector_read(w->conn, ref.phys[a], buf, PAGE, NULL) == ref.phys_code[a]);
        CHECK(memcmp(buf, ref.phys_data[a], PAGE) == 0);
        CHECK(mf_process_read(w->process, ref.module_base, buf, PAGE, NULL) == ref.module_code);
        CHECK(memcmp(buf, ref.module_data, PAGE) == 0);
        OK(mf_os_read(w->os, ref.kernel_addr, buf, KERNEL_BYTES, NULL));
        CHECK(memcmp(buf, ref.kernel_data, KERNEL_BYTES) == 0);
        OK(mf_os_info(w->os, &info));
        OK(mf_process_info(w->process, &pinfo));
        CHECK(pinfo.pid == 1);
        if ((i + w->seed) % LIST_EVERY == 0) {
            MfProcessList *list = NULL;
            const MfProcessInfo *items = NULL;
            size_t len = 0, counted = 0;
            OK(mf_os_process_list(w->os, &list));
            OK(mf_process_list_get(list, &items, &len));
            CHECK(len == ref.processes);
            OK(mf_process_list_free(list));
            OK(mf_os_process_list_callback(w->os, count_one, &counted));
            CHECK(counted == ref.processes);
        }
    }
    free(buf);
    return NULL;
}

/* The thread that `thread_lists` finds by name: names itself, then waits until listed. */
static pthread_barrier_t named_and_listed;
static atomic_int named_tid = 0;

static void *named_thread(void *arg) {
    (void)arg;
    CHECK(pthread_setname_np(pthread_self(), "mf-c-listed") == 0);
    atomic_store(&named_tid, (int)syscall(SYS_gettid));
    pthread_barrier_wait(&named_and_listed);
    pthread_barrier_wait(&named_and_listed);
    return NULL;
}

/* This process's threads through the native layer (the main thread and a named one), and the
 * guest init's (one thread, its pid) through the Linux layer of `os`. */
static void thread_lists(MfInventory *inv, MfOs *guest) {
    MfOs *native = NULL;
    MfProcess *self = NULL, *init = NULL;
    MfThreadList *list = NULL;
    const MfThreadInfo *items = NULL;
    size_t len = 0, i;
    bool main_seen = false, named_seen = false;
    pthread_t thread;
    OK(pthread_barrier_init(&named_and_listed, NULL, 2));
    if (pthread_create(&thread, NULL, named_thread, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(2);
    }
    pthread_barrier_wait(&named_and_listed);
    OK(mf_inventory_create_chain(inv, "native", &native));
    OK(mf_os_process_by_pid(native, (uint32_t)getpid(), &self));
    OK(mf_process_thread_list(self, &list));
    OK(mf_thread_list_get(list, &items, &len));
    for (i = 0; i < len; i++) {
        CHECK(items[i].name != NULL && items[i].state == MF_PROCESS_STATE_ALIVE);
        main_seen |= items[i].tid == (uint32_t)getpid();
        named_seen |= items[i].tid == (uint32_t)atomic_load(&named_tid) && strcmp(items[i].name, "mf-c-listed") == 0;
    }
    CHECK(main_seen && named_seen);
    OK(mf_thread_list_free(list));
    pthread_barrier_wait(&named_and_listed);
    pthread_join(thread, NULL);
    OK(pthread_barrier_destroy(&named_and_listed));

    OK(mf_os_process_by_pid(guest, 1, &init));
    OK(mf_process_thread_list(init, &list));
    OK(mf_thread_list_get(list, &items, &len));
    CHECK(len == 1 && items[0].tid == 1 && strcmp(items[0].name, "init") == 0);
    OK(mf_thread_list_free(list));
    CHECK(mf_thread_list_free(NULL) == MF_OK);
    OK(mf_process_free(init));
    OK(mf_process_free(self));
    OK(mf_os_free(native));
}

/* Runs THREADS workers to completion. */
static void run(struct worker *workers) {
    pthread_t threads[THREADS];
    int t;
    for (t = 0; t < THREADS; t++) {
        if (pthread_create(&threads[t], NULL, work, &workers[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(2);
        }
    }
    for (t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
}

int main(int argc, char **argv) {
    MfInventory *inv = NULL;
    MfConnector *conn = NULL;
    MfOs *os = NULL;
    MfProcess *process = NULL;
    struct worker workers[THREADS];
    char chain[4200];
    int t;
    if (argc < 2 || argc > 3 || strlen(argv[1]) > 4096) {
        fprintf(stderr, "usage: %s DUMP_FILE [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        iterations = atoi(argv[2]);
    }
    snprintf(chain, sizeof chain, "coredump:'%s' -> linux", argv[1]);
    OK(mf_inventory_builtin(&inv));
    OK(mf_inventory_create_connector(inv, "coredump", argv[1], NULL, &conn));
    OK(mf_inventory_create_chain(inv, chain, &os));
    OK(mf_os_process_by_pid(os, 1, &process));
    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    take_reference(conn, os, process);
    thread_lists(inv, os);

    /* One set of handles shared by every thread. */
    for (t = 0; t < THREADS; t++) {
        workers[t].conn = conn;
        workers[t].os = os;
        workers[t].process = process;
        workers[t].seed = t;
    }
    run(workers);

    /* Every thread on its own clones (and its own process opened from its own OS). */
    for (t = 0; t < THREADS; t++) {
        OK(mf_connector_clone(conn, &workers[t].conn));
        OK(mf_os_clone(os, &workers[t].os));
        OK(mf_os_process_by_pid(workers[t].os, 1, &workers[t].process));
    }
    run(workers);
    for (t = 0; t < THREADS; t++) {
        OK(mf_process_free(workers[t].process));
        OK(mf_os_free(workers[t].os));
        OK(mf_connector_free(workers[t].conn));
    }

    OK(mf_process_free(process));
    OK(mf_os_free(os));
    OK(mf_connector_free(conn));
    OK(mf_inventory_free(inv));
    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "%d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("threads ok\n");
    return 0;
}
