// The CLEVR-like VQA generator (vqa_data.h): scene sampling, integer-only rendering, the question
// programs and their balanced choice.
#include "train/vqa_data.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/error.h"
#include "core/random.h"

namespace llmforge::train {

namespace {

// Geometry in 1/4096 units of the image side (positions are stored as such multiples, so the
// integers below are exact and rendering needs no floating point).
constexpr int kUnit = 4096;
constexpr int kRadius[2] = {287, 471};  // small 0.070, large 0.115 of the side
// Bounding circle of every shape: 1.25 × its radius (the triangle's vertices, the square's corners
// at 1.24), rounded up.
constexpr int bound_of(int size) { return (5 * kRadius[size] + 3) / 4; }
constexpr int kGap = 102;     // 0.025: free space between two bounding circles
constexpr int kBorder = 82;   // 0.02: free space between a bounding circle and the image edge
constexpr int kBand = 204;    // the relation rule's 0.05 (204.8 units): |along| > 204 <=> > 0.05
constexpr int kBlock = 256;   // scenes per balancing block
constexpr int kMaxCount = 4;  // count questions ask for 0..4

constexpr int kColors = 8, kShapes = 3, kSizes = 2;
constexpr uint8_t kRgb[kColors][3] = {
    {215, 40, 40},    // red
    {40, 170, 60},    // green
    {45, 85, 215},    // blue
    {230, 210, 45},   // yellow
    {135, 55, 180},   // purple
    {45, 200, 205},   // cyan
    {125, 125, 125},  // gray
    {240, 135, 30},   // orange
};

// Answer ids: yes, no, "0".."6", colours, shapes, sizes.
constexpr int kYes = 0, kNo = 1, kNum0 = 2, kColor0 = kNum0 + 7, kShape0 = kColor0 + kColors, kSize0 = kShape0 + kShapes;

// The six chromatic colours form three pairs (red/green, blue/yellow, purple/cyan); gray and orange
// go with every shape. Condition A forbids pair kForbidA[shape] for that shape, B pair kForbidB[shape]
// (circle, square, triangle order), so both keep each shape with six colours.
constexpr int kForbidA[kShapes] = {1, 0, 2};  // circle: blue/yellow, square: red/green, triangle: purple/cyan
constexpr int kForbidB[kShapes] = {2, 1, 0};  // circle: purple/cyan, square: blue/yellow, triangle: red/green

bool allowed(VqaCondition c, int shape, int color) {
    if (color >= 6) return true;
    return color / 2 != (c == VqaCondition::kA ? kForbidA : kForbidB)[shape];
}

int to_units(float v) { return static_cast<int>(std::lround(v * static_cast<float>(kUnit))); }
float from_units(int u) { return static_cast<float>(u) / static_cast<float>(kUnit); }

// A stream per (split seed, scene, purpose): scenes and their questions draw independently.
uint64_t stream_seed(uint64_t split_seed, int64_t scene, int purpose) {
    return mix64(split_seed + kGoldenGamma * (4 * static_cast<uint64_t>(scene) + static_cast<uint64_t>(purpose) + 1));
}

// shape | colour, uniform among the shapes the condition allows with that colour.
int draw_shape_for(Draws& d, VqaCondition c, int color) {
    int ok[kShapes], n = 0;
    for (int s = 0; s < kShapes; ++s)
        if (allowed(c, s, color)) ok[n++] = s;
    return ok[d.range(0, n - 1)];
}

// colour | shape with the weights that keep the fresh draw's joint law P(c, s) = 1/8 · 1/n(c),
// n(c) = the number of shapes colour c may take (2 for the pairs, 3 for gray/orange): weights 3 and 2.
int draw_color_for(Draws& d, VqaCondition c, int shape) {
    int w[kColors], total = 0;
    for (int k = 0; k < kColors; ++k) total += w[k] = allowed(c, shape, k) ? (k < 6 ? 3 : 2) : 0;
    int r = d.range(0, total - 1);
    for (int k = 0; k < kColors; ++k) {
        if (r < w[k]) return k;
        r -= w[k];
    }
    return kColors - 1;
}

VqaScene make_scene(uint64_t seed, VqaCondition cond) {
    Draws d(seed);
    VqaScene s;
    s.texture_seed = d.next();
    const int n = d.range(2, 6);
    s.objects.resize(n);
    for (int k = 0; k < n; ++k) {
        VqaObject& o = s.objects[k];
        // Sometimes repeat an earlier object's attributes (each rule keeps the marginal law of
        // (colour, shape) and of size, so no value is favoured; it only makes duplicates common).
        const VqaObject* prev = k > 0 ? &s.objects[d.range(0, k - 1)] : nullptr;
        const int r = d.range(0, 99);
        if (prev && r < 15) {
            o.color = prev->color;
            o.shape = prev->shape;
        } else if (prev && r < 30) {
            o.color = prev->color;
            o.shape = draw_shape_for(d, cond, o.color);
        } else if (prev && r < 45) {
            o.shape = prev->shape;
            o.color = draw_color_for(d, cond, o.shape);
        } else {
            o.color = d.range(0, kColors - 1);
            o.shape = draw_shape_for(d, cond, o.color);
        }
        o.size = prev && d.chance(20) ? prev->size : d.range(0, kSizes - 1);
    }
    // Placement by rejection: large objects first (they are the hard ones to fit); after too many
    // failed restarts the last object is dropped (never below 2; 6 large objects fit nearly always).
    std::vector<int> order(n);
    for (int k = 0; k < n; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s.objects[a].size > s.objects[b].size; });
    std::vector<int> px(n), py(n);
    for (;;) {
        const int m = static_cast<int>(s.objects.size());
        bool placed_all = false;
        for (int restart = 0; restart < 50 && !placed_all; ++restart) {
            placed_all = true;
            std::vector<int> done;
            for (int k : order) {
                if (k >= m) continue;
                const int b = bound_of(s.objects[k].size);
                const int lo = b + kBorder, hi = kUnit - b - kBorder;
                bool ok = false;
                for (int t = 0; t < 200 && !ok; ++t) {
                    px[k] = d.range(lo, hi);
                    py[k] = d.range(lo, hi);
                    ok = true;
                    for (int j : done) {
                        const int64_t dx = px[k] - px[j], dy = py[k] - py[j];
                        const int64_t need = b + bound_of(s.objects[j].size) + kGap;
                        if (dx * dx + dy * dy < need * need) {
                            ok = false;
                            break;
                        }
                    }
                }
                if (!ok) {
                    placed_all = false;
                    break;
                }
                done.push_back(k);
            }
        }
        if (placed_all) break;
        LF_ASSERT(m > 2);
        s.objects.pop_back();
        order.erase(std::remove(order.begin(), order.end(), m - 1), order.end());
    }
    for (size_t k = 0; k < s.objects.size(); ++k) {
        s.objects[k].x = from_units(px[k]);
        s.objects[k].y = from_units(py[k]);
    }
    return s;
}

// ------------------------------------------------------------------------------------------------
// Questions

struct Candidate {
    VqaQuestion q;
    int cell;  // the balancing cell within the type: (template, answer)
};

// The attribute's value (an index into its list) and its answer id.
int attr_value(const VqaObject& o, VqaAttr a) {
    return a == VqaAttr::kColor ? o.color : a == VqaAttr::kShape ? o.shape : o.size;
}
int attr_of(const VqaObject& o, VqaAttr a) {
    return (a == VqaAttr::kColor ? kColor0 : a == VqaAttr::kShape ? kShape0 : kSize0) + attr_value(o, a);
}

// Filters with exactly the attributes of `mask` (1 size, 2 colour, 4 shape), each combination of values.
template <class Fn>
void for_each_filter(int mask, Fn fn) {
    for (int z = (mask & 1) ? 0 : -1; z < ((mask & 1) ? kSizes : 0); ++z)
        for (int c = (mask & 2) ? 0 : -1; c < ((mask & 2) ? kColors : 0); ++c)
            for (int s = (mask & 4) ? 0 : -1; s < ((mask & 4) ? kShapes : 0); ++s) fn(VqaFilter{s, c, z});
}

VqaFilter filter_of(const VqaObject& o, int mask) {
    return VqaFilter{(mask & 4) ? o.shape : -1, (mask & 2) ? o.color : -1, (mask & 1) ? o.size : -1};
}

bool names_allowed_combo(VqaCondition c, const VqaFilter& f) {
    return f.shape < 0 || f.color < 0 || allowed(c, f.shape, f.color);
}

void candidates(const VqaScene& s, VqaCondition cond, VqaType t, std::vector<Candidate>& out) {
    out.clear();
    switch (t) {
        case VqaType::kCount:
        case VqaType::kExist:
            for (int mask = 1; mask < 8; ++mask) {
                for_each_filter(mask, [&](const VqaFilter& f) {
                    if (!names_allowed_combo(cond, f)) return;
                    const int n = static_cast<int>(vqa_matches(s, f).size());
                    VqaQuestion q;
                    q.type = t;
                    q.filter = f;
                    if (t == VqaType::kCount) {
                        if (n <= kMaxCount) out.push_back({q, mask * (kMaxCount + 1) + n});
                    } else {
                        out.push_back({q, mask * 2 + (n > 0)});
                    }
                });
            }
            break;
        case VqaType::kQueryColor:
        case VqaType::kQueryShape:
        case VqaType::kQuerySize: {
            const int asked = t == VqaType::kQueryColor ? 2 : t == VqaType::kQueryShape ? 4 : 1;
            const VqaAttr attr = t == VqaType::kQueryColor ? VqaAttr::kColor
                                 : t == VqaType::kQueryShape ? VqaAttr::kShape
                                                             : VqaAttr::kSize;
            for (int mask = 1; mask < 8; ++mask) {
                if (mask & asked) continue;
                for (size_t k = 0; k < s.objects.size(); ++k) {
                    VqaQuestion q;
                    q.type = t;
                    q.filter = filter_of(s.objects[k], mask);
                    if (vqa_matches(s, q.filter).size() != 1) continue;
                    out.push_back({q, mask * 8 + attr_value(s.objects[k], attr)});
                }
            }
            break;
        }
        case VqaType::kRelation:
            for (size_t k = 0; k < s.objects.size(); ++k) {
                for (int mask = 1; mask < 8; ++mask) {
                    const VqaFilter f = filter_of(s.objects[k], mask);
                    if (vqa_matches(s, f).size() != 1) continue;
                    for (int r = 0; r < 4; ++r) {
                        const int o = vqa_related(s, static_cast<int>(k), static_cast<VqaRelation>(r));
                        if (o < 0) continue;
                        for (VqaAttr a : {VqaAttr::kColor, VqaAttr::kShape}) {
                            VqaQuestion q;
                            q.type = t;
                            q.filter = f;
                            q.relation = static_cast<VqaRelation>(r);
                            q.query = a;
                            out.push_back({q, (a == VqaAttr::kColor ? 0 : 8) + attr_value(s.objects[o], a)});
                        }
                    }
                }
            }
            break;
    }
}

constexpr int kCells = 64;  // per type, enough for every (template, answer) cell above
using CellCounts = std::array<std::array<int, kCells>, kVqaTypes>;

// Up to `k` questions, their types in a random order of the six (repeated when k > 6, skipping a
// type the scene cannot pose), each from the least-used realisable (template, answer) cell of its
// type in `counts` (ties drawn at random), never the same question twice.
std::vector<VqaQuestion> choose_questions(const VqaScene& s, VqaCondition cond, int64_t k, uint64_t seed,
                                          CellCounts& counts) {
    Draws d(seed);
    int perm[kVqaTypes];
    for (int i = 0; i < kVqaTypes; ++i) perm[i] = i;
    for (int i = kVqaTypes - 1; i > 0; --i) std::swap(perm[i], perm[d.range(0, i)]);
    std::vector<VqaQuestion> asked;
    std::vector<Candidate> cands, fresh;
    std::vector<int> min_cells;
    int next = 0;
    for (int64_t slot = 0; slot < k; ++slot) {
        bool found = false;
        for (int tries = 0; tries < kVqaTypes && !found; ++tries) {
            const int t = perm[next++ % kVqaTypes];
            candidates(s, cond, static_cast<VqaType>(t), cands);
            fresh.clear();
            // A relation asks for colour or shape half the time each (the least-used cell over all
            // eleven would ask for colour 8 times in 11).
            const VqaAttr attr = d.chance(50) ? VqaAttr::kColor : VqaAttr::kShape;
            for (int pass = 0; pass < 2 && fresh.empty(); ++pass) {
                for (const Candidate& c : cands) {
                    if (pass == 0 && t == static_cast<int>(VqaType::kRelation) && c.q.query != attr) continue;
                    if (std::find(asked.begin(), asked.end(), c.q) == asked.end()) fresh.push_back(c);
                }
            }
            if (fresh.empty()) continue;
            int least = INT_MAX;
            for (const Candidate& c : fresh) least = std::min(least, counts[t][c.cell]);
            min_cells.clear();
            for (const Candidate& c : fresh)
                if (counts[t][c.cell] == least && std::find(min_cells.begin(), min_cells.end(), c.cell) == min_cells.end())
                    min_cells.push_back(c.cell);
            std::sort(min_cells.begin(), min_cells.end());
            const int cell = min_cells[d.next() % min_cells.size()];
            int in_cell = 0;
            for (const Candidate& c : fresh) in_cell += c.cell == cell;
            int pick = static_cast<int>(d.next() % static_cast<uint64_t>(in_cell));
            for (const Candidate& c : fresh) {
                if (c.cell != cell) continue;
                if (pick-- == 0) {
                    asked.push_back(c.q);
                    break;
                }
            }
            ++counts[t][cell];
            found = true;
        }
        if (!found) break;
    }
    return asked;
}

std::string noun_phrase(const VqaFilter& f, bool plural) {
    std::string s;
    if (f.size >= 0) s += vqa_sizes()[f.size] + " ";
    if (f.color >= 0) s += vqa_colors()[f.color] + " ";
    s += f.shape >= 0 ? vqa_shapes()[f.shape] : std::string("object");
    if (plural) s += "s";
    return s;
}

uint8_t clamp8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

}  // namespace

