// CLIP / ViT / SigLIP preprocessing (Hugging Face semantics) and a Pillow-exact resize.
//
// The resampler is written here from Pillow's documented algorithm (libImaging/Resample.c and
// Geometry.c's affine scale): Debian has no C library that reproduces Pillow's resize bit for
// bit, and vision encoders are trained on exactly those pixels. Exactness rests on doing the same
// double-precision operations in the same order (coefficients) and the same integer arithmetic
// (fixed-point accumulation, rounding, clipping); the generic code is built for baseline x86-64
// without FMA, like Debian's Pillow, so no operation is contracted differently.
//
// Every resize here computes a window [x0, x0 + cw) x [y0, y0 + ch) of the full w x h result:
// each output pixel depends only on its own coefficients, so the window's pixels equal the full
// resize's; preprocess_image asks only for what its center crop keeps.
#include "model/image_preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/json_depth.h"
#include "io/byte_reader.h"
#include "model/model.h"

namespace llmforge {

using io_detail::printable;
using json = nlohmann::json;
using Filter = ImagePreprocess::Filter;

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;            // Pillow's fixed-point fraction bits
constexpr int64_t kMaxSide = int64_t{1} << 24;        // resized sides: exact in float, far past any use
constexpr int64_t kMaxOutputPixels = int64_t{1} << 26;  // 64 Mpx of pixel_values = 768 MiB of floats

const char* filter_name(Filter f) {
    switch (f) {
        case Filter::kNearest: return "nearest";
        case Filter::kBilinear: return "bilinear";
        case Filter::kBicubic: return "bicubic";
    }
    return "?";
}

// Pillow's kernels (bicubic with a = -0.5), in Pillow's operation order.
double bilinear_kernel(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}
double bicubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// The taps of one output sample: input index `first`, and one fixed-point weight per tap.
struct Taps {
    int64_t first = 0;
    std::vector<int32_t> w;
};

// Taps of outputs [o0, o0 + n) of a resize from in_size to out_size along one axis.
std::vector<Taps> make_taps(int64_t in_size, int64_t out_size, int64_t o0, int64_t n, Filter f) {
    const double support_1 = f == Filter::kBilinear ? 1.0 : 2.0;
    // Pillow passes the box edges as float; (double)(in1 - in0) of an integer below 2^24 is exact.
    const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = support_1 * filterscale;
    const double ss = 1.0 / filterscale;
    std::vector<Taps> taps(static_cast<size_t>(n));
    std::vector<double> k;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t xx = o0 + i;
        const double center = (static_cast<double>(xx) + 0.5) * scale;
        // Truncation toward zero, then clamped, as Pillow's (int) casts.
        int64_t xmin = static_cast<int64_t>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xmax = static_cast<int64_t>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        const int64_t count = xmax - xmin;
        k.assign(static_cast<size_t>(std::max<int64_t>(count, 0)), 0.0);
        double ww = 0.0;
        for (int64_t x = 0; x < count; ++x) {
            const double arg = (static_cast<double>(x + xmin) - center + 0.5) * ss;
            const double w = f == Filter::kBilinear ? bilinear_kernel(arg) : bicubic_kernel(arg);
            k[static_cast<size_t>(x)] = w;
            ww += w;
        }
        Taps& t = taps[static_cast<size_t>(i)];
        t.first = xmin;
        t.w.resize(k.size());
        for (size_t x = 0; x < k.size(); ++x) {
            const double v = ww != 0.0 ? k[x] / ww : k[x];
            const double scaled = v * static_cast<double>(1 << kPrecisionBits);
            t.w[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
    }
    return taps;
}

inline uint8_t clip8(int64_t acc) {
    const int64_t v = acc >> kPrecisionBits;  // floor (arithmetic shift)
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Nearest: Pillow's affine scale. The source coordinate starts at scale / 2 and is advanced by
// `scale` per output pixel (accumulated, so its rounding is Pillow's), truncated; one outside the
// image gives a black pixel (Pillow's fill), which exact arithmetic never produces.
std::vector<int64_t> nearest_index(int64_t in_size, int64_t out_size, int64_t o0, int64_t n) {
    const double a = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
    double pos = 0.0 + a * 0.5;
    std::vector<int64_t> idx(static_cast<size_t>(n), -1);
    for (int64_t o = 0; o < o0 + n; ++o) {
        if (o >= o0) {
            const int64_t v = pos < 0.0 ? -1 : static_cast<int64_t>(pos);
            idx[static_cast<size_t>(o - o0)] = v >= 0 && v < in_size ? v : -1;
        }
        pos += a;
    }
    return idx;
}

// The window [x0, x0 + cw) x [y0, y0 + ch) of Pillow's resize of img to w x h.
Image resize_window(const Image& img, int64_t w, int64_t h, Filter f, int64_t x0, int64_t y0, int64_t cw,
                    int64_t ch) {
    const int64_t iw = img.width, ih = img.height;
    Image out;
    out.width = cw;
    out.height = ch;
    out.rgb.assign(static_cast<size_t>(cw * ch * 3), 0);
    const uint8_t* src = img.rgb.data();
    if (w == iw && h == ih) {  // Pillow returns a copy
        for (int64_t y = 0; y < ch; ++y) {
            std::memcpy(&out.rgb[static_cast<size_t>(y * cw * 3)], src + ((y0 + y) * iw + x0) * 3,
                        static_cast<size_t>(cw * 3));
        }
        return out;
    }
    if (f == Filter::kNearest) {
        const std::vector<int64_t> xs = nearest_index(iw, w, x0, cw), ys = nearest_index(ih, h, y0, ch);
        for (int64_t y = 0; y < ch; ++y) {
            if (ys[static_cast<size_t>(y)] < 0) continue;
            const uint8_t* row = src + ys[static_cast<size_t>(y)] * iw * 3;
            uint8_t* o = &out.rgb[static_cast<size_t>(y * cw * 3)];
            for (int64_t x = 0; x < cw; ++x) {
                const int64_t sx = xs[static_cast<size_t>(x)];
                if (sx >= 0) std::memcpy(o + x * 3, row + sx * 3, 3);
            }
        }
        return out;
    }
    // Separable convolution. Pillow skips a pass whose size does not change.
    const bool need_h = w != iw, need_v = h != ih;
    std::vector<Taps> vt;
    int64_t r0 = y0, r1 = y0 + ch;  // input rows the vertical pass reads
    if (need_v) {
        vt = make_taps(ih, h, y0, ch, f);
        r0 = ih;
        r1 = 0;
        for (const Taps& t : vt) {
            if (t.w.empty()) continue;
            r0 = std::min(r0, t.first);
            r1 = std::max(r1, t.first + static_cast<int64_t>(t.w.size()));
        }
        if (r1 < r0) r0 = r1 = 0;
    }
    // Horizontal pass over rows [r0, r1): an 8-bit intermediate of (r1 - r0) x cw.
    std::vector<uint8_t> mid(static_cast<size_t>((r1 - r0) * cw * 3));
    if (need_h) {
        const std::vector<Taps> ht = make_taps(iw, w, x0, cw, f);
        for (int64_t y = r0; y < r1; ++y) {
            const uint8_t* row = src + y * iw * 3;
            uint8_t* o = &mid[static_cast<size_t>((y - r0) * cw * 3)];
            for (int64_t x = 0; x < cw; ++x) {
                const Taps& t = ht[static_cast<size_t>(x)];
                int64_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                const uint8_t* p = row + t.first * 3;
                for (size_t k = 0; k < t.w.size(); ++k) {
                    s0 += int64_t{p[3 * k]} * t.w[k];
                    s1 += int64_t{p[3 * k + 1]} * t.w[k];
                    s2 += int64_t{p[3 * k + 2]} * t.w[k];
                }
                o[3 * x] = clip8(s0);
                o[3 * x + 1] = clip8(s1);
                o[3 * x + 2] = clip8(s2);
            }
        }
    } else {
        for (int64_t y = r0; y < r1; ++y) {
            std::memcpy(&mid[static_cast<size_t>((y - r0) * cw * 3)], src + (y * iw + x0) * 3,
                        static_cast<size_t>(cw * 3));
        }
    }
    if (!need_v) {
        out.rgb = std::move(mid);
        return out;
    }
    for (int64_t y = 0; y < ch; ++y) {
        const Taps& t = vt[static_cast<size_t>(y)];
        uint8_t* o = &out.rgb[static_cast<size_t>(y * cw * 3)];
        for (int64_t x = 0; x < cw * 3; ++x) {
            int64_t s = 1 << (kPrecisionBits - 1);
            const uint8_t* p = &mid[static_cast<size_t>((t.first - r0) * cw * 3 + x)];
            for (size_t k = 0; k < t.w.size(); ++k) s += int64_t{p[static_cast<int64_t>(k) * cw * 3]} * t.w[k];
            o[x] = clip8(s);
        }
    }
    return out;
}

void check_image(const Image& img, const char* what) {
    if (img.width <= 0 || img.height <= 0 ||
        img.rgb.size() != static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3) {
        fail("%s: image is %lldx%lld with %zu bytes, expected a non-empty RGB image (width x height x 3 bytes)",
             what, static_cast<long long>(img.width), static_cast<long long>(img.height), img.rgb.size());
    }
}

// HF get_resize_output_image_size(size=int, default_to_square=False): (height, width).
void shortest_edge_size(int64_t h, int64_t w, int64_t size, int64_t* out_h, int64_t* out_w) {
    const int64_t shorter = w <= h ? w : h, longer = w <= h ? h : w;
    if (shorter == size) {
        *out_h = h;
        *out_w = w;
        return;
    }
    // int(size * long / short): Python's true division of two integers is the correctly rounded
    // quotient, as is IEEE division of the (exactly converted) operands.
    const double q = static_cast<double>(size * longer) / static_cast<double>(shorter);
    const int64_t new_long = q >= static_cast<double>(kMaxSide) ? kMaxSide + 1 : static_cast<int64_t>(q);
    if (w <= h) {
        *out_h = new_long;
        *out_w = size;
    } else {
        *out_h = size;
        *out_w = new_long;
    }
}

// ------------------------------------------------------------------------------------------------
// preprocessor_config.json

class JsonReader {
public:
    JsonReader(const json& j, const std::string& path) : j_(j), path_(path) {}

    const json* find(const char* key) const {
        auto it = j_.find(key);
        return it == j_.end() || it->is_null() ? nullptr : &*it;
    }
    [[noreturn]] void bad(const char* key, const json& v, const char* expected) const {
        fail("%s: \"%s\" is %s, expected %s", path_.c_str(), key, printable(v.dump(), 60).c_str(), expected);
    }
    bool boolean_or(const char* key, bool dflt) const {
        const json* v = find(key);
        if (v == nullptr) return dflt;
        if (!v->is_boolean()) bad(key, *v, "true or false");
        return v->get<bool>();
    }
    double number_or(const char* key, double dflt) const {
        const json* v = find(key);
        if (v == nullptr) return dflt;
        if (!v->is_number()) bad(key, *v, "a number");
        return v->get<double>();
    }
    // A side length: a positive integer up to 2^24.
    int64_t side(const char* key, const json& v) const {
        if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > static_cast<uint64_t>(kMaxSide)) {
            bad(key, v, "a positive integer side length (at most 16777216)");
        }
        return static_cast<int64_t>(v.get<uint64_t>());
    }
    // image_mean / image_std: three numbers or one (HF repeats a single value per channel).
    void triple(const char* key, float out[3]) const {
        const json* v = find(key);
        if (v == nullptr) return;
        double d[3];
        if (v->is_number()) {
            d[0] = d[1] = d[2] = v->get<double>();
        } else if (v->is_array() && v->size() == 3 && (*v)[0].is_number() && (*v)[1].is_number() &&
                   (*v)[2].is_number()) {
            for (int c = 0; c < 3; ++c) d[c] = (*v)[c].get<double>();
        } else {
            bad(key, *v, "a list of 3 numbers (one per RGB channel) or one number");
        }
        // numpy casts the list to float32 (round to nearest), as this cast does.
        for (int c = 0; c < 3; ++c) {
            if (!std::isfinite(d[c]) || std::fabs(d[c]) > 1e30) bad(key, *v, "finite numbers");
            out[c] = static_cast<float>(d[c]);
        }
    }
    const std::string& path() const { return path_; }

private:
    const json& j_;
    const std::string& path_;
};

}  // namespace

ImagePreprocess ImagePreprocess::clip() { return ImagePreprocess{}; }

ImagePreprocess ImagePreprocess::vit() {
    ImagePreprocess p;
    p.shortest_edge = 0;
    p.resize_w = p.resize_h = 224;
    p.filter = Filter::kBilinear;
    p.do_center_crop = false;
    for (int c = 0; c < 3; ++c) p.mean[c] = p.std[c] = 0.5f;
    return p;
}

ImagePreprocess ImagePreprocess::llava_clip_cpp(int64_t size, const float mean[3], const float std[3]) {
    ImagePreprocess p;
    p.clip_cpp = true;
    p.shortest_edge = 0;
    p.resize_w = p.resize_h = size;
    p.filter = Filter::kBilinear;
    p.do_center_crop = false;
    for (int c = 0; c < 3; ++c) p.mean[c] = mean[c], p.std[c] = std[c];
    return p;
}

ImagePreprocess ImagePreprocess::siglip() {
    ImagePreprocess p = vit();
    p.filter = Filter::kBicubic;
    return p;
}

ImagePreprocess ImagePreprocess::from_hf_json(const std::string& path) {
    const std::string text = read_file(path, "a preprocessor_config.json");
    if (json_nesting(text).max_depth > 16) {
        fail("%s: JSON nests deeper than 16 levels (not a preprocessor_config.json?)", path.c_str());
    }
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("%s: not valid JSON: %s", path.c_str(), printable(e.what(), 200).c_str());
    }
    if (!j.is_object()) fail("%s: expected a JSON object at the top level (a preprocessor_config.json)", path.c_str());
    JsonReader r(j, path);

