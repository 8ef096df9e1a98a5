/* Warning: this file is copied by `cargo xtask headers` from memflow-ffi/cpp/memflow.hpp.in;
   edit that file and regenerate. The C++ wrappers are hand-written (cbindgen cannot produce
   RAII wrappers); the C API they wrap (memflow.h) is fully generated. */
/**
 * @file memflow.hpp
 * @brief C++17 wrappers of the memflow C API (memflow.h): RAII owners, exceptions, lambdas.
 *
 * - Owners (memflow::Inventory, Connector, Os, Process) are move-only and free their handle
 *   in the destructor with the one matching mf_*_free function. get() gives the raw handle
 *   for mixing with the C API; release() gives up ownership.
 * - Failing calls throw memflow::Error, which carries the C error code and the detail message
 *   (mf_last_error_message()). Reads offer the caller's choice on partial results:
 *   read_into() returns false for a partial read (unreadable bytes are zero) and throws on
 *   other errors; read<T>() and write() throw on partial results too (Error::is_partial()).
 * - Listing functions take any callable (lambdas included) receiving the borrowed C record
 *   (valid only during the call): returning `false` stops, returning `void` or `true` goes
 *   on. An exception thrown by the callable stops the listing and is rethrown to the caller.
 *   The value types ProcessInfo, ModuleInfo, ExportInfo, ImportInfo, SectionInfo and
 *   PluginInfo own copies of the strings; the functions returning std::vector copy an owned
 *   C list (mf_*_list) and free it.
 * - Threads: the C handles are safe to use from several threads at once (calls on one handle
 *   are serialised inside the library), so one owner (which holds nothing but its handle)
 *   may be used by many threads at once; calls on different objects run in parallel, so
 *   clone() one per thread to read in parallel. Moving, resetting or destroying an owner is not synchronised:
 *   do it while no other thread uses that owner object. A callable must not call back into
 *   the object whose listing invoked it (memflow::Error with MF_ERR_UNSUPPORTED).
 * - Dump files are memory-mapped: truncating or rewriting a dump in use raises SIGBUS (see
 *   memflow.h). Analyse a copy of a dump that may change.
 *
 * - Plugins: memflow::plugin (at the end of this file) has base classes for connectors and OS
 *   layers written in C++ and MEMFLOW_PLUGIN_EXPORT; a plugin uses no memflow library.
 *
 * This file is hand-written (cbindgen cannot produce RAII wrappers); memflow.h, the API it
 * wraps, is fully generated.
 */
#ifndef MEMFLOW_HPP
#define MEMFLOW_HPP

#if !defined(__cplusplus) || (defined(_MSVC_LANG) ? _MSVC_LANG : __cplusplus) < 201703L
#error "memflow.hpp needs C++17 or later: compile with -std=c++17 (or /std:c++17); from C, include memflow.h"
#endif

#include "memflow.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace memflow {

/** An error reported by the C API: its code (see MF_ERR_*, mf_error_kind()) and message. */
class Error : public std::runtime_error {
public:
    /** The error of the call that just failed on this thread with `code`. */
    explicit Error(int32_t code) : Error(code, mf_last_error_message()) {}

    /** An error with `code` and an explicit message (the code's description if empty). */
    Error(int32_t code, const char *message)
        : std::runtime_error(message != nullptr && *message != '\0' ? message : mf_error_string(code)),
          code_(code) {}

    /** The negative C error code. */
    int32_t code() const noexcept { return code_; }
    /** What went wrong, one of MF_KIND_*. */
    int32_t kind() const noexcept { return mf_error_kind(code_); }
    /** Where it came from, one of MF_ORIGIN_*. */
    int32_t origin() const noexcept { return mf_error_origin(code_); }
    /** True for a partial read or write (the rest of the operation was done). */
    bool is_partial() const noexcept { return code_ == MF_ERR_PARTIAL_READ || code_ == MF_ERR_PARTIAL_WRITE; }

private:
    int32_t code_;
};

namespace detail {

/** Throws memflow::Error for a negative code. */
inline void check(int32_t code) {
    if (code < 0) {
        throw Error(code);
    }
}

/** For reads: true if complete, false if partial; throws on other errors. */
inline bool check_read(int32_t code) {
    if (code == MF_ERR_PARTIAL_READ) {
        return false;
    }
    check(code);
    return true;
}

/** For single reads and writes that report their byte count: throws on errors other than a
 *  partial transfer. */
inline void check_some(int32_t code) {
    if (code != MF_ERR_PARTIAL_READ && code != MF_ERR_PARTIAL_WRITE) {
        check(code);
    }
}

/** A std::string from a C string that may be NULL. */
inline std::string text(const char *s) { return s != nullptr ? std::string(s) : std::string(); }

/** Passes C callbacks to a callable: `user` points to this object. */
template <class F, class Rec>
struct Trampoline {
    F &f;
    std::exception_ptr error{};

    static bool call(void *user, const Rec *rec) noexcept {
        auto *self = static_cast<Trampoline *>(user);
        try {
            if constexpr (std::is_void_v<std::invoke_result_t<F &, const Rec &>>) {
                std::invoke(self->f, *rec);
                return true;
            } else {
                return static_cast<bool>(std::invoke(self->f, *rec));
            }
        } catch (...) {
            self->error = std::current_exception();
            return false;
        }
    }

