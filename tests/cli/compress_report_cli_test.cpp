// llmforge compress-report on the tiny llama fixture (tests/data/quant/tiny-f32.gguf): the table's
// columns and rows, numbers that must hold whatever the kernels (f16 next to nothing lost, more bits
// less divergence, the reference's perplexity is `llmforge perplexity`'s, sizes are the files'),
// the SVG, a type that fails skipped with a note, and one-line errors for bad input; and
// `perplexity --kl-base` (the same statistics for one model against another).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include "cli_run.h"

namespace llmforge::test {
namespace {

const char* kHeader =
    "| method | type | size | bpw | pp8 t/s | tg4 t/s | PPL | PPL / PPL(f32) | same top-1 as f32 | mean KLD | median KLD "
    "| KLD 99% | KLD 99.9% | max KLD |";

std::vector<std::string> cells(const std::string& line) {
    std::vector<std::string> out;
    std::string cur;
    for (size_t i = 1; i < line.size(); ++i) {
        if (line[i] == '|' && line[i - 1] != '\\') {
            cur.erase(0, cur.find_first_not_of(' '));
            cur.erase(cur.find_last_not_of(' ') + 1);
            out.push_back(cur);
            cur.clear();
        } else {
            cur += line[i];
        }
    }
    return out;
}

// Rows of the table by "method type".
std::map<std::string, std::vector<std::string>> table_rows(const std::string& md) {
    std::map<std::string, std::vector<std::string>> rows;
    std::istringstream ss(md);
    std::string line;
    int n = 0;
    while (std::getline(ss, line)) {
        if (line.rfind("| ", 0) != 0 || ++n == 1) continue;  // the header
        const auto c = cells(line);
        if (c.size() > 1) rows[c[0] + " " + c[1]] = c;
    }
    return rows;
}

double num(const std::string& cell) { return std::stod(cell); }  // the value before any " ±" or unit

std::string text_file() {
    const std::string dir = temp_dir();
    const std::string calib = read_file(src_path("tests/data/quant/calib.txt"));
    write_file(dir + "/text.txt", calib.substr(0, 700));
    return dir + "/text.txt";
}

TEST(CompressReportCli, TableColumnsRowsAndPicture) {
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    const std::string q4 = src_path("tests/data/quant/tiny-Q4_0.gguf");
    const std::string text = text_file(), dir = temp_dir();
    const CliRun r = run_cli("compress-report -m " + q(f32) + " -f " + q(text) +
                             " --types f16,q8_0,q4_0,q2_k_s -c 128 -p 8 -n 4 -r 1 -t 2 --extra " + q(q4 + ":llama.cpp q4_0") +
                             " --out-md " + q(dir + "/r.md") + " --out-svg " + q(dir + "/r.svg") + " --keep-dir " +
                             q(dir + "/files"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "") << "the table goes to --out-md";
    const std::string md = read_file(dir + "/r.md");
    EXPECT_EQ(md.substr(0, md.find('\n')), kHeader);
    const auto rows = table_rows(md);
    for (const char* k : {"reference f32", "quantize f16", "quantize q8_0", "quantize q4_0", "llama.cpp q4_0 q4_0"})
        ASSERT_TRUE(rows.count(k)) << k << "\n" << md;
    for (const auto& [k, c] : rows) EXPECT_EQ(c.size(), 14u) << k;
    // q2_k_s needs an importance matrix: skipped with a note, not a row, and the run goes on.
    EXPECT_FALSE(rows.count("quantize q2_k_s"));
    EXPECT_NE(md.find("q2_k_s skipped: "), std::string::npos) << md;

    const auto& ref = rows.at("reference f32");
    const auto& f16 = rows.at("quantize f16");
    const auto& q8 = rows.at("quantize q8_0");
    const auto& q40 = rows.at("quantize q4_0");
    EXPECT_NEAR(num(ref[3]), 32.0, 0.01);
    EXPECT_NEAR(num(f16[3]), 16.0, 0.1);  // the norms stay f32
    EXPECT_NEAR(num(q8[3]), 8.5, 0.1);
    EXPECT_LT(num(q40[3]), 6.0);
    EXPECT_GT(num(q40[3]), 4.4);
    for (const auto* row : {&ref, &f16, &q8, &q40}) {
        EXPECT_GT(num((*row)[4]), 0) << "pp measured";
        EXPECT_GT(num((*row)[5]), 0) << "tg measured";
    }
    // Quality: f16 loses next to nothing; fewer bits, more divergence; the ratio is PPL / PPL(f32).
    EXPECT_LT(num(f16[9]), 1e-4);
    EXPECT_GT(num(f16[8]), 95.0);
    EXPECT_LT(num(f16[9]), num(q8[9]));
    EXPECT_LT(num(q8[9]), num(q40[9]));
    EXPECT_GT(num(q40[9]), 0.0);
    EXPECT_LE(num(q40[10]), num(q40[11]) + 1e-9);  // median <= 99% <= 99.9% <= max
    EXPECT_LE(num(q40[11]), num(q40[12]) + 1e-9);
    EXPECT_LE(num(q40[12]), num(q40[13]) + 1e-9);
    EXPECT_NEAR(num(q40[7]), num(q40[6]) / num(ref[6]), 2e-3);
    EXPECT_EQ(ref[7], "1");
    EXPECT_EQ(ref[9], "0");

    // The reference's perplexity is `llmforge perplexity`'s on the same text and windows.
    const CliRun p = run_cli("perplexity -m " + q(f32) + " -f " + q(text) + " -c 128 -t 2");
    ASSERT_EQ(p.rc, 0) << p.err;
    const double ppl = std::stod(p.out.substr(p.out.find(':') + 1));
    EXPECT_NEAR(num(ref[6]), ppl, 1e-4 * ppl);

    // Sizes are the files'; the reference is the input as given (f32).
    const double q8_bytes = static_cast<double>(std::filesystem::file_size(dir + "/files/tiny-f32-q8_0.gguf"));
    EXPECT_NEAR(num(q8[2]), q8_bytes / 1024, 0.1);  // "657.5 KiB"
    EXPECT_NE(q8[2].find("KiB"), std::string::npos);
    EXPECT_NE(md.find("the model as given (f32)"), std::string::npos);

    const std::string svg = read_file(dir + "/r.svg");
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    size_t circles = 0;
    for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
    EXPECT_EQ(circles, 5u + 4u);  // perplexity ratio: 5 rows; KL (log scale): the 4 that are not the reference
    for (const char* label : {">q8_0<", ">q4_0<", ">f16<", "llama.cpp q4_0", "bits per weight"})
        EXPECT_NE(svg.find(label), std::string::npos) << label;
}

TEST(CompressReportCli, TableOnStdoutByDefault) {
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    const CliRun r = run_cli("compress-report -m " + q(f32) + " -f " + q(text_file()) +
                             " --types q8_0 -c 128 -p 0 -n 0 -t 2 --second-half");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out.rfind("| method | type | size | bpw | pp t/s | tg t/s |", 0), 0u) << r.out;
    const auto rows = table_rows(r.out);
    ASSERT_TRUE(rows.count("quantize q8_0")) << r.out;
    EXPECT_EQ(rows.at("quantize q8_0")[4], "—");  // speeds skipped
    EXPECT_NE(r.out.find("the second half of each window scored"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("compress-report: "), std::string::npos) << "progress on stderr";
}

TEST(CompressReportCli, BadInputIsOneLine) {
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    const std::string text = text_file(), dir = temp_dir();
    const std::string base = "compress-report -m " + q(f32) + " -p 0 -n 0 ";
    expect_one_line_error(run_cli(base + "-f " + q(text) + " --types q8_0,q9_9"), "q9_9");
    expect_one_line_error(run_cli(base + "-f " + q(text) + " --types ,"), "--types");
    expect_one_line_error(run_cli(base + "-f " + q(dir + "/missing.txt") + " --types q8_0"), "missing.txt");
    expect_one_line_error(run_cli(base + "-f " + q(text) + " --types q8_0 --extra " + q(dir + "/nope.gguf")),
                          "nope.gguf");
    write_file(dir + "/empty.txt", "");  // BOS only: nothing to score
    expect_one_line_error(run_cli(base + "-f " + q(dir + "/empty.txt") + " --types q8_0"), "empty.txt");
    expect_one_line_error(run_cli(base + "-f " + q(text) + " --types q8_0 --ctx 1"), "--ctx");
}

TEST(CompressReportCli, ExtraWithAnotherVocabularyIsOneLine) {
    LF_REQUIRE_ASSET(stories, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    const CliRun r = run_cli("compress-report -m " + q(f32) + " -f " + q(text_file()) +
                             " --types f16 -c 128 -p 0 -n 0 -t 2 --extra " + q(stories));
    expect_one_line_error(r, "vocabulary");
}

// perplexity --kl-base: the perplexity line first as before, then llama.cpp's statistics block.
TEST(CompressReportCli, PerplexityKlBase) {
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    const std::string q4 = src_path("tests/data/quant/tiny-Q4_0.gguf");
    const std::string text = text_file();
    const CliRun r = run_cli("perplexity -m " + q(q4) + " --kl-base " + q(f32) + " -f " + q(text) + " -c 128 -t 2");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out.rfind("perplexity: ", 0), 0u) << r.out;
    for (const char* k : {"Mean PPL(Q)/PPL(base)", "Mean    KLD:", "Maximum KLD:", "99.9%   KLD:", "99.0%   KLD:",
                          "Median  KLD:", "Same top p:"})
        EXPECT_NE(r.out.find(k), std::string::npos) << k << "\n" << r.out;
    auto value = [&](const CliRun& run, const std::string& key) {
        const size_t at = run.out.find(key);
        return at == std::string::npos ? -1.0 : std::stod(run.out.substr(at + key.size()));
    };
    const double kld = value(r, "Mean    KLD:");
    EXPECT_GT(kld, 1e-5);
    EXPECT_LT(kld, 0.1);
    EXPECT_GT(value(r, "Same top p:"), 50.0);
    EXPECT_LT(value(r, "Same top p:"), 100.0);
    // Mean PPL(Q) is the perplexity line's value.
    EXPECT_NEAR(value(r, "Mean PPL(Q)                   :"), std::stod(r.out.substr(12)), 1e-3);
    // Against itself: nothing lost.
    const CliRun self = run_cli("perplexity -m " + q(f32) + " --kl-base " + q(f32) + " -f " + q(text) + " -c 128 -t 2");
    ASSERT_EQ(self.rc, 0) << self.err;
    EXPECT_NEAR(value(self, "Mean    KLD:"), 0.0, 1e-6);
    EXPECT_NEAR(value(self, "Same top p:"), 100.0, 1e-9);
    // The model against itself with a quantised KV cache: the base keeps f32, so the KL is the cache's cost.
    const CliRun kv = run_cli("perplexity -m " + q(f32) + " --kl-base " + q(f32) + " -f " + q(text) +
                              " -c 128 -t 2 --cache-type-k q4_0 --cache-type-v q4_0");
    ASSERT_EQ(kv.rc, 0) << kv.err;
    EXPECT_GT(value(kv, "Mean    KLD:"), 1e-7);
    EXPECT_LT(value(kv, "Mean    KLD:"), 0.1);
}

TEST(CompressReportCli, PerplexityKlBaseWithAnotherVocabularyIsOneLine) {
    LF_REQUIRE_ASSET(stories, "llama2c-stories260K/stories260K.bin");
    const std::string f32 = src_path("tests/data/quant/tiny-f32.gguf");
    expect_one_line_error(run_cli("perplexity -m " + q(f32) + " --kl-base " + q(stories) + " -f " + q(text_file()) +
                                  " -c 128"),
                          "vocabulary");
}

}  // namespace
}  // namespace llmforge::test