    // The processor class gives the defaults and the meaning of an integer "size".
    const char* type_key = r.find("image_processor_type") ? "image_processor_type" : "feature_extractor_type";
    const json* type = r.find(type_key);
    if (type == nullptr) {
        fail("%s: neither \"image_processor_type\" nor \"feature_extractor_type\" is set (hint: a CLIP, ViT or "
             "SigLIP preprocessor_config.json names its processor class)",
             path.c_str());
    }
    if (!type->is_string()) r.bad(type_key, *type, "a processor class name");
    std::string cls = type->get<std::string>();
    for (const char* suffix : {"Fast", "ImageProcessor", "FeatureExtractor"}) {
        const size_t n = std::strlen(suffix);
        if (cls.size() > n && cls.compare(cls.size() - n, n, suffix) == 0) cls.resize(cls.size() - n);
    }
    enum { kClip, kVit, kSiglip } kind;
    if (cls == "CLIP") {
        kind = kClip;
    } else if (cls == "ViT") {
        kind = kVit;
    } else if (cls == "Siglip") {
        kind = kSiglip;
    } else {
        fail("%s: \"%s\" is \"%s\", expected CLIPImageProcessor, ViTImageProcessor or SiglipImageProcessor (the "
             "processors whose preprocessing llmforge reproduces)",
             path.c_str(), type_key, printable(type->get<std::string>(), 60).c_str());
    }
    ImagePreprocess p = kind == kClip ? clip() : kind == kVit ? vit() : siglip();

