/*
 * fuzz_envelope.c - libFuzzer harness for the queue envelope decoder.
 * Whatever decodes must encode again, and that encoding must decode to
 * the same encoding (the codec's promise: what is written can be read).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pst_envelope *env = NULL, *again = NULL;
    char *json = NULL, *json2 = NULL;

    if (pst_envelope_from_json((const char *)data, size, &env) != 0)
        return 0;
    if (pst_envelope_to_json(env, &json) != 0)
        abort();
    if (pst_envelope_from_json(json, strlen(json), &again) != 0)
        abort();
    if (pst_envelope_to_json(again, &json2) != 0 || strcmp(json, json2) != 0)
        abort();
    free(json);
    free(json2);
    pst_envelope_free(env);
    pst_envelope_free(again);
    return 0;
}
