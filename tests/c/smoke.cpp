// Smoke test of the C++ wrappers (memflow.hpp), run by tests/tests/ffi.rs (also under
// valgrind): every wrapper method is instantiated, lambdas go through the trampolines,
// exceptions carry codes and messages, owners free their handles.
//
// usage: smoke_cpp DUMP_FILE
#include "memflow.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <cstring>
#include <string>
#include <vector>

/* The SDK library's file name as loaded: its soname carries MF_ABI_VERSION. */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define FFI_SONAME "libmemflow_ffi.so." STRINGIFY(MF_ABI_VERSION)

static int failures = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

static const unsigned long long MARKER = 0x0dd5eedcafe0f00dULL;

/* Connector::dump: a LiME file read back equal; a progress lambda that throws stops the
 * dump, no file is left and the exception reaches the caller. */
static void dump_files(memflow::Inventory &inv, memflow::Connector &conn) {
    const char *tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/memflow-smoke-cpp-" + std::to_string(getpid());
    uint64_t calls = 0, last = 0;
    MfDumpSummary s = conn.dump(path, MfDumpOptions{MF_DUMP_LIME, 0, nullptr}, [&](uint64_t done, uint64_t) {
        calls++;
        last = done;
        return true;
    });
    CHECK(calls > 1 && last == conn.metadata().real_size && s.bytes_written == last && s.hole_pages == 0);
    {
        memflow::Connector copy = inv.create_connector("coredump", "'" + path + "'");
        unsigned char a[4096], b[4096];
        CHECK(conn.read_into(0x7000, a, sizeof a) && copy.read_into(0x7000, b, sizeof b));
        CHECK(std::memcmp(a, b, sizeof a) == 0);
    }
    CHECK(unlink(path.c_str()) == 0);
    try {
        conn.dump(path, MfDumpOptions{MF_DUMP_KDUMP_SNAPPY, 0, nullptr}, [](uint64_t, uint64_t) -> bool {
            throw std::runtime_error("stop here");
        });
        CHECK(false);
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "stop here");
    }
    CHECK(access(path.c_str(), F_OK) != 0);
    try {
        conn.dump(path, MfDumpOptions{MF_DUMP_RAW, 0, nullptr}, [](uint64_t, uint64_t) { return false; });
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_CANCELLED);
    }
    CHECK(access(path.c_str(), F_OK) != 0);
}

