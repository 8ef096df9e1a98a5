/*
 * cbuffer: a memflow connector plugin written in plain C.
 *
 * Serves a file, or with no path a built-in 1 MiB buffer, as physical memory starting at
 * address 0. The built-in buffer is writable and each aligned 8-byte word of it holds its own
 * address (little endian); files are served read-only.
 *
 *   cbuffer                      the built-in buffer
 *   cbuffer:/path/to/file        a file (also `cbuffer:path=/path/to/file`)
 *
 * The plugin is a shared library exporting one symbol, MEMFLOW_PLUGIN. It links nothing but
 * libc and uses memflow.h only for the plugin types (the host's functions, logging and error
 * reasons, come in the MfCHost table, usable at any time). The inventory reads and checks the
 * descriptor from the file before loading it, and wraps the instances this code creates into
 * the same connector objects a Rust plugin produces. Calls into one instance are serialised
 * by the host, so nothing here needs locking.
 */
#define _POSIX_C_SOURCE 200809L /* pread, O_CLOEXEC */

#include <memflow.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An error code of this plugin: origin "connector" and an MF_KIND_* (the same encoding as
   every memflow code, see mf_error_origin() and mf_error_kind()). */
#define ERR(kind) (-((MF_ORIGIN_CONNECTOR << 8) | (kind)))

#define BUILTIN_SIZE (1u << 20)

typedef struct {
    int fd;          /* the served file, or -1 when serving the built-in buffer */
    uint8_t *buffer; /* the built-in buffer, or NULL */
    uint64_t size;   /* bytes served, at physical addresses 0 .. size-1 */
} Instance;

/* Logs "cbuffer: <what><detail>" through the host at `level`; an error (level 1) is also the
   reason of the error code the current call returns. A line too long for the buffer (a path
   can be 4 KiB) is cut and ends in "..." so the cut is visible. */
static void say(const MfCHost *host, uint32_t level, const char *what, const char *detail)
{
    char line[512];
    int n = snprintf(line, sizeof line, "cbuffer: %s%s", what, detail);
    if (n < 0) {
        host->log(level, "cbuffer: (a message could not be formatted)");
        return;
    }
    if ((size_t)n >= sizeof line)
        memcpy(line + sizeof line - 4, "...", 4);
    host->log(level, line);
    if (level == 1)
        host->reason(line);
}

/* Finds the path in the argument text: "PATH" or "path=PATH", where a value may be in double
   quotes with \" and \\ escapes (that is how the host writes values with special characters).
   Returns 1 with the path in `path`, 0 without a path, or a negative error code. */
static int32_t parse_args(const char *s, const MfCHost *host, char *path, size_t cap)
{
    int found = 0;
    while (*s) {
        size_t n = 0;
        int quoted = 0, keyed = 0;
        for (; *s && (quoted || *s != ','); s++) {
            char c = *s;
            if (c == '"') {
                quoted = !quoted;
                continue;
            }
            if (quoted && c == '\\' && s[1]) {
                c = *++s;
            } else if (!quoted && c == '=' && !keyed) { /* what came before is the key */
                path[n] = '\0';
                if (strcmp(path, "path") != 0) {
                    say(host, 1, "unknown argument (known: path): ", path);
                    return ERR(MF_KIND_INVALID_ARGUMENT);
                }
                keyed = 1;
                n = 0;
                continue;
            }
            if (n + 1 >= cap) {
                say(host, 1, "argument too long", "");
                return ERR(MF_KIND_INVALID_ARGUMENT);
            }
            path[n++] = c;
        }
        if (*s == ',')
            s++;
        path[n] = '\0';
        if (n == 0 && !keyed)
            continue; /* an empty element */
        if (found++) {
            say(host, 1, "more than one path given", "");
            return ERR(MF_KIND_INVALID_ARGUMENT);
        }
    }
    return found;
}

