/* tq_loader.h: a test-side model loader for quantized checkpoints: engine/model.c's mdl_load with the
 * quant hooks in place (what docs/quant.md asks model.c to call). Once model.c calls the hooks,
 * mdl_load loads the same directories and the tests run both. */
#ifndef CK_TESTS_QUANT_LOADER_H
#define CK_TESTS_QUANT_LOADER_H

#include "model.h"

ck_status tq_load(const char *dir, be_backend *be, mdl_model **out, ck_error *err);

#endif
