/* drainctl - placeholder main until issue #5 lands (see DESIGN.md §1). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("drainctl: not implemented yet (issue #5)\n");
        return 0;
    }
    fprintf(stderr, "drainctl: not implemented yet (issue #5)\n");
    return 1;
}
