// The kernel through the C++ wrappers, run by tests/tests/ffi.rs (plainly and under valgrind):
// kernel modules, their exports and sections, kernel symbols by address and as a listing, and
// BTF type offsets, on the QEMU guest dump through `coredump -> linux` (the guest loaded
// `crc7` and `dummy`).
//
// usage: kernel_cpp DUMP_FILE

#include "memflow.hpp"

#include <cstdio>
#include <string>

static int failures = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: kernel_cpp DUMP_FILE\n");
        return 2;
    }
    try {
        memflow::Os os = memflow::Inventory::builtin().create_chain("coredump:'" + std::string(argv[1]) + "' -> linux");

        CHECK(os.kernel_module_list().size() == 2);
        memflow::ModuleInfo crc7 = os.kernel_module_by_name("crc7");
        CHECK(crc7.name == "crc7" && crc7.size > 0);
        CHECK(os.kernel_module_by_address(crc7.base + 1).address == crc7.address);

        std::vector<memflow::ExportInfo> exports = os.kernel_module_export_list(crc7);
        CHECK(exports.size() == 2);
        size_t seen = 0;
        os.kernel_module_exports(crc7, [&](const MfExportInfo &e) {
            seen++;
            if (std::string(e.name) == "crc7_be") {
                CHECK(e.offset == 0);
            }
        });
        CHECK(seen == exports.size());

        bool text = false;
        for (const memflow::SectionInfo &s : os.kernel_module_section_list(crc7)) {
            text |= s.name == ".text" && s.base == crc7.base;
        }
        CHECK(text);
        size_t sections = 0;
        os.kernel_module_sections(crc7, [&](const MfSectionInfo &) { sections++; });
        CHECK(sections > 3);

        uint64_t banner = os.kernel_symbol("linux_banner");
        memflow::SymbolAt at = os.kernel_symbol_by_address(banner + 7);
        CHECK(at.name == "linux_banner" && at.offset == 7);
        at = os.kernel_symbol_by_address(crc7.base + 2);
        CHECK(at.name == "crc7_be" && at.offset == 2);

        size_t symbols = 0, module_symbols = 0;
        os.kernel_symbols([&](const MfKernelSymbolInfo &s) {
            symbols++;
            module_symbols += s.module[0] != '\0';
        });
        CHECK(symbols > 50000 && module_symbols > 10);
        std::vector<memflow::KernelSymbolInfo> listed = os.kernel_symbol_list();
        CHECK(listed.size() == symbols && !listed.back().name.empty() && !listed.back().module.empty());

        CHECK(os.type_offset("list_head", "prev") == 8);
        CHECK(os.type_size("list_head") == 16);
        try {
            os.type_size("no_such_struct");
            CHECK(false);
        } catch (const memflow::Error &e) {
            CHECK(e.kind() == MF_KIND_NOT_FOUND);
        }
    } catch (const memflow::Error &e) {
        std::fprintf(stderr, "memflow error %d: %s\n", e.code(), e.what());
        return 1;
    }
    if (failures != 0) {
        std::fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    std::printf("kernel_cpp ok\n");
    return 0;
}
