// A deterministic CLEVR-like visual question answering dataset (issue 20, item 4's data): small
// rendered scenes of coloured shapes and closed-answer questions about them, for training an image
// encoder + text encoder + fusion + classifier on a CPU. The answers need both the image (they are
// balanced per question template, so the text alone is little better than chance) and the question
// (several questions of different types per image).
//
// Scenes. 2–6 objects, each a shape (circle, square, triangle), a colour (red, green, blue, yellow,
// purple, cyan, gray, orange: far-apart RGB values, vqa_color_rgb) and a size (small, large), at a
// centre (x, y) in [0, 1]² (y grows downwards, as in the image) on a multiple of 1/4096. Objects
// never overlap: their bounding circles (1.25 × the shape's radius) stay 0.025 apart (rejection
// sampling). Attributes are drawn so that an object sometimes repeats an earlier object's colour,
// shape or both (so counts up to 4 of a two- or three-attribute description happen), without
// changing any object's marginal distribution of (colour, shape, size).
//
// Rendering (render_scene). Filled shapes with 4×4 supersampled coverage over a background with a
// per-scene tint, a gradient, smooth blotches and per-pixel noise; the objects carry mild top-lit
// shading and noise, so neither is flat. Integer arithmetic only: the same pixels on every machine.
//
// Questions (VqaQuestion: the structured form; vqa_question_text renders it, vqa_answer runs it):
//   count        "How many large blue objects are there?"         0..4 (5 and 6 are never asked)
//   exist        "Is there a green square?"                        yes / no
//   query_color  "What color is the small triangle?"               the 8 colours
//   query_shape  "What shape is the purple object?"                the 3 shapes
//   query_size   "What size is the red circle?"                    small / large
//   relation     "What color is the object left of the red circle?" / "What shape is the object
//                above the large cyan triangle?"                    colours or shapes
// A description (VqaFilter) names any non-empty subset of size, colour, shape. query_* and
// relation questions are asked only when the description matches exactly one object (never
// naming the attribute asked). The relation rule: object O is left of referent R when
// O.x < R.x − 0.05 (right: O.x > R.x + 0.05; above: O.y < R.y − 0.05; below: O.y > R.y + 0.05);
// the question is asked only when exactly one object lies in that direction and no other object
// is within 0.05 of R on that axis (so "the object left of R" is unambiguous at a glance).
//
// Balance. The answers of each question type are balanced per template: within blocks of 256
// consecutive scenes, each question takes the least-used (template, answer) cell among those the
// scene can realise (ties and the values of the description drawn at random), where the template is
// the description's attribute subset (count, exist, query_*) or the asked attribute (relation).
// Colours, shapes and sizes are symmetric in the scene distribution, so the answer is also nearly
// uniform given the exact wording (except what the held-out rule below gives away: in condition A
// "the red object" is a circle or a triangle). Each scene's questions take the types in a random
// order of the six, skipping those the scene cannot pose, repeating the order when more are asked
// (so they are distinct when the scene allows); never the same question twice.
//
// Held-out combinations (CLEVR-CoGenT style). Condition A ("train", "val", "test_iid"): squares are
// never red or green, circles never blue or yellow, triangles never purple or cyan. Condition B
// ("test"): squares are never blue or yellow, circles never purple or cyan, triangles never red or
// green — so B contains A's six held-out combinations (red/green squares, blue/yellow circles,
// purple/cyan triangles) and A contains none of them. Gray and orange go with every shape in both.
// Each shape keeps 1/3 and each colour 1/8 of the objects in both conditions. Questions only name
// combinations their condition allows.
//
// Determinism. Everything is a pure function of (seed, split, scene index, options): splitmix64
// streams (core/random.h), no std:: distributions. Scene i of a split is the same whatever the
// number of scenes asked for (its questions depend only on the scenes before it in its block).
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace llmforge::train {

enum class VqaType { kCount, kExist, kQueryColor, kQueryShape, kQuerySize, kRelation };
inline constexpr int kVqaTypes = 6;
// "count", "exist", "query_color", "query_shape", "query_size", "relation".
const char* vqa_type_name(VqaType t);

// Attribute values are indices into these lists.
const std::vector<std::string>& vqa_shapes();  // circle, square, triangle
const std::vector<std::string>& vqa_colors();  // red, green, blue, yellow, purple, cyan, gray, orange
const std::vector<std::string>& vqa_sizes();   // small, large
std::array<uint8_t, 3> vqa_color_rgb(int color);

struct VqaObject {
    int shape = 0, color = 0, size = 0;
    float x = 0, y = 0;  // centre in [0, 1]², y down; multiples of 1/4096
};
struct VqaScene {
    std::vector<VqaObject> objects;
    uint64_t texture_seed = 0;  // the background's and shading's noise
};

// The closed answer set shared by all types: yes, no, 0..6, the colours, the shapes, the sizes.
const std::vector<std::string>& vqa_answers();
// Index of `answer` in vqa_answers(), or -1.
int vqa_answer_id(const std::string& answer);

// A description: -1 means "any".
struct VqaFilter {
    int shape = -1, color = -1, size = -1;
    bool operator==(const VqaFilter&) const = default;
};
enum class VqaRelation { kLeft, kRight, kAbove, kBelow };
enum class VqaAttr { kColor, kShape, kSize };

// The structured question (the program whose result is the answer).
struct VqaQuestion {
    VqaType type = VqaType::kCount;
    // count / exist: the objects counted; query_*: the one object asked about; relation: the referent.
    VqaFilter filter;
    VqaRelation relation = VqaRelation::kLeft;  // relation only
    VqaAttr query = VqaAttr::kColor;            // relation only: kColor or kShape of the related object
    bool operator==(const VqaQuestion&) const = default;
};

// Indices of the objects the description matches.
std::vector<int> vqa_matches(const VqaScene& scene, const VqaFilter& f);
// The one object in direction `r` of object `referent` under the relation rule above, or -1.
int vqa_related(const VqaScene& scene, int referent, VqaRelation r);
// The answer (index into vqa_answers()), or -1 when the question is ill-posed for the scene (a
// query / relation description that does not match exactly one object, no unique related
// object, a count over 6).
int vqa_answer(const VqaScene& scene, const VqaQuestion& q);
// The English question, e.g. "What color is the object left of the red circle?".
std::string vqa_question_text(const VqaQuestion& q);

// The held-out rule: condition A for "train", "val", "test_iid"; B for "test".
enum class VqaCondition { kA, kB };
// Fails (one line) on a split name other than train, val, test, test_iid.
VqaCondition vqa_split_condition(const std::string& split);
const std::vector<std::string>& vqa_split_names();  // train, val, test, test_iid
bool vqa_combo_allowed(VqaCondition c, int shape, int color);
// One of condition A's held-out combinations (red/green square, blue/yellow circle, purple/cyan triangle).
bool vqa_held_out_combo(int shape, int color);

struct VqaExample {
    int64_t image = 0;  // index of its scene (and image)
    std::string question;
    int answer = 0;  // index into vqa_answers()
    VqaType type = VqaType::kCount;
    VqaQuestion program;  // the structured question; vqa_answer(scene, program) == answer
};
struct VqaSplit {
    std::vector<VqaScene> scenes;
    std::vector<Image> images;  // empty when !VqaOptions::render
    std::vector<VqaExample> examples;
};
struct VqaOptions {
    int64_t image_size = 64;          // square images, 16..1024 pixels
    int64_t n_scenes = 1000;
    int64_t questions_per_scene = 5;  // 1..32; a scene that cannot give that many distinct questions gives fewer
    uint64_t seed = 1;
    bool render = true;  // false: scenes and examples only (render_scene them one at a time)
};
// The split's scenes, images and questions; bad options are one-line errors.
VqaSplit make_vqa_split(const std::string& split, const VqaOptions& opt);
// The scene as a size × size RGB image.
Image render_scene(const VqaScene& scene, int64_t size);

}  // namespace llmforge::train
