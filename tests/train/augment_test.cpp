// Data augmentation (src/train/augment.h): each EDA operation on fixed input with fixed seeds
// (properties, not exact strings), reproducibility, the synonym file format and its errors, chat
// records (roles, system and other keys untouched) and back-translation mechanics with a fake
// translator.
#include "train/augment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::train;

namespace {

const char* kSynonyms =
    "# test groups\n"
    "order, purchase   # trailing comment\n"
    "\n"
    "package, parcel, shipment\n"
    "arrive, come\n"
    "damaged, broken, defective\n"
    "buy, purchase\n"
    "quick, fast\n";

SynonymTable table() { return SynonymTable::parse(kSynonyms, "syn.txt"); }

const std::string kSentence =
    "Hello! My order arrived yesterday, but the package was damaged and the parcel (a small box) looked broken.";

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// True when `sub` is a subsequence of `all`.
bool subsequence(const std::vector<std::string>& sub, const std::vector<std::string>& all) {
    size_t k = 0;
    for (const std::string& w : all)
        if (k < sub.size() && sub[k] == w) ++k;
    return k == sub.size();
}

}  // namespace

TEST(Augment, SynonymFileGroupsCommentsCaseAndUnion) {
    const SynonymTable t = table();
    EXPECT_EQ(t.n_groups(), 6u);
    ASSERT_NE(t.find("order"), nullptr);
    EXPECT_EQ(*t.find("ORDER"), std::vector<std::string>{"purchase"});
    // "purchase" is in two groups: the union of both, never itself.
    const auto* p = t.find("Purchase");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::set<std::string>(p->begin(), p->end()), (std::set<std::string>{"order", "buy"}));
    EXPECT_EQ(t.find("comment"), nullptr);
    EXPECT_EQ(t.find("hello"), nullptr);
    EXPECT_EQ(t.find("package")->size(), 2u);
}

