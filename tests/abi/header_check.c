/* header_check.c: chaski.h and chaski_host.h compile cleanly as C11 and as C++17 (this file is
 * compiled both ways by ctest, with -Wall -Wextra -pedantic -Werror). */
#include "chaski.h"
#include "chaski_host.h"

int header_check(void);
int header_check(void)
{
    chaski_job_params p;
    CHASKI_INIT(&p);
    const chaski_api *api = 0;
    int has = CHASKI_API_HAS(api, score);
    return (int)p.struct_size + has + CHASKI_OK + (int)CHASKI_ABI_VERSION_MAJOR(CHASKI_ABI_CURRENT);
}
