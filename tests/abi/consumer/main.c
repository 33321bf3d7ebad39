/* consumer: open a plugin through the installed host SDK and print the negotiated version. */
#include <stdio.h>

#include <chaski_host.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    chaski_host_plugin *p = NULL;
    char err[1024];
    if (chaski_host_open(argv[1], &p, err, sizeof err) != CHASKI_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint32_t v = chaski_host_version(p);
    printf("%s %u.%u\n", chaski_host_api(p)->plugin_name, (unsigned)CHASKI_ABI_VERSION_MAJOR(v),
           (unsigned)CHASKI_ABI_VERSION_MINOR(v));
    chaski_host_close(p);
    return 0;
}
