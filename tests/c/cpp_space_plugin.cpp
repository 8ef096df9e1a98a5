// A C++ OS layer whose process the host translates: the parts of memflow::plugin the examples
// do not use (Input, TranslatedProcess, Os's default process_info, a throwing member). Built
// and loaded by tests/tests/plugins.rs.
//
//   CONNECTOR -> cpp_space     one process, "space": the address space of vCPU 0
#include <memflow.hpp>

#include <cstring>

namespace {

namespace plugin = memflow::plugin;

class Space : public plugin::TranslatedProcess {
public:
    void module_list(const plugin::Emit<MfModuleInfo> &) override { throw std::runtime_error("cpp_space: no modules here"); }
};

class SpaceOs : public plugin::Os {
public:
    SpaceOs(const std::string &, plugin::Input input) {
        if (!input || input.cpu_count() == 0) {
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT), "cpp_space: needs a connector with CPU state");
        }
        root_ = input.x86_registers(0).page_table_root;
        // The connector reads too: the first bytes of physical memory are there.
        uint64_t word = input.read<uint64_t>(0x1000);
        (void)word;
    }

    MfOsInfo info() override {
        MfOsInfo out{};
        out.arch.kind = MF_ARCH_X86_64;
        return out;
    }

    void process_list(const plugin::Emit<MfProcessInfo> &emit) override {
        MfProcessInfo p{};
        p.address = 1;
        p.pid = 1;
        p.name = "space";
        p.path = "";
        p.command_line = "";
        p.sys_arch.kind = p.proc_arch.kind = MF_ARCH_X86_64;
        p.table_root = root_;
        emit(p);
    }

    std::unique_ptr<plugin::ProcessBase> open_process(const MfProcessInfo &) override { return std::make_unique<Space>(); }

private:
    uint64_t root_ = 0;
};

} // namespace

MEMFLOW_PLUGIN_EXPORT(SpaceOs, "cpp_space", "1.0", "vCPU 0's address space (C++ test plugin)", "CONNECTOR -> cpp_space");
