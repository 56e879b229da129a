#include "runtime/multimodal.h"

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "runtime/chat.h"
#include "runtime/sampler.h"

namespace llmforge {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarkers[] = {"<image>", "<__media__>"};

// The first marker at or after `from`: its offset and length (npos when none).
std::pair<size_t, size_t> next_marker(std::string_view text, size_t from) {
    size_t best = std::string_view::npos, len = 0;
    for (std::string_view m : kMarkers) {
        const size_t at = text.find(m, from);
        if (at < best) best = at, len = m.size();
    }
    return {best, len};
}

uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

std::unique_ptr<ImageEncoder> ImageEncoder::load(const std::string& path, DType encode_type) {
    std::string file = path;
    if (fs::is_directory(path)) {
        file = find_for_model(path + "/");
        if (file.empty())
            fail_kind(ErrorKind::kNotFound, "%s: no image encoder in this folder (expected mmproj.gguf: a vision tower + "
                      "projector in llama.cpp's mmproj format)", path.c_str());
    }
    std::unique_ptr<Model> tower = Model::load(file);
    tower->set_encode_type(encode_type);
    const ImagePreprocess pre = image_preprocess_for(tower->files());
    std::unique_ptr<ImageEncoder> e = from_model(*tower, pre, file);
    e->owned_ = std::move(tower);
    return e;
}

std::unique_ptr<ImageEncoder> ImageEncoder::from_model(const Model& tower, const ImagePreprocess& pre,
                                                       const std::string& where) {
    const ModelConfig& c = tower.config();
    if (!tower.is_encoder() || c.enc.patch_size <= 0 || c.enc.projector == Projector::kNone) {
        fail("%s: not an image encoder for a language model (architecture '%s'%s; expected an mmproj: a vision tower "
             "with a projector, clip.has_llava_projector)",
             where.c_str(), c.arch.c_str(), tower.is_encoder() ? ", no projector" : "");
    }
    std::unique_ptr<ImageEncoder> e(new ImageEncoder());
    e->path_ = where;
    e->tower_ = &tower;
    e->pre_ = pre;
    e->n_tokens_ = c.enc.n_image_tokens();
    e->width_ = c.enc.proj_out;
    return e;
}

std::string ImageEncoder::find_for_model(const std::string& model_path) {
    std::error_code ec;
    fs::path dir = fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
    if (dir.empty()) dir = ".";
    if (fs::is_regular_file(dir / "mmproj.gguf", ec)) return (dir / "mmproj.gguf").string();
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("mmproj", 0) == 0 && name.size() > 5 && name.substr(name.size() - 5) == ".gguf")
            found.push_back(entry.path().string());
    }
    return found.size() == 1 ? found[0] : std::string();
}

void ImageEncoder::check_decoder(const Model& decoder, const std::string& where) const {
    if (decoder.config().n_embd != width_) {
        fail("%s: the image encoder %s makes rows of width %lld, the language model's embedding width is %lld "
             "(hint: the mmproj belongs to another model)",
             where.c_str(), path_.c_str(), (long long)width_, (long long)decoder.config().n_embd);
    }
}

std::vector<float> ImageEncoder::embed(const Image& image, ThreadPool& pool) const {
    const ModelConfig& c = tower_->config();
    const std::vector<float> rows = vision_input_rows(c, pre_, {&image}, path_);
    const int64_t T = (c.enc.class_token ? 1 : 0) + c.enc.n_patches();
    EncodeOutput out;
    ForwardScratch s;
    tower_->encode(rows.data(), 1, T, out, pool, s);
    LF_ASSERT(out.rows == n_tokens_ && out.cols == width_);
    return std::move(out.last);
}

int64_t MultimodalPrompt::n_positions() const {
    int64_t n = 0;
    for (const Piece& p : pieces) n += p.image >= 0 ? images[static_cast<size_t>(p.image)].n_rows
                                                   : static_cast<int64_t>(p.tokens.size());
    return n;
}

std::vector<int32_t> MultimodalPrompt::position_keys() const {
    std::vector<int32_t> keys;
    for (const Piece& p : pieces) {
        if (p.image < 0) {
            keys.insert(keys.end(), p.tokens.begin(), p.tokens.end());
            continue;
        }
        const PromptImage& im = images[static_cast<size_t>(p.image)];
        for (int64_t r = 0; r < im.n_rows; ++r)
            keys.push_back(-1 - static_cast<int32_t>(mix64(im.hash ^ mix64(static_cast<uint64_t>(r))) & 0x3fffffffu));
    }
    return keys;
}

