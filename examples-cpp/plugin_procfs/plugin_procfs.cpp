// cpp_procfs: the `procfs` OS layer of examples-c, written in C++17 with the plugin base
// classes of memflow.hpp.
//
//   cpp_procfs             this machine's processes (no arguments, no connector needed)
//
// A class derived from memflow::plugin::Os lists processes from /proc; its processes
// (memflow::plugin::Process) read memory with process_vm_readv and list modules and ranges
// from /proc/PID/maps. MEMFLOW_PLUGIN_EXPORT turns the class into the library's descriptor.
// Exceptions thrown anywhere here reach the host as error codes with their message.
#include <memflow.hpp>

#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace plugin = memflow::plugin;

MfArchitecture host_arch() {
    return MfArchitecture{MF_ARCH_X86_64, 64, 12, 48};
}

MfArchitecture arch_of_class(int elf_class) {
    return elf_class == 1 ? MfArchitecture{MF_ARCH_X86_32, 32, 12, 32} : host_arch();
}

// The ELF class of 5 identification bytes, 0 if they are not ELF.
int elf_class(const unsigned char ident[5]) {
    return std::memcmp(ident, "\177ELF", 4) == 0 && (ident[4] == 1 || ident[4] == 2) ? ident[4] : 0;
}

// Valid UTF-8 (what the host accepts): other bytes become '?'.
std::string utf8(std::string s) {
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80, hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        size_t k = 1;
        for (; n && k < n && i + k < s.size(); k++) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) {
                break;
            }
        }
        if (!n || k < n) {
            s[i++] = '?';
        } else {
            i += n;
        }
    }
    return s;
}

std::string slurp(const std::string &path, size_t max) {
    std::ifstream in(path, std::ios::binary);
    std::string text(max, '\0');
    in.read(text.data(), static_cast<std::streamsize>(max));
    text.resize(static_cast<size_t>(in.gcount()));
    return text;
}

// A process record and the strings it points to.
struct Record {
    MfProcessInfo info{};
    std::string name, path, command_line;

    // False if the process is gone.
    bool load(pid_t pid) {
        std::string dir = "/proc/" + std::to_string(pid) + "/";
        std::string stat = slurp(dir + "stat", 1024);
        auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close < open) {
            return false;
        }
        std::istringstream rest(stat.substr(close + 1));
        char state = 0;
        uint32_t ppid = 0;
        if (!(rest >> state >> ppid)) {
            return false;
        }
        name = utf8(stat.substr(open + 1, close - open - 1));
        std::error_code ec;
        path = utf8(std::filesystem::read_symlink(dir + "exe", ec).string());
        command_line = slurp(dir + "cmdline", 64 << 10);
        if (!command_line.empty() && command_line.back() == '\0') {
            command_line.pop_back();
        }
        for (char &ch : command_line) {
            ch = ch == '\0' ? ' ' : ch;
        }
        command_line = utf8(command_line);
        unsigned char ident[5] = {};
        std::string exe = slurp(dir + "exe", 5);
        std::memcpy(ident, exe.data(), exe.size());
        info.address = static_cast<uint64_t>(pid);
        info.pid = static_cast<uint32_t>(pid);
        info.ppid = ppid;
        info.state = state == 'Z' || state == 'X' || state == 'x' ? MF_PROCESS_STATE_DEAD : MF_PROCESS_STATE_ALIVE;
        info.name = name.c_str();
        info.path = path.c_str();
        info.command_line = command_line.c_str();
        info.sys_arch = host_arch();
        info.proc_arch = arch_of_class(elf_class(ident));
        return true;
    }
};

// One line of /proc/PID/maps.
struct Mapping {
    uint64_t start = 0, end = 0, offset = 0;
    std::string perms, path;
};

std::vector<Mapping> maps_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
    if (!in) {
        throw plugin::Failure(MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE), "cannot read the maps of " + std::to_string(pid));
    }
    std::vector<Mapping> maps;
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        Mapping m;
        std::string range, dev, inode;
        char dash = 0;
        if (!(fields >> range >> m.perms >> std::hex >> m.offset >> dev >> inode)) {
            continue;
        }
        std::istringstream(range) >> std::hex >> m.start >> dash >> m.end;
        std::getline(fields >> std::ws, m.path);
        maps.push_back(std::move(m));
    }
    return maps;
}

class ProcfsProcess : public plugin::Process {
public:
    explicit ProcfsProcess(pid_t pid) : pid_(pid) {}

    size_t read(uint64_t addr, uint8_t *buf, size_t len) override { return transfer(addr, buf, len, false); }

    size_t write(uint64_t addr, const uint8_t *buf, size_t len) override {
        return transfer(addr, const_cast<uint8_t *>(buf), len, true);
    }

    MfProcessState state() override {
        Record r;
        return r.load(pid_) ? r.info.state : MF_PROCESS_STATE_DEAD;
    }

