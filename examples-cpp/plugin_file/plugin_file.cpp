// cpp_file: a connector plugin written in C++17 with the base classes of memflow.hpp.
//
//   cpp_file:/path/to/file     the file, read-only, as physical memory from address 0
//
// A class derived from memflow::plugin::Connector implements read() and metadata();
// MEMFLOW_PLUGIN_EXPORT turns it into the library's descriptor. The constructor gets the
// argument text; throwing there (a missing file) fails `create` with the exception's message.
#include <memflow.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

namespace plugin = memflow::plugin;

// The value of the argument text: `PATH` or `path=PATH`, where a value may be in double quotes
// with \" and \\ escapes (how the host writes values with special characters).
std::string path_argument(const std::string &args) {
    std::string text = args.rfind("path=", 0) == 0 ? args.substr(5) : args;
    if (text.size() < 2 || text.front() != '"') {
        return text;
    }
    std::string out;
    for (size_t i = 1; i + 1 < text.size(); i++) {
        out += text[i] == '\\' && i + 2 < text.size() ? text[++i] : text[i];
    }
    return out;
}

class File : public plugin::Connector {
public:
    explicit File(const std::string &args) : path_(path_argument(args)) {
        if (path_.empty()) {
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_CONNECTOR, MF_KIND_INVALID_ARGUMENT), "cpp_file: give a file path");
        }
        fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd_ < 0 || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
            int kind = fd_ < 0 && errno == ENOENT ? MF_KIND_NOT_FOUND : MF_KIND_IO;
            if (fd_ >= 0) {
                close(fd_);
            }
            throw plugin::Failure(MF_ERROR(MF_ORIGIN_CONNECTOR, kind), "cpp_file: cannot open " + path_);
        }
        size_ = static_cast<uint64_t>(st.st_size);
        plugin::log(3, "cpp_file: serving " + path_);
    }

    ~File() override { close(fd_); }
    File(const File &) = delete;
    File &operator=(const File &) = delete;

    size_t read(uint64_t addr, uint8_t *buf, size_t len) override {
        if (addr >= size_) {
            return 0;
        }
        len = static_cast<size_t>(std::min<uint64_t>(len, size_ - addr));
        size_t done = 0;
        while (done < len) {
            ssize_t n = pread(fd_, buf + done, len - done, static_cast<off_t>(addr + done));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            done += static_cast<size_t>(n);
        }
        return done;
    }

    MfCConnectorMetadata metadata() override { return MfCConnectorMetadata{size_ ? size_ - 1 : 0, size_, true}; }

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

} // namespace

MEMFLOW_PLUGIN_EXPORT(File, "cpp_file", "1.0.0", "A file as physical memory (a connector in C++)",
                      "cpp_file:PATH\n  PATH  the file to serve, read-only (also `path=`)");