    /** Rethrows what the callable threw, else throws for a failed call. */
    void finish(int32_t code) {
        if (error) {
            std::rethrow_exception(error);
        }
        check(code);
    }
};

/** Owns a C handle, freed with `Free`. Move-only. */
template <class T, int32_t (*Free)(T *)>
class Owner {
public:
    Owner() noexcept = default;
    /** Takes ownership of `raw` (may be NULL). */
    explicit Owner(T *raw) noexcept : raw_(raw) {}
    Owner(const Owner &) = delete;
    Owner &operator=(const Owner &) = delete;
    Owner(Owner &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Owner &operator=(Owner &&other) noexcept {
        if (this != &other) {
            reset();
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    ~Owner() { reset(); }

    /** The raw handle, still owned by this object. */
    T *get() const noexcept { return raw_; }
    /** Gives up ownership: the caller frees the returned handle. */
    T *release() noexcept { return std::exchange(raw_, nullptr); }
    /** Frees the handle now (no-op if empty). */
    void reset() noexcept {
        if (raw_ != nullptr) {
            (void)Free(raw_);
            raw_ = nullptr;
        }
    }
    /** True if this object holds a handle. */
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    T *raw_ = nullptr;
};

/**
 * Copies the records of the owned C list that `make(&list)` creates into a vector of `Out`
 * (constructed from each record), then frees the list.
 */
template <class Out, class List, class Rec, int32_t (*Get)(const List *, const Rec **, size_t *),
          int32_t (*Free)(List *), class Make>
std::vector<Out> collect(Make &&make) {
    List *raw = nullptr;
    check(make(&raw));
    Owner<List, Free> list(raw);
    const Rec *items = nullptr;
    size_t len = 0;
    check(Get(list.get(), &items, &len));
    std::vector<Out> out;
    out.reserve(len);
    for (size_t i = 0; i < len; i++) {
        out.emplace_back(items[i]);
    }
    return out;
}

/** Ranges of an address space from a list made by `make(&list)`. */
template <class Make>
std::vector<MfMemoryRange> ranges(Make &&make) {
    return collect<MfMemoryRange, MfMemoryRangeList, MfMemoryRange, mf_memory_range_list_get,
                   mf_memory_range_list_free>(make);
}

} // namespace detail

/** The library version, e.g. "0.1.0". */
inline std::string_view version() { return mf_version(); }

/** Turns log output on at `level` (MF_LOG_*); safe to call again to change the level. */
inline void log_init(MfLogLevel level = MF_LOG_WARN) { detail::check(mf_log_init(level)); }

/** Changes the log output level (MF_LOG_*). */
inline void log_set_level(MfLogLevel level) { detail::check(mf_log_set_level(level)); }

namespace detail {
struct LogSlot {
    std::mutex lock;
    std::function<void(const MfLogRecord &)> f;
};
/** Never destroyed, so records logged during static destruction find it. */
inline LogSlot &log_slot() {
    static LogSlot *slot = new LogSlot();
    return *slot;
}
inline void log_trampoline(void *, const MfLogRecord *record) noexcept {
    LogSlot &slot = log_slot();
    std::lock_guard<std::mutex> guard(slot.lock);
    if (slot.f) {
        try {
            slot.f(*record);
        } catch (...) {
            // Nothing may unwind into the library; a throwing log callback loses the record.
        }
    }
}

/** Calls `write` (mf_dump_write or mf_os_dump_write) on `handle` with `progress` behind a
 *  C callback that returns false on an exception, which is rethrown after the call. */
template <class Handle>
MfDumpSummary dump(int32_t (*write)(Handle *, const char *, const MfDumpOptions *, MfDumpProgressCallback, void *,
                                    MfDumpSummary *),
                   Handle *handle, const std::string &path, const MfDumpOptions &options,
                   const std::function<bool(uint64_t, uint64_t)> &progress) {
    struct Progress {
        const std::function<bool(uint64_t, uint64_t)> &f;
        std::exception_ptr error{};
        static bool call(void *user, uint64_t done, uint64_t total) noexcept {
            auto *self = static_cast<Progress *>(user);
            try {
                return self->f(done, total);
            } catch (...) {
                self->error = std::current_exception();
                return false;
            }
        }
    } state{progress};
    MfDumpSummary out{};
    int32_t code = write(handle, path.c_str(), &options, progress ? &Progress::call : nullptr, &state, &out);
    if (state.error) {
        std::rethrow_exception(state.error);
    }
    check(code);
    return out;
}
} // namespace detail

/**
 * Sends log records to `callback` (any callable taking `const MfLogRecord &`, whose strings
 * are valid only during the call) instead of stderr; an empty function restores stderr.
 * Must not be called from inside the callback.
 */
inline void log_set_callback(std::function<void(const MfLogRecord &)> callback) {
    detail::LogSlot &slot = detail::log_slot();
    const bool set = static_cast<bool>(callback);
    {
        std::lock_guard<std::mutex> guard(slot.lock);
        slot.f = std::move(callback);
    }
    detail::check(mf_log_set_callback(set ? &detail::log_trampoline : nullptr, nullptr));
}

/** A process record with owned strings. */
struct ProcessInfo {
    uint64_t address = 0;          /**< The OS layer's handle for the process. */
    uint32_t pid = 0;              /**< Process id. */
    uint32_t ppid = 0;             /**< Parent process id, 0 if not known. */
    MfProcessState state = MF_PROCESS_STATE_UNKNOWN; /**< Run state when listed. */
    std::string name;              /**< Short name. */
    std::string path;              /**< Executable path, empty if not known. */
    std::string command_line;      /**< Command line, empty if not known. */
    MfArchitecture sys_arch{};     /**< Architecture of the system. */
    MfArchitecture proc_arch{};    /**< Architecture of the process. */
    uint64_t table_root = 0;       /**< Page-table root, 0 if none. */
    uint64_t table_root_2 = 0;     /**< Second table root, 0 if none. */

    ProcessInfo() = default;
    /** Copies a borrowed C record. */
    explicit ProcessInfo(const MfProcessInfo &c)
        : address(c.address), pid(c.pid), ppid(c.ppid), state(c.state), name(detail::text(c.name)),
          path(detail::text(c.path)), command_line(detail::text(c.command_line)), sys_arch(c.sys_arch),
          proc_arch(c.proc_arch), table_root(c.table_root), table_root_2(c.table_root_2) {}
};

/** A module record with owned strings. */
struct ModuleInfo {
    uint64_t address = 0;   /**< The OS layer's handle for the module. */
    uint64_t parent = 0;    /**< The handle of its process (0 for kernel modules). */
    uint64_t base = 0;      /**< Where it is mapped. */
    uint64_t size = 0;      /**< Bytes it spans. */
    std::string name;       /**< Short name. */
    std::string path;       /**< Full path, empty if not known. */
    MfArchitecture arch{};  /**< Architecture of its code. */

    ModuleInfo() = default;
    /** Copies a borrowed C record. */
    explicit ModuleInfo(const MfModuleInfo &c)
        : address(c.address), parent(c.parent), base(c.base), size(c.size), name(detail::text(c.name)),
          path(detail::text(c.path)), arch(c.arch) {}

    /** A C record borrowing this object's strings (valid while this object is unchanged). */
    MfModuleInfo c() const noexcept {
        MfModuleInfo m{};
        m.address = address;
        m.parent = parent;
        m.base = base;
        m.size = size;
        m.name = name.c_str();
        m.path = path.c_str();
        m.arch = arch;
        return m;
    }
};

/** An export of a module, with an owned name. */
struct ExportInfo {
    std::string name;   /**< Symbol name. */
    uint64_t offset = 0; /**< Offset from the module base. */

    ExportInfo() = default;
    /** Copies a borrowed C record. */
    explicit ExportInfo(const MfExportInfo &c) : name(detail::text(c.name)), offset(c.offset) {}
};

/** A kernel symbol, with owned strings. */
struct KernelSymbolInfo {
    std::string name;    /**< Symbol name. */
    uint64_t address = 0; /**< Its address. */
    char kind = 0;       /**< Its type letter (`'T'`, `'t'`, `'D'`, ...). */
    std::string module;  /**< The kernel module it belongs to, empty for the kernel image. */

    KernelSymbolInfo() = default;
    /** Copies a borrowed C record. */
    explicit KernelSymbolInfo(const MfKernelSymbolInfo &c)
        : name(detail::text(c.name)), address(c.address), kind(c.kind), module(detail::text(c.module)) {}
};

/** An import of a module, with an owned name. */
struct ImportInfo {
    std::string name;   /**< Symbol name. */
    uint64_t offset = 0; /**< Offset of the slot the loader fills, 0 if none. */

    ImportInfo() = default;
    /** Copies a borrowed C record. */
    explicit ImportInfo(const MfImportInfo &c) : name(detail::text(c.name)), offset(c.offset) {}
};

/** A section of a module, with an owned name. */
struct SectionInfo {
    std::string name;  /**< Section name. */
    uint64_t base = 0; /**< Virtual address of its start. */
    uint64_t size = 0; /**< Size in bytes. */

    SectionInfo() = default;
    /** Copies a borrowed C record. */
    explicit SectionInfo(const MfSectionInfo &c) : name(detail::text(c.name)), base(c.base), size(c.size) {}
};

/** A plugin as the inventory knows it, with owned strings. */
struct PluginInfo {
    std::string name;        /**< Name used in chains. */
    std::string version;     /**< Plugin version. */
    std::string description; /**< One-line description. */
    std::string help;        /**< Accepted arguments. */
    std::string path;        /**< Library file, empty for built-in plugins. */
    MfPluginKind kind = 0;   /**< MF_PLUGIN_KIND_CONNECTOR or MF_PLUGIN_KIND_OS. */
    MfPluginFlavor flavor = 0; /**< MF_PLUGIN_FLAVOR_RUST or MF_PLUGIN_FLAVOR_C. */

    PluginInfo() = default;
    /** Copies a borrowed C record. */
    explicit PluginInfo(const MfPluginInfo &c)
        : name(detail::text(c.name)), version(detail::text(c.version)), description(detail::text(c.description)),
          help(detail::text(c.help)), path(detail::text(c.path)), kind(c.kind), flavor(c.flavor) {}
};

/** A plugin file the inventory refused (owned copy of MfRefusedFile). */
struct RefusedFile {
    std::string path;   /**< The file. */
    int32_t code = 0;   /**< What failed, as an error code. */
    std::string reason; /**< Why. */

    RefusedFile() = default;
    /** Copies a borrowed C record. */
    explicit RefusedFile(const MfRefusedFile &c) : path(detail::text(c.path)), code(c.code), reason(detail::text(c.reason)) {}
};

/** A connector: physical memory and CPU state of a target. */
class Connector : public detail::Owner<MfConnector, mf_connector_free> {
public:
    using Owner::Owner;

    /** An independent copy, to read in parallel on another thread. */
    Connector clone() const {
        MfConnector *out = nullptr;
        detail::check(mf_connector_clone(get(), &out));
        return Connector(out);
    }

    /** Reads `len` bytes at physical `addr`: true if complete, false if partial (the
     *  unreadable bytes are zero); throws on other errors. */
    bool read_into(uint64_t addr, void *buf, size_t len) {
        return detail::check_read(mf_connector_read(get(), addr, buf, len, nullptr));
    }

    /** Reads `len` bytes at physical `addr`: how many from the start were read before the first
     *  unreadable one (`len` if all; the unreadable bytes are zero); throws on other errors. */
    size_t read_some(uint64_t addr, void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_connector_read(get(), addr, buf, len, &done));
        return done;
    }

    /** Reads a value at physical `addr`; throws on any failure, partial reads included. */
    template <class T>
    T read(uint64_t addr) {
        static_assert(std::is_trivially_copyable_v<T>, "read<T> needs a trivially copyable type");
        T value{};
        detail::check(mf_connector_read(get(), addr, &value, sizeof value, nullptr));
        return value;
    }

    /** Reads many ranges in one batch: true if all were complete; each op's `result` says. */
    bool read_batch(MfReadOp *ops, size_t count) { return detail::check_read(mf_connector_read_batch(get(), ops, count)); }

    /** Writes `len` bytes at physical `addr`; throws on any failure, partial writes included. */
    void write(uint64_t addr, const void *buf, size_t len) { detail::check(mf_connector_write(get(), addr, buf, len, nullptr)); }

    /** Writes `len` bytes at physical `addr`: how many from the start were written before the
     *  first that was not; throws on other errors (a read-only connector included). */
    size_t write_some(uint64_t addr, const void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_connector_write(get(), addr, buf, len, &done));
        return done;
    }