static int32_t cb_create(const char *args, void *user, const MfCHost *host, void **out)
{
    char path[4096];
    (void)user;
    int32_t rc = parse_args(args ? args : "", host, path, sizeof path);
    if (rc < 0)
        return rc;
    Instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return ERR(MF_KIND_OUT_OF_MEMORY);
    inst->fd = -1;
    if (rc == 1) {
        struct stat st;
        inst->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (inst->fd < 0 || fstat(inst->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            int kind = inst->fd < 0 && errno == ENOENT ? MF_KIND_NOT_FOUND : MF_KIND_IO;
            say(host, 1, inst->fd < 0 ? "cannot open " : "not a regular file: ", path);
            if (inst->fd >= 0)
                close(inst->fd);
            free(inst);
            return ERR(kind);
        }
        inst->size = (uint64_t)st.st_size;
        say(host, 3, "serving ", path);
    } else {
        inst->buffer = malloc(BUILTIN_SIZE);
        if (!inst->buffer) {
            free(inst);
            return ERR(MF_KIND_OUT_OF_MEMORY);
        }
        for (uint64_t a = 0; a < BUILTIN_SIZE; a++) /* byte i of word w: byte i of w's address */
            inst->buffer[a] = (uint8_t)((a & ~(uint64_t)7) >> (8 * (a & 7)));
        inst->size = BUILTIN_SIZE;
        host->log(3, "cbuffer: serving the built-in buffer");
    }
    *out = inst;
    return 0;
}

/* Reads what exists of [addr, addr+len); returns how many bytes from the start were read.
   The host counts the rest as unreadable (zero-filled, reported as a partial read). */
static int64_t cb_read(void *instance, uint64_t addr, uint8_t *buf, uint64_t len)
{
    Instance *inst = instance;
    if (addr >= inst->size)
        return 0;
    if (len > inst->size - addr)
        len = inst->size - addr;
    if (inst->buffer) {
        memcpy(buf, inst->buffer + addr, len);
        return (int64_t)len;
    }
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(inst->fd, buf + done, len - done, (off_t)(addr + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (uint64_t)n;
    }
    return (int64_t)done;
}

static int64_t cb_write(void *instance, uint64_t addr, const uint8_t *buf, uint64_t len)
{
    Instance *inst = instance;
    if (!inst->buffer || addr >= inst->size)
        return 0; /* files are read-only */
    if (len > inst->size - addr)
        len = inst->size - addr;
    memcpy(inst->buffer + addr, buf, len);
    return (int64_t)len;
}

static void cb_metadata(void *instance, MfCConnectorMetadata *out)
{
    const Instance *inst = instance;
    out->max_address = inst->size ? inst->size - 1 : 0;
    out->real_size = inst->size;
    out->readonly = inst->buffer == NULL;
}

static void cb_destroy(void *instance)
{
    Instance *inst = instance;
    if (inst->fd >= 0)
        close(inst->fd);
    free(inst->buffer);
    free(inst);
}

/* The descriptor, the only exported symbol (the library is built with hidden visibility).
   Everything up to `struct_size` is plain data the inventory checks in the file before loading
   the library. No `clone`: clones of the connector share one instance. `user` is NULL. */
__attribute__((visibility("default"))) const MfCConnectorPlugin MEMFLOW_PLUGIN = {
    .header = {
        .magic = "MEMFLOW",
        .abi_version = MF_PLUGIN_ABI_VERSION,
        .header_size = sizeof(MfPluginHeader),
        .kind = MF_PLUGIN_KIND_CONNECTOR,
        .flavor = MF_PLUGIN_FLAVOR_C,
        .umem_bits = 64, /* address width of the host (64 unless built with 128-bit addresses) */
        .name = "cbuffer",
        .version = "1.0.0",
        .description = "A file or a built-in buffer as physical memory (a plugin written in C)",
        .help = "cbuffer[:PATH]\n  PATH  the file to serve (also `path=`); without it a writable 1 MiB buffer",
    },
    .version = MF_C_PLUGIN_VERSION,
    .struct_size = sizeof(MfCConnectorPlugin),
    .create = cb_create,
    .read = cb_read,
    .write = cb_write,
    .metadata = cb_metadata,
    .destroy = cb_destroy,
};