TEST(Augment, SynonymFileErrorsNameFileAndLine) {
    struct Case {
        const char* text;
        const char* expect;
    } cases[] = {
        {"order, purchase\nbuy,, get\n", "syn.txt:2: word 2 of the group is empty"},
        {"# c\norder, make purchase\n", "syn.txt:2: \"make purchase\" has whitespace inside"},
        {"order, purchase.\n", "syn.txt:1: \"purchase.\" begins or ends with punctuation"},
        {"a, b\n\n\nlonely\n", "syn.txt:4: a group of one word (\"lonely\")"},
        {"order, Order\n", "syn.txt:1: \"Order\" is listed twice"},
        {"# only comments\n\n", "syn.txt: no synonym groups"},
        {"order, purchase,\n", "syn.txt:1: word 3 of the group is empty"},
    };
    for (const Case& c : cases) {
        const std::string msg = error_of([&] { SynonymTable::parse(c.text, "syn.txt"); });
        EXPECT_NE(msg.find(c.expect), std::string::npos) << c.text << " -> " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    const std::string missing = test::temp_dir() + "/nope.txt";
    const std::string msg = error_of([&] { SynonymTable::load(missing); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
    EXPECT_NE(msg.find("synonym file"), std::string::npos) << msg;
}

TEST(Augment, WordsKeepPunctuationOutOfTheCore) {
    EXPECT_EQ(word_core("(Hello!)"), "Hello");
    EXPECT_EQ(word_core("don't,"), "don't");
    EXPECT_EQ(word_core("e-mail."), "e-mail");
    EXPECT_EQ(word_core("--"), "");
    EXPECT_EQ(split_words("  a\tb\n\nc  "), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Augment, SynonymReplacementOnlyReplacesListedWordsWithTheirSynonyms) {
    const SynonymTable t = table();
    const std::vector<std::string> orig = split_words(kSentence);
    size_t with_syn = 0;
    for (const auto& w : orig) with_syn += t.find(word_core(w)) != nullptr;
    ASSERT_EQ(with_syn, 5u);  // order, package, damaged, parcel, broken
    for (double alpha : {0.05, 0.2, 1.0}) {
        const size_t n = std::min(with_syn, std::max<size_t>(1, static_cast<size_t>(std::llround(alpha * orig.size()))));
        for (uint64_t seed = 0; seed < 40; ++seed) {
            const std::string out = synonym_replace(kSentence, alpha, t, seed);
            const std::vector<std::string> got = split_words(out);
            ASSERT_EQ(got.size(), orig.size()) << out;
            size_t changed = 0;
            for (size_t i = 0; i < orig.size(); ++i) {
                if (got[i] == orig[i]) continue;
                ++changed;
                const std::string_view oc = word_core(orig[i]), gc = word_core(got[i]);
                const auto* syn = t.find(oc);
                ASSERT_NE(syn, nullptr) << orig[i] << " -> " << got[i];
                EXPECT_NE(std::find(syn->begin(), syn->end(), lower(std::string(gc))), syn->end()) << got[i];
                // Punctuation around the word stays; the capital letter follows the original.
                const size_t ob = orig[i].find(oc), gb = got[i].find(gc);
                EXPECT_EQ(orig[i].substr(0, ob), got[i].substr(0, gb));
                EXPECT_EQ(orig[i].substr(ob + oc.size()), got[i].substr(gb + gc.size()));
                EXPECT_EQ(std::isupper(static_cast<unsigned char>(oc[0])) != 0,
                          std::isupper(static_cast<unsigned char>(gc[0])) != 0);
            }
            EXPECT_EQ(changed, n) << "alpha " << alpha << " seed " << seed << ": " << out;
        }
    }
    EXPECT_EQ(synonym_replace("Order NOW", 1.0, t, 1), "Purchase NOW");
    EXPECT_EQ(synonym_replace("ORDER now", 1.0, t, 1), "PURCHASE now");
    EXPECT_EQ(synonym_replace("nothing to see here", 1.0, t, 1), "nothing to see here");
    EXPECT_EQ(synonym_replace("", 1.0, t, 1), "");
}

TEST(Augment, RandomDeletionNeverEmptiesAndKeepsOrder) {
    const std::vector<std::string> orig = split_words(kSentence);
    bool some_deleted = false;
    for (uint64_t seed = 0; seed < 200; ++seed) {
        for (double p : {0.1, 0.5, 0.99}) {
            const std::string out = random_delete(kSentence, p, seed);
            const std::vector<std::string> got = split_words(out);
            ASSERT_GE(got.size(), 1u) << out;
            EXPECT_TRUE(subsequence(got, orig)) << out;
            some_deleted |= got.size() < orig.size();
        }
    }
    EXPECT_TRUE(some_deleted);
    EXPECT_EQ(random_delete("alone", 0.99, 3), "alone");
    EXPECT_EQ(random_delete("  ", 0.5, 3), "  ");
    // Whitespace: the line break between paragraphs survives the deletion of its neighbours.
    for (uint64_t seed = 0; seed < 50; ++seed) {
        const std::string out = random_delete("one two\n\nthree four", 0.5, seed);
        const auto got = split_words(out);
        const bool first = std::find(got.begin(), got.end(), "one") != got.end() ||
                           std::find(got.begin(), got.end(), "two") != got.end();
        const bool second = std::find(got.begin(), got.end(), "three") != got.end() ||
                            std::find(got.begin(), got.end(), "four") != got.end();
        if (first && second) {
            EXPECT_NE(out.find("\n\n"), std::string::npos) << out;
        }
    }
}

TEST(Augment, RandomSwapKeepsTheMultisetOfWordsAndThePunctuation) {
    const std::vector<std::string> orig = split_words(kSentence);
    auto cores = [](const std::vector<std::string>& ws) {
        std::multiset<std::string> m;
        for (const auto& w : ws) m.insert(std::string(word_core(w)));
        return m;
    };
    auto punct = [](const std::vector<std::string>& ws) {
        std::vector<std::string> p;
        for (const auto& w : ws) {
            const std::string_view c = word_core(w);
            const size_t b = w.find(c);
            p.push_back(w.substr(0, b) + "|" + w.substr(b + c.size()));
        }
        return p;
    };
    size_t differ = 0;
    for (uint64_t seed = 0; seed < 50; ++seed) {
        const std::string out = random_swap(kSentence, 0.1, seed);
        const auto got = split_words(out);
        ASSERT_EQ(got.size(), orig.size());
        EXPECT_EQ(cores(got), cores(orig)) << out;
        EXPECT_EQ(punct(got), punct(orig)) << out;
        differ += out != kSentence;
    }
    EXPECT_GT(differ, 40u);  // a swap may draw two equal words ("the"), rarely
    EXPECT_EQ(random_swap("single", 0.5, 1), "single");
    EXPECT_EQ(random_swap("a\nb", 0.5, 1), "b\na");  // n = 1 swap
}

TEST(Augment, RandomInsertionAddsExactlyNSynonymsOfTheSentencesWords) {
    const SynonymTable t = table();
    const std::vector<std::string> orig = split_words(kSentence);
    std::set<std::string> allowed;  // synonyms of the sentence's words
    for (const auto& w : orig)
        if (const auto* s = t.find(word_core(w))) allowed.insert(s->begin(), s->end());
    for (double alpha : {0.05, 0.2}) {
        const size_t n = std::max<size_t>(1, static_cast<size_t>(std::llround(alpha * orig.size())));
        for (uint64_t seed = 0; seed < 40; ++seed) {
            const std::string out = random_insert(kSentence, alpha, t, seed);
            const auto got = split_words(out);
            ASSERT_EQ(got.size(), orig.size() + n) << out;
            EXPECT_TRUE(subsequence(orig, got)) << out;
            // Remove the original words in order; what is left are the inserted ones.
            std::vector<std::string> extra;
            size_t k = 0;
            for (const auto& w : got) {
                if (k < orig.size() && w == orig[k]) {
                    ++k;
                } else {
                    extra.push_back(w);
                }
            }
            ASSERT_EQ(k, orig.size());
            ASSERT_EQ(extra.size(), n);
            for (const auto& w : extra) EXPECT_TRUE(allowed.count(w)) << w << " in " << out;
        }
    }
    EXPECT_EQ(random_insert("nothing listed here", 0.5, t, 1), "nothing listed here");
    // At the end of the text the inserted word goes before the trailing whitespace.
    for (uint64_t seed = 0; seed < 20; ++seed) {
        const std::string out = random_insert("order\n", 1.0, t, seed);
        EXPECT_TRUE(out == "purchase order\n" || out == "order purchase\n") << out;
    }
}

TEST(Augment, SameSeedSameOutputDifferentSeedDiffers) {
    const SynonymTable t = table();
    const std::function<std::string(uint64_t)> ops[] = {
        [&](uint64_t s) { return synonym_replace(kSentence, 0.3, t, s); },
        [&](uint64_t s) { return random_insert(kSentence, 0.2, t, s); },
        [&](uint64_t s) { return random_swap(kSentence, 0.2, s); },
        [&](uint64_t s) { return random_delete(kSentence, 0.3, s); },
    };
    for (const auto& op : ops) {
        EXPECT_EQ(op(11), op(11));
        std::set<std::string> outs;
        for (uint64_t s = 0; s < 8; ++s) outs.insert(op(s));
        EXPECT_GE(outs.size(), 4u);
    }
    // Each part of a stream's key changes the stream.
    std::set<uint64_t> seeds;
    seeds.insert(stream_seed(1, 2, 3, AugmentMethod::kRandomSwap, 4, 0));
    seeds.insert(stream_seed(9, 2, 3, AugmentMethod::kRandomSwap, 4, 0));
    seeds.insert(stream_seed(1, 9, 3, AugmentMethod::kRandomSwap, 4, 0));
    seeds.insert(stream_seed(1, 2, 9, AugmentMethod::kRandomSwap, 4, 0));
    seeds.insert(stream_seed(1, 2, 3, AugmentMethod::kRandomDelete, 4, 0));
    seeds.insert(stream_seed(1, 2, 3, AugmentMethod::kRandomSwap, 9, 0));
    seeds.insert(stream_seed(1, 2, 3, AugmentMethod::kRandomSwap, 4, 1));
    EXPECT_EQ(seeds.size(), 7u);
}

TEST(Augment, ChatRecordsKeepRolesSystemAndOtherKeys) {
    const SynonymTable t = table();
    AugmentConfig cfg;
    cfg.eda.sr = 1.0;
    cfg.eda.rs = 0.5;
    cfg.synonyms = &t;
    cfg.seed = 5;
    const Augmenter a(cfg);
    const auto rec = nlohmann::ordered_json::parse(R"({"id": 7, "messages": [
        {"role": "system", "content": "Your order and package are our priority, quick and fast."},
        {"role": "user", "content": "My order arrived damaged, the package is broken.", "name": "ann"},
        {"role": "assistant", "content": "Sorry! I will send a new package for your order quickly."},
        {"role": "tool", "content": "order package damaged"},
        {"role": "assistant", "content": null, "tool_calls": []}
    ], "meta": {"source": "test"}})");
    const auto out = a.augment_record(rec, 3, 0, "in.jsonl:3");
    ASSERT_EQ(out.size(), rec.size());
    EXPECT_EQ(out.begin().key(), "id");  // key order kept
    EXPECT_EQ(out["id"], 7);
    EXPECT_EQ(out["meta"], rec["meta"]);
    ASSERT_EQ(out["messages"].size(), rec["messages"].size());
    for (size_t i = 0; i < rec["messages"].size(); ++i) {
        EXPECT_EQ(out["messages"][i]["role"], rec["messages"][i]["role"]);
        EXPECT_EQ(out["messages"][i].size(), rec["messages"][i].size());
    }
    EXPECT_EQ(out["messages"][0], rec["messages"][0]);  // system untouched
    EXPECT_EQ(out["messages"][3], rec["messages"][3]);  // tool: not a chosen role
    EXPECT_EQ(out["messages"][4], rec["messages"][4]);  // null content
    EXPECT_NE(out["messages"][1]["content"], rec["messages"][1]["content"]);
    EXPECT_NE(out["messages"][2]["content"], rec["messages"][2]["content"]);
    EXPECT_EQ(out["messages"][1]["name"], "ann");
    // Same (line, copy): same result; another copy or line: another result.
    EXPECT_EQ(a.augment_record(rec, 3, 0, "x"), out);
    EXPECT_NE(a.augment_record(rec, 3, 1, "x"), out);
    EXPECT_NE(a.augment_record(rec, 4, 0, "x"), out);

    cfg.roles = {"user"};
    const auto only_user = Augmenter(cfg).augment_record(rec, 3, 0, "x");
    EXPECT_EQ(only_user["messages"][2], rec["messages"][2]);
    EXPECT_EQ(only_user["messages"][1], out["messages"][1]);  // the stream does not depend on other messages

    const auto text = nlohmann::ordered_json::parse(R"({"text": "My order arrived damaged.", "label": 1})");
    const auto tout = a.augment_record(text, 1, 0, "x");
    EXPECT_EQ(tout["label"], 1);
    EXPECT_NE(tout["text"], text["text"]);
}

TEST(Augment, BadRecordsAndConfigurationsAreOneLineErrors) {
    const SynonymTable t = table();
    AugmentConfig cfg;
    cfg.eda.rs = 0.1;
    const Augmenter a(cfg);
    struct Case {
        const char* line;
        const char* expect;
    } cases[] = {
        {R"({"prompt": "hi"})", "in.jsonl:2: expected an object with a \"text\" string or a \"messages\" array, found an object with keys \"prompt\""},
        {R"(["a"])", "in.jsonl:2: expected an object with a \"text\" string or a \"messages\" array, found an array"},
        {R"({"text": 3})", "in.jsonl:2: \"text\" is a number, expected a string"},
        {R"({"messages": {"role": "user"}})", "in.jsonl:2: \"messages\" is an object with keys \"role\", expected an array"},
        {R"({"messages": [{"content": "x"}]})", "in.jsonl:2: messages[0] is an object with keys \"content\", expected an object with a \"role\" string"},
        {R"({"messages": [{"role": "user", "content": 5}]})", "in.jsonl:2: messages[0].content is a number"},
        {R"({"text": "unterminated)", "in.jsonl:2: not valid JSON"},
    };
    for (const Case& c : cases) {
        const std::string input = std::string("{\"text\": \"fine\"}\n") + c.line + "\n";
        const std::string msg = error_of([&] { a.run(input, "in.jsonl", [](const std::string&) {}); });
        EXPECT_NE(msg.find(c.expect), std::string::npos) << c.line << " -> " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    auto cfg_error = [&](const std::function<void(AugmentConfig&)>& edit) {
        AugmentConfig c;
        edit(c);
        return error_of([&] { (void)Augmenter(c); });
    };
    EXPECT_NE(cfg_error([](AugmentConfig&) {}).find("no augmentation method chosen"), std::string::npos);
    EXPECT_NE(cfg_error([](AugmentConfig& c) { c.eda.rs = 1.5; }).find("--rs is 1.5, expected a value in (0, 1]"),
              std::string::npos);
    EXPECT_NE(cfg_error([](AugmentConfig& c) { c.eda.rd = 1; }).find("--rd is 1, expected a value in (0, 1)"),
              std::string::npos);
    EXPECT_NE(cfg_error([](AugmentConfig& c) { c.eda.sr = -0.1; }).find("--sr is -0.1"), std::string::npos);
    EXPECT_NE(cfg_error([](AugmentConfig& c) { c.eda.sr = 0.1; }).find("--sr needs a synonym file"), std::string::npos);
    EXPECT_NE(cfg_error([&](AugmentConfig& c) {
                  c.eda.rs = 0.1;
                  c.copies = 0;
              }).find("--copies is 0"),
              std::string::npos);
}

TEST(Augment, RunWritesOriginalsThenCopiesAndLinesAreIndependent) {
    const SynonymTable t = table();
    AugmentConfig cfg;
    cfg.eda.sr = 0.3;
    cfg.eda.rd = 0.2;
    cfg.synonyms = &t;
    cfg.copies = 3;
    cfg.seed = 42;
    const std::string line1 = R"({"text": "First line: the order is late."})";
    const std::string line2 = R"({"text": "Second: my package arrived damaged and broken, so I want my order refunded."})";
    auto run = [](const Augmenter& a, const std::string& in) {
        std::vector<std::string> out;
        const AugmentStats st = a.run(in, "in", [&](const std::string& l) { out.push_back(l); });
        EXPECT_EQ(st.variants, static_cast<int64_t>(st.lines) * a.config().copies);
        return out;
    };
    const Augmenter a(cfg);
    const auto out = run(a, line1 + "\n\n" + line2 + "\r\n");
    ASSERT_EQ(out.size(), 8u);
    EXPECT_EQ(out[0], line1);  // the original line, byte for byte
    EXPECT_EQ(out[4], line2);
    for (size_t i : {1, 2, 3, 5, 6, 7}) EXPECT_TRUE(nlohmann::json::parse(out[i]).contains("text"));
    EXPECT_NE(out[5], out[6]);
    EXPECT_EQ(run(a, line1 + "\n\n" + line2 + "\r\n"), out);
    // Line 3 augments the same with another line 1 in front of it (its streams are keyed by its
    // own line number only).
    const auto other = run(a, R"({"text": "Something else entirely, with order and package."})" "\n\n" + line2 + "\n");
    EXPECT_EQ(std::vector<std::string>(other.begin() + 5, other.end()), std::vector<std::string>(out.begin() + 5, out.end()));
    cfg.originals = false;
    const auto no_orig = run(Augmenter(cfg), line1 + "\n\n" + line2 + "\n");
    ASSERT_EQ(no_orig.size(), 6u);
    EXPECT_EQ(no_orig[0], out[1]);
    EXPECT_EQ(no_orig[5], out[7]);
}

namespace {

// Records what it was asked; "translates" by tagging the text with the language, or returns ""
// for texts containing "EMPTY" (first leg) or "VOID" (second leg).
struct FakeTranslator : Translator {
    std::vector<std::pair<std::string, std::string>> calls;  // (text, lang)
    std::vector<uint64_t> seeds;
    std::string translate(const std::string& text, const std::string& lang, uint64_t seed) override {
        calls.emplace_back(text, lang);
        seeds.push_back(seed);
        if (text.find("EMPTY") != std::string::npos || text.find("VOID]") != std::string::npos) return "";
        if (text.find("VOID") != std::string::npos) return "[VOID] " + text;
        return "[" + lang + "] " + text;
    }
};

}  // namespace

TEST(Augment, BackTranslationGoesThereAndBackWithItsOwnSeeds) {
    FakeTranslator tr;
    AugmentConfig cfg;
    cfg.translator = &tr;
    cfg.via = "French";
    cfg.copies = 2;
    cfg.seed = 9;
    const Augmenter a(cfg);
    std::vector<std::string> out;
    const std::string in =
        R"({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Where is my order?"}, )"
        R"({"role": "assistant", "content": "EMPTY it"}, {"role": "user", "content": "VOID"}, {"role": "user", "content": " "}]})"
        "\n";
    const AugmentStats st = a.run(in, "in", [&](const std::string& l) { out.push_back(l); });
    ASSERT_EQ(out.size(), 3u);
    // Per copy: 2 for the first text, 1 for "EMPTY it" (nothing to send back), 2 for "VOID" (empty
    // on the way back), none for the blank one.
    EXPECT_EQ(st.generations, 2 * (2 + 1 + 2));
    EXPECT_EQ(tr.calls.size(), 10u);
    EXPECT_EQ(st.bt_empty, 2 * 2);
    EXPECT_EQ(st.texts, 2 * 3);
    EXPECT_EQ(tr.calls[0], std::make_pair(std::string("Where is my order?"), std::string("French")));
    EXPECT_EQ(tr.calls[1], std::make_pair(std::string("[French] Where is my order?"), std::string("English")));
    const auto v = nlohmann::json::parse(out[1]);
    EXPECT_EQ(v["messages"][0]["content"], "sys");
    EXPECT_EQ(v["messages"][1]["content"], "[English] [French] Where is my order?");
    EXPECT_EQ(v["messages"][2]["content"], "EMPTY it");  // an empty answer keeps the text
    EXPECT_EQ(v["messages"][3]["content"], "VOID");
    EXPECT_EQ(v["messages"][4]["content"], " ");
    EXPECT_EQ(std::set<uint64_t>(tr.seeds.begin(), tr.seeds.end()).size(), 10u);  // each generation its own stream
    EXPECT_NE(error_of([&] {
                  AugmentConfig c;
                  c.translator = &tr;
                  (void)Augmenter(c);
              }).find("--via"),
              std::string::npos);
}