    /** Writes a value at physical `addr`. */
    template <class T>
    void write(uint64_t addr, const T &value) {
        static_assert(std::is_trivially_copyable_v<T>, "write<T> needs a trivially copyable type");
        write(addr, &value, sizeof value);
    }

    /** Size and flags of the physical memory. */
    MfPhysicalMetadata metadata() const {
        MfPhysicalMetadata out{};
        detail::check(mf_connector_metadata(get(), &out));
        return out;
    }

    /** How many CPUs the connector has register state for (0 if none). */
    size_t cpu_count() const {
        size_t out = 0;
        detail::check(mf_connector_cpu_count(get(), &out));
        return out;
    }

    /** The x86 registers of CPU `cpu`. */
    MfX86Registers x86_registers(size_t cpu) const {
        MfX86Registers out{};
        detail::check(mf_connector_x86_registers(get(), cpu, &out));
        return out;
    }

    /** The AArch64 registers of CPU `cpu`. */
    MfAArch64Registers aarch64_registers(size_t cpu) const {
        MfAArch64Registers out{};
        detail::check(mf_connector_aarch64_registers(get(), cpu, &out));
        return out;
    }

    /** The RISC-V registers of CPU `cpu` (`satp_valid` says whether `satp` is known). */
    MfRiscVRegisters riscv_registers(size_t cpu) const {
        MfRiscVRegisters out{};
        detail::check(mf_connector_riscv_registers(get(), cpu, &out));
        return out;
    }

    /** Writes the physical memory to the file `path` (see mf_dump_write: unreadable pages are
     *  left out and counted, the file appears complete or not at all). `progress` (optional)
     *  receives the bytes done and in total and returns false to stop: the call then throws
     *  an Error of kind MF_KIND_CANCELLED. An exception from `progress` stops the dump and is
     *  rethrown. */
    MfDumpSummary dump(const std::string &path, const MfDumpOptions &options,
                       const std::function<bool(uint64_t done, uint64_t total)> &progress = {}) {
        return detail::dump(mf_dump_write, get(), path, options, progress);
    }
};

/** An open process: its virtual memory, translation, modules and symbols. */
class Process : public detail::Owner<MfProcess, mf_process_free> {
public:
    using Owner::Owner;

    /** An independent copy, to read in parallel on another thread; it outlives this one. */
    Process clone() const {
        MfProcess *out = nullptr;
        detail::check(mf_process_clone(get(), &out));
        return Process(out);
    }

    /** The process's facts as they were when it was opened. */
    ProcessInfo info() const {
        MfProcessInfo out{};
        detail::check(mf_process_info(get(), &out));
        return ProcessInfo(out);
    }

    /** The current run state, one of MF_PROCESS_STATE_*. */
    MfProcessState state() {
        MfProcessState out = MF_PROCESS_STATE_UNKNOWN;
        detail::check(mf_process_state(get(), &out));
        return out;
    }

    /** Reads `len` bytes at `addr`: true if complete, false if partial; throws otherwise. */
    bool read_into(uint64_t addr, void *buf, size_t len) {
        return detail::check_read(mf_process_read(get(), addr, buf, len, nullptr));
    }

    /** Reads `len` bytes at `addr`: how many from the start were read before the first
     *  unreadable one (`len` if all; the unreadable bytes are zero); throws on other errors. */
    size_t read_some(uint64_t addr, void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_process_read(get(), addr, buf, len, &done));
        return done;
    }

    /** Reads a value at `addr`; throws on any failure, partial reads included. */
    template <class T>
    T read(uint64_t addr) {
        static_assert(std::is_trivially_copyable_v<T>, "read<T> needs a trivially copyable type");
        T value{};
        detail::check(mf_process_read(get(), addr, &value, sizeof value, nullptr));
        return value;
    }

    /** Reads many ranges in one batch: true if all were complete; each op's `result` says. */
    bool read_batch(MfReadOp *ops, size_t count) { return detail::check_read(mf_process_read_batch(get(), ops, count)); }

    /** Writes `len` bytes at `addr`; throws on any failure, partial writes included. */
    void write(uint64_t addr, const void *buf, size_t len) { detail::check(mf_process_write(get(), addr, buf, len, nullptr)); }

    /** Writes `len` bytes at `addr`: how many from the start were written before the first that
     *  was not; throws on other errors. */
    size_t write_some(uint64_t addr, const void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_process_write(get(), addr, buf, len, &done));
        return done;
    }

    /** Writes a value at `addr`. */
    template <class T>
    void write(uint64_t addr, const T &value) {
        static_assert(std::is_trivially_copyable_v<T>, "write<T> needs a trivially copyable type");
        write(addr, &value, sizeof value);
    }

    /** Calls `f(const MfModuleInfo &)` for every module. */
    template <class F>
    void module_list(F &&f) {
        detail::Trampoline<F, MfModuleInfo> t{f};
        t.finish(mf_process_module_list_callback(get(), &decltype(t)::call, &t));
    }

    /** Every module, as owned records. */
    std::vector<ModuleInfo> modules() {
        return detail::collect<ModuleInfo, MfModuleList, MfModuleInfo, mf_module_list_get, mf_module_list_free>(
            [&](MfModuleList **out) { return mf_process_module_list(get(), out); });
    }

    /** The first module named `name` (ASCII case-insensitive). */
    ModuleInfo module_by_name(const std::string &name) {
        MfModuleInfo out{};
        detail::check(mf_process_module_by_name(get(), name.c_str(), &out));
        return ModuleInfo(out);
    }

    /** The main executable's module. */
    ModuleInfo primary_module() {
        MfModuleInfo out{};
        detail::check(mf_process_primary_module(get(), &out));
        return ModuleInfo(out);
    }

    /** Calls `f(const MfExportInfo &)` for every export of `module`. */
    template <class F>
    void exports(const ModuleInfo &module, F &&f) {
        const MfModuleInfo m = module.c();
        detail::Trampoline<F, MfExportInfo> t{f};
        t.finish(mf_process_module_exports(get(), &m, &decltype(t)::call, &t));
    }

    /** Calls `f(const MfImportInfo &)` for every import of `module`. */
    template <class F>
    void imports(const ModuleInfo &module, F &&f) {
        const MfModuleInfo m = module.c();
        detail::Trampoline<F, MfImportInfo> t{f};
        t.finish(mf_process_module_imports(get(), &m, &decltype(t)::call, &t));
    }

    /** Calls `f(const MfSectionInfo &)` for every section of `module`. */
    template <class F>
    void sections(const ModuleInfo &module, F &&f) {
        const MfModuleInfo m = module.c();
        detail::Trampoline<F, MfSectionInfo> t{f};
        t.finish(mf_process_module_sections(get(), &m, &decltype(t)::call, &t));
    }

    /** Every export of `module`, as owned records. */
    std::vector<ExportInfo> exports(const ModuleInfo &module) {
        const MfModuleInfo m = module.c();
        return detail::collect<ExportInfo, MfExportList, MfExportInfo, mf_export_list_get, mf_export_list_free>(
            [&](MfExportList **out) { return mf_process_module_export_list(get(), &m, out); });
    }

    /** Every import of `module`, as owned records. */
    std::vector<ImportInfo> imports(const ModuleInfo &module) {
        const MfModuleInfo m = module.c();
        return detail::collect<ImportInfo, MfImportList, MfImportInfo, mf_import_list_get, mf_import_list_free>(
            [&](MfImportList **out) { return mf_process_module_import_list(get(), &m, out); });
    }

    /** Every section of `module`, as owned records. */
    std::vector<SectionInfo> sections(const ModuleInfo &module) {
        const MfModuleInfo m = module.c();
        return detail::collect<SectionInfo, MfSectionList, MfSectionInfo, mf_section_list_get, mf_section_list_free>(
            [&](MfSectionList **out) { return mf_process_module_section_list(get(), &m, out); });
    }

    /** The address of export `name` of `module`. */
    uint64_t export_address(const ModuleInfo &module, const std::string &name) {
        const MfModuleInfo m = module.c();
        uint64_t out = 0;
        detail::check(mf_process_export_address(get(), &m, name.c_str(), &out));
        return out;
    }

    /** Calls `f(const MfMemoryRange &)` for the mapped ranges between `start` and `end`,
     *  merging neighbours with equal flags at most `gap_size` bytes apart. */
    template <class F, class = std::enable_if_t<std::is_invocable_v<F &, const MfMemoryRange &>>>
    void mapped_ranges(F &&f, int64_t gap_size = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        detail::Trampoline<F, MfMemoryRange> t{f};
        t.finish(mf_process_mapped_ranges(get(), gap_size, start, end, &decltype(t)::call, &t));
    }

    /** The mapped ranges between `start` and `end` (as mapped_ranges(f, ...)). */
    std::vector<MfMemoryRange> mapped_ranges(int64_t gap_size = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        return detail::ranges([&](MfMemoryRangeList **out) {
            return mf_process_mapped_range_list(get(), gap_size, start, end, out);
        });
    }

    /** The physical address of virtual `addr`. */
    uint64_t virt_to_phys(uint64_t addr) {
        uint64_t out = 0;
        detail::check(mf_process_virt_to_phys(get(), addr, &out));
        return out;
    }

    /** Translates `count` ops in one batch; each op's `result` says whether it translated. */
    void virt_to_phys(MfTranslateOp *ops, size_t count) { detail::check(mf_process_virt_to_phys_batch(get(), ops, count)); }

    /** Calls `f(const MfMemoryRange &)` for the ranges the page tables map between `start`
     *  and `end`, merging neighbours with equal flags at most `gap` bytes apart. */
    template <class F, class = std::enable_if_t<std::is_invocable_v<F &, const MfMemoryRange &>>>
    void page_map(F &&f, uint64_t gap = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        detail::Trampoline<F, MfMemoryRange> t{f};
        t.finish(mf_process_page_map_callback(get(), gap, start, end, &decltype(t)::call, &t));
    }

    /** The ranges the page tables map (as page_map(f, ...)). */
    std::vector<MfMemoryRange> page_map(uint64_t gap = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        return detail::ranges([&](MfMemoryRangeList **out) { return mf_process_page_map(get(), gap, start, end, out); });
    }
};