const char* vqa_type_name(VqaType t) {
    switch (t) {
        case VqaType::kCount: return "count";
        case VqaType::kExist: return "exist";
        case VqaType::kQueryColor: return "query_color";
        case VqaType::kQueryShape: return "query_shape";
        case VqaType::kQuerySize: return "query_size";
        case VqaType::kRelation: return "relation";
    }
    return "?";
}

const std::vector<std::string>& vqa_shapes() {
    static const std::vector<std::string> v{"circle", "square", "triangle"};
    return v;
}
const std::vector<std::string>& vqa_colors() {
    static const std::vector<std::string> v{"red", "green", "blue", "yellow", "purple", "cyan", "gray", "orange"};
    return v;
}
const std::vector<std::string>& vqa_sizes() {
    static const std::vector<std::string> v{"small", "large"};
    return v;
}

std::array<uint8_t, 3> vqa_color_rgb(int color) {
    LF_ASSERT(color >= 0 && color < kColors);
    return {kRgb[color][0], kRgb[color][1], kRgb[color][2]};
}

const std::vector<std::string>& vqa_answers() {
    static const std::vector<std::string> v = [] {
        std::vector<std::string> a{"yes", "no"};
        for (int i = 0; i <= 6; ++i) a.push_back(std::to_string(i));
        for (const auto& c : vqa_colors()) a.push_back(c);
        for (const auto& s : vqa_shapes()) a.push_back(s);
        for (const auto& z : vqa_sizes()) a.push_back(z);
        return a;
    }();
    return v;
}

