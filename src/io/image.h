// Images in: PNG and JPEG bytes decoded to 8-bit RGB exactly as Pillow's
// `Image.open(f).convert("RGB")` gives them (what Hugging Face image processors start from).
//
// Decoding is libpng's and libjpeg-turbo's (Debian's libpng-dev, libjpeg62-turbo-dev; the same
// libjpeg-turbo Pillow links on Debian); the conversion to RGB is Pillow's, pinned against Pillow
// 9.4 by tests/data/images/make_image_refs.py:
//   PNG  palette        -> PLTE colours; an index past the PLTE entries is gray (i, i, i)
//        gray 1/2/4-bit -> scaled to 8 bits (bit replication: 1 -> 255, 2-bit 3 -> 255), replicated
//        gray 8-bit     -> replicated;  gray 16-bit -> min(value, 255) replicated (Pillow opens it
//                          as mode "I" and clips), NOT the high byte
//        RGB / gray+alpha / RGBA 16-bit -> the high byte of each sample
//        alpha, tRNS    -> dropped, never composited (a transparent pixel keeps its colour)
//        interlaced     -> de-interlaced;  gAMA, iCCP, sBIT -> ignored (as Pillow does)
//   JPEG libjpeg defaults (JDCT_ISLOW, fancy upsampling); grayscale replicated; 4-component
//        (CMYK, or Adobe YCCK converted to CMYK by libjpeg) converted like Pillow: the samples are
//        taken as inverted (Adobe convention), then R = 255 - K' - C'·(255 - K')/255 per channel
//        with Pillow's rounding. EXIF orientation is not applied (Image.open does not either).
// The format is chosen by the signature bytes, never by the file name.
//
// Errors are one-line llmforge::Error messages naming the source: not an image, truncated, corrupt
// data (libjpeg's warnings about corrupt data are errors here, so a cut JPEG never becomes a gray
// image), and a declared size over ImageLimits — checked from the header before any pixel memory
// is allocated. No input crashes, hangs or leaks: libpng and libjpeg report errors through
// setjmp/longjmp inside C-only frames (image.cpp explains the discipline), and a JPEG with an
// unreasonable number of progressive scans is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace llmforge {

// 8-bit RGB, row-major H x W x 3.
struct Image {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> rgb;
};

// Decoding refuses images whose header declares more than this (before allocating pixels).
struct ImageLimits {
    int64_t max_pixels = 50'000'000;
    int64_t max_side = 16384;
};

// Decodes PNG or JPEG (chosen by the signature bytes, not by name). `where` names the source in
// errors ("image.png", "request image 2").
Image decode_image(const uint8_t* data, size_t size, const std::string& where, const ImageLimits& limits = {});
// Reads `path` through RegularFile (regular files only) and decodes it.
Image load_image(const std::string& path, const ImageLimits& limits = {});
// "png", "jpeg", or nullptr when the bytes start with neither signature.
const char* image_format_of(const uint8_t* data, size_t size);

// Images out: 8-bit RGB PNG (libpng, non-interlaced, default zlib level), so that decode_image
// gives back exactly `img` (synthetic training images: train/vqa_data.h). An empty image or one
// whose rgb size is not width·height·3 is a one-line llmforge::Error.
std::vector<uint8_t> encode_png(const Image& img);
// encode_png into `path` through an AtomicFile (temporary, fsync, rename): a reader never sees a
// half-written PNG. Errors name the path.
void write_png(const std::string& path, const Image& img);

}  // namespace llmforge