/** Where an address lies: a kernel symbol and the offset into it. */
struct SymbolAt {
    std::string name;     /**< Symbol name. */
    uint64_t offset = 0;  /**< The address minus the symbol's address. */
};

/** An OS layer: processes, kernel modules and symbols. */
class Os : public detail::Owner<MfOs, mf_os_free> {
public:
    using Owner::Owner;

    /** An independent copy, to read in parallel on another thread. */
    Os clone() const {
        MfOs *out = nullptr;
        detail::check(mf_os_clone(get(), &out));
        return Os(out);
    }

    /** Kernel base, size and architecture. */
    MfOsInfo info() const {
        MfOsInfo out{};
        detail::check(mf_os_info(get(), &out));
        return out;
    }

    /** Calls `f(const MfProcessInfo &)` for every process. */
    template <class F>
    void process_list(F &&f) {
        detail::Trampoline<F, MfProcessInfo> t{f};
        t.finish(mf_os_process_list_callback(get(), &decltype(t)::call, &t));
    }

    /** Every process, as owned records. */
    std::vector<ProcessInfo> processes() {
        return detail::collect<ProcessInfo, MfProcessList, MfProcessInfo, mf_process_list_get, mf_process_list_free>(
            [&](MfProcessList **out) { return mf_os_process_list(get(), out); });
    }

    /** Every process named exactly `name` (empty if none). */
    std::vector<ProcessInfo> processes_by_name(const std::string &name) {
        return detail::collect<ProcessInfo, MfProcessList, MfProcessInfo, mf_process_list_get, mf_process_list_free>(
            [&](MfProcessList **out) { return mf_os_process_list_by_name(get(), name.c_str(), out); });
    }

    /** Opens the process with id `pid`. */
    Process process_by_pid(uint32_t pid) {
        MfProcess *out = nullptr;
        detail::check(mf_os_process_by_pid(get(), pid, &out));
        return Process(out);
    }

    /** Opens the first process named exactly `name`. */
    Process process_by_name(const std::string &name) {
        MfProcess *out = nullptr;
        detail::check(mf_os_process_by_name(get(), name.c_str(), &out));
        return Process(out);
    }

    /** Opens the process with OS handle `address` (ProcessInfo::address). */
    Process process_by_address(uint64_t address) {
        MfProcess *out = nullptr;
        detail::check(mf_os_process_by_address(get(), address, &out));
        return Process(out);
    }

    /** Calls `f(const MfModuleInfo &)` for every kernel module. */
    template <class F>
    void kernel_modules(F &&f) {
        detail::Trampoline<F, MfModuleInfo> t{f};
        t.finish(mf_os_module_list_callback(get(), &decltype(t)::call, &t));
    }

    /** The address of kernel symbol `name`. */
    uint64_t kernel_symbol(const std::string &name) {
        uint64_t out = 0;
        detail::check(mf_os_kernel_symbol(get(), name.c_str(), &out));
        return out;
    }

    /** Reads kernel virtual memory: true if complete, false if partial; throws otherwise. */
    bool read_into(uint64_t addr, void *buf, size_t len) { return detail::check_read(mf_os_read(get(), addr, buf, len, nullptr)); }