    if (const json* s = r.find("size")) {
        // CLIP: get_size_dict(default_to_square=False); ViT: default_to_square=True; SigLIP's resize
        // reads height and width only.
        if (s->is_number()) {
            if (kind == kSiglip) r.bad("size", *s, "{\"height\": H, \"width\": W} (SiglipImageProcessor)");
            const int64_t v = r.side("size", *s);
            if (kind == kClip) {
                p.shortest_edge = v;
            } else {
                p.shortest_edge = 0;
                p.resize_w = p.resize_h = v;
            }
        } else if (s->is_array() && s->size() == 2) {
            p.shortest_edge = 0;
            p.resize_h = r.side("size", (*s)[0]);
            p.resize_w = r.side("size", (*s)[1]);
        } else if (s->is_object() && s->contains("shortest_edge") && kind == kClip) {
            p.shortest_edge = r.side("size.shortest_edge", s->at("shortest_edge"));
        } else if (s->is_object() && s->contains("height") && s->contains("width")) {
            p.shortest_edge = 0;
            p.resize_h = r.side("size.height", s->at("height"));
            p.resize_w = r.side("size.width", s->at("width"));
        } else {
            r.bad("size", *s,
                  kind == kClip ? "an integer, [height, width], {\"shortest_edge\": N} or {\"height\": H, \"width\": W}"
                                : "an integer, [height, width] or {\"height\": H, \"width\": W}");
        }
    }
    if (kind == kClip) {
        if (const json* c = r.find("crop_size")) {
            if (c->is_number()) {
                p.crop_w = p.crop_h = r.side("crop_size", *c);
            } else if (c->is_array() && c->size() == 2) {
                p.crop_h = r.side("crop_size", (*c)[0]);
                p.crop_w = r.side("crop_size", (*c)[1]);
            } else if (c->is_object() && c->contains("height") && c->contains("width")) {
                p.crop_h = r.side("crop_size.height", c->at("height"));
                p.crop_w = r.side("crop_size.width", c->at("width"));
            } else {
                r.bad("crop_size", *c, "an integer, [height, width] or {\"height\": H, \"width\": W}");
            }
        }
        p.do_center_crop = r.boolean_or("do_center_crop", p.do_center_crop);
    }
    if (const json* f = r.find("resample")) {
        if (!f->is_number_integer()) r.bad("resample", *f, "a PIL resampling filter number (0, 2 or 3)");
        const int64_t v = f->get<int64_t>();
        if (v == 0) {
            p.filter = Filter::kNearest;
        } else if (v == 2) {
            p.filter = Filter::kBilinear;
        } else if (v == 3) {
            p.filter = Filter::kBicubic;
        } else {
            fail("%s: \"resample\" is %lld (%s), expected 0 (nearest), 2 (bilinear) or 3 (bicubic): the filters "
                 "llmforge reproduces",
                 path.c_str(), static_cast<long long>(v),
                 v == 1 ? "LANCZOS" : v == 4 ? "BOX" : v == 5 ? "HAMMING" : "not a PIL filter");
        }
    }
    p.do_resize = r.boolean_or("do_resize", p.do_resize);
    p.do_rescale = r.boolean_or("do_rescale", p.do_rescale);
    p.rescale = r.number_or("rescale_factor", p.rescale);
    if (!std::isfinite(p.rescale) || std::fabs(p.rescale) > 1e30) {
        fail("%s: \"rescale_factor\" is %g, expected a finite number (usually 1/255)", path.c_str(), p.rescale);
    }
    p.do_normalize = r.boolean_or("do_normalize", p.do_normalize);
    r.triple("image_mean", p.mean);
    r.triple("image_std", p.std);
    for (int c = 0; c < 3; ++c) {
        if (p.std[c] == 0.0f) {
            fail("%s: \"image_std\" has 0 for channel %d, expected non-zero values (normalize divides by them)",
                 path.c_str(), c);
        }
    }
    return p;
}

