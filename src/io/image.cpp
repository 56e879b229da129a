// PNG and JPEG decoding to Pillow's RGB (see image.h for the pixel rules), and PNG encoding (encode_png,
// write_png) of 8-bit RGB.
//
// Error discipline. libpng and libjpeg report errors by longjmp. A longjmp must not skip a frame
// holding a C++ object with a non-trivial destructor, and no C++ exception may unwind through
// libpng's or libjpeg's C frames. So each library call sequence runs in a small "phase" function
// (png_phase_header, png_phase_pixels, jpeg_phase_header, jpeg_phase_pixels) that holds only
// trivial locals, calls setjmp itself and returns false when the library jumped back; the jump
// never leaves the phase. The error callbacks only copy the message into a fixed char buffer in a
// plain struct and jump. Everything with a destructor (the output vector, row buffers, the guards
// that destroy the library structs) lives in the calling C++ frames, which are never skipped, and
// llmforge::fail() is called only there, after the phase returned.
//
// Sizes come from the header and are checked against ImageLimits before any pixel buffer exists:
// the PNG IHDR is read from the bytes before libpng sees them, the JPEG SOF through
// jpeg_read_header (which allocates no pixel memory).
#include "io/image.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/error.h"
#include "core/file.h"
#include "io/atomic_file.h"

namespace llmforge {

namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
// A progressive JPEG may legally have many scans, but a few hundred is already absurd; without a
// cap a small crafted file makes libjpeg re-run its coefficient passes for minutes (the same cap
// libjpeg-turbo's own fuzzers and TJPARAM_SCANLIMIT documentation use).
constexpr int kMaxJpegScans = 500;

uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// "3c 68 74 6d 6c 3e 3c 68" — the first bytes, for "not an image" messages.
std::string hex_prefix(const uint8_t* data, size_t size, size_t n = 8) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < size && i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", data[i]);
        s += buf;
    }
    return s;
}

// What the bytes look like when they are not PNG or JPEG, for the hint.
const char* other_format_hint(const uint8_t* d, size_t n) {
    auto starts = [&](const char* m) { return n >= std::strlen(m) && std::memcmp(d, m, std::strlen(m)) == 0; };
    if (starts("GIF87a") || starts("GIF89a")) return "it looks like a GIF image; convert it to PNG or JPEG";
    if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
        return "it looks like a WebP image; convert it to PNG or JPEG";
    }
    if (starts("BM")) return "it may be a BMP image; convert it to PNG or JPEG";
    if (starts("II*") || starts("MM\0*")) return "it looks like a TIFF image; convert it to PNG or JPEG";
    if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) return "it looks like HEIF/AVIF or a video; convert it to PNG or JPEG";
    size_t i = 0;
    while (i < n && i < 64 && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')) ++i;
    if (i < n && d[i] == '<') return "it looks like HTML or XML text (an error page instead of the image?)";
    if (i < n && (d[i] == '{' || d[i] == '[')) return "it looks like JSON text (an error response instead of the image?)";
    if (starts("data:")) return "it is a data: URL; pass the decoded base64 bytes";
    return "only PNG and JPEG are read";
}

void check_declared_size(const std::string& where, const char* format, int64_t w, int64_t h, const ImageLimits& lim) {
    if (w <= 0 || h <= 0) {
        fail("%s: %s declares %lld×%lld pixels, expected both sides at least 1 (corrupt header)", where.c_str(),
             format, static_cast<long long>(w), static_cast<long long>(h));
    }
    if (w > lim.max_side || h > lim.max_side || w > lim.max_pixels / h) {  // no w * h: it may overflow
        fail("%s: %s declares %lld×%lld pixels, over the limit of %lld pixels and %lld per side (hint: downscale "
             "the image before sending it)",
             where.c_str(), format, static_cast<long long>(w), static_cast<long long>(h),
             static_cast<long long>(lim.max_pixels), static_cast<long long>(lim.max_side));
    }
}