    /** Reads kernel virtual memory: how many bytes from the start were read before the first
     *  unreadable one (`len` if all); throws on other errors. */
    size_t read_some(uint64_t addr, void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_os_read(get(), addr, buf, len, &done));
        return done;
    }

    /** Reads a value of kernel virtual memory; throws on any failure, partial reads included. */
    template <class T>
    T read(uint64_t addr) {
        static_assert(std::is_trivially_copyable_v<T>, "read<T> needs a trivially copyable type");
        T value{};
        detail::check(mf_os_read(get(), addr, &value, sizeof value, nullptr));
        return value;
    }

    /** Writes `len` bytes of kernel virtual memory; throws on any failure, partial writes included. */
    void write(uint64_t addr, const void *buf, size_t len) { detail::check(mf_os_write(get(), addr, buf, len, nullptr)); }

    /** Writes kernel virtual memory: how many bytes from the start were written before the
     *  first that was not; throws on other errors (read-only memory included). */
    size_t write_some(uint64_t addr, const void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_os_write(get(), addr, buf, len, &done));
        return done;
    }

    /** Writes a value to kernel virtual memory. */
    template <class T>
    void write(uint64_t addr, const T &value) {
        static_assert(std::is_trivially_copyable_v<T>, "write<T> needs a trivially copyable type");
        write(addr, &value, sizeof value);
    }

    /** The physical address of kernel virtual `addr`. */
    uint64_t virt_to_phys(uint64_t addr) {
        uint64_t out = 0;
        detail::check(mf_os_virt_to_phys(get(), addr, &out));
        return out;
    }

    /** Translates `count` kernel addresses in one batch; each op's `result` says whether it
     *  translated. */
    void virt_to_phys(MfTranslateOp *ops, size_t count) { detail::check(mf_os_virt_to_phys_batch(get(), ops, count)); }

    /** Calls `f(const MfMemoryRange &)` for the mapped ranges of the kernel address space
     *  between `start` and `end`, merging neighbours with equal flags at most `gap` bytes apart. */
    template <class F, class = std::enable_if_t<std::is_invocable_v<F &, const MfMemoryRange &>>>
    void page_map(F &&f, uint64_t gap = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        detail::Trampoline<F, MfMemoryRange> t{f};
        t.finish(mf_os_page_map_callback(get(), gap, start, end, &decltype(t)::call, &t));
    }

    /** The mapped ranges of the kernel address space (as page_map(f, ...)). */
    std::vector<MfMemoryRange> page_map(uint64_t gap = 0, uint64_t start = 0, uint64_t end = UINT64_MAX) {
        return detail::ranges([&](MfMemoryRangeList **out) { return mf_os_page_map(get(), gap, start, end, out); });
    }

    /** Reads physical memory of the connector below: true if complete, false if partial. */
    bool phys_read_into(uint64_t addr, void *buf, size_t len) {
        return detail::check_read(mf_os_phys_read(get(), addr, buf, len, nullptr));
    }

    /** Reads physical memory of the connector below: how many bytes from the start were read
     *  before the first unreadable one (`len` if all); throws on other errors. */
    size_t phys_read_some(uint64_t addr, void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_os_phys_read(get(), addr, buf, len, &done));
        return done;
    }

    /** Reads a value of physical memory; throws on any failure, partial reads included. */
    template <class T>
    T phys_read(uint64_t addr) {
        static_assert(std::is_trivially_copyable_v<T>, "phys_read<T> needs a trivially copyable type");
        T value{};
        detail::check(mf_os_phys_read(get(), addr, &value, sizeof value, nullptr));
        return value;
    }

    /** Writes `len` bytes of physical memory; throws on any failure, partial writes included. */
    void phys_write(uint64_t addr, const void *buf, size_t len) {
        detail::check(mf_os_phys_write(get(), addr, buf, len, nullptr));
    }

    /** Writes physical memory of the connector below: how many bytes from the start were
     *  written before the first that was not; throws on other errors (read-only memory
     *  included). */
    size_t phys_write_some(uint64_t addr, const void *buf, size_t len) {
        size_t done = 0;
        detail::check_some(mf_os_phys_write(get(), addr, buf, len, &done));
        return done;
    }

    /** Reads many physical ranges in one batch: true if all were complete; each op's `result` says. */
    bool phys_read_batch(MfReadOp *ops, size_t count) { return detail::check_read(mf_os_phys_read_batch(get(), ops, count)); }

    /** Writes many physical ranges in one batch; throws if any was not written fully. */
    void phys_write_batch(MfWriteOp *ops, size_t count) { detail::check(mf_os_phys_write_batch(get(), ops, count)); }

    /** Size and flags of the physical memory below. */
    MfPhysicalMetadata phys_metadata() {
        MfPhysicalMetadata out{};
        detail::check(mf_os_phys_metadata(get(), &out));
        return out;
    }

    /** How many CPUs the connector below has register state for (0 if none). */
    size_t cpu_count() const {
        size_t out = 0;
        detail::check(mf_os_cpu_count(get(), &out));
        return out;
    }

    /** The x86 registers of CPU `cpu`, as the connector below recorded them. */
    MfX86Registers x86_registers(size_t cpu) const {
        MfX86Registers out{};
        detail::check(mf_os_x86_registers(get(), cpu, &out));
        return out;
    }

    /** The AArch64 registers of CPU `cpu`, as the connector below recorded them. */
    MfAArch64Registers aarch64_registers(size_t cpu) const {
        MfAArch64Registers out{};
        detail::check(mf_os_aarch64_registers(get(), cpu, &out));
        return out;
    }

    /** The RISC-V registers of CPU `cpu`, as the connector below recorded them. */
    MfRiscVRegisters riscv_registers(size_t cpu) const {
        MfRiscVRegisters out{};
        detail::check(mf_os_riscv_registers(get(), cpu, &out));
        return out;
    }

    /** Writes the physical memory below the layer to the file `path`, with the layer's
     *  architecture and the kernel's VMCOREINFO when it finds one (see mf_os_dump_write);
     *  `progress` as for Connector::dump. */
    MfDumpSummary dump(const std::string &path, const MfDumpOptions &options,
                       const std::function<bool(uint64_t done, uint64_t total)> &progress = {}) {
        return detail::dump(mf_os_dump_write, get(), path, options, progress);
    }

    /** Every kernel module, as owned records. */
    std::vector<ModuleInfo> kernel_module_list() {
        return detail::collect<ModuleInfo, MfModuleList, MfModuleInfo, mf_module_list_get, mf_module_list_free>(
            [&](MfModuleList **out) { return mf_os_kernel_module_list(get(), out); });
    }

    /** The first kernel module named `name` (ASCII case-insensitive). */
    ModuleInfo kernel_module_by_name(const std::string &name) {
        return detail::collect<ModuleInfo, MfModuleList, MfModuleInfo, mf_module_list_get, mf_module_list_free>(
                   [&](MfModuleList **out) { return mf_os_kernel_module_by_name(get(), name.c_str(), out); })
            .at(0);
    }

    /** The kernel module whose range holds `address`. */
    ModuleInfo kernel_module_by_address(uint64_t address) {
        return detail::collect<ModuleInfo, MfModuleList, MfModuleInfo, mf_module_list_get, mf_module_list_free>(
                   [&](MfModuleList **out) { return mf_os_kernel_module_by_address(get(), address, out); })
            .at(0);
    }

    /** Calls `f(const MfExportInfo &)` for every export of the kernel module `module`. */
    template <class F>
    void kernel_module_exports(const ModuleInfo &module, F &&f) {
        const MfModuleInfo m = module.c();
        detail::Trampoline<F, MfExportInfo> t{f};
        t.finish(mf_os_kernel_module_exports(get(), &m, &decltype(t)::call, &t));
    }

    /** Every export of the kernel module `module`, as owned records. */
    std::vector<ExportInfo> kernel_module_export_list(const ModuleInfo &module) {
        const MfModuleInfo m = module.c();
        return detail::collect<ExportInfo, MfExportList, MfExportInfo, mf_export_list_get, mf_export_list_free>(
            [&](MfExportList **out) { return mf_os_kernel_module_export_list(get(), &m, out); });
    }

    /** Calls `f(const MfSectionInfo &)` for every section of the kernel module `module`. */
    template <class F>
    void kernel_module_sections(const ModuleInfo &module, F &&f) {
        const MfModuleInfo m = module.c();
        detail::Trampoline<F, MfSectionInfo> t{f};
        t.finish(mf_os_kernel_module_sections(get(), &m, &decltype(t)::call, &t));
    }

    /** Every section of the kernel module `module`, as owned records. */
    std::vector<SectionInfo> kernel_module_section_list(const ModuleInfo &module) {
        const MfModuleInfo m = module.c();
        return detail::collect<SectionInfo, MfSectionList, MfSectionInfo, mf_section_list_get, mf_section_list_free>(
            [&](MfSectionList **out) { return mf_os_kernel_module_section_list(get(), &m, out); });
    }

    /** The kernel symbol `address` lies in, and the offset into it. */
    SymbolAt kernel_symbol_by_address(uint64_t address) {
        std::string name(64, '\0');
        size_t len = 0;
        uint64_t offset = 0;
        detail::check(mf_os_kernel_symbol_by_address(get(), address, name.data(), name.size(), &len, &offset));
        if (len >= name.size()) {
            name.resize(len + 1);
            detail::check(mf_os_kernel_symbol_by_address(get(), address, name.data(), name.size(), &len, &offset));
        }
        name.resize(len);
        return SymbolAt{name, offset};
    }

    /** Calls `f(const MfKernelSymbolInfo &)` for every kernel symbol (image, then modules). */
    template <class F>
    void kernel_symbols(F &&f) {
        detail::Trampoline<F, MfKernelSymbolInfo> t{f};
        t.finish(mf_os_kernel_symbol_list_callback(get(), &decltype(t)::call, &t));
    }

    /** Every kernel symbol (image, then modules), copied. */
    std::vector<KernelSymbolInfo> kernel_symbol_list() {
        return detail::collect<KernelSymbolInfo, MfKernelSymbolList, MfKernelSymbolInfo, mf_kernel_symbol_list_get,
                               mf_kernel_symbol_list_free>(
            [&](MfKernelSymbolList **out) { return mf_os_kernel_symbol_list(get(), out); });
    }

    /** The offset of `member` (a dotted path) in the kernel structure `structure`. */
    uint64_t type_offset(const std::string &structure, const std::string &member) {
        uint64_t out = 0;
        detail::check(mf_os_type_offset(get(), structure.c_str(), member.c_str(), &out));
        return out;
    }

    /** The size of the kernel structure `structure`. */
    uint64_t type_size(const std::string &structure) {
        uint64_t out = 0;
        detail::check(mf_os_type_size(get(), structure.c_str(), &out));
        return out;
    }
};