int vqa_answer_id(const std::string& answer) {
    const auto& a = vqa_answers();
    const auto it = std::find(a.begin(), a.end(), answer);
    return it == a.end() ? -1 : static_cast<int>(it - a.begin());
}

std::vector<int> vqa_matches(const VqaScene& scene, const VqaFilter& f) {
    std::vector<int> m;
    for (size_t k = 0; k < scene.objects.size(); ++k) {
        const VqaObject& o = scene.objects[k];
        if ((f.shape < 0 || o.shape == f.shape) && (f.color < 0 || o.color == f.color) &&
            (f.size < 0 || o.size == f.size)) {
            m.push_back(static_cast<int>(k));
        }
    }
    return m;
}

int vqa_related(const VqaScene& scene, int referent, VqaRelation r) {
    if (referent < 0 || referent >= static_cast<int>(scene.objects.size())) return -1;
    const bool horizontal = r == VqaRelation::kLeft || r == VqaRelation::kRight;
    const int sign = r == VqaRelation::kLeft || r == VqaRelation::kAbove ? -1 : 1;
    const VqaObject& ref = scene.objects[referent];
    const int rc = to_units(horizontal ? ref.x : ref.y);
    int found = -1, n = 0;
    for (int k = 0; k < static_cast<int>(scene.objects.size()); ++k) {
        if (k == referent) continue;
        const int c = to_units(horizontal ? scene.objects[k].x : scene.objects[k].y);
        const int along = sign * (c - rc);  // how far in the asked direction
        if (along > kBand) {
            found = k;
            ++n;
        } else if (along >= -kBand) {
            return -1;  // level with the referent: "left of" would be a judgement call
        }
    }
    return n == 1 ? found : -1;
}

