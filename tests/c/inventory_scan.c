/* What mf_inventory_scan lists and loads, run by tests/tests/sdk.rs against the installed SDK
 * (its lib/memflow holds the shipped plugin files, which are also built into the library).
 *
 * usage: inventory_scan [PLUGIN_FILE]
 *
 * Scans, adds PLUGIN_FILE with mf_inventory_add_file if given, prints one line per plugin
 * ("plugin NAME connector|os PATH", PATH "builtin" for a built-in plugin), creates the `dummy`
 * connector, then prints a line "maps" and this process's memory map (which plugin files are
 * loaded).
 */
#include "memflow.h"

#include <stdio.h>

int main(int argc, char **argv) {
    MfInventory *inv = NULL;
    MfConnector *conn = NULL;
    const char *failed = NULL;
    size_t count = 0;

    if (mf_inventory_scan(&inv) != MF_OK) {
        failed = "mf_inventory_scan";
    } else if (argc > 1 && mf_inventory_add_file(inv, argv[1]) != MF_OK) {
        failed = "mf_inventory_add_file";
    } else if (mf_inventory_plugin_count(inv, &count) != MF_OK) {
        failed = "mf_inventory_plugin_count";
    }
    for (size_t i = 0; failed == NULL && i < count; i++) {
        MfPluginInfo info;
        if (mf_inventory_plugin_at(inv, i, &info) != MF_OK) {
            failed = "mf_inventory_plugin_at";
        } else {
            printf("plugin %s %s %s\n", info.name, info.kind == MF_PLUGIN_KIND_OS ? "os" : "connector",
                   info.path != NULL ? info.path : "builtin");
        }
    }
    if (failed == NULL && mf_inventory_create_connector(inv, "dummy", NULL, NULL, &conn) != MF_OK) {
        failed = "mf_inventory_create_connector(dummy)";
    }
    if (failed == NULL) {
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[4096];
        printf("maps\n");
        while (maps != NULL && fgets(line, sizeof line, maps) != NULL) {
            fputs(line, stdout);
        }
        if (maps == NULL) {
            failed = "fopen(/proc/self/maps)";
        } else {
            fclose(maps);
        }
    }
    if (failed != NULL) {
        fprintf(stderr, "%s failed: %s\n", failed, mf_last_error_message());
    }
    mf_connector_free(conn);
    mf_inventory_free(inv);
    return failed == NULL ? 0 : 1;
}