/** The plugins available to the program. */
class Inventory : public detail::Owner<MfInventory, mf_inventory_free> {
public:
    using Owner::Owner;

    /** Built-in plugins plus those in the default directories (see mf_inventory_scan()). */
    static Inventory scan() {
        MfInventory *out = nullptr;
        detail::check(mf_inventory_scan(&out));
        return Inventory(out);
    }

    /** Only the built-in plugins. */
    static Inventory builtin() {
        MfInventory *out = nullptr;
        detail::check(mf_inventory_builtin(&out));
        return Inventory(out);
    }

    /** Adds the plugin libraries in `dir`; returns how many were added. */
    size_t add_dir(const std::string &dir) {
        size_t added = 0;
        detail::check(mf_inventory_add_dir(get(), dir.c_str(), &added));
        return added;
    }

    /** Adds one plugin library (throws with the reason if it is refused). */
    void add_file(const std::string &path) { detail::check(mf_inventory_add_file(get(), path.c_str())); }

    /** Every known plugin. */
    std::vector<PluginInfo> plugins() const {
        size_t count = 0;
        detail::check(mf_inventory_plugin_count(get(), &count));
        std::vector<PluginInfo> out;
        out.reserve(count);
        for (size_t i = 0; i < count; i++) {
            MfPluginInfo info{};
            detail::check(mf_inventory_plugin_at(get(), i, &info));
            out.emplace_back(info);
        }
        return out;
    }

    /** The plugin files refused while scanning or adding directories, with the reason. */
    std::vector<RefusedFile> refused() const {
        size_t count = 0;
        detail::check(mf_inventory_refused_count(get(), &count));
        std::vector<RefusedFile> out;
        out.reserve(count);
        for (size_t i = 0; i < count; i++) {
            MfRefusedFile file{};
            detail::check(mf_inventory_refused_at(get(), i, &file));
            out.emplace_back(file);
        }
        return out;
    }

    /** Creates connector `name` with `args`, optionally on top of OS layer `input`. */
    Connector create_connector(const std::string &name, const std::string &args = "", const Os *input = nullptr) const {
        MfConnector *out = nullptr;
        detail::check(mf_inventory_create_connector(get(), name.c_str(), args.c_str(), input != nullptr ? input->get() : nullptr, &out));
        return Connector(out);
    }

    /** Creates OS layer `name` with `args`, optionally on top of connector `input`. */
    Os create_os(const std::string &name, const std::string &args = "", const Connector *input = nullptr) const {
        MfOs *out = nullptr;
        detail::check(mf_inventory_create_os(get(), name.c_str(), args.c_str(), input != nullptr ? input->get() : nullptr, &out));
        return Os(out);
    }

    /** Builds a chain ending in an OS layer, e.g. "native" or "coredump:/dump.elf -> linux". */
    Os create_chain(const std::string &chain) const {
        MfOs *out = nullptr;
        detail::check(mf_inventory_create_chain(get(), chain.c_str(), &out));
        return Os(out);
    }

    /** Builds a chain ending in a connector, e.g. "coredump:/dump.elf". */
    Connector create_connector_chain(const std::string &chain) const {
        MfConnector *out = nullptr;
        detail::check(mf_inventory_create_connector_chain(get(), chain.c_str(), &out));
        return Connector(out);
    }
};

/**
 * Writing plugins in C++: derive from memflow::plugin::Connector or memflow::plugin::Os (and,
 * for its processes, memflow::plugin::Process or memflow::plugin::TranslatedProcess), then
 * export the class with MEMFLOW_PLUGIN_EXPORT(Type, "name", "version", "description", "help").
 *
 * - The class is constructed with the argument text (`std::string`; a connector) or with the
 *   text and the connector below it (`Input`; an OS layer) and destroyed by the host.
 * - An exception thrown by any member never crosses into the host: memflow::plugin::Failure
 *   becomes its own code, std::bad_alloc MF_KIND_OUT_OF_MEMORY, anything else
 *   MF_KIND_UNKNOWN, each with its what() as the error's reason.
 * - Members a class does not override fail with MF_KIND_UNSUPPORTED (an Os without
 *   process_info() finds the process in its list).
 * - The host serialises the calls into one instance (an OS and its processes count as one).
 * - A plugin uses only the types of memflow.h and this part of memflow.hpp: it links no memflow
 *   library (only the C++ runtime).
 */
namespace plugin {

/** Thrown inside a plugin to fail the current call with `code` (MF_ERROR(origin, kind)) and
 *  `why` as the reason the caller sees. */
class Failure : public std::runtime_error {
public:
    Failure(int32_t code, const std::string &why) : std::runtime_error(why), code_(code) {}
    /** The negative error code the call returns. */
    int32_t code() const noexcept { return code_; }

private:
    int32_t code_;
};

namespace detail {

/** The host table (set when the first instance is created; static in the host). */
inline const MfCHost *&host() noexcept {
    static const MfCHost *table = nullptr;
    return table;
}

/** Gives the host the reason of the error the current call returns. */
inline void reason(const char *why) noexcept {
    if (host() != nullptr) {
        host()->reason(why);
    }
}

/** Runs `body`; an exception becomes an error code of `origin` (its what() the reason). */
template <class Body>
int32_t guard(int32_t origin, Body &&body) noexcept {
    try {
        body();
        return 0;
    } catch (const Failure &e) {
        reason(e.what());
        return e.code() < 0 ? e.code() : MF_ERROR(origin, MF_KIND_UNKNOWN);
    } catch (const std::bad_alloc &) {
        reason("out of memory");
        return MF_ERROR(origin, MF_KIND_OUT_OF_MEMORY);
    } catch (const std::exception &e) {
        reason(e.what());
        return MF_ERROR(origin, MF_KIND_UNKNOWN);
    } catch (...) {
        reason("an exception that is not a std::exception");
        return MF_ERROR(origin, MF_KIND_UNKNOWN);
    }
}

/** A byte count or, for a failed call, its (negative) code. */
template <class Body>
int64_t count_or_code(int32_t origin, Body &&body) noexcept {
    int64_t done = 0;
    int32_t code = guard(origin, [&] { done = static_cast<int64_t>(body()); });
    return code != 0 ? code : done;
}

/** The failure of a member a plugin did not override. */
[[noreturn]] inline void unsupported(int32_t origin, const char *what) {
    throw Failure(MF_ERROR(origin, MF_KIND_UNSUPPORTED), std::string(what) + " is not implemented by this plugin");
}

/** Copies `text` into a NUL-padded header field (cut to fit). */
template <size_t N>
constexpr void field(uint8_t (&out)[N], const char *text) {
    for (size_t i = 0; i + 1 < N && text[i] != '\0'; i++) {
        out[i] = static_cast<uint8_t>(text[i]);
    }
}

/** The header of a C-flavor plugin descriptor. */
constexpr MfPluginHeader header(uint32_t kind, const char *name, const char *version, const char *description,
                                const char *help) {
    MfPluginHeader h{};
    const char magic[] = MF_PLUGIN_MAGIC;
    for (size_t i = 0; i < sizeof magic; i++) {
        h.magic[i] = static_cast<uint8_t>(magic[i]);
    }
    h.abi_version = MF_PLUGIN_ABI_VERSION;
    h.header_size = sizeof(MfPluginHeader);
    h.kind = kind;
    h.flavor = MF_PLUGIN_FLAVOR_C;
    h.umem_bits = 64;
    field(h.name, name);
    field(h.version, version);
    field(h.description, description);
    field(h.help, help);
    return h;
}

} // namespace detail

/** Logs `message` through the host at `level` (1 error ... 5 trace); any time, any thread. */
inline void log(uint32_t level, const std::string &message) noexcept {
    if (detail::host() != nullptr) {
        detail::host()->log(level, message.c_str());
    }
}

/** Hands records to the host's callback: returns false when the host wants no more. */
template <class Rec>
class Emit {
public:
    Emit(bool (*callback)(void *, const Rec *), void *context) noexcept : callback_(callback), context_(context) {}
    /** Reports one record (borrowed for the call). */
    bool operator()(const Rec &record) const { return callback_(context_, &record); }

private:
    bool (*callback_)(void *, const Rec *);
    void *context_;
};

/** The connector below an OS layer (absent without one). Failing calls throw Failure. */
class Input {
public:
    explicit Input(const MfCConnectorInput *table) noexcept : table_(table) {}
    /** True if the OS layer has a connector below it. */
    explicit operator bool() const noexcept { return table_ != nullptr; }
    /** Reads up to `len` bytes at physical `addr`: the bytes read from the start. */
    size_t read(uint64_t addr, void *buf, size_t len) const {
        int64_t n = need()->read(table_->connector, addr, static_cast<uint8_t *>(buf), len);
        if (n < 0) {
            throw Failure(static_cast<int32_t>(n), "reading physical memory failed");
        }
        return static_cast<size_t>(n);
    }
    /** A plain value at physical `addr`; throws if not all of it could be read. */
    template <class T>
    T read(uint64_t addr) const {
        static_assert(std::is_trivially_copyable_v<T>, "read<T> needs a trivially copyable T");
        T value{};
        if (read(addr, &value, sizeof value) != sizeof value) {
            throw Failure(MF_ERR_PARTIAL_READ, "physical memory is not readable there");
        }
        return value;
    }
    /** The connector's metadata. */
    MfCConnectorMetadata metadata() const {
        MfCConnectorMetadata m{};
        need()->metadata(table_->connector, &m);
        return m;
    }
    /** CPUs with register state. */
    size_t cpu_count() const { return need()->cpu_count(table_->connector); }
    /** The registers of CPU `cpu`. */
    MfX86Registers x86_registers(size_t cpu) const {
        MfX86Registers r{};
        int32_t code = need()->x86_registers(table_->connector, cpu, &r);
        if (code != 0) {
            throw Failure(code, "no registers for CPU " + std::to_string(cpu));
        }
        return r;
    }
    /** The C table (for the batch entries). */
    const MfCConnectorInput *table() const noexcept { return table_; }

private:
    const MfCConnectorInput *need() const {
        if (table_ == nullptr) {
            throw Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_INVALID_ARGUMENT), "the OS layer has no connector below it");
        }
        return table_;
    }
    const MfCConnectorInput *table_;
};

