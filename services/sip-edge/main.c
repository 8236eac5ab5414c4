/* sip-edge - placeholder main until issue #4 lands (see DESIGN.md §1). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("sip-edge: not implemented yet (issue #4)\n");
        return 0;
    }
    fprintf(stderr, "sip-edge: not implemented yet (issue #4)\n");
    return 1;
}