Image resize_like_pil(const Image& img, int64_t w, int64_t h, Filter f) {
    check_image(img, "resize_like_pil");
    if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide || w * h > kMaxOutputPixels) {
        fail_kind(w < 1 || h < 1 ? ErrorKind::kBadInput : ErrorKind::kResource,
                  "resize_like_pil: target size %lldx%lld, expected sides of at least 1 and at most %lld pixels "
                  "in all (%s)",
                  static_cast<long long>(w), static_cast<long long>(h), static_cast<long long>(kMaxOutputPixels),
                  filter_name(f));
    }
    return resize_window(img, w, h, f, 0, 0, w, h);
}

namespace {

// clip.cpp's clip_image_preprocess for LLaVA-1.5 (ImagePreprocess::llava_clip_cpp), statement for
// statement in its float arithmetic: pad to a square (top-left), its bilinear resize into an HWC
// buffer (entries it does not write stay 0), normalise, then channels first. A square image is
// read as it is (clip.cpp copies it).
std::vector<float> preprocess_clip_cpp(const Image& img, const ImagePreprocess& p, int64_t* out_h, int64_t* out_w) {
    const int64_t S = p.resize_w;
    if (S < 1 || S > 4096 || p.resize_h != S) {
        fail("preprocess_image: clip.cpp preprocessing to %lldx%lld, expected a square of side 1..4096 (the mmproj's "
             "image_size)", static_cast<long long>(p.resize_w), static_cast<long long>(p.resize_h));
    }
    // The padded square is read through at() (never built: a long thin image would make a huge one).
    const int nx = static_cast<int>(std::max(img.width, img.height)), ny = nx;
    const float scale = static_cast<float>(std::max(nx, ny)) / static_cast<float>(S);
    const int nx3 = static_cast<int>(static_cast<float>(nx) / scale + 0.5f);
    const int ny3 = static_cast<int>(static_cast<float>(ny) / scale + 0.5f);
    std::vector<float> hwc(static_cast<size_t>(3 * S * S), 0.0f);
    for (int y = 0; y < ny3; y++) {
        for (int x = 0; x < nx3; x++) {
            for (int c = 0; c < 3; c++) {
                const float sx = (static_cast<float>(x) + 0.5f) * scale - 0.5f;
                const float sy = (static_cast<float>(y) + 0.5f) * scale - 0.5f;
                const int x0 = std::max(0, static_cast<int>(std::floor(sx)));
                const int y0 = std::max(0, static_cast<int>(std::floor(sy)));
                const int x1 = std::min(x0 + 1, nx - 1);
                const int y1 = std::min(y0 + 1, ny - 1);
                const float dx = sx - static_cast<float>(x0);
                const float dy = sy - static_cast<float>(y0);
                auto at = [&](int yy, int xx) {
                    return static_cast<float>(yy < img.height && xx < img.width
                                                  ? img.rgb[static_cast<size_t>(3 * (yy * img.width + xx) + c)]
                                                  : p.pad_color[c]);
                };
                const float v0 = at(y0, x0) * (1.0f - dx) + at(y0, x1) * dx;
                const float v1 = at(y1, x0) * (1.0f - dx) + at(y1, x1) * dx;
                const float v = v0 * (1.0f - dy) + v1 * dy;
                const uint8_t v2 = static_cast<uint8_t>(std::min(std::max(std::round(v), 0.0f), 255.0f));
                const size_t i = static_cast<size_t>(3 * (static_cast<int64_t>(y) * nx3 + x) + c);
                if (i < hwc.size()) hwc[i] = ((static_cast<float>(v2) / 255.0f) - p.mean[c]) / p.std[c];
            }
        }
    }
    std::vector<float> out(static_cast<size_t>(3 * S * S));
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < S * S; ++i) out[static_cast<size_t>(c * S * S + i)] = hwc[static_cast<size_t>(3 * i + c)];
    *out_h = *out_w = S;
    return out;
}

}  // namespace

