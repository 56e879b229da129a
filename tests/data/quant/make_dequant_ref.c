/* make_dequant_ref.c: llama.cpp's own dequantisation of the fixtures here, for bit-exact tests.
 *
 * Run by hand (never by the tests), against a llama.cpp build (these outputs: c392e5094):
 *   gcc -O1 -I/work/llama.cpp/ggml/include make_dequant_ref.c -o /tmp/make_dequant_ref \
 *       -L/work/llamacpp-build/bin -lggml -lggml-base -Wl,-rpath,/work/llamacpp-build/bin
 *   cd tests/data/quant && /tmp/make_dequant_ref dequant_ref.bin
 *
 * For every tiny-<T>.gguf listed below (T = Q4_0 ... BF16, no imatrix) and each of the tensors
 * blk.0.attn_q.weight and blk.0.ffn_down.weight, it takes rows 0..3 and writes the rows' bytes
 * as stored in the file and their floats as ggml's type traits to_float gives them.
 *
 * dequant_ref.bin layout (little endian, no padding):
 *   char     magic[4] = "LFDQ"
 *   uint32   version  = 1
 *   uint32   n_records
 *   n_records times:
 *     char     tag[16]       the fixture's <T>, NUL-padded ("Q4_K_S")
 *     char     tensor[48]    GGUF tensor name, NUL-padded
 *     uint32   ggml_type     the tensor's GGML type id (GGML_TYPE_*)
 *     uint32   n_per_row     elements per row (ne[0])
 *     uint32   row0          first row taken
 *     uint32   n_rows        rows taken
 *     uint32   row_bytes     bytes per stored row
 *     uint8    data[n_rows * row_bytes]   the rows as stored in the GGUF file
 *     float32  deq[n_rows * n_per_row]    ggml's dequantisation of them
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

static void put_u32(FILE* f, uint32_t v) { fwrite(&v, 4, 1, f); }

static void put_str(FILE* f, const char* s, size_t width) {
    char buf[64] = {0};
    strncpy(buf, s, width - 1);
    fwrite(buf, 1, width, f);
}

int main(int argc, char** argv) {
    const char* out_path = argc > 1 ? argv[1] : "dequant_ref.bin";
    static const char* tags[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                                 "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "F16", "BF16"};
    static const char* tensors[] = {"blk.0.attn_q.weight", "blk.0.ffn_down.weight"};
    const int n_tags = sizeof(tags) / sizeof(tags[0]);
    const int n_tensors = sizeof(tensors) / sizeof(tensors[0]);
    const uint32_t row0 = 0, n_rows = 4;

    FILE* out = fopen(out_path, "wb");
    if (!out) { perror(out_path); return 1; }
    fwrite("LFDQ", 1, 4, out);
    put_u32(out, 1);
    put_u32(out, (uint32_t)(n_tags * n_tensors));

    for (int t = 0; t < n_tags; ++t) {
        char path[256];
        snprintf(path, sizeof path, "tiny-%s.gguf", tags[t]);
        struct ggml_context* meta = NULL;
        struct gguf_init_params params = {/*no_alloc=*/false, /*ctx=*/&meta};
        struct gguf_context* g = gguf_init_from_file(path, params);
        if (!g) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        for (int k = 0; k < n_tensors; ++k) {
            struct ggml_tensor* w = ggml_get_tensor(meta, tensors[k]);
            if (!w) { fprintf(stderr, "%s: no tensor %s\n", path, tensors[k]); return 1; }
            const int64_t ne0 = w->ne[0];
            const size_t row_bytes = ggml_row_size(w->type, ne0);
            const struct ggml_type_traits* tr = ggml_get_type_traits(w->type);
            if (!tr->to_float && w->type != GGML_TYPE_F32) {
                fprintf(stderr, "%s: no to_float for %s\n", path, ggml_type_name(w->type));
                return 1;
            }
            put_str(out, tags[t], 16);
            put_str(out, tensors[k], 48);
            put_u32(out, (uint32_t)w->type);
            put_u32(out, (uint32_t)ne0);
            put_u32(out, row0);
            put_u32(out, n_rows);
            put_u32(out, (uint32_t)row_bytes);
            const uint8_t* base = (const uint8_t*)w->data + (size_t)row0 * w->nb[1];
            for (uint32_t r = 0; r < n_rows; ++r) fwrite(base + r * w->nb[1], 1, row_bytes, out);
            float* deq = malloc(sizeof(float) * (size_t)ne0);
            for (uint32_t r = 0; r < n_rows; ++r) {
                const void* row = base + r * w->nb[1];
                if (w->type == GGML_TYPE_F32) memcpy(deq, row, sizeof(float) * (size_t)ne0);
                else tr->to_float(row, deq, ne0);
                fwrite(deq, sizeof(float), (size_t)ne0, out);
            }
            free(deq);
            printf("%-8s %-24s %-6s ne0=%lld row_bytes=%zu\n", tags[t], tensors[k],
                   ggml_type_name(w->type), (long long)ne0, row_bytes);
        }
        gguf_free(g);
        ggml_free(meta);
    }
    fclose(out);
    return 0;
}
