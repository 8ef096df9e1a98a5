/* Small helpers shared by the C examples. */
#ifndef MEMFLOW_EXAMPLES_COMMON_H
#define MEMFLOW_EXAMPLES_COMMON_H

#include <memflow.h>

#include <stdio.h>
#include <stdlib.h>

/* Prints what failed with the library's detail of the last failure; returns 1 (an exit status). */
static inline int fail(const char *what)
{
    fprintf(stderr, "error: %s: %s\n", what, mf_last_error_message());
    return 1;
}

/* Opens process `spec` of OS layer `os`: a pid if it is all digits, otherwise a name. */
static inline int32_t open_process(MfOs *os, const char *spec, MfProcess **out)
{
    char *end = NULL;
    unsigned long pid = strtoul(spec, &end, 10);
    if (*spec != '\0' && *end == '\0')
        return mf_os_process_by_pid(os, (uint32_t)pid, out);
    return mf_os_process_by_name(os, spec, out);
}

#endif