static void physical(memflow::Inventory &inv, const std::string &dump) {
    memflow::Connector conn = inv.create_connector("coredump", "'" + dump + "'");
    MfPhysicalMetadata meta = conn.metadata();
    CHECK(meta.real_size > 0);
    unsigned char buf[16] = {};
    CHECK(conn.read_into(0x1000, buf, sizeof buf));
    CHECK(!conn.read_into(meta.max_address - 7, buf, sizeof buf)); // partial: false, no throw
    CHECK(conn.read_some(meta.max_address - 7, buf, sizeof buf) == 8);
    CHECK(conn.read_some(0x1000, buf, sizeof buf) == sizeof buf);
    try {
        (void)conn.read<unsigned long long>(meta.max_address - 3);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.is_partial() && e.code() == MF_ERR_PARTIAL_READ);
    }
    MfReadOp ops[1] = {{0x2000, buf, sizeof buf, 1, 0}};
    CHECK(conn.read_batch(ops, 1) && ops[0].result == 0 && ops[0].done == sizeof buf);
    CHECK(conn.cpu_count() >= 1);
    CHECK(conn.x86_registers(0).cr3 != 0);
    try {
        (void)conn.aarch64_registers(0); // an x86 guest's dump
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_NOT_FOUND);
    }
    try {
        (void)conn.riscv_registers(0);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_NOT_FOUND);
    }
    memflow::Connector copy = conn.clone();
    memflow::Connector moved = std::move(copy);
    CHECK(!copy && moved);
    (void)moved.read<unsigned char>(0x1000);
    try {
        conn.write(0x1000, buf, 1); // dumps are mapped read-only by default
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    try {
        (void)conn.write_some(0x1000, buf, 1);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    memflow::Connector chained = inv.create_connector_chain("coredump:'" + dump + "'");
    CHECK(chained.metadata().real_size == meta.real_size);
    dump_files(inv, conn);
}

static void native(memflow::Inventory &inv) {
    memflow::Os os = inv.create_chain("native");
    CHECK(os.info().arch.pointer_bits == 64);
    memflow::Os os2 = os.clone();
    size_t count = 0;
    os.process_list([&](const MfProcessInfo &p) { count += p.pid > 0 ? 1 : 0; });
    size_t first = 0;
    os.process_list([&](const MfProcessInfo &) { first++; return false; });
    CHECK(count >= 1 && first == 1);
    std::vector<memflow::ProcessInfo> all = os2.processes();
    CHECK(!all.empty());
    bool threw = false;
    try {
        os.process_list([](const MfProcessInfo &) -> bool { throw std::runtime_error("stop"); });
    } catch (const std::runtime_error &e) {
        threw = std::strcmp(e.what(), "stop") == 0;
    }
    CHECK(threw);
    try {
        os.process_by_name("no-such-process-name");
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_NOT_FOUND && std::string(e.what()).find("no-such-process-name") != std::string::npos);
    }
    os.kernel_modules([](const MfModuleInfo &) {});
    try {
        os.kernel_symbol("init_task");
    } catch (const memflow::Error &e) {
        CHECK(e.code() < 0);
    }
    unsigned char b[8];
    try {
        os.read_into(0x1000, b, sizeof b);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.code() == MF_ERR_UNSUPPORTED);
    }
    try {
        (void)os.read_some(0x1000, b, sizeof b);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.code() == MF_ERR_UNSUPPORTED);
    }

    memflow::Process self = os.process_by_pid(static_cast<uint32_t>(getpid()));
    memflow::Process again = os.process_by_address(self.info().address);
    CHECK(again.info().pid == self.info().pid);
    CHECK(self.state() == MF_PROCESS_STATE_ALIVE);
    CHECK(self.read<unsigned long long>(reinterpret_cast<uintptr_t>(&MARKER)) == MARKER);
    unsigned long long value = 0;
    CHECK(self.read_into(reinterpret_cast<uintptr_t>(&MARKER), &value, sizeof value) && value == MARKER);
    CHECK(self.read_some(reinterpret_cast<uintptr_t>(&MARKER), &value, sizeof value) == sizeof value);
    CHECK(self.read_some(0x10, &value, sizeof value) == 0 && value == 0);
    MfReadOp ops[1] = {{reinterpret_cast<uintptr_t>(&MARKER), &value, sizeof value, 1, 0}};
    CHECK(self.read_batch(ops, 1) && ops[0].done == sizeof value);
    static unsigned long long target = 1;
    self.write(reinterpret_cast<uintptr_t>(&target), 42ULL);
    CHECK(target == 42);
    unsigned long long seven = 7;
    CHECK(self.write_some(reinterpret_cast<uintptr_t>(&target), &seven, sizeof seven) == sizeof seven && target == 7);

    size_t modules = 0;
    self.module_list([&](const MfModuleInfo &) { modules++; });
    std::vector<memflow::ModuleInfo> list = self.modules();
    CHECK(modules >= 1 && list.size() >= 1);
    memflow::ModuleInfo lib = self.module_by_name(FFI_SONAME);
    size_t exports = 0, imports = 0, sections = 0, ranges = 0;
    self.exports(lib, [&](const MfExportInfo &) { exports++; });
    self.imports(lib, [&](const MfImportInfo &) { imports++; });
    self.sections(lib, [&](const MfSectionInfo &) { sections++; });
    CHECK(exports >= 50 && imports >= 1 && sections >= 1);
    CHECK(self.export_address(lib, "mf_version") == reinterpret_cast<uintptr_t>(&mf_version));
    CHECK(self.primary_module().name.rfind("smoke_cpp", 0) == 0); // smoke_cpp or smoke_cpp_asan
    self.mapped_ranges([&](const MfMemoryRange &r) { ranges += r.size > 0 ? 1 : 0; });
    CHECK(ranges >= 3);

    // Owned lists agree with the callbacks.
    std::vector<memflow::ExportInfo> export_list = self.exports(lib);
    CHECK(export_list.size() == exports);
    bool has_version = false;
    for (const memflow::ExportInfo &e : export_list) {
        has_version |= e.name == "mf_version" && lib.base + e.offset == reinterpret_cast<uintptr_t>(&mf_version);
    }
    CHECK(has_version);
    CHECK(self.imports(lib).size() == imports && self.sections(lib).size() == sections);
    CHECK(!self.sections(lib).front().name.empty());
    // This process's own mappings change as it allocates (under valgrind at every call).
    std::vector<MfMemoryRange> mapped = self.mapped_ranges();
    CHECK(mapped.size() >= 3 && mapped.front().size > 0);
    CHECK(!os.processes_by_name(self.info().name).empty());

    // A clone reads the same memory and outlives the original.
    memflow::Process copy = self.clone();
    self.reset();
    CHECK(copy.read<unsigned long long>(reinterpret_cast<uintptr_t>(&MARKER)) == MARKER);
    try {
        copy.virt_to_phys(reinterpret_cast<uintptr_t>(&MARKER));
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.code() == MF_ERR_UNSUPPORTED); // the native layer has no page tables
    }
}

