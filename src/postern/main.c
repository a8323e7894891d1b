/* main.c - postern, the command-line tool. */
#include <stdio.h>

#include "pst_config.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("postern %s\n", PST_VERSION);
    return 0;
}
