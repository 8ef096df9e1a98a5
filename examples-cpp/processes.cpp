// processes [CHAIN] [PID]: the processes of an OS layer and the modules of one of them, with
// the C++ wrappers: RAII owners, lambdas as callbacks, exceptions for errors.
//
//   processes                     this machine; the modules of this program itself
//   processes "coredump:/dumps/guest.elf -> linux" 1
#include <memflow.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unistd.h>

// Read back through the OS layer when the program looks at itself.
static volatile uint64_t marker = 0x6d656d666c6f7721; // "!wolfmem"

int main(int argc, char **argv) {
    const std::string chain = argc > 1 ? argv[1] : "native";
    const uint32_t self = static_cast<uint32_t>(getpid());
    const uint32_t pid = argc > 2 ? static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 0)) : self;

    try {
        memflow::log_init(MF_LOG_WARN);
        // Each owner frees its handle when it goes out of scope, also when an exception flies.
        const auto inventory = memflow::Inventory::scan();
        auto os = inventory.create_chain(chain);

        // Streamed: the record is borrowed for the call, so copy what outlives it.
        std::map<std::string, int> names;
        size_t count = 0;
        std::printf("%8s %8s  %s\n", "PID", "PPID", "NAME");
        os.process_list([&](const MfProcessInfo &p) {
            std::printf("%8u %8u  %s\n", p.pid, p.ppid, p.name);
            names[p.name]++;
            count++;
        });
        const auto common = std::max_element(names.begin(), names.end(),
                                             [](const auto &a, const auto &b) { return a.second < b.second; });
        std::printf("%zu processes, %zu distinct names", count, names.size());
        if (common != names.end())
            std::printf(", most common: %s (%d)", common->first.c_str(), common->second);
        std::printf("\n");

        auto process = os.process_by_pid(pid);
        const auto info = process.info(); // owned strings
        auto modules = process.modules(); // owned records
        std::sort(modules.begin(), modules.end(), [](const auto &a, const auto &b) { return a.size > b.size; });
        std::printf("modules of %u (%s), largest first:\n", info.pid, info.name.c_str());
        for (const auto &m : modules)
            std::printf("  0x%016" PRIx64 " %10" PRIu64 "  %s\n", m.base, m.size, m.name.c_str());

        if (pid == self && chain == "native") {
            const auto value = process.read<uint64_t>(reinterpret_cast<uintptr_t>(&marker));
            std::printf("marker read through the OS layer: 0x%016" PRIx64 " (%s)\n", value,
                        value == marker ? "matches" : "DIFFERS");
            if (value != marker)
                return 1;
        }
    } catch (const memflow::Error &e) {
        // The code says what and where (kind, origin); what() has the library's detail.
        std::fprintf(stderr, "error %d (kind %d, origin %d): %s\n", e.code(), e.kind(), e.origin(), e.what());
        return 1;
    }
    return 0;
}
