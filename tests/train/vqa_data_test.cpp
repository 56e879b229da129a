// The synthetic VQA dataset (train/vqa_data.h): deterministic, answers that re-derive from the
// scenes, questions about exactly one object where they say "the", answers balanced per type (so
// the text alone is little better than chance), the held-out combinations where they belong,
// renders that show what the scene says, and `llmforge gen-vqa`'s files.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "cli/cli_run.h"
#include "io/image.h"
#include "test_util.h"
#include "train/vqa_data.h"

namespace llmforge::train {
namespace {

VqaSplit split_of(const std::string& name, int64_t n, uint64_t seed = 1, int64_t size = 64, int64_t per_scene = 5,
                  bool render = true) {
    VqaOptions o;
    o.n_scenes = n;
    o.seed = seed;
    o.image_size = size;
    o.questions_per_scene = per_scene;
    o.render = render;
    return make_vqa_split(name, o);
}

bool same_scene(const VqaScene& a, const VqaScene& b) {
    if (a.objects.size() != b.objects.size() || a.texture_seed != b.texture_seed) return false;
    for (size_t k = 0; k < a.objects.size(); ++k) {
        const VqaObject &p = a.objects[k], &q = b.objects[k];
        if (p.shape != q.shape || p.color != q.color || p.size != q.size || p.x != q.x || p.y != q.y) return false;
    }
    return true;
}

TEST(VqaData, SameSeedSameExamplesAndPixelsOtherSeedOther) {
    const VqaSplit a = split_of("train", 40, 3), b = split_of("train", 40, 3), c = split_of("train", 40, 4);
    ASSERT_EQ(a.examples.size(), b.examples.size());
    for (size_t i = 0; i < a.examples.size(); ++i) {
        EXPECT_EQ(a.examples[i].question, b.examples[i].question);
        EXPECT_EQ(a.examples[i].answer, b.examples[i].answer);
        EXPECT_EQ(a.examples[i].image, b.examples[i].image);
    }
    for (size_t i = 0; i < a.scenes.size(); ++i) {
        EXPECT_TRUE(same_scene(a.scenes[i], b.scenes[i])) << i;
        EXPECT_EQ(a.images[i].rgb, b.images[i].rgb) << i;
    }
    int differ = 0;
    for (size_t i = 0; i < a.scenes.size(); ++i) differ += a.images[i].rgb != c.images[i].rgb;
    EXPECT_EQ(differ, 40);
    std::set<std::string> qa, qc;
    for (const auto& e : a.examples) qa.insert(std::to_string(e.image) + e.question);
    for (const auto& e : c.examples) qc.insert(std::to_string(e.image) + e.question);
    EXPECT_NE(qa, qc);
    // Scene i does not depend on how many scenes were asked for, and splits draw their own scenes.
    const VqaSplit prefix = split_of("train", 7, 3);
    for (size_t i = 0; i < 7; ++i) EXPECT_TRUE(same_scene(prefix.scenes[i], a.scenes[i])) << i;
    for (size_t i = 0; i < prefix.examples.size(); ++i) EXPECT_EQ(prefix.examples[i].question, a.examples[i].question);
    const VqaSplit val = split_of("val", 40, 3), iid = split_of("test_iid", 40, 3);
    int same = 0;
    for (size_t i = 0; i < 40; ++i) same += same_scene(val.scenes[i], a.scenes[i]) + same_scene(iid.scenes[i], val.scenes[i]);
    EXPECT_EQ(same, 0);
}

// The relation rule written again from the header's words, in floats.
int related_by_hand(const VqaScene& s, int ref, VqaRelation r) {
    const bool horiz = r == VqaRelation::kLeft || r == VqaRelation::kRight;
    const float sign = r == VqaRelation::kLeft || r == VqaRelation::kAbove ? -1.0f : 1.0f;
    int found = -1, beyond = 0, level = 0;
    for (int k = 0; k < static_cast<int>(s.objects.size()); ++k) {
        if (k == ref) continue;
        const float d = sign * (horiz ? s.objects[k].x - s.objects[ref].x : s.objects[k].y - s.objects[ref].y);
        if (d > 0.05f) ++beyond, found = k;  // exact: positions are multiples of 1/4096
        else if (d >= -0.05f) ++level;
    }
    return beyond == 1 && level == 0 ? found : -1;
}

TEST(VqaData, AnswersReDeriveAndDescriptionsPickOneObject) {
    const VqaSplit d = split_of("train", 600, 1, 64, 5, false);
    std::map<int64_t, std::set<VqaType>> types_of;
    std::map<int64_t, std::set<std::string>> texts_of;
    std::set<std::string> distinct;
    for (const VqaExample& e : d.examples) {
        const VqaScene& s = d.scenes[static_cast<size_t>(e.image)];
        EXPECT_EQ(vqa_answer(s, e.program), e.answer) << e.question;
        EXPECT_EQ(vqa_question_text(e.program), e.question);
        EXPECT_EQ(e.program.type, e.type);
        EXPECT_TRUE(texts_of[e.image].insert(e.question).second) << "asked twice: " << e.question;
        types_of[e.image].insert(e.type);
        distinct.insert(e.question);
        const auto m = vqa_matches(s, e.program.filter);
        const VqaFilter& f = e.program.filter;
        EXPECT_TRUE(f.shape >= 0 || f.color >= 0 || f.size >= 0) << e.question;
        switch (e.type) {
            case VqaType::kCount: {
                EXPECT_LE(m.size(), 4u) << e.question;
                EXPECT_EQ(vqa_answers()[e.answer], std::to_string(m.size()));
                break;
            }
            case VqaType::kExist: EXPECT_EQ(vqa_answers()[e.answer], m.empty() ? "no" : "yes"); break;
            case VqaType::kQueryColor:
            case VqaType::kQueryShape:
            case VqaType::kQuerySize: {
                ASSERT_EQ(m.size(), 1u) << e.question;
                const VqaObject& o = s.objects[m[0]];
                const std::string want = e.type == VqaType::kQueryColor   ? vqa_colors()[o.color]
                                         : e.type == VqaType::kQueryShape ? vqa_shapes()[o.shape]
                                                                          : vqa_sizes()[o.size];
                EXPECT_EQ(vqa_answers()[e.answer], want) << e.question;
                // Never names what it asks.
                EXPECT_TRUE(e.type != VqaType::kQueryColor || f.color < 0) << e.question;
                EXPECT_TRUE(e.type != VqaType::kQueryShape || f.shape < 0) << e.question;
                EXPECT_TRUE(e.type != VqaType::kQuerySize || f.size < 0) << e.question;
                break;
            }
            case VqaType::kRelation: {
                ASSERT_EQ(m.size(), 1u) << e.question;
                const int o = related_by_hand(s, m[0], e.program.relation);
                ASSERT_GE(o, 0) << e.question;
                EXPECT_EQ(vqa_related(s, m[0], e.program.relation), o);
                const std::string want = e.program.query == VqaAttr::kColor ? vqa_colors()[s.objects[o].color]
                                                                            : vqa_shapes()[s.objects[o].shape];
                EXPECT_EQ(vqa_answers()[e.answer], want) << e.question;
                break;
            }
        }
    }
    // Five questions per scene, of five distinct types unless the scene cannot pose them (two
    // objects alike in everything leave only count and exist questions).
    EXPECT_EQ(d.examples.size(), 600u * 5);
    int five = 0;
    for (const auto& [img, ts] : types_of) {
        EXPECT_GE(ts.size(), 2u) << img;
        five += ts.size() == 5;
    }
    EXPECT_GT(five, 600 * 8 / 10);
    EXPECT_GT(distinct.size(), 400u);  // of about 1,100 possible texts
    // Scenes: 2..6 objects inside the image, bounding circles apart.
    std::map<size_t, int> sizes;
    for (const VqaScene& s : d.scenes) {
        ++sizes[s.objects.size()];
        for (size_t a = 0; a < s.objects.size(); ++a) {
            const VqaObject& p = s.objects[a];
            const float rp = (p.size ? 0.115f : 0.070f) * 1.25f;
            EXPECT_GE(p.x - rp, 0.0f);
            EXPECT_LE(p.x + rp, 1.0f);
            EXPECT_GE(p.y - rp, 0.0f);
            EXPECT_LE(p.y + rp, 1.0f);
            for (size_t b = a + 1; b < s.objects.size(); ++b) {
                const VqaObject& q = s.objects[b];
                const float rq = (q.size ? 0.115f : 0.070f) * 1.25f;
                EXPECT_GT(std::hypot(p.x - q.x, p.y - q.y), rp + rq + 0.02f);
            }
        }
    }
    for (size_t n = 2; n <= 6; ++n) EXPECT_GT(sizes[n], 60) << n;
    EXPECT_EQ(sizes.begin()->first, 2u);
    EXPECT_EQ(sizes.rbegin()->first, 6u);
}

TEST(VqaData, MoreQuestionsThanTypesRepeatTypesNeverQuestions) {
    const VqaSplit d = split_of("val", 100, 1, 64, 12, false);
    std::map<int64_t, std::set<std::string>> texts;
    for (const VqaExample& e : d.examples) {
        EXPECT_TRUE(texts[e.image].insert(e.question).second) << e.question;
        EXPECT_EQ(vqa_answer(d.scenes[static_cast<size_t>(e.image)], e.program), e.answer);
    }
    EXPECT_GT(d.examples.size(), 100u * 11);
}

TEST(VqaData, IllPosedQuestionsHaveNoAnswer) {
    VqaScene s;
    s.objects = {{0, 0, 0, 0.2f, 0.5f}, {0, 0, 1, 0.8f, 0.5f}};  // two red circles, small left, large right
    VqaQuestion q;
    q.type = VqaType::kQueryShape;
    q.filter.color = 0;
    EXPECT_EQ(vqa_answer(s, q), -1);  // "the red object": two of them
    q.filter.size = 1;
    EXPECT_EQ(vqa_answers()[vqa_answer(s, q)], "circle");
    q.type = VqaType::kRelation;
    q.relation = VqaRelation::kLeft;
    q.query = VqaAttr::kColor;
    EXPECT_EQ(vqa_answers()[vqa_answer(s, q)], "red");
    q.relation = VqaRelation::kAbove;  // level with it
    EXPECT_EQ(vqa_answer(s, q), -1);
    q.relation = VqaRelation::kRight;
    EXPECT_EQ(vqa_answer(s, q), -1);
    EXPECT_EQ(vqa_question_text(q), "What color is the object right of the large red object?");
    q.type = VqaType::kExist;
    q.filter = VqaFilter{1, 7, -1};
    EXPECT_EQ(vqa_question_text(q), "Is there an orange square?");
    EXPECT_EQ(vqa_answers()[vqa_answer(s, q)], "no");
    q.type = VqaType::kCount;
    q.filter = VqaFilter{0, -1, -1};
    EXPECT_EQ(vqa_question_text(q), "How many circles are there?");
    EXPECT_EQ(vqa_answers()[vqa_answer(s, q)], "2");
}

TEST(VqaData, AnswersAreBalancedPerType) {
    const VqaSplit d = split_of("train", 1000, 1, 64, 5, false);  // 5,000 questions
    ASSERT_EQ(d.examples.size(), 5000u);
    std::map<std::string, std::map<std::string, int>> by;  // type (relation: per asked attribute) -> answer -> n
    for (const VqaExample& e : d.examples) {
        std::string t = vqa_type_name(e.type);
        if (e.type == VqaType::kRelation) t += e.program.query == VqaAttr::kColor ? "/color" : "/shape";
        ++by[t][vqa_answers()[e.answer]];
    }
    const std::map<std::string, int> n_answers{{"count", 5},       {"exist", 2},          {"query_color", 8},
                                               {"query_shape", 3}, {"query_size", 2},     {"relation/color", 8},
                                               {"relation/shape", 3}};
    for (const auto& [t, hist] : by) {
        int total = 0, most = 0;
        std::string line;
        for (const auto& [a, n] : hist) total += n, most = std::max(most, n), line += " " + a + ":" + std::to_string(n);
        const int k = n_answers.at(t);
        EXPECT_EQ(static_cast<int>(hist.size()), k) << t << line;
        EXPECT_LE(most, 1.5 * total / k) << t << line;
        std::printf("%-15s %4d questions, top share %.3f (uniform %.3f):%s\n", t.c_str(), total,
                    static_cast<double>(most) / total, 1.0 / k, line.c_str());
        if (t == "exist") {
            const double yes = static_cast<double>(hist.at("yes")) / total;
            EXPECT_GE(yes, 0.45);
            EXPECT_LE(yes, 0.55);
        }
        EXPECT_GT(total, t.rfind("relation", 0) == 0 ? 250 : 600) << t;  // every type is asked (relation in two halves)
    }
}

// What a text-only model can reach: per template (type + which attributes the description names,
// or the relation's asked attribute) the most common answer's share, and the majority answer of
// each exact question text learned on train, scored on val.
TEST(VqaData, TheTextAloneIsLittleBetterThanChance) {
    const VqaSplit tr = split_of("train", 4000, 1, 64, 5, false), va = split_of("val", 1000, 1, 64, 5, false);
    auto template_of = [](const VqaExample& e) {
        const VqaFilter& f = e.program.filter;
        std::string t = vqa_type_name(e.type);
        if (e.type == VqaType::kRelation) return t + (e.program.query == VqaAttr::kColor ? "/color" : "/shape");
        return t + "/" + (f.size >= 0 ? "Z" : "") + (f.color >= 0 ? "C" : "") + (f.shape >= 0 ? "S" : "");
    };
    std::map<std::string, std::map<int, int>> tmpl, text;
    std::map<VqaType, std::map<int, int>> type_hist;
    for (const VqaExample& e : tr.examples) {
        ++tmpl[template_of(e)][e.answer];
        ++text[e.question][e.answer];
        ++type_hist[e.type][e.answer];
    }
    auto argmax = [](const std::map<int, int>& h) {
        int best = -1, n = -1;
        for (const auto& [a, c] : h)
            if (c > n) best = a, n = c;
        return best;
    };
    std::map<VqaType, double> tmpl_hit, text_hit, chance_hit, count;
    for (const VqaExample& e : va.examples) {
        count[e.type] += 1;
        const auto t = tmpl.find(template_of(e));
        tmpl_hit[e.type] += t != tmpl.end() && argmax(t->second) == e.answer;
        const auto x = text.find(e.question);
        text_hit[e.type] += (x != text.end() ? argmax(x->second) : argmax(type_hist[e.type])) == e.answer;
        chance_hit[e.type] += argmax(type_hist[e.type]) == e.answer;
    }
    double mean_tmpl = 0, mean_text = 0, mean_type = 0;
    for (const auto& [t, n] : count) {
        std::printf("%-12s val %5.0f: type-majority %.3f  template-majority %.3f  exact-text-majority %.3f\n",
                    vqa_type_name(t), n, chance_hit[t] / n, tmpl_hit[t] / n, text_hit[t] / n);
        mean_type += chance_hit[t] / n / kVqaTypes;
        mean_tmpl += tmpl_hit[t] / n / kVqaTypes;
        mean_text += text_hit[t] / n / kVqaTypes;
    }
    std::printf("mean over types: type-majority %.3f  template-majority %.3f  exact-text-majority %.3f\n", mean_type,
                mean_tmpl, mean_text);
    // Chance per type is about (1/5 + 1/2 + 1/8 + 1/3 + 1/2 + (1/8 + 1/3)/2) / 6 = 0.31.
    EXPECT_LT(mean_type, 0.38);
    EXPECT_LT(mean_tmpl, 0.40);
    EXPECT_LT(mean_text, 0.42);
}

TEST(VqaData, HeldOutCombinationsOnlyInTheTestSplit) {
    int held = 0, total = 0;
    for (const char* name : {"train", "val", "test_iid"}) {
        EXPECT_EQ(vqa_split_condition(name), VqaCondition::kA);
        const VqaSplit d = split_of(name, 500, 2, 64, 5, false);
        for (const VqaScene& s : d.scenes)
            for (const VqaObject& o : s.objects) EXPECT_FALSE(vqa_held_out_combo(o.shape, o.color)) << name;
        for (const VqaExample& e : d.examples) {
            const VqaFilter& f = e.program.filter;
            if (f.shape >= 0 && f.color >= 0) {
                EXPECT_FALSE(vqa_held_out_combo(f.shape, f.color)) << e.question;
            }
        }
    }
    EXPECT_EQ(vqa_split_condition("test"), VqaCondition::kB);
    const VqaSplit t = split_of("test", 500, 2, 64, 5, false);
    std::set<std::pair<int, int>> seen;
    for (const VqaScene& s : t.scenes) {
        for (const VqaObject& o : s.objects) {
            ++total;
            if (vqa_held_out_combo(o.shape, o.color)) ++held, seen.insert({o.shape, o.color});
            EXPECT_TRUE(vqa_combo_allowed(VqaCondition::kB, o.shape, o.color));
        }
    }
    EXPECT_EQ(seen.size(), 6u);                // all six held-out combinations appear
    EXPECT_GT(held, total / 5);                // and often (3/8 of the objects in expectation)
    int named = 0;
    for (const VqaExample& e : t.examples) {
        const VqaFilter& f = e.program.filter;
        named += f.shape >= 0 && f.color >= 0 && vqa_held_out_combo(f.shape, f.color);
    }
    EXPECT_GT(named, 100);
    // Each shape keeps a third of the objects, each colour an eighth, in both conditions.
    for (const char* name : {"train", "test"}) {
        const VqaSplit d = split_of(name, 2000, 5, 64, 1, false);
        std::map<int, int> shapes, colors;
        int n = 0;
        for (const VqaScene& s : d.scenes)
            for (const VqaObject& o : s.objects) ++shapes[o.shape], ++colors[o.color], ++n;
        for (const auto& [k, c] : shapes) EXPECT_NEAR(static_cast<double>(c) / n, 1.0 / 3, 0.03) << name << k;
        for (const auto& [k, c] : colors) EXPECT_NEAR(static_cast<double>(c) / n, 1.0 / 8, 0.02) << name << k;
    }
    EXPECT_NE(test::error_of([] { vqa_split_condition("dev"); }).find("split 'dev' is unknown"), std::string::npos);
}

TEST(VqaData, RendersShowTheSceneAtTheRequestedSize) {
    for (int64_t size : {32, 64, 100}) {
        const VqaSplit d = split_of("test", 60, 9, size, 1);
        for (size_t i = 0; i < d.scenes.size(); ++i) {
            const Image& img = d.images[i];
            ASSERT_EQ(img.width, size);
            ASSERT_EQ(img.height, size);
            ASSERT_EQ(img.rgb.size(), static_cast<size_t>(size * size * 3));
            for (const VqaObject& o : d.scenes[i].objects) {
                const int64_t px = static_cast<int64_t>(o.x * size), py = static_cast<int64_t>(o.y * size);
                const uint8_t* p = &img.rgb[static_cast<size_t>((py * size + px) * 3)];
                const auto want = vqa_color_rgb(o.color);
                for (int c = 0; c < 3; ++c) EXPECT_NEAR(p[c], want[c], 16) << size << " scene " << i << " channel " << c;
                // The nearest palette colour is the object's.
                int best = -1, best_d = 1 << 30;
                for (int k = 0; k < 8; ++k) {
                    const auto q = vqa_color_rgb(k);
                    int dist = 0;
                    for (int c = 0; c < 3; ++c) dist += (p[c] - q[c]) * (p[c] - q[c]);
                    if (dist < best_d) best_d = dist, best = k;
                }
                EXPECT_EQ(best, o.color);
            }
            // The background is not flat: a corner patch has some spread.
            int lo = 255, hi = 0;
            for (int y = 0; y < 4; ++y)
                for (int x = 0; x < 4; ++x) lo = std::min<int>(lo, img.rgb[(y * size + x) * 3]), hi = std::max<int>(hi, img.rgb[(y * size + x) * 3]);
            EXPECT_GE(hi - lo, 2);
        }
    }
    // Larger objects cover more pixels: a large circle alone against a small one.
    VqaScene s;
    s.texture_seed = 1;
    s.objects = {{0, 2, 0, 0.25f, 0.5f}, {0, 2, 1, 0.7f, 0.5f}};
    const Image img = render_scene(s, 64);
    int left = 0, right = 0;
    for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x) {
            const uint8_t* p = &img.rgb[(y * 64 + x) * 3];
            if (p[2] > 150 && p[0] < 120) (x < 30 ? left : right) += 1;
        }
    EXPECT_GT(right, 2 * left);
    EXPECT_NE(test::error_of([] { VqaOptions o; o.image_size = 8; make_vqa_split("train", o); }).find("16..1024"), std::string::npos);
}

TEST(VqaData, TwentyThousandExamplesInAFewSeconds) {
    const auto t0 = std::chrono::steady_clock::now();
    const VqaSplit d = split_of("train", 4000, 11);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("20,000 examples with 4,000 64x64 images: %.2f s\n", s);
    EXPECT_EQ(d.examples.size(), 20000u);
    EXPECT_LT(s, 5.0);
}

bool exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

TEST(VqaData, GenVqaWritesDecodablePngsAndJsonl) {
    if (!exists(test::cli_path())) GTEST_SKIP() << "no llmforge binary at " << test::cli_path() << " (set LLMFORGE_BIN)";
    const std::string dir = test::temp_dir() + "/vqa";
    const auto r = test::run_cli("gen-vqa --out " + test::q(dir) +
                                 " --split all --scenes 12 --eval-scenes 3 --questions-per-scene 4 --image-size 32 --seed 5");
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto answers = nlohmann::json::parse(test::read_file(dir + "/answers.json"));
    EXPECT_EQ(answers["answers"].get<std::vector<std::string>>(), vqa_answers());
    for (const std::string split : {"train", "val", "test", "test_iid"}) {
        SCOPED_TRACE(split);
        VqaOptions o;
        o.n_scenes = split == "train" ? 12 : 3;
        o.questions_per_scene = 4;
        o.image_size = 32;
        o.seed = 5;
        const VqaSplit want = make_vqa_split(split, o);
        for (int64_t i = 0; i < o.n_scenes; ++i) {
            char name[32];
            std::snprintf(name, sizeof name, "/images/%06lld.png", static_cast<long long>(i));
            const Image img = load_image(dir + "/" + split + name);
            EXPECT_EQ(img.width, 32);
            EXPECT_EQ(img.rgb, want.images[static_cast<size_t>(i)].rgb);
        }
        std::istringstream lines(test::read_file(dir + "/" + split + "/questions.jsonl"));
        std::string line;
        size_t n = 0;
        while (std::getline(lines, line)) {
            ASSERT_LT(n, want.examples.size());
            const auto j = nlohmann::json::parse(line);
            const VqaExample& e = want.examples[n++];
            char name[32];
            std::snprintf(name, sizeof name, "images/%06lld.png", static_cast<long long>(e.image));
            EXPECT_EQ(j.at("image"), name);
            EXPECT_EQ(j.at("question"), e.question);
            EXPECT_EQ(j.at("answer"), vqa_answers()[e.answer]);
            EXPECT_EQ(j.at("answer_id"), e.answer);
            EXPECT_EQ(j.at("type"), vqa_type_name(e.type));
        }
        EXPECT_EQ(n, want.examples.size());
        EXPECT_EQ(n, static_cast<size_t>(o.n_scenes * 4));
    }
    // Bad flags: one line each.
    test::expect_one_line_error(test::run_cli("gen-vqa --out " + test::q(dir) + " --image-size 8"), "--image-size is 8");
    test::expect_one_line_error(test::run_cli("gen-vqa --out " + test::q(dir) + " --split dev"), "--split is 'dev'");
    test::expect_one_line_error(test::run_cli("gen-vqa --out " + test::q(dir) + " --scenes 0"), "--scenes is 0");
    test::expect_one_line_error(test::run_cli("gen-vqa --out " + test::q(dir) + " --questions-per-scene 0"),
                                "--questions-per-scene is 0");
    test::expect_one_line_error(test::run_cli("gen-vqa --out " + test::q(dir) + " --split val --eval-scenes 3"),
                                "--eval-scenes only applies with --split all");
}

}  // namespace
}  // namespace llmforge::train
