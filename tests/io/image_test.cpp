// PNG / JPEG decoding (io/image.h) against Pillow 9.4's Image.open(f).convert("RGB"), pinned in
// tests/data/images by make_image_refs.py; and the one-line errors of bad input (truncated at
// every cut point, huge declared sizes, foreign bytes, empty input, damaged data).
#include "io/image.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "image_refs.h"
#include "test_util.h"

namespace llmforge {
namespace {

using test::error_of;
using test::image_data_path;
using test::ImageRefs;

std::vector<uint8_t> file_bytes(const std::string& rel) {
    const std::string s = test::read_file(image_data_path(rel));
    return std::vector<uint8_t>(s.begin(), s.end());
}

std::string decode_error(const std::vector<uint8_t>& b, const std::string& where = "img",
                         const ImageLimits& lim = {}) {
    return error_of([&] { decode_image(b.data(), b.size(), where, lim); });
}

bool one_line(const std::string& s) { return s.find('\n') == std::string::npos && !s.empty(); }

TEST(Image, EveryTestImageDecodesToPillowsBytes) {
    const ImageRefs& refs = ImageRefs::get();
    ASSERT_GE(refs.index.at("decode").size(), 30u);
    for (const auto& d : refs.index.at("decode")) {
        const std::string file = d.at("file");
        SCOPED_TRACE(file + " (Pillow mode " + d.at("pillow_mode").get<std::string>() + ")");
        Image img;
        ASSERT_NO_THROW(img = load_image(image_data_path(file)));
        EXPECT_EQ(img.width, d.at("width").get<int64_t>());
        EXPECT_EQ(img.height, d.at("height").get<int64_t>());
        const std::vector<uint8_t> want = refs.bytes(d.at("offset"), d.at("size"));
        EXPECT_EQ(test::first_difference(img.rgb, want, img.width), "");
    }
}

TEST(Image, CoversThePixelFormatsThatHaveTheirOwnRule) {
    // Guards the reference set itself: removing a case from make_image_refs.py fails here.
    const ImageRefs& refs = ImageRefs::get();
    for (const char* f : {"rgba_29x31.png", "gray16_13x7.png", "rgb16_17x13.png", "gray_alpha16_9x5.png",
                          "palette_oob_9x7.png", "palette1_17x3.png", "gray2_15x9.png", "bilevel_19x13.png",
                          "interlaced_rgb_37x29.png", "interlaced_rgba16_7x5.png", "cmyk_24x16.jpg",
                          "progressive_50x38.jpg", "gray_29x17.jpg", "rgb420_31x45.jpg", "rgb444_37x23.jpg"}) {
        EXPECT_NE(refs.decoded(f), nullptr) << f;
    }
}

TEST(Image, SixteenBitGrayClipsAndOtherSixteenBitTakesTheHighByte) {
    // gray16_13x7.png's first row starts 0, 1, 254, 255, 256, 300 (Pillow: mode "I", clipped).
    const Image g = load_image(image_data_path("gray16_13x7.png"));
    const uint8_t want[6] = {0, 1, 254, 255, 255, 255};
    for (int x = 0; x < 6; ++x) {
        EXPECT_EQ(g.rgb[3 * x], want[x]) << x;
        EXPECT_EQ(g.rgb[3 * x + 1], want[x]) << x;
    }
}

TEST(Image, FormatComesFromTheSignatureNotTheName) {
    const std::vector<uint8_t> png = file_bytes("rgb_37x23.png"), jpg = file_bytes("gray_29x17.jpg");
    EXPECT_STREQ(image_format_of(png.data(), png.size()), "png");
    EXPECT_STREQ(image_format_of(jpg.data(), jpg.size()), "jpeg");
    EXPECT_EQ(image_format_of(png.data(), 4), nullptr);
    const std::string dir = test::temp_dir();
    test::write_file(dir + "/actually_png.jpg", std::string(png.begin(), png.end()));
    const Image a = load_image(dir + "/actually_png.jpg");
    const Image b = decode_image(png.data(), png.size(), "mem");
    EXPECT_EQ(a.width, 37);
    EXPECT_EQ(a.rgb, b.rgb);
}

TEST(Image, TruncatedPngIsAOneLineErrorAtEveryCut) {
    for (const char* file : {"rgb_37x23.png", "interlaced_rgb_37x29.png", "palette4_13x11.png"}) {
        SCOPED_TRACE(file);
        const std::vector<uint8_t> full = file_bytes(file);
        const Image whole = decode_image(full.data(), full.size(), "whole");
        size_t decoded = 0;
        for (size_t cut = 1; cut < full.size(); ++cut) {
            std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
            try {
                const Image img = decode_image(part.data(), part.size(), "image.png");
                // Only the trailing IEND (and the last CRC) may be missing, as with Pillow.
                EXPECT_GE(cut, full.size() - 16) << cut;
                EXPECT_EQ(img.rgb, whole.rgb) << cut;
                ++decoded;
            } catch (const Error& e) {
                const std::string m = e.what();
                EXPECT_EQ(m.rfind("image.png: truncated PNG (", 0), 0u) << cut << ": " << m;
                EXPECT_TRUE(one_line(m)) << m;
            }
        }
        EXPECT_LE(decoded, 16u);
    }
    // The message says where it stopped.
    const std::vector<uint8_t> full = file_bytes("rgb_37x23.png");
    std::vector<uint8_t> half(full.begin(), full.begin() + static_cast<ptrdiff_t>(full.size() / 2));
    const std::string m = decode_error(half, "image.png");
    EXPECT_NE(m.find("ends after " + std::to_string(half.size()) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("while reading row"), std::string::npos) << m;
    EXPECT_NE(decode_error({0x89, 'P', 'N'}).find("truncated PNG (only 3 bytes"), std::string::npos);
    std::vector<uint8_t> head(full.begin(), full.begin() + 20);
    EXPECT_NE(decode_error(head).find("truncated PNG (20 bytes, expected at least 33"), std::string::npos);
}

TEST(Image, TruncatedJpegIsAnErrorNotAGrayImage) {
    for (const char* file : {"rgb420_64x48.jpg", "progressive_50x38.jpg", "gray_29x17.jpg", "cmyk_24x16.jpg"}) {
        SCOPED_TRACE(file);
        const std::vector<uint8_t> full = file_bytes(file);
        const Image whole = decode_image(full.data(), full.size(), "whole");
        for (size_t cut = 1; cut < full.size(); ++cut) {
            std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
            try {
                const Image img = decode_image(part.data(), part.size(), "photo.jpg");
                // Without the EOI marker the pixels are complete (Pillow decodes it too).
                EXPECT_GE(cut, full.size() - 2) << cut;
                EXPECT_EQ(img.rgb, whole.rgb) << cut;
            } catch (const Error& e) {
                const std::string m = e.what();
                EXPECT_EQ(m.rfind("photo.jpg: truncated JPEG (", 0), 0u) << cut << ": " << m;
                EXPECT_TRUE(one_line(m)) << m;
            }
        }
    }
}

TEST(Image, HugeDeclaredSizesAreRefusedBeforeAllocating) {
    std::string m = error_of([] { load_image(image_data_path("bad/huge_100000x100000.png")); });
    EXPECT_NE(m.find("huge_100000x100000.png: PNG declares 100000×100000 pixels, over the limit of 50000000 "
                     "pixels and 16384 per side"),
              std::string::npos)
        << m;
    m = error_of([] { load_image(image_data_path("bad/huge_65535x65535.jpg")); });
    EXPECT_NE(m.find("huge_65535x65535.jpg: JPEG declares 65535×65535 pixels, over the limit of"), std::string::npos)
        << m;
    EXPECT_TRUE(one_line(m));
    // The caller's limits apply, to both formats.
    ImageLimits small;
    small.max_pixels = 500;
    m = error_of([&] { load_image(image_data_path("rgb_37x23.png"), small); });
    EXPECT_NE(m.find("PNG declares 37×23 pixels, over the limit of 500 pixels"), std::string::npos) << m;
    m = error_of([&] { load_image(image_data_path("rgb420_64x48.jpg"), small); });
    EXPECT_NE(m.find("JPEG declares 64×48 pixels"), std::string::npos) << m;
    ImageLimits narrow;
    narrow.max_side = 40;
    EXPECT_NO_THROW(load_image(image_data_path("rgb_37x23.png"), narrow));
    EXPECT_NE(error_of([&] { load_image(image_data_path("rgb420_64x48.jpg"), narrow); }).find("40 per side"),
              std::string::npos);
}

TEST(Image, ForeignBytesAndEmptyInputSayWhatTheyAre) {
    std::string m = error_of([] { load_image(image_data_path("bad/page.html")); });
    EXPECT_NE(m.find("page.html: not a PNG or JPEG image (starts with 3c 68 74 6d 6c 3e 3c 68; hint: it looks like "
                     "HTML"),
              std::string::npos)
        << m;
    EXPECT_TRUE(one_line(m));
    m = decode_error({'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00}, "upload");
    EXPECT_NE(m.find("upload: not a PNG or JPEG image (starts with 47 49 46 38 39 61 01 00; hint: it looks like a "
                     "GIF image"),
              std::string::npos)
        << m;
    m = error_of([] { decode_image(nullptr, 0, "request image 1"); });
    EXPECT_EQ(m.rfind("request image 1: empty image data", 0), 0u) << m;
    const std::string dir = test::temp_dir();
    test::write_file(dir + "/empty.png", "");
    m = error_of([&] { load_image(dir + "/empty.png"); });
    EXPECT_NE(m.find("empty.png: empty image data"), std::string::npos) << m;
    m = error_of([&] { load_image(dir + "/missing.png"); });
    EXPECT_NE(m.find("missing.png: cannot open"), std::string::npos) << m;
    m = error_of([&] { load_image(dir); });
    EXPECT_NE(m.find("not a regular file"), std::string::npos) << m;
}

TEST(Image, DamagedJpegEntropyDataIsAnError) {
    const std::vector<uint8_t> full = file_bytes("rgb420_64x48.jpg");
    size_t sos = 0;
    for (size_t i = 0; i + 1 < full.size(); ++i) {
        if (full[i] == 0xff && full[i + 1] == 0xda) sos = i;
    }
    ASSERT_GT(sos, 0u);
    const size_t data = sos + 2 + ((full[sos + 2] << 8) | full[sos + 3]);
    const size_t mid = data + (full.size() - 2 - data) / 2;
    // A stray marker in the middle of the scan: the Huffman decoder runs out of data there.
    std::vector<uint8_t> b = full;
    b[mid] = 0xff;
    b[mid + 1] = 0xd9;
    std::string m = decode_error(b, "photo.jpg");
    EXPECT_EQ(m.rfind("photo.jpg: corrupt or unsupported JPEG (Corrupt JPEG data", 0), 0u) << m;
    EXPECT_TRUE(one_line(m));
    // All-ones bits (0xff stuffed as ff 00): no valid Huffman code is all ones.
    b = full;
    for (size_t i = mid; i < mid + 24; i += 2) {
        b[i] = 0xff;
        b[i + 1] = 0x00;
    }
    m = decode_error(b, "photo.jpg");
    EXPECT_NE(m.find("corrupt or unsupported JPEG (Corrupt JPEG data"), std::string::npos) << m;
}

TEST(Image, DamagedPngIsAnError) {
    std::vector<uint8_t> b = file_bytes("rgb_37x23.png");
    std::vector<uint8_t> c = b;
    c[19] ^= 0x01;  // width 37 -> 36: the IHDR CRC no longer matches
    std::string m = decode_error(c, "image.png");
    EXPECT_NE(m.find("image.png: corrupt PNG (IHDR: CRC error, while reading the header)"), std::string::npos) << m;
    c = b;
    c[12] = 'X';  // first chunk is not IHDR
    m = decode_error(c, "image.png");
    EXPECT_NE(m.find("image.png: corrupt PNG (the first chunk is not a 13-byte IHDR)"), std::string::npos) << m;
    c = b;
    for (size_t i = b.size() / 2; i < b.size() / 2 + 8; ++i) c[i] ^= 0x5a;  // inside IDAT
    m = decode_error(c, "image.png");
    EXPECT_NE(m.find("image.png: corrupt PNG ("), std::string::npos) << m;
    EXPECT_TRUE(one_line(m));
}

TEST(Image, RandomDamageGivesPixelsOrAnErrorNeverACrash) {
    std::mt19937 rng(7);
    for (const char* file : {"rgb_37x23.png", "interlaced_palette_3x2.png", "gray16_13x7.png", "rgb420_31x45.jpg",
                             "progressive_50x38.jpg", "cmyk_24x16.jpg"}) {
        const std::vector<uint8_t> full = file_bytes(file);
        for (int trial = 0; trial < 300; ++trial) {
            std::vector<uint8_t> b = full;
            const int n = 1 + static_cast<int>(rng() % 4);
            for (int k = 0; k < n; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
            try {
                const Image img = decode_image(b.data(), b.size(), file);
                EXPECT_EQ(img.rgb.size(), static_cast<size_t>(img.width * img.height * 3));
            } catch (const Error& e) {
                EXPECT_TRUE(one_line(e.what())) << e.what();
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Encoding: encode_png / write_png give back exactly the pixels through decode_image / load_image.

Image random_image(int64_t w, int64_t h, uint32_t seed) {
    std::mt19937 rng(seed);
    Image img;
    img.width = w;
    img.height = h;
    img.rgb.resize(static_cast<size_t>(w * h * 3));
    for (uint8_t& b : img.rgb) b = static_cast<uint8_t>(rng());
    return img;
}

TEST(ImageEncode, PngRoundTripsExactly) {
    // Odd sizes, a single pixel, a long thin row, noise (incompressible) and flat areas.
    for (const auto& [w, h] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 23}, {64, 64}, {300, 1}, {1, 77}}) {
        SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
        const Image img = random_image(w, h, static_cast<uint32_t>(w * 131 + h));
        const std::vector<uint8_t> png = encode_png(img);
        EXPECT_STREQ(image_format_of(png.data(), png.size()), "png");
        const Image back = decode_image(png.data(), png.size(), "encoded");
        EXPECT_EQ(back.width, w);
        EXPECT_EQ(back.height, h);
        EXPECT_EQ(back.rgb, img.rgb);
    }
    Image flat;
    flat.width = 128;
    flat.height = 96;
    flat.rgb.assign(128 * 96 * 3, 200);
    const std::vector<uint8_t> png = encode_png(flat);
    EXPECT_LT(png.size(), 2000u);  // compressed, not stored
    EXPECT_EQ(decode_image(png.data(), png.size(), "flat").rgb, flat.rgb);
    EXPECT_EQ(encode_png(flat), png);  // deterministic bytes
}

TEST(ImageEncode, WritePngIsAtomicAndLoadsBack) {
    const std::string dir = test::temp_dir();
    const Image img = random_image(29, 31, 3);
    write_png(dir + "/a.png", img);
    const Image back = load_image(dir + "/a.png");
    EXPECT_EQ(back.width, 29);
    EXPECT_EQ(back.rgb, img.rgb);
    // Overwriting replaces the file whole; no temporary is left behind.
    const Image img2 = random_image(5, 4, 4);
    write_png(dir + "/a.png", img2);
    EXPECT_EQ(load_image(dir + "/a.png").rgb, img2.rgb);
    const std::string listing = [&] {
        std::string out;
        test::run_command("ls -A '" + dir + "'", &out);
        return out;
    }();
    EXPECT_EQ(listing, "a.png\n");
}

TEST(ImageEncode, BadImagesAreOneLineErrors) {
    Image empty;
    std::string m = error_of([&] { encode_png(empty); });
    EXPECT_NE(m.find("PNG encoding: the image is 0×0 pixels"), std::string::npos) << m;
    EXPECT_TRUE(one_line(m));
    Image short_rgb;
    short_rgb.width = 4;
    short_rgb.height = 3;
    short_rgb.rgb.resize(35);
    m = error_of([&] { encode_png(short_rgb); });
    EXPECT_NE(m.find("holds 35 RGB bytes, expected 36"), std::string::npos) << m;
    m = error_of([&] { write_png("/nonexistent-dir/x.png", short_rgb); });
    EXPECT_EQ(m.rfind("/nonexistent-dir/x.png: PNG encoding", 0), 0u) << m;
    short_rgb.rgb.resize(36);
    m = error_of([&] { write_png("/nonexistent-dir/x.png", short_rgb); });
    EXPECT_NE(m.find("/nonexistent-dir/x.png"), std::string::npos) << m;
    EXPECT_TRUE(one_line(m)) << m;
}

}  // namespace
}  // namespace llmforge