int vqa_answer(const VqaScene& scene, const VqaQuestion& q) {
    const std::vector<int> m = vqa_matches(scene, q.filter);
    switch (q.type) {
        case VqaType::kCount: return m.size() <= 6 ? kNum0 + static_cast<int>(m.size()) : -1;
        case VqaType::kExist: return m.empty() ? kNo : kYes;
        case VqaType::kQueryColor: return m.size() == 1 ? attr_of(scene.objects[m[0]], VqaAttr::kColor) : -1;
        case VqaType::kQueryShape: return m.size() == 1 ? attr_of(scene.objects[m[0]], VqaAttr::kShape) : -1;
        case VqaType::kQuerySize: return m.size() == 1 ? attr_of(scene.objects[m[0]], VqaAttr::kSize) : -1;
        case VqaType::kRelation: {
            if (m.size() != 1) return -1;
            const int o = vqa_related(scene, m[0], q.relation);
            return o < 0 ? -1 : attr_of(scene.objects[o], q.query);
        }
    }
    return -1;
}

std::string vqa_question_text(const VqaQuestion& q) {
    static const char* const kAttrWord[] = {"color", "shape", "size"};
    static const char* const kRelWord[] = {"left of", "right of", "above", "below"};
    switch (q.type) {
        case VqaType::kCount: return "How many " + noun_phrase(q.filter, true) + " are there?";
        case VqaType::kExist: {
            const std::string np = noun_phrase(q.filter, false);
            const bool vowel = std::string("aeiou").find(np[0]) != std::string::npos;
            return std::string("Is there ") + (vowel ? "an " : "a ") + np + "?";
        }
        case VqaType::kQueryColor: return "What color is the " + noun_phrase(q.filter, false) + "?";
        case VqaType::kQueryShape: return "What shape is the " + noun_phrase(q.filter, false) + "?";
        case VqaType::kQuerySize: return "What size is the " + noun_phrase(q.filter, false) + "?";
        case VqaType::kRelation:
            return std::string("What ") + kAttrWord[static_cast<int>(q.query)] + " is the object " +
                   kRelWord[static_cast<int>(q.relation)] + " the " + noun_phrase(q.filter, false) + "?";
    }
    return "";
}