// ------------------------------------------------------------------------------------------------
// PNG

// One decoded row (after libpng's transforms) -> RGB, Pillow's way. Plain data only: it runs inside
// a phase.
struct PngRowFormat {
    int color_type = 0;
    bool gray16 = false;       // 16-bit gray kept whole: Pillow clips it to 255 (mode "I" -> "RGB")
    uint8_t palette[256 * 3];  // index i -> PLTE entry i, or gray (i, i, i) past the PLTE entries
};

void png_row_to_rgb(const PngRowFormat& f, const uint8_t* in, uint8_t* out, int64_t width) {
    switch (f.color_type) {
        case PNG_COLOR_TYPE_GRAY:
            if (f.gray16) {
                for (int64_t x = 0; x < width; ++x) {
                    const unsigned v = (unsigned{in[2 * x]} << 8) | in[2 * x + 1];
                    out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = static_cast<uint8_t>(v > 255 ? 255 : v);
                }
            } else {
                for (int64_t x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
            }
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            for (int64_t x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[2 * x];
            break;
        case PNG_COLOR_TYPE_PALETTE:
            for (int64_t x = 0; x < width; ++x) std::memcpy(out + 3 * x, f.palette + 3 * in[x], 3);
            break;
        case PNG_COLOR_TYPE_RGB:
            std::memcpy(out, in, static_cast<size_t>(width) * 3);
            break;
        case PNG_COLOR_TYPE_RGB_ALPHA:
            for (int64_t x = 0; x < width; ++x) std::memcpy(out + 3 * x, in + 4 * x, 3);
            break;
    }
}

struct PngState {
    const uint8_t* data;
    size_t size;
    size_t pos;
    bool truncated;  // the read callback ran out of bytes
    int64_t rows_done;
    char message[200];
};

void png_read_cb(png_structp png, png_bytep out, size_t n) {
    PngState* s = static_cast<PngState*>(png_get_io_ptr(png));
    if (n > s->size - s->pos) {
        s->truncated = true;
        png_error(png, "unexpected end of data");
    }
    std::memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
    PngState* s = static_cast<PngState*>(png_get_error_ptr(png));
    std::snprintf(s->message, sizeof s->message, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

// libpng's warnings are about ancillary chunks (bad CRC, odd iCCP profile, extra data after the
// image) whose content Pillow ignores as well; the pixels are unaffected.
void png_warning_cb(png_structp, png_const_charp) {}

struct PngHeader {
    uint32_t width, height;
    int bit_depth, color_type, interlace;
    size_t rowbytes;
};

// Reads the chunks up to the image data, sets the transforms, fills *h and f->palette.
bool png_phase_header(png_structp png, png_infop info, PngHeader* h, PngRowFormat* f) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_read_info(png, info);
    png_get_IHDR(png, info, &h->width, &h->height, &h->bit_depth, &h->color_type, &h->interlace, nullptr, nullptr);
    f->color_type = h->color_type;
    f->gray16 = false;
    if (h->bit_depth < 8) {
        png_set_packing(png);  // one sample per byte; palette indices stay indices
        if (h->color_type == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);  // scaled, as Pillow
    }
    if (h->bit_depth == 16) {
        if (h->color_type == PNG_COLOR_TYPE_GRAY) {
            f->gray16 = true;
        } else {
            png_set_strip_16(png);  // the high byte: Pillow's "RGB;16B" / "RGBA;16B" / "LA;16B" unpacking
        }
    }
    if (h->color_type == PNG_COLOR_TYPE_PALETTE) {
        for (int i = 0; i < 256; ++i) f->palette[3 * i] = f->palette[3 * i + 1] = f->palette[3 * i + 2] = static_cast<uint8_t>(i);
        png_colorp plte = nullptr;
        int n = 0;
        if (png_get_PLTE(png, info, &plte, &n) == PNG_INFO_PLTE && plte) {
            for (int i = 0; i < n && i < 256; ++i) {
                f->palette[3 * i] = plte[i].red;
                f->palette[3 * i + 1] = plte[i].green;
                f->palette[3 * i + 2] = plte[i].blue;
            }
        }
    }
    if (h->interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    h->rowbytes = png_get_rowbytes(png, info);
    return true;
}

// Non-interlaced: row by row through `row` into out. Interlaced: the whole image into `rows`
// (libpng fills each row over the 7 passes), then converted.
bool png_phase_pixels(png_structp png, PngState* s, const PngHeader& h, const PngRowFormat& f, uint8_t* row,
                      png_bytepp rows, uint8_t* out) {
    if (setjmp(png_jmpbuf(png))) return false;
    const int64_t w = h.width, stride = 3 * w;
    if (rows == nullptr) {
        for (int64_t y = 0; y < int64_t{h.height}; ++y) {
            png_read_row(png, row, nullptr);
            png_row_to_rgb(f, row, out + y * stride, w);
            s->rows_done = y + 1;
        }
    } else {
        png_read_image(png, rows);
        s->rows_done = h.height;
        for (int64_t y = 0; y < int64_t{h.height}; ++y) png_row_to_rgb(f, rows[y], out + y * stride, w);
    }
    // No png_read_end: like Pillow, what follows the image data (text chunks, a missing IEND) does
    // not matter for the pixels.
    return true;
}

class PngGuard {
public:
    PngGuard(png_structp png, png_infop info) : png_(png), info_(info) {}
    ~PngGuard() { png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr); }
    PngGuard(const PngGuard&) = delete;
    PngGuard& operator=(const PngGuard&) = delete;

private:
    png_structp png_;
    png_infop info_;
};

[[noreturn]] void png_fail(const PngState& s, const std::string& where, const char* stage) {
    if (s.truncated) {
        fail("%s: truncated PNG (the data ends after %zu bytes, while reading %s; hint: the file was cut short — "
             "fetch it again)",
             where.c_str(), s.size, stage);
    }
    fail("%s: corrupt PNG (%s, while reading %s)", where.c_str(), s.message, stage);
}

Image decode_png(const uint8_t* data, size_t size, const std::string& where, const ImageLimits& limits) {
    // The IHDR must be the first chunk: 8 signature bytes, length, "IHDR", width, height, ...
    if (size < 33) {
        fail("%s: truncated PNG (%zu bytes, expected at least 33 for the signature and IHDR chunk; hint: the file "
             "was cut short — fetch it again)",
             where.c_str(), size);
    }
    if (be32(data + 8) != 13 || std::memcmp(data + 12, "IHDR", 4) != 0) {
        fail("%s: corrupt PNG (the first chunk is not a 13-byte IHDR)", where.c_str());
    }
    check_declared_size(where, "PNG", be32(data + 16), be32(data + 20), limits);

    PngState s{};
    s.data = data;
    s.size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_error_cb, png_warning_cb);
    if (!png) fail_kind(ErrorKind::kResource, "%s: out of memory creating the PNG decoder", where.c_str());
    png_infop info = png_create_info_struct(png);
    PngGuard guard(png, info);
    if (!info) fail_kind(ErrorKind::kResource, "%s: out of memory creating the PNG decoder", where.c_str());
    png_set_read_fn(png, &s, png_read_cb);
    // Our limits were checked above; libpng's own (1,000,000 per side) must not pre-empt them.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    // Ancillary chunks other than tRNS are skipped unparsed (their CRCs are still checked): nothing
    // in them changes Pillow's RGB, and it spares decompressing iCCP / zTXt / iTXt payloads.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);

    PngHeader h{};
    auto fmt = std::make_unique<PngRowFormat>();
    if (!png_phase_header(png, info, &h, fmt.get())) png_fail(s, where, "the header");

    Image img;
    img.width = h.width;
    img.height = h.height;
    img.rgb.resize(static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3);
    std::vector<uint8_t> raw;
    std::vector<png_bytep> rows;
    if (h.interlace != PNG_INTERLACE_NONE) {
        raw.resize(h.rowbytes * h.height);
        rows.resize(h.height);
        for (uint32_t y = 0; y < h.height; ++y) rows[y] = raw.data() + static_cast<size_t>(y) * h.rowbytes;
    } else {
        raw.resize(h.rowbytes);
    }
    if (!png_phase_pixels(png, &s, h, *fmt, raw.data(), rows.empty() ? nullptr : rows.data(), img.rgb.data())) {
        char stage[64];
        if (h.interlace != PNG_INTERLACE_NONE) {
            std::snprintf(stage, sizeof stage, "the interlaced image data");
        } else {
            std::snprintf(stage, sizeof stage, "row %lld of %u", static_cast<long long>(s.rows_done + 1), h.height);
        }
        png_fail(s, where, stage);
    }
    return img;
}

// ------------------------------------------------------------------------------------------------
// JPEG

struct JpegState {
    jpeg_error_mgr err;  // first: libjpeg hands callbacks a pointer to it
    jpeg_progress_mgr progress;
    std::jmp_buf jump;
    bool truncated;
    bool too_many_scans;
    bool started;  // jpeg_start_decompress returned: the scanlines are being read
    char message[JMSG_LENGTH_MAX];
};

JpegState* jpeg_state(j_common_ptr c) { return reinterpret_cast<JpegState*>(c->err); }

void jpeg_error_exit_cb(j_common_ptr c) {
    JpegState* s = jpeg_state(c);
    (*c->err->format_message)(c, s->message);
    std::longjmp(s->jump, 1);
}

// Warnings (level -1) that mean the pixel data is incomplete or undecodable become errors, so a
// cut or damaged JPEG is refused instead of coming back with a gray or smeared part (Pillow raises
// on a cut file too, but silently decodes damaged entropy data). Harmless ones stay warnings:
// junk bytes between segments, an unknown JFIF revision or Adobe transform, a bad ICC marker.
void jpeg_emit_message_cb(j_common_ptr c, int level) {
    if (level >= 0) return;  // trace messages
    const int code = c->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC) {
        return;
    }
    JpegState* s = jpeg_state(c);
    s->truncated = code == JWRN_JPEG_EOF;
    (*c->err->format_message)(c, s->message);
    std::longjmp(s->jump, 1);
}

void jpeg_progress_cb(j_common_ptr c) {
    if (!c->is_decompressor) return;
    j_decompress_ptr d = reinterpret_cast<j_decompress_ptr>(c);
    if (d->input_scan_number > kMaxJpegScans) {
        JpegState* s = jpeg_state(c);
        s->too_many_scans = true;
        std::snprintf(s->message, sizeof s->message, "more than %d scans", kMaxJpegScans);
        std::longjmp(s->jump, 1);
    }
}

bool jpeg_phase_header(jpeg_decompress_struct* cinfo, JpegState* s, bool* created, const uint8_t* data, size_t size) {
    if (setjmp(s->jump)) return false;
    jpeg_create_decompress(cinfo);
    *created = true;
    cinfo->progress = &s->progress;
    jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(cinfo, TRUE);
    return true;
}

// Decompresses into out (RGB), converting each scanline; `row` holds one scanline of
// output_components samples.
bool jpeg_phase_pixels(jpeg_decompress_struct* cinfo, JpegState* s, uint8_t* row, uint8_t* out) {
    if (setjmp(s->jump)) return false;
    jpeg_start_decompress(cinfo);  // a progressive file is read whole here
    s->started = true;
    const int64_t w = cinfo->output_width;
    const int comps = cinfo->output_components;
    if (static_cast<int64_t>(cinfo->output_height) != static_cast<int64_t>(cinfo->image_height) ||
        w != static_cast<int64_t>(cinfo->image_width) || (comps != 1 && comps != 3 && comps != 4)) {
        std::snprintf(s->message, sizeof s->message, "unexpected output geometry");
        return false;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t* o = out + static_cast<int64_t>(cinfo->output_scanline) * w * 3;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(cinfo, &rp, 1) != 1) {
            std::snprintf(s->message, sizeof s->message, "no scanline returned");
            return false;
        }
        if (comps == 1) {
            for (int64_t x = 0; x < w; ++x) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
        } else if (comps == 3) {
            std::memcpy(o, row, static_cast<size_t>(w) * 3);
        } else {
            // Pillow opens a 4-component JPEG as "CMYK;I" (inverted, Adobe convention) and converts
            // with cmyk2rgb: nk = 255 - K', channel = clip(nk - round(C' * nk / 255)), where the
            // rounding division is ((t >> 8) + t) >> 8 of t = C' * nk + 128.
            for (int64_t x = 0; x < w; ++x) {
                const int nk = row[4 * x + 3];  // 255 - K' with K' = 255 - K
                for (int c = 0; c < 3; ++c) {
                    const int cc = 255 - row[4 * x + c];
                    const int t = cc * nk + 128;
                    const int v = nk - (((t >> 8) + t) >> 8);
                    o[3 * x + c] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    // No jpeg_finish_decompress: it only reads on to the EOI marker, and a file whose pixels are
    // complete but lacks EOI decodes in Pillow too.
    return true;
}

class JpegGuard {
public:
    explicit JpegGuard(jpeg_decompress_struct* c) : c_(c) {}
    ~JpegGuard() {
        if (created) jpeg_destroy_decompress(c_);
    }
    JpegGuard(const JpegGuard&) = delete;
    JpegGuard& operator=(const JpegGuard&) = delete;
    bool created = false;

private:
    jpeg_decompress_struct* c_;
};

[[noreturn]] void jpeg_fail(const JpegState& s, const std::string& where, size_t size, const char* stage) {
    if (s.truncated) {
        fail("%s: truncated JPEG (the data ends after %zu bytes, while reading %s; hint: the file was cut short — "
             "fetch it again)",
             where.c_str(), size, stage);
    }
    if (s.too_many_scans) {
        fail("%s: JPEG has %s, refused (a crafted progressive file makes decoding take minutes)", where.c_str(),
             s.message);
    }
    fail("%s: corrupt or unsupported JPEG (%s, while reading %s)", where.c_str(), s.message, stage);
}

// The frame size from the first SOFn segment, walking the marker segments after SOI; false when
// the walk does not reach one (then libjpeg's own parse reports what is wrong). Done before
// libjpeg so that the size limit speaks first, also above libjpeg's own 65500-pixel maximum.
bool jpeg_frame_size(const uint8_t* d, size_t n, int64_t* w, int64_t* h) {
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xff) return false;
        const uint8_t m = d[i + 1];
        if (m == 0xff) {  // fill byte
            ++i;
            continue;
        }
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) {  // markers without a length
            i += 2;
            continue;
        }
        if (m == 0xd9 || m == 0xda) return false;  // EOI or a scan before any frame header
        const size_t len = (size_t{d[i + 2]} << 8) | d[i + 3];
        const bool sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
        if (sof) {
            if (len < 8 || i + 9 > n) return false;
            *h = (int64_t{d[i + 5]} << 8) | d[i + 6];
            *w = (int64_t{d[i + 7]} << 8) | d[i + 8];
            return true;
        }
        i += 2 + len;
    }
    return false;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& where, const ImageLimits& limits) {
    int64_t fw = 0, fh = 0;
    if (jpeg_frame_size(data, size, &fw, &fh)) check_declared_size(where, "JPEG", fw, fh, limits);
    // Both structs are plain C data; keep them off the phases' frames and zeroed.
    auto cinfo = std::make_unique<jpeg_decompress_struct>();
    auto s = std::make_unique<JpegState>();
    std::memset(cinfo.get(), 0, sizeof(jpeg_decompress_struct));
    std::memset(s.get(), 0, sizeof(JpegState));
    cinfo->err = jpeg_std_error(&s->err);
    s->err.error_exit = jpeg_error_exit_cb;
    s->err.emit_message = jpeg_emit_message_cb;
    s->progress.progress_monitor = jpeg_progress_cb;
    JpegGuard guard(cinfo.get());
    bool created = false;
    const bool ok = jpeg_phase_header(cinfo.get(), s.get(), &created, data, size);
    guard.created = created;
    if (!ok) jpeg_fail(*s, where, size, "the header");

    check_declared_size(where, "JPEG", cinfo->image_width, cinfo->image_height, limits);
    switch (cinfo->num_components) {
        case 1: cinfo->out_color_space = JCS_GRAYSCALE; break;
        case 3: cinfo->out_color_space = JCS_RGB; break;
        case 4: cinfo->out_color_space = JCS_CMYK; break;  // libjpeg turns Adobe YCCK into CMYK
        default:
            fail("%s: JPEG has %d colour components, expected 1 (gray), 3 (YCbCr/RGB) or 4 (CMYK/YCCK)",
                 where.c_str(), cinfo->num_components);
    }
    // Pillow's decoder keeps libjpeg's defaults (JDCT_ISLOW, fancy upsampling); set them anyway so
    // a changed library default cannot move our pixels away from Pillow's.
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;

    Image img;
    img.width = cinfo->image_width;
    img.height = cinfo->image_height;
    img.rgb.resize(static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3);
    std::vector<uint8_t> row(static_cast<size_t>(img.width) * 4);
    if (!jpeg_phase_pixels(cinfo.get(), s.get(), row.data(), img.rgb.data())) {
        char stage[64];
        std::snprintf(stage, sizeof stage, "row %u of %u", cinfo->output_scanline + 1, cinfo->output_height);
        jpeg_fail(*s, where, size, s->started ? stage : "the image data");
    }
    return img;
}

// ------------------------------------------------------------------------------------------------
// PNG encoding (same error discipline as decoding: the phase holds trivial locals only).

struct PngOut {
    std::vector<uint8_t>* bytes;
    bool out_of_memory;  // the write callback could not grow `bytes`
    char message[200];
};

// Appends libpng's output. A bad_alloc must not unwind through libpng's C frames, so it is caught
// here and turned into png_error (a longjmp back into the phase) after the handler has ended.
void png_write_cb(png_structp png, png_bytep data, size_t n) {
    PngOut* o = static_cast<PngOut*>(png_get_io_ptr(png));
    bool ok = true;
    try {
        o->bytes->insert(o->bytes->end(), data, data + n);
    } catch (...) {
        ok = false;
    }
    if (!ok) {
        o->out_of_memory = true;
        png_error(png, "out of memory");
    }
}

void png_flush_cb(png_structp) {}

void png_write_error_cb(png_structp png, png_const_charp msg) {
    PngOut* o = static_cast<PngOut*>(png_get_error_ptr(png));
    std::snprintf(o->message, sizeof o->message, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

bool png_phase_write(png_structp png, png_infop info, const uint8_t* rgb, uint32_t width, uint32_t height) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const size_t stride = static_cast<size_t>(width) * 3;
    for (uint32_t y = 0; y < height; ++y) png_write_row(png, rgb + y * stride);
    png_write_end(png, info);
    return true;
}

class PngWriteGuard {
public:
    PngWriteGuard(png_structp png, png_infop info) : png_(png), info_(info) {}
    ~PngWriteGuard() { png_destroy_write_struct(&png_, info_ ? &info_ : nullptr); }
    PngWriteGuard(const PngWriteGuard&) = delete;
    PngWriteGuard& operator=(const PngWriteGuard&) = delete;

private:
    png_structp png_;
    png_infop info_;
};

}  // namespace

const char* image_format_of(const uint8_t* data, size_t size) {
    if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) return "png";
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return "jpeg";
    return nullptr;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& where, const ImageLimits& limits) {
    if (size == 0 || data == nullptr) {
        fail("%s: empty image data (0 bytes; hint: check that the file or upload is not empty)", where.c_str());
    }
    const char* fmt = image_format_of(data, size);
    if (fmt == nullptr) {
        // A PNG or JPEG cut inside its signature is truncated, not foreign.
        if ((size < 8 && std::memcmp(data, kPngSignature, size) == 0) ||
            (size < 3 && data[0] == 0xff && (size == 1 || data[1] == 0xd8))) {
            fail("%s: truncated %s (only %zu bytes; hint: the file was cut short — fetch it again)", where.c_str(),
                 data[0] == 0xff ? "JPEG" : "PNG", size);
        }
        fail("%s: not a PNG or JPEG image (starts with %s; hint: %s)", where.c_str(), hex_prefix(data, size).c_str(),
             other_format_hint(data, size));
    }
    if (fmt[0] == 'p') return decode_png(data, size, where, limits);
    return decode_jpeg(data, size, where, limits);
}

