// llama.cpp's clip.cpp (examples/llava, llama.cpp c392e50) run on one image with an mmproj GGUF:
// writes the preprocessed image (clip_image_preprocess: size x size x 3 floats, HWC as clip.cpp holds
// it) and the image embedding (clip_image_batch_encode: n_patches x n_mmproj_embd floats), raw
// little-endian f32. Built and run by run_clipcpp.sh, outside llmforge's build (not part of it).
#include "clip.cpp"  // the whole translation unit: clip_image_f32's layout is private to it

int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s mmproj.gguf image.png pixels.f32 embedding.f32\n", argv[0]);
        return 2;
    }
    clip_ctx* ctx = clip_model_load(argv[1], 0);
    if (ctx == nullptr) return 1;
    clip_image_u8* img = clip_image_u8_init();
    if (!clip_image_load_from_file(argv[2], img)) return 1;
    clip_image_f32_batch batch{};
    if (!clip_image_preprocess(ctx, img, &batch) || batch.size != 1) return 1;
    const int n = clip_n_patches(ctx), d = clip_n_mmproj_embd(ctx);
    std::vector<float> out(static_cast<size_t>(n) * d);
    if (!clip_image_batch_encode(ctx, 1, &batch, out.data())) return 1;
    FILE* f = fopen(argv[3], "wb");
    fwrite(batch.data[0].buf.data(), sizeof(float), batch.data[0].buf.size(), f);
    fclose(f);
    f = fopen(argv[4], "wb");
    fwrite(out.data(), sizeof(float), out.size(), f);
    fclose(f);
    fprintf(stderr, "pixels %dx%dx3, embedding %d x %d\n", batch.data[0].nx, batch.data[0].ny, n, d);
    clip_free(ctx);
    return 0;
}