const std::vector<std::string>& vqa_split_names() {
    static const std::vector<std::string> v{"train", "val", "test", "test_iid"};
    return v;
}

VqaCondition vqa_split_condition(const std::string& split) {
    if (split == "train" || split == "val" || split == "test_iid") return VqaCondition::kA;
    if (split == "test") return VqaCondition::kB;
    fail("VQA split '%s' is unknown, expected train, val, test or test_iid", split.c_str());
}

bool vqa_combo_allowed(VqaCondition c, int shape, int color) {
    LF_ASSERT(shape >= 0 && shape < kShapes && color >= 0 && color < kColors);
    return allowed(c, shape, color);
}

bool vqa_held_out_combo(int shape, int color) { return !vqa_combo_allowed(VqaCondition::kA, shape, color); }

Image render_scene(const VqaScene& scene, int64_t size) {
    // 1024 keeps every product below in int64 (coordinates reach 98304·size, squared 1e16).
    if (size < 1 || size > 1024) {
        fail("VQA image size %lld is out of range, expected 1..1024 pixels", static_cast<long long>(size));
    }
    const int64_t S = size;
    Image img;
    img.width = img.height = S;
    img.rgb.resize(static_cast<size_t>(S * S * 3));

    // Background: a per-scene tint, a linear gradient, smooth blotches (a 5×5 grid of offsets,
    // bilinear) and per-pixel noise.
    Draws d(scene.texture_seed);
    int base[3];
    for (int c = 0; c < 3; ++c) base[c] = (c == 0 ? 196 : c == 1 ? 192 : 184) + d.range(-10, 10);
    const int gx = d.range(-8, 8), gy = d.range(-8, 8);
    constexpr int kG = 5;
    int node[kG][kG];
    for (auto& row : node)
        for (int& v : row) v = d.range(-7, 7);
    const uint64_t noise_seed = d.next(), shade_seed = d.next();
    for (int64_t y = 0; y < S; ++y) {
        const int64_t v = (2 * y + 1) * (kG - 1) * 128 / S;  // 8.8 fixed point grid coordinate
        const int iy = static_cast<int>(std::min<int64_t>(v >> 8, kG - 2));
        const int64_t fy = v - (int64_t{iy} << 8);
        for (int64_t x = 0; x < S; ++x) {
            const int64_t u = (2 * x + 1) * (kG - 1) * 128 / S;
            const int ix = static_cast<int>(std::min<int64_t>(u >> 8, kG - 2));
            const int64_t fx = u - (int64_t{ix} << 8);
            const int64_t top = node[iy][ix] * (256 - fx) + node[iy][ix + 1] * fx;
            const int64_t bot = node[iy + 1][ix] * (256 - fx) + node[iy + 1][ix + 1] * fx;
            const int blotch = static_cast<int>((top * (256 - fy) + bot * fy) / 65536);
            const int grad = static_cast<int>((gx * (2 * x + 1 - S) + gy * (2 * y + 1 - S)) / S);
            const uint64_t h = mix64(noise_seed + kGoldenGamma * static_cast<uint64_t>(y * S + x));
            const int lum = static_cast<int>(h % 9) - 4;
            uint8_t* p = &img.rgb[static_cast<size_t>((y * S + x) * 3)];
            for (int c = 0; c < 3; ++c) {
                const int chan = static_cast<int>((h >> (8 + 4 * c)) % 3) - 1;
                p[c] = clamp8(base[c] + grad + blotch + lum + chan);
            }
        }
    }

    // Objects: coverage from 4×4 samples per pixel, all in integers. A sample of pixel p sits at
    // (8p + 2j + 1) / (8S); with a common factor 3 · 8S · 4096 every coordinate and every shape
    // constant below (circle r, square 7/8 r, triangle apex 5/4 r, base 5/8 r, half-width 13/12 r)
    // is an integer.
    const int64_t sample_scale = 3 * kUnit;  // multiplies 8p + 2j + 1
    const int64_t centre_scale = 24 * S;     // multiplies a coordinate in 1/4096 units
    for (size_t k = 0; k < scene.objects.size(); ++k) {
        const VqaObject& o = scene.objects[k];
        const int64_t cx = to_units(o.x), cy = to_units(o.y), kr = kRadius[o.size];
        const int64_t R = 24 * kr * S;  // the radius in sample units
        const int64_t half = 21 * kr * S, apex = 30 * kr * S, base_y = 15 * kr * S, ch = centre_scale;
        const int64_t b = bound_of(o.size);
        const int64_t x0 = std::max<int64_t>(0, (cx - b) * S / kUnit - 1), x1 = std::min<int64_t>(S - 1, (cx + b) * S / kUnit + 1);
        const int64_t y0 = std::max<int64_t>(0, (cy - b) * S / kUnit - 1), y1 = std::min<int64_t>(S - 1, (cy + b) * S / kUnit + 1);
        const auto rgb = vqa_color_rgb(o.color);
        for (int64_t py = y0; py <= y1; ++py) {
            for (int64_t px = x0; px <= x1; ++px) {
                int cov = 0;
                for (int j = 0; j < 4; ++j) {
                    const int64_t dy = (8 * py + 2 * j + 1) * sample_scale - cy * ch;
                    for (int i = 0; i < 4; ++i) {
                        const int64_t dx = (8 * px + 2 * i + 1) * sample_scale - cx * ch;
                        bool in = false;
                        switch (o.shape) {
                            case 0: in = dx * dx + dy * dy <= R * R; break;
                            case 1: in = std::abs(dx) <= half && std::abs(dy) <= half; break;
                            default: in = dy <= base_y && std::abs(dx) * 45 <= 26 * (dy + apex); break;
                        }
                        cov += in;
                    }
                }
                if (cov == 0) continue;
                // Lit from above: up to +10 at the top, -10 at the bottom, plus noise of ±3.
                const int64_t dyc = (8 * py + 4) * sample_scale - cy * ch;
                const int shade = static_cast<int>(std::clamp<int64_t>(-dyc * 10 / apex, -10, 10));
                const uint64_t h = mix64(shade_seed + kGoldenGamma * static_cast<uint64_t>((py * S + px) * 8 + static_cast<int64_t>(k % 8)));
                uint8_t* p = &img.rgb[static_cast<size_t>((py * S + px) * 3)];
                for (int c = 0; c < 3; ++c) {
                    const int col = clamp8(rgb[c] + shade + static_cast<int>((h >> (8 * c)) % 7) - 3);
                    p[c] = static_cast<uint8_t>((p[c] * (16 - cov) + col * cov + 8) / 16);
                }
            }
        }
    }
    return img;
}