/** A connector: derive, implement read() and metadata(), construct from the argument text. */
class Connector {
public:
    virtual ~Connector() = default;
    /** Reads up to `len` bytes at physical `addr`; returns how many from the start were read. */
    virtual size_t read(uint64_t addr, uint8_t *buf, size_t len) = 0;
    /** Writes; returns how many bytes from the start were written. Default: read-only. */
    virtual size_t write(uint64_t addr, const uint8_t *buf, size_t len) {
        (void)addr, (void)buf, (void)len;
        throw Failure(MF_ERROR(MF_ORIGIN_CONNECTOR, MF_KIND_READ_ONLY), "this connector is read-only");
    }
    /** Size, highest address, read-only flag. */
    virtual MfCConnectorMetadata metadata() = 0;
    /** CPUs with register state (default none). */
    virtual size_t cpu_count() { return 0; }
    /** The registers of CPU `cpu`. */
    virtual MfX86Registers x86_registers(size_t cpu) {
        throw Failure(MF_ERROR(MF_ORIGIN_CONNECTOR, MF_KIND_NOT_FOUND), "no CPU state for CPU " + std::to_string(cpu));
    }
};

/** What every process of an OS layer can tell; derive from Process or TranslatedProcess. */
class ProcessBase {
public:
    virtual ~ProcessBase() = default;
    /** True if the host reads the memory by translating (TranslatedProcess). */
    virtual bool translated() const noexcept = 0;
    /** The current run state. */
    virtual MfProcessState state() { return MF_PROCESS_STATE_UNKNOWN; }
    /** Reports every module. */
    virtual void module_list(const Emit<MfModuleInfo> &emit) {
        (void)emit;
        detail::unsupported(MF_ORIGIN_PROCESS, "module_list");
    }
    /** Reports the mapped ranges overlapping [start, end) (the host clips and merges them). */
    virtual void mapped_ranges(uint64_t start, uint64_t end, const Emit<MfMemoryRange> &emit) {
        (void)start, (void)end, (void)emit;
        detail::unsupported(MF_ORIGIN_PROCESS, "mapped_ranges");
    }
    /** Reports the exports of `module`. */
    virtual void module_exports(const MfModuleInfo &module, const Emit<MfExportInfo> &emit) {
        (void)module, (void)emit;
        detail::unsupported(MF_ORIGIN_PROCESS, "module_exports");
    }
    /** Reports the imports of `module`. */
    virtual void module_imports(const MfModuleInfo &module, const Emit<MfImportInfo> &emit) {
        (void)module, (void)emit;
        detail::unsupported(MF_ORIGIN_PROCESS, "module_imports");
    }
    /** Reports the sections of `module`. */
    virtual void module_sections(const MfModuleInfo &module, const Emit<MfSectionInfo> &emit) {
        (void)module, (void)emit;
        detail::unsupported(MF_ORIGIN_PROCESS, "module_sections");
    }
};

/** A process that reads (and may write) its memory itself. */
class Process : public ProcessBase {
public:
    bool translated() const noexcept final { return false; }
    /** Reads up to `len` bytes at virtual `addr`; returns how many from the start were read. */
    virtual size_t read(uint64_t addr, uint8_t *buf, size_t len) = 0;
    /** Writes; returns how many bytes from the start were written. Default: read-only. */
    virtual size_t write(uint64_t addr, const uint8_t *buf, size_t len) {
        (void)addr, (void)buf, (void)len;
        throw Failure(MF_ERROR(MF_ORIGIN_PROCESS, MF_KIND_READ_ONLY), "this process is read-only");
    }
};

/** A process whose memory the host reads by translating with the page-table roots and
 *  architecture (`sys_arch`) of its record. */
class TranslatedProcess : public ProcessBase {
public:
    bool translated() const noexcept final { return true; }
};

/** An OS layer: derive, implement info(), process_list() and open_process(), construct from
 *  the argument text and the Input below. */
class Os {
public:
    virtual ~Os() = default;
    /** Facts about the OS (asked once, after construction). */
    virtual MfOsInfo info() = 0;
    /** Reports every process. */
    virtual void process_list(const Emit<MfProcessInfo> &emit) = 0;
    /** Opens a process this OS listed. */
    virtual std::unique_ptr<ProcessBase> open_process(const MfProcessInfo &info) = 0;
    /** Reports the process with handle `address`; by default found in process_list(). */
    virtual void process_info(uint64_t address, const Emit<MfProcessInfo> &emit) {
        bool found = false;
        struct Find {
            uint64_t address;
            const Emit<MfProcessInfo> &emit;
            bool &found;
            static bool call(void *self, const MfProcessInfo *p) {
                auto *f = static_cast<Find *>(self);
                if (p->address != f->address) {
                    return true;
                }
                f->found = true;
                f->emit(*p);
                return false;
            }
        } find{address, emit, found};
        process_list(Emit<MfProcessInfo>(&Find::call, &find));
        if (!found) {
            throw Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND), "no process with handle " + std::to_string(address));
        }
    }
    /** Reports the kernel modules. */
    virtual void module_list(const Emit<MfModuleInfo> &emit) {
        (void)emit;
        detail::unsupported(MF_ORIGIN_OS, "module_list");
    }
    /** The address of the kernel symbol `name`. */
    virtual uint64_t kernel_symbol(const char *name) {
        (void)name;
        detail::unsupported(MF_ORIGIN_OS, "kernel_symbol");
    }
    /** Reports every kernel symbol. */
    virtual void kernel_symbol_list(const Emit<MfKernelSymbolInfo> &emit) {
        (void)emit;
        detail::unsupported(MF_ORIGIN_OS, "kernel_symbol_list");
    }
};

