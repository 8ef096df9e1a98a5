/* The kernel from C, run by tests/tests/ffi.rs (plainly, under valgrind and under
 * AddressSanitizer/UBSan): kernel modules (owned list, by name, by address, exports and
 * sections as callbacks and owned lists), kernel symbols by address and as a listing, and BTF
 * type offsets, on the QEMU guest dump through `coredump -> linux`, checked against the
 * guest's own /proc/kallsyms (kallsyms.txt next to the dump) and /proc/modules (the guest
 * loaded `crc7` and `dummy`).
 *
 * usage: kernel DUMP_FILE
 */
#define _POSIX_C_SOURCE 200809L

#include "memflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* One line of /proc/kallsyms: `ADDRESS TYPE NAME` and for module symbols `\t[MODULE]`. */
struct line {
    unsigned long long address;
    char kind;
    char name[128];
    char module[64];
};

/* Reads kallsyms.txt from the dump's directory; returns the number of lines (0 on failure). */
static size_t read_kallsyms(const char *dump, struct line **out) {
    char path[4200];
    const char *slash = strrchr(dump, '/');
    int dir_len = slash != NULL ? (int)(slash - dump) : 1;
    snprintf(path, sizeof path, "%.*s/kallsyms.txt", dir_len, slash != NULL ? dump : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t len = 0, cap = 1 << 17;
    struct line *lines = malloc(cap * sizeof *lines);
    char text[512];
    while (lines != NULL && fgets(text, sizeof text, f) != NULL) {
        if (len == cap) {
            cap *= 2;
            struct line *bigger = realloc(lines, cap * sizeof *lines);
            if (bigger == NULL) {
                break;
            }
            lines = bigger;
        }
        struct line *l = &lines[len];
        l->module[0] = '\0';
        if (sscanf(text, "%llx %c %127s [%63[^]]]", &l->address, &l->kind, l->name, l->module) >= 3) {
            len++;
        }
    }
    fclose(f);
    *out = lines;
    return len;
}

struct symbol_walk {
    const struct line *lines;
    size_t len;
    size_t seen;
    size_t mismatches;
};

static bool on_symbol(void *user, const MfKernelSymbolInfo *s) {
    struct symbol_walk *w = (struct symbol_walk *)user;
    if (w->seen < w->len) {
        const struct line *l = &w->lines[w->seen];
        if (s->address != l->address || s->kind != l->kind || strcmp(s->name, l->name) != 0 ||
            strcmp(s->module, l->module) != 0) {
            w->mismatches++;
        }
    }
    w->seen++;
    return true;
}

struct name_search {
    const char *name;
    uint64_t value;
    size_t count;
};

static bool on_export(void *user, const MfExportInfo *e) {
    struct name_search *s = (struct name_search *)user;
    s->count++;
    if (strcmp(e->name, s->name) == 0) {
        s->value = e->offset;
    }
    return true;
}

static bool on_section(void *user, const MfSectionInfo *sec) {
    struct name_search *s = (struct name_search *)user;
    s->count++;
    if (strcmp(sec->name, s->name) == 0) {
        s->value = sec->base;
    }
    return true;
}

/* Symbol by address of the symbol on line `at`: offset 0 and a name that line or another
 * line of the same address has (several symbols may share an address). */
static void check_symbol_at(MfOs *os, const struct line *lines, size_t nlines, size_t at) {
    char name[256];
    size_t len = 0;
    uint64_t offset = 0;
    OK(mf_os_kernel_symbol_by_address(os, lines[at].address, name, sizeof name, &len, &offset));
    CHECK(offset == 0 && len == strlen(name));
    bool listed = false;
    for (size_t i = 0; i < nlines && !listed; i++) {
        listed = lines[i].address == lines[at].address && strcmp(lines[i].name, name) == 0;
    }
    CHECK(listed);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: kernel DUMP_FILE\n");
        return 2;
    }
    struct line *lines = NULL;
    size_t nlines = read_kallsyms(argv[1], &lines);
    CHECK(nlines > 50000);

    MfInventory *inv = NULL;
    OK(mf_inventory_builtin(&inv));
    char chain[4200];
    snprintf(chain, sizeof chain, "coredump:'%s' -> linux", argv[1]);
    MfOs *os = NULL;
    OK(mf_inventory_create_chain(inv, chain, &os));
    OK(mf_inventory_free(inv));
    if (os == NULL) {
        free(lines);
        return 1;
    }

    /* Modules: the owned list has crc7 and dummy; by name and by address find them again. */
    MfModuleList *list = NULL;
    OK(mf_os_kernel_module_list(os, &list));
    const MfModuleInfo *items = NULL;
    size_t count = 0;
    OK(mf_module_list_get(list, &items, &count));
    CHECK(count == 2);
    MfModuleList *crc7_list = NULL;
    OK(mf_os_kernel_module_by_name(os, "CRC7", &crc7_list));
    const MfModuleInfo *crc7 = NULL;
    size_t one = 0;
    OK(mf_module_list_get(crc7_list, &crc7, &one));
    CHECK(one == 1 && strcmp(crc7->name, "crc7") == 0 && crc7->size > 0);
    MfModuleList *by_address = NULL;
    OK(mf_os_kernel_module_by_address(os, crc7->base + 1, &by_address));
    const MfModuleInfo *again = NULL;
    OK(mf_module_list_get(by_address, &again, &one));
    CHECK(one == 1 && again->address == crc7->address && strcmp(again->name, "crc7") == 0);
    OK(mf_module_list_free(by_address));
    CHECK(mf_error_kind(mf_os_kernel_module_by_name(os, "no_such_module", &by_address)) == MF_KIND_NOT_FOUND);
    CHECK(mf_error_kind(mf_os_kernel_module_by_address(os, 0x1000, &by_address)) == MF_KIND_NOT_FOUND);

    /* Exports: crc7 exports crc7_be (at its base) and crc7_be_syndrome_table. */
    struct name_search exp = {"crc7_be", UINT64_MAX, 0};
    OK(mf_os_kernel_module_exports(os, crc7, on_export, &exp));
    CHECK(exp.count == 2 && exp.value == 0);
    MfExportList *exports = NULL;
    OK(mf_os_kernel_module_export_list(os, crc7, &exports));
    const MfExportInfo *eitems = NULL;
    size_t ecount = 0;
    OK(mf_export_list_get(exports, &eitems, &ecount));
    CHECK(ecount == exp.count);
    for (size_t i = 0; i < ecount; i++) {
        CHECK(strncmp(eitems[i].name, "crc7_be", 7) == 0);
    }
    OK(mf_export_list_free(exports));

    /* Sections: .text at the base, `struct module` in .gnu.linkonce.this_module. */
    struct name_search text = {".text", 0, 0};
    OK(mf_os_kernel_module_sections(os, crc7, on_section, &text));
    CHECK(text.count > 3 && text.value == crc7->base);
    MfSectionList *sections = NULL;
    OK(mf_os_kernel_module_section_list(os, crc7, &sections));
    const MfSectionInfo *sitems = NULL;
    size_t scount = 0;
    OK(mf_section_list_get(sections, &sitems, &scount));
    CHECK(scount == text.count);
    bool this_module = false;
    for (size_t i = 0; i < scount; i++) {
        this_module |= strcmp(sitems[i].name, ".gnu.linkonce.this_module") == 0 && sitems[i].base == crc7->address;
    }
    CHECK(this_module);
    OK(mf_section_list_free(sections));

    /* Symbols by address: in the kernel image and in a module, cut names, nowhere. */
    uint64_t banner = 0;
    OK(mf_os_kernel_symbol(os, "linux_banner", &banner));
    char name[64];
    size_t len = 0;
    uint64_t offset = 0;
    OK(mf_os_kernel_symbol_by_address(os, banner + 3, name, sizeof name, &len, &offset));
    CHECK(strcmp(name, "linux_banner") == 0 && len == 12 && offset == 3);
    OK(mf_os_kernel_symbol_by_address(os, banner, name, 4, &len, &offset));
    CHECK(strcmp(name, "lin") == 0 && len == 12 && offset == 0);
    OK(mf_os_kernel_symbol_by_address(os, banner, NULL, 0, &len, &offset));
    CHECK(len == 12);
    OK(mf_os_kernel_symbol_by_address(os, crc7->base + 5, name, sizeof name, &len, &offset));
    CHECK(strcmp(name, "crc7_be") == 0 && offset == 5);
    CHECK(mf_error_kind(mf_os_kernel_symbol_by_address(os, 0x1000, name, sizeof name, &len, &offset)) ==
          MF_KIND_NOT_FOUND);
    MfOsInfo info;
    OK(mf_os_info(os, &info));
    for (size_t i = 0; i < nlines; i += 4999) {
        if (lines[i].address >= info.base && lines[i].address - info.base < info.size) {
            check_symbol_at(os, lines, nlines, i);
        }
    }

    /* The listing is /proc/kallsyms, line by line. */
    struct symbol_walk walk = {lines, nlines, 0, 0};
    OK(mf_os_kernel_symbol_list_callback(os, on_symbol, &walk));
    CHECK(walk.seen == nlines && walk.mismatches == 0);
    /* The same as an owned list. */
    MfKernelSymbolList *symbols = NULL;
    const MfKernelSymbolInfo *symbol_items = NULL;
    size_t nsymbols = 0;
    OK(mf_os_kernel_symbol_list(os, &symbols));
    OK(mf_kernel_symbol_list_get(symbols, &symbol_items, &nsymbols));
    struct symbol_walk listed = {lines, nlines, 0, 0};
    for (size_t i = 0; i < nsymbols; i++) {
        on_symbol(&listed, &symbol_items[i]);
    }
    CHECK(nsymbols == nlines && listed.mismatches == 0);
    OK(mf_kernel_symbol_list_free(symbols));

    /* Types from BTF. */
    uint64_t value = 0;
    OK(mf_os_type_offset(os, "list_head", "prev", &value));
    CHECK(value == 8);
    OK(mf_os_type_size(os, "list_head", &value));
    CHECK(value == 16);
    OK(mf_os_type_offset(os, "task_struct", "comm", &value));
    CHECK(value > 0);
    OK(mf_os_type_offset(os, "file", "f_path.dentry", &value));
    CHECK(value > 0);
    CHECK(mf_error_kind(mf_os_type_offset(os, "task_struct", "no_such_member", &value)) == MF_KIND_NOT_FOUND);
    CHECK(mf_error_kind(mf_os_type_size(os, "no_such_struct", &value)) == MF_KIND_NOT_FOUND);

    OK(mf_module_list_free(crc7_list));
    OK(mf_module_list_free(list));
    OK(mf_os_free(os));
    free(lines);
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("kernel ok\n");
    return 0;
}