VqaSplit make_vqa_split(const std::string& split, const VqaOptions& opt) {
    const VqaCondition cond = vqa_split_condition(split);
    if (opt.image_size < 16 || opt.image_size > 1024) {
        fail("VQA image size %lld is out of range, expected 16..1024 pixels (64 is the default)",
             static_cast<long long>(opt.image_size));
    }
    if (opt.n_scenes < 1 || opt.n_scenes > 100'000'000) {
        fail("VQA scene count %lld is out of range, expected 1..100000000", static_cast<long long>(opt.n_scenes));
    }
    if (opt.questions_per_scene < 1 || opt.questions_per_scene > 32) {
        fail("VQA questions per scene %lld is out of range, expected 1..32",
             static_cast<long long>(opt.questions_per_scene));
    }
    // Each split draws from its own streams: val is not a prefix of train, test_iid not of val.
    const uint64_t split_seed = name_seed("vqa/" + split, opt.seed);
    VqaSplit out;
    out.scenes.reserve(static_cast<size_t>(opt.n_scenes));
    out.examples.reserve(static_cast<size_t>(opt.n_scenes * opt.questions_per_scene));
    CellCounts counts{};
    for (int64_t i = 0; i < opt.n_scenes; ++i) {
        // Balancing state restarts at each block, so scene i depends only on its block's earlier scenes.
        if (i % kBlock == 0) counts = CellCounts{};
        VqaScene scene = make_scene(stream_seed(split_seed, i, 0), cond);
        for (const VqaQuestion& q : choose_questions(scene, cond, opt.questions_per_scene, stream_seed(split_seed, i, 1), counts)) {
            VqaExample e;
            e.image = i;
            e.question = vqa_question_text(q);
            e.answer = vqa_answer(scene, q);
            e.type = q.type;
            e.program = q;
            LF_ASSERT(e.answer >= 0);
            out.examples.push_back(std::move(e));
        }
        if (opt.render) out.images.push_back(render_scene(scene, opt.image_size));
        out.scenes.push_back(std::move(scene));
    }
    return out;
}

}  // namespace llmforge::train
