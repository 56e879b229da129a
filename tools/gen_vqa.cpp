// llmforge gen-vqa --out DIR [--split train|val|test|test_iid|all] [--scenes N] ...: writes the
// synthetic CLEVR-like visual question answering dataset (src/train/vqa_data.h) as files a trainer
// (or a person) reads: DIR/<split>/images/NNNNNN.png (one per scene), DIR/<split>/questions.jsonl
// ({"image", "question", "answer", "answer_id", "type", "scene"} per line) and DIR/answers.json
// (the closed answer set and the question types). Scenes are rendered one at a time, so a large
// split never holds all its images in memory.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "progress.h"
#include "train/vqa_data.h"

namespace llmforge::cli {

namespace fs = std::filesystem;

void add_gen_vqa(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("gen-vqa", "Write the synthetic visual question answering dataset (PNG + JSONL)");
    static std::string out, split = "train";
    static int64_t scenes = 1000, eval_scenes = -1, per_scene = 5, image_size = 64;
    static uint64_t seed = 1;
    sub->add_option("-o,--out", out, "output folder (DIR/<split>/images, DIR/<split>/questions.jsonl, DIR/answers.json)")
        ->required();
    sub->add_option("--split", split, "train, val, test (held-out combinations), test_iid, or all")->capture_default_str();
    sub->add_option("--scenes", scenes, "scenes (images) of the split; with --split all, of train")->capture_default_str();
    sub->add_option("--eval-scenes", eval_scenes, "with --split all: scenes of val, test and test_iid (default: --scenes / 5)");
    sub->add_option("--questions-per-scene", per_scene, "questions per image, of distinct types")->capture_default_str();
    sub->add_option("--image-size", image_size, "image side in pixels (16..1024)")->capture_default_str();
    sub->add_option("--seed", seed, "seed (same seed, same files)")->capture_default_str();
    run = [] {
        const auto& names = train::vqa_split_names();
        if (split != "all" && std::find(names.begin(), names.end(), split) == names.end()) {
            fail("gen-vqa: --split is '%s', expected train, val, test, test_iid or all", split.c_str());
        }
        if (scenes < 1) fail("gen-vqa: --scenes is %lld, expected at least 1", (long long)scenes);
        if (split != "all" && eval_scenes != -1) {
            fail("gen-vqa: --eval-scenes only applies with --split all (use --scenes for --split %s)", split.c_str());
        }
        if (split == "all" && eval_scenes != -1 && eval_scenes < 1) {
            fail("gen-vqa: --eval-scenes is %lld, expected at least 1", (long long)eval_scenes);
        }
        if (per_scene < 1 || per_scene > 32) {
            fail("gen-vqa: --questions-per-scene is %lld, expected 1..32", (long long)per_scene);
        }
        if (image_size < 16 || image_size > 1024) {
            fail("gen-vqa: --image-size is %lld, expected 16..1024 pixels", (long long)image_size);
        }
        std::vector<std::pair<std::string, int64_t>> splits;
        if (split == "all") {
            const int64_t ev = eval_scenes > 0 ? eval_scenes : std::max<int64_t>(1, scenes / 5);
            for (const auto& n : names) splits.emplace_back(n, n == "train" ? scenes : ev);
        } else {
            splits.emplace_back(split, scenes);
        }
        int64_t total = 0;
        for (const auto& t : splits) total += t.second;

        std::error_code ec;
        fs::create_directories(out, ec);
        if (ec) fail("gen-vqa: cannot create the folder '%s': %s", out.c_str(), ec.message().c_str());
        nlohmann::json answers;
        answers["answers"] = train::vqa_answers();
        answers["types"] = nlohmann::json::array();
        for (int t = 0; t < train::kVqaTypes; ++t) answers["types"].push_back(train::vqa_type_name(static_cast<train::VqaType>(t)));
        write_file_atomic(out + "/answers.json", answers.dump(2) + "\n");

        Progress progress("gen-vqa", static_cast<double>(total), "images");
        int64_t done = 0;
        for (const auto& [name, n] : splits) {
            const std::string dir = out + "/" + name;
            fs::create_directories(dir + "/images", ec);
            if (ec) fail("gen-vqa: cannot create the folder '%s/images': %s", dir.c_str(), ec.message().c_str());
            train::VqaOptions opt;
            opt.image_size = image_size;
            opt.n_scenes = n;
            opt.questions_per_scene = per_scene;
            opt.seed = seed;
            opt.render = false;  // rendered and written one by one below
            const train::VqaSplit data = train::make_vqa_split(name, opt);
            char file[64];
            for (int64_t i = 0; i < n; ++i) {
                std::snprintf(file, sizeof file, "images/%06lld.png", (long long)i);
                write_png(dir + "/" + file, train::render_scene(data.scenes[static_cast<size_t>(i)], image_size));
                progress.update(static_cast<double>(++done), name);
            }
            // The questions last: a folder with a questions.jsonl has all the images it names.
            AtomicFile f(dir + "/questions.jsonl");
            for (const train::VqaExample& e : data.examples) {
                std::snprintf(file, sizeof file, "images/%06lld.png", (long long)e.image);
                nlohmann::json j;
                j["image"] = file;
                j["question"] = e.question;
                j["answer"] = train::vqa_answers()[static_cast<size_t>(e.answer)];
                j["answer_id"] = e.answer;
                j["type"] = train::vqa_type_name(e.type);
                j["scene"] = e.image;
                const std::string line = j.dump() + "\n";
                f.write(line.data(), line.size());
            }
            f.commit();
            std::fprintf(stderr, "gen-vqa: %s: %lld images (%lld×%lld), %zu questions -> %s\n", name.c_str(), (long long)n,
                         (long long)image_size, (long long)image_size, data.examples.size(), dir.c_str());
        }
        return 0;
    };
}

}  // namespace llmforge::cli