std::vector<int32_t> MultimodalPrompt::text_tokens() const {
    std::vector<int32_t> ids;
    for (const Piece& p : pieces) ids.insert(ids.end(), p.tokens.begin(), p.tokens.end());
    return ids;
}

bool has_image_marker(std::string_view text) { return next_marker(text, 0).first != std::string_view::npos; }

int64_t count_image_markers(std::string_view text) {
    int64_t n = 0;
    for (auto m = next_marker(text, 0); m.first != std::string_view::npos; m = next_marker(text, m.first + m.second)) ++n;
    return n;
}

MultimodalPrompt build_multimodal_prompt(const Tokenizer& tok, std::string_view text, std::vector<PromptImage> images,
                                         bool allow_bos, bool parse_special) {
    const int64_t markers = count_image_markers(text);
    const int64_t n_images = static_cast<int64_t>(images.size());
    if (markers > 0 && markers != n_images) {
        fail("the prompt has %lld image marker%s (<image>) but %lld image%s given (expected one image per marker; hint: "
             "leave the markers out to put every image first)",
             (long long)markers, markers == 1 ? "" : "s", (long long)n_images, n_images == 1 ? " is" : "s are");
    }
    MultimodalPrompt p;
    p.images = std::move(images);
    auto add_text = [&](std::string_view part, bool first) {
        std::vector<int32_t> ids = first ? encode_prompt(tok, part, allow_bos, parse_special)
                                         : encode_prompt(tok, part, false, parse_special);
        if (!ids.empty()) p.pieces.push_back({std::move(ids), -1});
    };
    if (p.images.empty()) {  // plain text: exactly encode_prompt's tokens
        add_text(text, true);
        return p;
    }
    if (markers == 0) {
        // BOS, then the images, then the text.
        const std::vector<int32_t> bos = encode_prompt(tok, "", allow_bos, false);
        if (!bos.empty()) p.pieces.push_back({bos, -1});
        for (int i = 0; i < n_images; ++i) p.pieces.push_back({{}, i});
        add_text(text, false);
        return p;
    }
    size_t at = 0;
    int image = 0;
    for (auto m = next_marker(text, 0); m.first != std::string_view::npos; m = next_marker(text, at)) {
        add_text(text.substr(at, m.first - at), image == 0);  // the first part carries BOS, even when empty
        p.pieces.push_back({{}, image++});
        at = m.first + m.second;
    }
    add_text(text.substr(at), false);
    return p;
}

MultimodalPrompt chat_to_multimodal(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in,
                                    std::vector<PromptImage> images, bool allow_bos) {
    const std::string text = render_chat(tok, tmpl, std::move(in));
    return build_multimodal_prompt(tok, text, std::move(images), allow_bos, true);
}

PromptImage prompt_image(const ImageEncoder& enc, const Image& image, ThreadPool& pool) {
    PromptImage im;
    im.rows = enc.embed(image, pool);
    im.n_rows = enc.n_tokens();
    uint64_t h = mix64(static_cast<uint64_t>(image.width) * 65537u + static_cast<uint64_t>(image.height));
    const std::string_view bytes(reinterpret_cast<const char*>(image.rgb.data()), image.rgb.size());
    im.hash = mix64(h ^ std::hash<std::string_view>{}(bytes));
    return im;
}

std::vector<int32_t> feed_multimodal_prompt(Context& ctx, const MultimodalPrompt& p, Sampler* history, int64_t from) {
    size_t last = p.pieces.size();
    if (last > 0 && p.pieces.back().image < 0) --last;  // generate() takes the final run of tokens
    int64_t pos = 0;  // the prompt position where the current piece starts
    for (size_t i = 0; i < p.pieces.size(); ++i) {
        const MultimodalPrompt::Piece& piece = p.pieces[i];
        const int64_t len = piece.image >= 0 ? p.images[static_cast<size_t>(piece.image)].n_rows
                                             : static_cast<int64_t>(piece.tokens.size());
        const int64_t skip = std::clamp<int64_t>(from - pos, 0, len);  // already in the cache
        pos += len;
        if (i == last) return std::vector<int32_t>(piece.tokens.begin() + skip, piece.tokens.end());
        if (skip == len) continue;
        if (piece.image >= 0) {
            const PromptImage& im = p.images[static_cast<size_t>(piece.image)];
            ctx.decode_rows(im.rows.data() + skip * (im.n_rows > 0 ? static_cast<int64_t>(im.rows.size()) / im.n_rows : 0),
                            len - skip);
        } else {
            const std::vector<int32_t> run(piece.tokens.begin() + skip, piece.tokens.end());
            ctx.decode(run);
            if (history != nullptr)
                for (int32_t t : run) history->accept(t);
        }
    }
    return {};
}

}  // namespace llmforge
