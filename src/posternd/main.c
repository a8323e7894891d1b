/* main.c - posternd, the postern mail transfer agent daemon. */
#include <stdio.h>

#include "pst_config.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("posternd %s\n", PST_VERSION);
    return 0;
}