std::vector<float> preprocess_image(const Image& img, const ImagePreprocess& p, int64_t* out_h, int64_t* out_w) {
    check_image(img, "preprocess_image");
    if (p.clip_cpp) return preprocess_clip_cpp(img, p, out_h, out_w);
    int64_t rh = img.height, rw = img.width;
    if (p.do_resize) {
        if (p.shortest_edge > 0) {
            if (p.shortest_edge > kMaxSide) {
                fail("preprocess_image: shortest_edge %lld, expected at most %lld", static_cast<long long>(p.shortest_edge),
                     static_cast<long long>(kMaxSide));
            }
            shortest_edge_size(img.height, img.width, p.shortest_edge, &rh, &rw);
        } else {
            rh = p.resize_h;
            rw = p.resize_w;
        }
        if (rh < 1 || rw < 1 || rh > kMaxSide || rw > kMaxSide) {
            fail_kind(rh < 1 || rw < 1 ? ErrorKind::kBadInput : ErrorKind::kResource,
                      "preprocess_image: resize of a %lldx%lld image to %lldx%lld (width x height), expected sides "
                      "from 1 to %lld (hint: set shortest_edge > 0, or resize_w and resize_h)",
                      static_cast<long long>(img.width), static_cast<long long>(img.height),
                      static_cast<long long>(rw), static_cast<long long>(rh), static_cast<long long>(kMaxSide));
        }
    }
    // Output geometry and where its pixels come from: output (y, x) is resized (y + row_off,
    // x + col_off), or 0 (padding) outside the resized image.
    int64_t oh = rh, ow = rw, row_off = 0, col_off = 0;
    if (p.do_center_crop) {
        if (p.crop_h < 1 || p.crop_w < 1 || p.crop_h > kMaxSide || p.crop_w > kMaxSide) {
            fail("preprocess_image: crop %lldx%lld (width x height), expected sides from 1 to %lld",
                 static_cast<long long>(p.crop_w), static_cast<long long>(p.crop_h), static_cast<long long>(kMaxSide));
        }
        oh = p.crop_h;
        ow = p.crop_w;
        // Inside: top = (H - ch) // 2. Larger crop: padded by ceil((ch - H) / 2) rows first, and the
        // crop then starts at the padded image's top.
        row_off = rh >= oh ? (rh - oh) / 2 : -((oh - rh + 1) / 2);
        col_off = rw >= ow ? (rw - ow) / 2 : -((ow - rw + 1) / 2);
    }
    if (oh * ow > kMaxOutputPixels) {
        fail_kind(ErrorKind::kResource,
                  "preprocess_image: output of %lldx%lld pixels (width x height), over the limit of %lld (hint: "
                  "enable the center crop or choose a smaller size)",
                  static_cast<long long>(ow), static_cast<long long>(oh), static_cast<long long>(kMaxOutputPixels));
    }
    // The part of the resized image that the output shows.
    const int64_t y0 = std::max<int64_t>(0, row_off), y1 = std::min(rh, row_off + oh);
    const int64_t x0 = std::max<int64_t>(0, col_off), x1 = std::min(rw, col_off + ow);
    const Image win = resize_window(img, rw, rh, p.filter, x0, y0, x1 - x0, y1 - y0);

    // What rescale + normalize make of each uint8 value, per channel: HF's float order.
    float lut[3][256];
    for (int c = 0; c < 3; ++c) {
        for (int u = 0; u < 256; ++u) {
            float v = p.do_rescale ? static_cast<float>(static_cast<double>(u) * p.rescale) : static_cast<float>(u);
            if (p.do_normalize) v = (v - p.mean[c]) / p.std[c];
            lut[c][u] = v;
        }
    }
    std::vector<float> out(static_cast<size_t>(3 * oh * ow));
    for (int c = 0; c < 3; ++c) {
        float* plane = &out[static_cast<size_t>(c * oh * ow)];
        std::fill(plane, plane + oh * ow, lut[c][0]);  // padding: 0 before rescale / normalize
        for (int64_t y = y0; y < y1; ++y) {
            const uint8_t* src = &win.rgb[static_cast<size_t>(((y - y0) * win.width) * 3 + c)];
            float* dst = plane + (y - row_off) * ow + (x0 - col_off);
            for (int64_t x = 0; x < x1 - x0; ++x) dst[x] = lut[c][src[3 * x]];
        }
    }
    *out_h = oh;
    *out_w = ow;
    return out;
}

std::vector<float> vision_input_rows(const ModelConfig& c, const ImagePreprocess& pre,
                                     const std::vector<const Image*>& images, const std::string& where) {
    const int64_t first = c.enc.class_token ? 1 : 0, T = first + c.enc.n_patches(), cols = c.enc.patch_cols();
    std::vector<float> rows(static_cast<size_t>(static_cast<int64_t>(images.size()) * T * cols));
    for (size_t b = 0; b < images.size(); ++b) {
        int64_t h = 0, w = 0;
        const std::vector<float> px = preprocess_image(*images[b], pre, &h, &w);
        if (h != c.enc.image_size || w != c.enc.image_size) {
            fail("%s: the preprocessor gives %lldx%lld images, the vision tower takes %lldx%lld (hint: its preprocessor "
                 "settings and config disagree)",
                 where.c_str(), (long long)w, (long long)h, (long long)c.enc.image_size, (long long)c.enc.image_size);
        }
        image_patch_rows(px.data(), c.enc.n_channels, h, w, c.enc.patch_size, rows.data() + b * T * cols,
                         c.enc.class_token);
    }
    return rows;
}

}  // namespace llmforge
