/* fake_plugin.c: plugins that misbehave on purpose, for the host SDK's negotiation tests.
 * FAKE_KIND selects: 1 answers ABI 2.0 whatever the host asks; 2 answers 1.0 with a table
 * shorter than any 1.x table; 3 refuses every range with a reason. */
#include <stddef.h>
#include <stdio.h>

#include "chaski.h"

#if defined(__GNUC__)
#define EXPORT __attribute__((visibility("default")))
#else
#define EXPORT
#endif

EXPORT const chaski_api *chaski_plugin_entry(uint32_t min_version, uint32_t max_version, char *reason,
                                             size_t reason_cap);

static chaski_api g_table;

const chaski_api *chaski_plugin_entry(uint32_t min_version, uint32_t max_version, char *reason, size_t reason_cap)
{
    (void)min_version;
    (void)max_version;
    g_table.plugin_name = "fake";
    g_table.plugin_version = "0";
#if FAKE_KIND == 1
    g_table.struct_size = sizeof g_table;
    g_table.abi_version = CHASKI_ABI_VERSION(2, 0);
    return &g_table;
#elif FAKE_KIND == 2
    g_table.struct_size = (uint32_t)offsetof(chaski_api, job_submit);
    g_table.abi_version = CHASKI_ABI_VERSION(1, 0);
    return &g_table;
#else
    if (reason && reason_cap)
        snprintf(reason, reason_cap, "fake plugin speaks ABI 9.0..9.0 only");
    return NULL;
#endif
}
