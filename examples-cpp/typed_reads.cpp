// typed_reads [CHAIN]: typed physical reads and the two ways of handling errors the C++
// wrappers offer: exceptions (memflow::Error) and results (read_into returns false for a
// partial read; a small helper turns failures into std::optional).
//
//   typed_reads                                 the C plugin's built-in buffer (`cbuffer`)
//   typed_reads cbuffer:/some/file
//   typed_reads coredump:/dumps/guest.elf
#include <memflow.hpp>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string>

// A result instead of an exception: no value if the read failed or was partial.
template <class T>
static std::optional<T> try_read(memflow::Connector &conn, uint64_t addr) {
    try {
        return conn.read<T>(addr);
    } catch (const memflow::Error &) {
        return std::nullopt;
    }
}

struct Pair { // any trivially copyable type can be read
    uint32_t low;
    uint32_t high;
};

int main(int argc, char **argv) {
    const std::string chain = argc > 1 ? argv[1] : "cbuffer";
    try {
        const auto inventory = memflow::Inventory::scan();

        // An error on purpose: the exception carries the code and the detail.
        try {
            inventory.create_connector_chain("no_such_plugin:x");
        } catch (const memflow::Error &e) {
            std::printf("expected error: kind %s, %s\n", e.kind() == MF_KIND_NOT_FOUND ? "not found" : "other", e.what());
        }

        auto conn = inventory.create_connector_chain(chain);
        const auto meta = conn.metadata();
        std::printf("%s: %" PRIu64 " bytes, highest address 0x%" PRIx64 "\n", chain.c_str(), meta.real_size,
                    meta.max_address);

        for (uint64_t addr : {0x0ull, 0x8ull, 0x1000ull, 0x10000ull}) {
            if (auto v = try_read<uint64_t>(conn, addr))
                std::printf("u64 at 0x%" PRIx64 " = 0x%016" PRIx64 "\n", addr, *v);
            else
                std::printf("u64 at 0x%" PRIx64 " unreadable\n", addr);
        }
        const auto words = conn.read<std::array<uint32_t, 4>>(0x1000);
        std::printf("u32[4] at 0x1000 = %08" PRIx32 " %08" PRIx32 " %08" PRIx32 " %08" PRIx32 "\n", words[0], words[1],
                    words[2], words[3]);
        const auto pair = conn.read<Pair>(0x1000);
        std::printf("Pair at 0x1000 = {low 0x%" PRIx32 ", high 0x%" PRIx32 "}\n", pair.low, pair.high);

        // Past the end: read_into reports a partial read, read<T> throws one.
        std::array<uint8_t, 16> tail{};
        const bool complete = conn.read_into(meta.max_address - 7, tail.data(), tail.size());
        std::printf("16 bytes at the last 8: %s\n", complete ? "complete" : "partial (the rest reads as zero)");
        try {
            conn.read<std::array<uint8_t, 16>>(meta.max_address - 7);
        } catch (const memflow::Error &e) {
            std::printf("read<T> past the end throws: partial=%s\n", e.is_partial() ? "yes" : "no");
        }
    } catch (const memflow::Error &e) {
        std::fprintf(stderr, "error %d: %s\n", e.code(), e.what());
        return 1;
    }
    return 0;
}