    // ELF images: a file's mapping at offset 0 and the later mappings of the same file.
    void module_list(const plugin::Emit<MfModuleInfo> &emit) override {
        struct Image {
            uint64_t base, end;
            std::string path;
        };
        std::vector<Image> images;
        std::map<std::string, size_t> latest;
        for (const Mapping &m : maps_of(pid_)) {
            if (m.path.empty() || m.path[0] != '/') {
                continue;
            }
            if (m.offset == 0) {
                latest[m.path] = images.size();
                images.push_back({m.start, m.end, m.path});
            } else if (auto it = latest.find(m.path); it != latest.end()) {
                images[it->second].end = std::max(images[it->second].end, m.end);
            }
        }
        for (Image &image : images) {
            unsigned char ident[5];
            if (transfer(image.base, ident, sizeof ident, false) != sizeof ident || !elf_class(ident)) {
                continue;
            }
            std::string path = utf8(image.path);
            MfModuleInfo info{};
            info.address = info.base = image.base;
            info.parent = static_cast<uint64_t>(pid_);
            info.size = image.end - image.base;
            info.path = path.c_str();
            info.name = path.c_str() + path.rfind('/') + 1;
            info.arch = arch_of_class(elf_class(ident));
            if (!emit(info)) {
                break;
            }
        }
    }

    void mapped_ranges(uint64_t start, uint64_t end, const plugin::Emit<MfMemoryRange> &emit) override {
        for (const Mapping &m : maps_of(pid_)) {
            if (m.perms.size() < 3 || m.perms[0] != 'r' || m.end <= start || m.start >= end) {
                continue;
            }
            MfMemoryRange range{m.start, m.end - m.start, MF_PAGE_USER};
            range.flags |= (m.perms[1] == 'w' ? MF_PAGE_WRITEABLE : 0) | (m.perms[2] != 'x' ? MF_PAGE_NOEXEC : 0);
            if (!emit(range)) {
                break;
            }
        }
    }

private:
    // One remote iovec per page, so the kernel stops at the first page that fails.
    size_t transfer(uint64_t addr, uint8_t *buf, size_t len, bool write) const {
        constexpr size_t page = 4096, max_iov = 1024;
        size_t done = 0;
        std::vector<iovec> remote;
        while (done < len) {
            remote.clear();
            size_t chunk = 0;
            while (remote.size() < max_iov && done + chunk < len) {
                uint64_t at = addr + done + chunk;
                size_t piece = std::min<size_t>(page - at % page, len - done - chunk);
                remote.push_back(iovec{reinterpret_cast<void *>(static_cast<uintptr_t>(at)), piece});
                chunk += piece;
            }
            iovec local{buf + done, chunk};
            ssize_t got = write ? process_vm_writev(pid_, &local, 1, remote.data(), remote.size(), 0)
                                : process_vm_readv(pid_, &local, 1, remote.data(), remote.size(), 0);
            if (got <= 0) {
                break;
            }
            done += static_cast<size_t>(got);
            if (static_cast<size_t>(got) < chunk) {
                break;
            }
        }
        return done;
    }

    pid_t pid_;
};

class Procfs : public plugin::Os {
public:
    Procfs(const std::string &args, plugin::Input) {
        if (!args.empty()) {
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT), "cpp_procfs: takes no arguments, got: " + args);
        }
        plugin::log(4, "cpp_procfs: reading processes from /proc");
    }

    MfOsInfo info() override {
        MfOsInfo out{};
        out.arch = host_arch();
        return out;
    }

    void process_list(const plugin::Emit<MfProcessInfo> &emit) override {
        for (const auto &entry : std::filesystem::directory_iterator("/proc")) {
            const std::string name = entry.path().filename().string();
            if (name.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            Record r;
            if (r.load(static_cast<pid_t>(std::stol(name))) && !emit(r.info)) {
                break;
            }
        }
    }

    void process_info(uint64_t address, const plugin::Emit<MfProcessInfo> &emit) override {
        Record r;
        if (address == 0 || address > 0x7fffffff || !r.load(static_cast<pid_t>(address))) {
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND), "cpp_procfs: no process " + std::to_string(address));
        }
        emit(r.info);
    }

    std::unique_ptr<plugin::ProcessBase> open_process(const MfProcessInfo &info) override {
        if (access(("/proc/" + std::to_string(info.pid) + "/stat").c_str(), R_OK) != 0) {
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_GONE), "cpp_procfs: the process is gone");
        }
        return std::make_unique<ProcfsProcess>(static_cast<pid_t>(info.pid));
    }
};

} // namespace

MEMFLOW_PLUGIN_EXPORT(Procfs, "cpp_procfs", "1.0.0", "This machine's processes from /proc (an OS layer in C++)",
                      "cpp_procfs\n  takes no arguments");