// A Linux guest: translation, physical memory and CPU state through the OS, by-name lists.
static void guest(memflow::Inventory &inv, const std::string &dump) {
    memflow::Os os = inv.create_chain("coredump:'" + dump + "' -> linux");
    MfOsInfo info = os.info();
    uint64_t pa = os.virt_to_phys(info.base);
    CHECK(os.read<uint64_t>(info.base) == os.phys_read<uint64_t>(pa));
    unsigned char virt[32] = {}, phys[32] = {};
    CHECK(os.read_into(info.base + 0x40, virt, sizeof virt) && os.phys_read_into(pa + 0x40, phys, sizeof phys));
    CHECK(std::memcmp(virt, phys, sizeof virt) == 0);
    MfTranslateOp ops[2] = {{info.base, 0, 0, 0, 1}, {0, 0, 0, 0, 1}};
    os.virt_to_phys(ops, 2);
    CHECK(ops[0].result == 0 && ops[0].phys == pa && mf_error_kind(ops[1].result) == MF_KIND_UNMAPPED);
    try {
        os.virt_to_phys(0);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_UNMAPPED);
    }
    std::vector<MfMemoryRange> map = os.page_map(0, info.base, info.base + info.size);
    size_t seen = 0;
    os.page_map([&](const MfMemoryRange &) { seen++; }, 0, info.base, info.base + info.size);
    CHECK(!map.empty() && map.size() == seen && map.front().base <= info.base);
    try {
        os.write(info.base, uint64_t{0}); // the dump is mapped read-only
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    try {
        (void)os.write_some(info.base, virt, sizeof virt);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }

    {
        // Os::dump: the first progress call throws; the exception comes back, no file is left.
        const char *tmp = std::getenv("TMPDIR");
        std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/memflow-smoke-os-" + std::to_string(getpid());
        uint64_t total = 0;
        try {
            os.dump(path, MfDumpOptions{MF_DUMP_ELF, 0, nullptr}, [&](uint64_t, uint64_t all) -> bool {
                total = all;
                throw std::runtime_error("stop the OS dump");
            });
            CHECK(false);
        } catch (const std::runtime_error &e) {
            CHECK(std::string(e.what()) == "stop the OS dump");
        }
        CHECK(total == os.phys_metadata().real_size && access(path.c_str(), F_OK) != 0);
    }
    MfPhysicalMetadata meta = os.phys_metadata();
    CHECK(meta.real_size >= (200u << 20));
    CHECK(os.read_some(info.base, virt, sizeof virt) == sizeof virt);
    CHECK(os.phys_read_some(pa, phys, sizeof phys) == sizeof phys);
    CHECK(os.phys_read_some(meta.max_address - 7, phys, sizeof phys) == 8);
    MfReadOp rop[1] = {{pa, phys, sizeof phys, 1, 0}};
    CHECK(os.phys_read_batch(rop, 1) && rop[0].result == 0 && rop[0].done == sizeof phys);
    unsigned char byte = 0;
    MfWriteOp wop[1] = {{pa, &byte, 1, 1, 0}};
    try {
        os.phys_write_batch(wop, 1);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    try {
        os.phys_write(pa, &byte, 1);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    try {
        (void)os.phys_write_some(pa, &byte, 1);
        CHECK(false);
    } catch (const memflow::Error &e) {
        CHECK(e.kind() == MF_KIND_READ_ONLY);
    }
    CHECK(os.cpu_count() >= 1 && os.x86_registers(0).page_table_root != 0);

    CHECK(os.processes_by_name("mfprobe_marker").size() == 1);
    CHECK(os.processes_by_name("no-such-process-name").empty());
    memflow::Process marker = os.process_by_name("mfprobe_marker");
    std::vector<MfMemoryRange> pages = marker.page_map();
    size_t pages_seen = 0;
    marker.page_map([&](const MfMemoryRange &) { pages_seen++; });
    CHECK(!pages.empty() && pages.size() == pages_seen);
    uint64_t va = pages.front().base;
    uint64_t ppa = marker.virt_to_phys(va);
    memflow::Process marker2 = marker.clone();
    CHECK(marker2.read<uint64_t>(va) == os.phys_read<uint64_t>(ppa));
    MfTranslateOp pops[1] = {{va, 0, 0, 0, 1}};
    marker2.virt_to_phys(pops, 1);
    CHECK(pops[0].result == 0 && pops[0].phys == ppa);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DUMP_FILE\n", argv[0]);
        return 2;
    }
    try {
        CHECK(memflow::version() == mf_version());
        memflow::log_init(MF_LOG_DEBUG);
        size_t records = 0;
        memflow::log_set_callback([&](const MfLogRecord &r) { records += r.message != nullptr ? 1 : 0; });
        memflow::Inventory inv = memflow::Inventory::builtin();
        std::vector<memflow::PluginInfo> plugins = inv.plugins();
        CHECK(plugins.size() >= 2);
        CHECK(inv.refused().empty());
        try {
            inv.add_file("/nonexistent/libplugin.so");
            CHECK(false);
        } catch (const memflow::Error &e) {
            CHECK(e.code() < 0 && e.what()[0] != '\0');
        }
        try {
            inv.create_os("no-such-os");
            CHECK(false);
        } catch (const memflow::Error &e) {
            CHECK(e.kind() == MF_KIND_NOT_FOUND && e.origin() == MF_ORIGIN_INVENTORY);
        }
        CHECK(records >= 1);
        memflow::log_set_callback(nullptr);
        memflow::log_set_level(MF_LOG_OFF);
        CHECK(inv.add_dir("/") == 0);
        memflow::Inventory scanned = memflow::Inventory::scan();
        physical(inv, argv[1]);
        native(inv);
        guest(inv, argv[1]);
    } catch (const memflow::Error &e) {
        std::fprintf(stderr, "unexpected error %d: %s\n", e.code(), e.what());
        return 1;
    }
    if (failures != 0) {
        std::fprintf(stderr, "smoke_cpp: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("smoke_cpp ok\n");
    return 0;
}