namespace detail {

/** The C entries of connector class T. */
template <class T>
struct ConnectorShim {
    static T &self(void *instance) noexcept { return *static_cast<T *>(instance); }
    static int32_t create(const char *args, void *, const MfCHost *table, void **out) noexcept {
        host() = table;
        return guard(MF_ORIGIN_CONNECTOR, [&] { *out = new T(std::string(args != nullptr ? args : "")); });
    }
    static int64_t read(void *i, uint64_t addr, uint8_t *buf, uint64_t len) noexcept {
        return count_or_code(MF_ORIGIN_CONNECTOR, [&] { return self(i).read(addr, buf, static_cast<size_t>(len)); });
    }
    static int64_t write(void *i, uint64_t addr, const uint8_t *buf, uint64_t len) noexcept {
        return count_or_code(MF_ORIGIN_CONNECTOR, [&] { return self(i).write(addr, buf, static_cast<size_t>(len)); });
    }
    static void metadata(void *i, MfCConnectorMetadata *out) noexcept {
        (void)guard(MF_ORIGIN_CONNECTOR, [&] { *out = self(i).metadata(); });
    }
    static size_t cpu_count(void *i) noexcept {
        size_t n = 0;
        (void)guard(MF_ORIGIN_CONNECTOR, [&] { n = self(i).cpu_count(); });
        return n;
    }
    static int32_t x86_registers(void *i, size_t cpu, MfX86Registers *out) noexcept {
        return guard(MF_ORIGIN_CONNECTOR, [&] { *out = self(i).x86_registers(cpu); });
    }
    static void destroy(void *i) noexcept { delete static_cast<T *>(i); }
};

/** The C entries of an OS layer's processes. */
struct ProcessShim {
    static ProcessBase &self(void *p) noexcept { return *static_cast<ProcessBase *>(p); }
    static Process &reader(void *p) noexcept { return *static_cast<Process *>(static_cast<ProcessBase *>(p)); }
    static void destroy(void *p) noexcept { delete static_cast<ProcessBase *>(p); }
    static int64_t read(void *p, uint64_t addr, uint8_t *buf, uint64_t len) noexcept {
        return count_or_code(MF_ORIGIN_PROCESS, [&] { return reader(p).read(addr, buf, static_cast<size_t>(len)); });
    }
    static int64_t write(void *p, uint64_t addr, const uint8_t *buf, uint64_t len) noexcept {
        return count_or_code(MF_ORIGIN_PROCESS, [&] { return reader(p).write(addr, buf, static_cast<size_t>(len)); });
    }
    static MfProcessState state(void *p) noexcept {
        MfProcessState s = MF_PROCESS_STATE_UNKNOWN;
        (void)guard(MF_ORIGIN_PROCESS, [&] { s = self(p).state(); });
        return s;
    }
    static int32_t module_list(void *p, MfModuleInfoCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_PROCESS, [&] { self(p).module_list(Emit<MfModuleInfo>(cb, ctx)); });
    }
    static int32_t mapped_ranges(void *p, uint64_t start, uint64_t end, MfMemoryRangeCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_PROCESS, [&] { self(p).mapped_ranges(start, end, Emit<MfMemoryRange>(cb, ctx)); });
    }
    static int32_t exports(void *p, const MfModuleInfo *m, MfExportCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_PROCESS, [&] { self(p).module_exports(*m, Emit<MfExportInfo>(cb, ctx)); });
    }
    static int32_t imports(void *p, const MfModuleInfo *m, MfImportCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_PROCESS, [&] { self(p).module_imports(*m, Emit<MfImportInfo>(cb, ctx)); });
    }
    static int32_t sections(void *p, const MfModuleInfo *m, MfSectionCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_PROCESS, [&] { self(p).module_sections(*m, Emit<MfSectionInfo>(cb, ctx)); });
    }

    /** The table of a process; without `read` for one the host translates. */
    static constexpr MfCProcessTable table(bool reads) {
        MfCProcessTable t{};
        t.version = MF_C_PLUGIN_VERSION;
        t.struct_size = sizeof(MfCProcessTable);
        t.destroy = destroy;
        t.read = reads ? read : nullptr;
        t.write = reads ? write : nullptr;
        t.state = state;
        t.module_list = module_list;
        t.mapped_ranges = mapped_ranges;
        t.module_exports = exports;
        t.module_imports = imports;
        t.module_sections = sections;
        return t;
    }
};

/** The tables of processes that read their memory and of processes the host translates. */
inline constexpr MfCProcessTable PROCESS_READS = ProcessShim::table(true);
inline constexpr MfCProcessTable PROCESS_TRANSLATED = ProcessShim::table(false);

/** The C entries of OS layer class T. */
template <class T>
struct OsShim {
    static T &self(void *os) noexcept { return *static_cast<T *>(os); }
    static int32_t create(const char *args, void *, const MfCHost *table, const MfCConnectorInput *input,
                          void **out) noexcept {
        host() = table;
        return guard(MF_ORIGIN_OS, [&] { *out = new T(std::string(args != nullptr ? args : ""), Input(input)); });
    }
    static void destroy(void *os) noexcept { delete static_cast<T *>(os); }
    static int32_t info(void *os, MfOsInfo *out) noexcept {
        return guard(MF_ORIGIN_OS, [&] { *out = self(os).info(); });
    }
    static int32_t process_list(void *os, MfProcessInfoCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_OS, [&] { self(os).process_list(Emit<MfProcessInfo>(cb, ctx)); });
    }
    static int32_t process_info(void *os, uint64_t address, MfProcessInfoCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_OS, [&] { self(os).process_info(address, Emit<MfProcessInfo>(cb, ctx)); });
    }
    static int32_t process_open(void *os, const MfProcessInfo *info, MfCOpenedProcess *out) noexcept {
        return guard(MF_ORIGIN_OS, [&] {
            std::unique_ptr<ProcessBase> p = self(os).open_process(*info);
            if (!p) {
                throw Failure(MF_ERROR(MF_ORIGIN_OS, MF_KIND_NOT_FOUND), "open_process returned no process");
            }
            out->table = p->translated() ? &PROCESS_TRANSLATED : &PROCESS_READS;
            out->process = static_cast<ProcessBase *>(p.release());
        });
    }
    static int32_t module_list(void *os, MfModuleInfoCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_OS, [&] { self(os).module_list(Emit<MfModuleInfo>(cb, ctx)); });
    }
    static int32_t kernel_symbol(void *os, const char *name, uint64_t *out) noexcept {
        return guard(MF_ORIGIN_OS, [&] { *out = self(os).kernel_symbol(name); });
    }
    static int32_t kernel_symbol_list(void *os, MfKernelSymbolCallback cb, void *ctx) noexcept {
        return guard(MF_ORIGIN_OS, [&] { self(os).kernel_symbol_list(Emit<MfKernelSymbolInfo>(cb, ctx)); });
    }
};

} // namespace detail

/** The descriptor of plugin class T: an MfCConnectorPlugin for a Connector, an MfCOsPlugin
 *  for an Os. Use it through MEMFLOW_PLUGIN_EXPORT. */
template <class T>
constexpr auto descriptor(const char *name, const char *version, const char *description, const char *help) {
    if constexpr (std::is_base_of_v<Connector, T>) {
        using S = detail::ConnectorShim<T>;
        MfCConnectorPlugin d{};
        d.header = detail::header(MF_PLUGIN_KIND_CONNECTOR, name, version, description, help);
        d.version = MF_C_PLUGIN_VERSION;
        d.struct_size = sizeof(MfCConnectorPlugin);
        d.create = S::create;
        d.read = S::read;
        d.write = S::write;
        d.metadata = S::metadata;
        d.destroy = S::destroy;
        d.cpu_count = S::cpu_count;
        d.x86_registers = S::x86_registers;
        return d;
    } else {
        static_assert(std::is_base_of_v<Os, T>, "a plugin class derives from memflow::plugin::Connector or Os");
        using S = detail::OsShim<T>;
        MfCOsPlugin d{};
        d.header = detail::header(MF_PLUGIN_KIND_OS, name, version, description, help);
        d.version = MF_C_PLUGIN_VERSION;
        d.struct_size = sizeof(MfCOsPlugin);
        d.create = S::create;
        d.destroy = S::destroy;
        d.info = S::info;
        d.process_list = S::process_list;
        d.process_open = S::process_open;
        d.process_info = S::process_info;
        d.module_list = S::module_list;
        d.kernel_symbol = S::kernel_symbol;
        d.kernel_symbol_list = S::kernel_symbol_list;
        return d;
    }
}

} // namespace plugin

/**
 * Exports plugin class `Type` (a memflow::plugin::Connector or memflow::plugin::Os) as the
 * library's MEMFLOW_PLUGIN descriptor, named `name` in chains. The descriptor is a constant:
 * the inventory reads it from the file before loading the library. Build the library with
 * hidden visibility, so that it exports nothing else.
 */
#define MEMFLOW_PLUGIN_EXPORT(Type, name, version, description, help)                                              \
    extern "C" __attribute__((visibility("default")))                                                              \
    const decltype(::memflow::plugin::descriptor<Type>("", "", "", "")) MEMFLOW_PLUGIN =                           \
        ::memflow::plugin::descriptor<Type>(name, version, description, help)

} // namespace memflow

#endif /* MEMFLOW_HPP */
