/*
 * process_list [CHAIN]: lists the processes of an OS layer.
 *
 *   process_list                                   this machine (chain `native`)
 *   process_list "coredump:/dumps/guest.elf -> linux"
 *
 * The plugins are found by mf_inventory_scan(): built-in ones and those in the default
 * plugin directories (see memflow.h).
 */
#include <memflow.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    const char *chain = argc > 1 ? argv[1] : "native";
    MfInventory *inv = NULL;
    MfOs *os = NULL;
    MfProcessList *list = NULL;
    const MfProcessInfo *procs = NULL;
    size_t count = 0;
    int status = 1;

    mf_log_init(MF_LOG_WARN); /* warnings (e.g. refused plugin files) go to stderr */

    if (mf_inventory_scan(&inv) != MF_OK || mf_inventory_create_chain(inv, chain, &os) != MF_OK) {
        fprintf(stderr, "error: cannot open `%s`: %s\n", chain, mf_last_error_message());
        goto out;
    }
    /* One call lists everything into a list we own; mf_os_process_list_callback() would
       stream the records instead. */
    if (mf_os_process_list(os, &list) != MF_OK || mf_process_list_get(list, &procs, &count) != MF_OK) {
        fprintf(stderr, "error: cannot list processes: %s\n", mf_last_error_message());
        goto out;
    }

    printf("%8s %8s  %-16s %s\n", "PID", "PPID", "NAME", "PATH");
    for (size_t i = 0; i < count; i++)
        printf("%8u %8u  %-16s %s\n", procs[i].pid, procs[i].ppid, procs[i].name, procs[i].path);
    printf("%zu processes\n", count);
    status = 0;

out:
    /* Every owned object has exactly one free function; NULL is a no-op. */
    mf_process_list_free(list);
    mf_os_free(os);
    mf_inventory_free(inv);
    return status;
}
