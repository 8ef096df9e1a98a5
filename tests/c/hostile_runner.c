/*
 * The runner of the hostile corpus (tests/tests/hostile.rs): one operation of the C API on
 * one chain string, then one line
 *
 *     result <code> <count>
 *     message <mf_last_error_message() if code != 0>
 *
 * and exit status 0 whenever the C API returned, error or not. An abort, a signal, a hang or
 * running out of the memory limit is what the harness counts as a failed case.
 *
 * Usage: hostile_runner OP CHAIN [ARG]; CHAIN is the chain string, or @FILE to read it from
 * a file (chains longer than the kernel's limit for one argument). Operations:
 *
 *   connector  create the connector chain, read a page at 0 through it and through 4 clones
 *              (count: clones read)
 *   os         create the OS chain (count 0)
 *   processes  list the processes (count: processes; `proc PID NAME` lines for short lists)
 *   modules    list the kernel modules (count: modules)
 *   process    open process ARG (a pid), list its modules and mapped ranges, parse its primary
 *              module's sections and exports (count: modules)
 *   symbol     look up the kernel symbol ARG (count: 1 if found)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memflow.h"

/* Process lists up to this long are printed, one line each. */
#define MAX_PRINTED 10000

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1) {
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

static bool count_module(void *user, const MfModuleInfo *info) {
    (void)info;
    ++*(size_t *)user;
    return true;
}

static bool count_range(void *user, const MfMemoryRange *range) {
    (void)range;
    ++*(size_t *)user;
    return true;
}

static bool count_section(void *user, const MfSectionInfo *info) {
    (void)info;
    ++*(size_t *)user;
    return true;
}

static bool count_export(void *user, const MfExportInfo *info) {
    (void)info;
    ++*(size_t *)user;
    return true;
}

/* Reads the first page through `conn` and through four clones of it. */
static int32_t op_connector(MfInventory *inv, const char *chain, size_t *count) {
    MfConnector *conn = NULL;
    int32_t rc = mf_inventory_create_connector_chain(inv, chain, &conn);
    if (rc != 0) {
        return rc;
    }
    static unsigned char page[4096];
    rc = mf_connector_read(conn, 0, page, sizeof page, NULL);
    if (rc == MF_ERR_PARTIAL_READ) {
        rc = 0;
    }
    MfConnector *clones[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; rc == 0 && i < 4; i++) {
        rc = mf_connector_clone(conn, &clones[i]);
        if (rc == 0) {
            rc = mf_connector_read(clones[i], 0, page, sizeof page, NULL);
            rc = rc == MF_ERR_PARTIAL_READ ? 0 : rc;
        }
        if (rc == 0) {
            ++*count;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        mf_connector_free(clones[i]);
    }
    mf_connector_free(conn);
    return rc;
}

static int32_t op_processes(MfOs *os, size_t *count) {
    MfProcessList *list = NULL;
    int32_t rc = mf_os_process_list(os, &list);
    if (rc != 0) {
        return rc;
    }
    const MfProcessInfo *items = NULL;
    size_t len = 0;
    rc = mf_process_list_get(list, &items, &len);
    if (rc == 0) {
        *count = len;
        for (size_t i = 0; len <= MAX_PRINTED && i < len; i++) {
            printf("proc %u %s\n", items[i].pid, items[i].name);
        }
    }
    mf_process_list_free(list);
    return rc;
}

static int32_t op_process(MfOs *os, const char *arg, size_t *count) {
    MfProcess *process = NULL;
    int32_t rc = mf_os_process_by_pid(os, (uint32_t)strtoul(arg ? arg : "1", NULL, 10), &process);
    if (rc != 0) {
        return rc;
    }
    rc = mf_process_module_list_callback(process, count_module, count);
    size_t ranges = 0, parts = 0;
    if (rc == 0) {
        rc = mf_process_mapped_ranges(process, -1, 0, UINT64_MAX, count_range, &ranges);
    }
    MfModuleInfo primary;
    if (rc == 0) {
        rc = mf_process_primary_module(process, &primary);
    }
    if (rc == 0) {
        rc = mf_process_module_sections(process, &primary, count_section, &parts);
    }
    if (rc == 0) {
        rc = mf_process_module_exports(process, &primary, count_export, &parts);
    }
    mf_process_free(process);
    return rc;
}

static int32_t op_os(MfInventory *inv, const char *op, const char *chain, const char *arg, size_t *count) {
    MfOs *os = NULL;
    int32_t rc = mf_inventory_create_chain(inv, chain, &os);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(op, "processes") == 0) {
        rc = op_processes(os, count);
    } else if (strcmp(op, "modules") == 0) {
        rc = mf_os_module_list_callback(os, count_module, count);
    } else if (strcmp(op, "process") == 0) {
        rc = op_process(os, arg, count);
    } else if (strcmp(op, "symbol") == 0) {
        uint64_t address = 0;
        rc = mf_os_kernel_symbol(os, arg ? arg : "init_task", &address);
        *count = rc == 0;
    }
    mf_os_free(os);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s OP CHAIN|@FILE [ARG]\n", argv[0]);
        return 2;
    }
    const char *op = argv[1];
    const char *arg = argc > 3 ? argv[3] : NULL;
    char *from_file = NULL;
    const char *chain = argv[2];
    if (chain[0] == '@') {
        from_file = read_file(chain + 1);
        if (!from_file) {
            fprintf(stderr, "cannot read the chain from %s\n", chain + 1);
            return 2;
        }
        chain = from_file;
    }
    MfInventory *inv = NULL;
    size_t count = 0;
    int32_t rc = mf_inventory_builtin(&inv);
    if (rc == 0) {
        if (strcmp(op, "connector") == 0) {
            rc = op_connector(inv, chain, &count);
        } else if (strcmp(op, "os") == 0 || strcmp(op, "processes") == 0 || strcmp(op, "modules") == 0 ||
                   strcmp(op, "process") == 0 || strcmp(op, "symbol") == 0) {
            rc = op_os(inv, op, chain, arg, &count);
        } else {
            fprintf(stderr, "unknown operation %s\n", op);
            mf_inventory_free(inv);
            free(from_file);
            return 2;
        }
    }
    printf("result %d %zu\n", rc, count);
    printf("message %s\n", rc != 0 ? mf_last_error_message() : "");
    mf_inventory_free(inv);
    free(from_file);
    return 0;
}