Image load_image(const std::string& path, const ImageLimits& limits) {
    RegularFile f(path, "an image file (PNG or JPEG)");
    const std::string bytes = f.read_all();
    return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path, limits);
}

std::vector<uint8_t> encode_png(const Image& img) {
    // PNG allows 2^31 - 1 per side; the product bound keeps row offsets in size_t on any target.
    if (img.width <= 0 || img.height <= 0 || img.width > 0x7fffffff || img.height > 0x7fffffff) {
        fail("PNG encoding: the image is %lld×%lld pixels, expected both sides between 1 and 2147483647",
             static_cast<long long>(img.width), static_cast<long long>(img.height));
    }
    const uint64_t want = static_cast<uint64_t>(img.width) * static_cast<uint64_t>(img.height) * 3;
    if (img.rgb.size() != want) {
        fail("PNG encoding: the %lld×%lld image holds %zu RGB bytes, expected %llu (width·height·3)",
             static_cast<long long>(img.width), static_cast<long long>(img.height), img.rgb.size(),
             static_cast<unsigned long long>(want));
    }
    std::vector<uint8_t> bytes;
    bytes.reserve(static_cast<size_t>(want / 2 + 1024));
    PngOut o{};
    o.bytes = &bytes;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, png_write_error_cb, png_warning_cb);
    if (!png) fail_kind(ErrorKind::kResource, "PNG encoding: out of memory creating the encoder");
    png_infop info = png_create_info_struct(png);
    PngWriteGuard guard(png, info);
    if (!info) fail_kind(ErrorKind::kResource, "PNG encoding: out of memory creating the encoder");
    png_set_write_fn(png, &o, png_write_cb, png_flush_cb);
    // libpng refuses more than 1,000,000 pixels per side by default; the checks above are ours.
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    if (!png_phase_write(png, info, img.rgb.data(), static_cast<uint32_t>(img.width),
                         static_cast<uint32_t>(img.height))) {
        if (o.out_of_memory) fail_kind(ErrorKind::kResource, "PNG encoding: out of memory");
        fail_kind(ErrorKind::kInternal, "PNG encoding failed (%s)", o.message);
    }
    return bytes;
}

void write_png(const std::string& path, const Image& img) {
    std::vector<uint8_t> bytes;
    try {
        bytes = encode_png(img);
    } catch (const Error& e) {
        fail_kind(e.kind(), "%s: %s", path.c_str(), e.what());
    }
    AtomicFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
}

}  // namespace llmforge
