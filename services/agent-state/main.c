/* agent-state - placeholder main until issue #3 lands (see DESIGN.md §1). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("agent-state: not implemented yet (issue #3)\n");
        return 0;
    }
    fprintf(stderr, "agent-state: not implemented yet (issue #3)\n");
    return 1;
}
