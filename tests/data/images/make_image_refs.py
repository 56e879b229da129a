#!/usr/bin/python3
"""Pins image decoding and CLIP / ViT / SigLIP preprocessing against Pillow (tests/io/image_test.cpp,
tests/model/image_preprocess_test.cpp).

What it writes, all into this folder (deterministic: fixed seeds, no timestamps):
  * small test images: PNGs saved by Pillow (RGB, RGBA, L, LA, P, 1-bit, RGB with tRNS) and PNGs
    written here byte by byte for what Pillow cannot save (16-bit RGB / RGBA / gray / gray+alpha,
    2- and 4-bit gray, 1/2/4-bit palettes, a palette whose pixels index past its PLTE entries,
    Adam7-interlaced files); JPEGs saved by Pillow (baseline 4:4:4, 4:2:2, 4:2:0, progressive,
    grayscale, CMYK — libjpeg stores Pillow's CMYK as Adobe YCCK);
  * bad/: inputs that must fail (a PNG declaring 100000x100000 pixels with a valid IHDR CRC, a JPEG
    declaring 65535x65535, HTML bytes);
  * the two preprocessor_config.json files, copied from the published openai/clip-vit-base-patch32
    and google/siglip-base-patch16-224 values;
  * refs.json (the index) + refs.bin (the bytes it points into):
      decode     — each image as Pillow decodes it: Image.open(f).convert("RGB"), H x W x 3 uint8;
      resize     — Image.resize((w, h), filter) of a decoded image (nearest / bilinear / bicubic,
                   down- and up-scaling, factors 0.3, 0.5, 1.7, unequal axes, 1-pixel sides);
      preprocess — Hugging Face pixel_values (3, H, W) float32 of CLIPImageProcessor /
                   ViTImageProcessor / SiglipImageProcessor and of custom settings (crop larger than
                   the image: zero padding; no resize; no rescale; no normalize). transformers is
                   not installed here, so its steps are re-implemented below from its code:
                   get_resize_output_image_size (default_to_square=False), PIL resize on uint8,
                   center_crop with padding, rescale (float64 multiply, cast to float32), normalize
                   ((x - mean) / std in float32), channels first.
                   Stored losslessly factorised: every output value is a function of the uint8 value
                   after resize + crop (+ zero padding) and of its channel, so a case stores that
                   uint8 image (H x W x 3) and a 3 x 256 float32 table; the script asserts that
                   table[c][u8] reproduces the full float32 array bit for bit before writing.
                   This keeps three 224x224 cases within the size budget.

Pillow is pinned at 9.4 (Debian 12's python3-pil) with numpy 1.24; libjpeg-turbo is the system's
2.1.5, the same library the C++ decoder links. Rerun from the repository root with Debian's python
(the pyenv python3 on PATH lacks Pillow):
    /usr/bin/python3 tests/data/images/make_image_refs.py
"""
import json
import math
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
assert PIL.__version__.startswith("9.4"), f"pinned against Pillow 9.4, found {PIL.__version__}"

NEAREST, BILINEAR, BICUBIC = 0, 2, 3
FILTER_NAMES = {NEAREST: "nearest", BILINEAR: "bilinear", BICUBIC: "bicubic"}


def content(w, h, channels, seed):
    """Gradients plus noise, uint8 (h, w, channels): smooth parts and sharp edges both."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, channels), np.uint8)
    for c in range(channels):
        g = 255.0 * (xx / max(w - 1, 1) * (0.3 + 0.2 * c) + yy / max(h - 1, 1) * (0.7 - 0.2 * c))
        g += 40.0 * np.sin((xx * (c + 1) + yy * 2) / 3.0)
        g += rng.normal(0, 25, size=(h, w))
        out[:, :, c] = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    # A few saturated pixels so clipping (0 and 255) is exercised.
    out[rng.randint(0, h, 3), rng.randint(0, w, 3)] = 255
    out[rng.randint(0, h, 3), rng.randint(0, w, 3)] = 0
    return out


# ---------------------------------------------------------------------------------------------
# A minimal PNG writer for what Pillow cannot save (16-bit colour, 2/4-bit gray, small palettes,
# interlacing).

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, bit_depth):
    if bit_depth == 16:
        return b"".join(struct.pack(">H", int(s)) for s in samples)
    if bit_depth == 8:
        return bytes(int(s) for s in samples)
    per = 8 // bit_depth
    out = bytearray()
    for i in range(0, len(samples), per):
        byte = 0
        group = samples[i:i + per]
        for j, s in enumerate(group):
            byte |= int(s) << (8 - bit_depth * (j + 1))
        out.append(byte)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, color_type, bit_depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, n) integer array of raw sample values."""
    h, w = samples.shape[:2]
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            for row in sub:
                raw += b"\0" + pack_row(row.reshape(-1), bit_depth)
    else:
        for y, row in enumerate(samples):
            raw += b"\0" + pack_row(row.reshape(-1), bit_depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    # Split IDAT in two so multi-chunk image data is covered.
    z = zlib.compress(bytes(raw), 9)
    half = len(z) // 2
    out += chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")
    return out


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def make_images():
    """Writes the test images; returns their names in a fixed order."""
    names = []

    def save(im, name, **kw):
        im.save(os.path.join(HERE, name), **kw)
        names.append(name)

    def craft(name, data):
        write(name, data)
        names.append(name)

    # PNG through Pillow.
    save(Image.fromarray(content(37, 23, 3, 1), "RGB"), "rgb_37x23.png")
    save(Image.fromarray(content(23, 41, 3, 2), "RGB"), "rgb_23x41.png")
    rgba = content(29, 31, 4, 3)
    rgba[::3, ::2, 3] = 0  # fully transparent pixels keep their colour (alpha dropped, not composited)
    save(Image.fromarray(rgba, "RGBA"), "rgba_29x31.png")
    save(Image.fromarray(content(33, 17, 1, 4)[:, :, 0], "L"), "gray_33x17.png")
    save(Image.fromarray(content(21, 19, 2, 5), "LA"), "gray_alpha_21x19.png")
    pal = Image.fromarray(content(40, 30, 3, 6), "RGB").quantize(colors=200, dither=Image.Dither.NONE)
    save(pal, "palette_40x30.png")
    pal_t = Image.fromarray(content(18, 14, 3, 7), "RGB").quantize(colors=16, dither=Image.Dither.NONE)
    pal_t.info["transparency"] = bytes([0, 128] + [255] * 14)
    save(pal_t, "palette_trns_18x14.png", transparency=bytes([0, 128] + [255] * 14))
    save(Image.fromarray(content(19, 13, 1, 8)[:, :, 0] > 128).convert("1"), "bilevel_19x13.png")
    save(Image.fromarray(content(15, 11, 3, 9), "RGB"), "rgb_trns_15x11.png", transparency=(10, 20, 30))
    save(Image.fromarray(content(1, 40, 3, 10), "RGB"), "tall_1x40.png")
    save(Image.fromarray(content(40, 1, 3, 11), "RGB"), "wide_40x1.png")
    save(Image.fromarray(content(20, 12, 3, 12), "RGB"), "small_20x12.png")
    save(Image.fromarray(content(90, 150, 3, 13), "RGB"), "portrait_90x150.png")

    # PNG written here.
    rng = np.random.RandomState(100)
    craft("rgb16_17x13.png", png_bytes(rng.randint(0, 65536, (13, 17, 3)), 2, 16))
    craft("rgba16_11x9.png", png_bytes(rng.randint(0, 65536, (9, 11, 4)), 6, 16))
    g16 = rng.randint(0, 65536, (7, 13, 1))
    g16[0, :6, 0] = [0, 1, 254, 255, 256, 300]  # around Pillow's clip at 255
    craft("gray16_13x7.png", png_bytes(g16, 0, 16))
    craft("gray_alpha16_9x5.png", png_bytes(rng.randint(0, 65536, (5, 9, 2)), 4, 16))
    craft("gray2_15x9.png", png_bytes(rng.randint(0, 4, (9, 15, 1)), 0, 2))
    craft("gray4_15x9.png", png_bytes(rng.randint(0, 16, (9, 15, 1)), 0, 4))
    pal16 = rng.randint(0, 256, 16 * 3)
    craft("palette4_13x11.png", png_bytes(rng.randint(0, 16, (11, 13, 1)), 3, 4, palette=pal16))
    craft("palette2_10x6.png", png_bytes(rng.randint(0, 4, (6, 10, 1)), 3, 2, palette=pal16[:12]))
    craft("palette1_17x3.png", png_bytes(rng.randint(0, 2, (3, 17, 1)), 3, 1, palette=pal16[:6]))
    # Indices past the 5 PLTE entries: Pillow shows index i as gray (i, i, i).
    craft("palette_oob_9x7.png", png_bytes(rng.randint(0, 256, (7, 9, 1)), 3, 8, palette=pal16[:15]))
    craft("interlaced_rgb_37x29.png", png_bytes(content(37, 29, 3, 14), 2, 8, interlace=True))
    craft("interlaced_gray2_11x13.png", png_bytes(rng.randint(0, 4, (13, 11, 1)), 0, 2, interlace=True))
    craft("interlaced_rgba16_7x5.png", png_bytes(rng.randint(0, 65536, (5, 7, 4)), 6, 16, interlace=True))
    craft("interlaced_palette_3x2.png", png_bytes(rng.randint(0, 16, (2, 3, 1)), 3, 8, palette=pal16,
                                                  interlace=True))

    # JPEG through Pillow (libjpeg-turbo).
    save(Image.fromarray(content(37, 23, 3, 20), "RGB"), "rgb444_37x23.jpg", quality=92, subsampling=0)
    save(Image.fromarray(content(33, 21, 3, 21), "RGB"), "rgb422_33x21.jpg", quality=85, subsampling=1)
    save(Image.fromarray(content(64, 48, 3, 22), "RGB"), "rgb420_64x48.jpg", quality=80, subsampling=2)
    save(Image.fromarray(content(31, 45, 3, 23), "RGB"), "rgb420_31x45.jpg", quality=75, subsampling=2)
    save(Image.fromarray(content(50, 38, 3, 24), "RGB"), "progressive_50x38.jpg", quality=85, progressive=True)
    save(Image.fromarray(content(29, 17, 1, 25)[:, :, 0], "L"), "gray_29x17.jpg", quality=90)
    save(Image.fromarray(content(24, 16, 4, 26), "CMYK"), "cmyk_24x16.jpg", quality=90)
    save(Image.fromarray(content(160, 120, 3, 27), "RGB"), "photo_160x120.jpg", quality=90)
    return names


def make_bad():
    os.makedirs(os.path.join(HERE, "bad"), exist_ok=True)
    # IHDR declaring 100000 x 100000 with a correct CRC, then a little image data.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    write("bad/huge_100000x100000.png", data)
    # A JPEG whose SOF0 says 65535 x 65535.
    with open(os.path.join(HERE, "rgb420_64x48.jpg"), "rb") as f:
        j = bytearray(f.read())
    sof = j.find(b"\xff\xc0")
    assert sof > 0
    j[sof + 5:sof + 9] = struct.pack(">HH", 65535, 65535)
    write("bad/huge_65535x65535.jpg", bytes(j))
    write("bad/page.html", b"<html><head><title>404 Not Found</title></head><body>nope</body></html>\n")


CLIP_CONFIG = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
SIGLIP_CONFIG = {
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "SiglipProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 224, "width": 224},
}


def write_configs():
    for name, cfg in (("clip-vit-base-patch32.preprocessor_config.json", CLIP_CONFIG),
                      ("siglip-base-patch16-224.preprocessor_config.json", SIGLIP_CONFIG)):
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")


# ---------------------------------------------------------------------------------------------
# Hugging Face's image processor steps (transformers.image_transforms / image_processing_clip),
# re-implemented on numpy + Pillow.

def hf_shortest_edge_size(h, w, size):
    """get_resize_output_image_size(size=int, default_to_square=False): (new_h, new_w)."""
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return h, w
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def hf_center_crop(img, ch, cw):
    """image_transforms.center_crop on (H, W, C): zero padding when the image is smaller."""
    oh, ow = img.shape[:2]
    top = (oh - ch) // 2
    bottom = top + ch
    left = (ow - cw) // 2
    right = left + cw
    if top >= 0 and bottom <= oh and left >= 0 and right <= ow:
        return img[top:bottom, left:right]
    nh, nw = max(ch, oh), max(cw, ow)
    out = np.zeros((nh, nw) + img.shape[2:], dtype=img.dtype)
    top_pad = math.ceil((nh - oh) / 2)
    left_pad = math.ceil((nw - ow) / 2)
    out[top_pad:top_pad + oh, left_pad:left_pad + ow] = img
    top += top_pad
    bottom += top_pad
    left += left_pad
    right += left_pad
    return out[max(0, top):min(nh, bottom), max(0, left):min(nw, right)]


def hf_preprocess(rgb, cfg):
    """pixel_values (3, H, W) float32 and the uint8 image after resize + crop."""
    img = rgb
    if cfg["do_resize"]:
        h, w = img.shape[:2]
        if cfg["shortest_edge"] > 0:
            nh, nw = hf_shortest_edge_size(h, w, cfg["shortest_edge"])
        else:
            nh, nw = cfg["resize_h"], cfg["resize_w"]
        img = np.array(Image.fromarray(img, "RGB").resize((nw, nh), resample=cfg["filter"]))
    if cfg["do_center_crop"]:
        img = hf_center_crop(img, cfg["crop_h"], cfg["crop_w"])
    u8 = img
    x = img
    if cfg["do_rescale"]:
        x = (x.astype(np.float64) * cfg["rescale"]).astype(np.float32)
    if cfg["do_normalize"]:
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        mean = np.array(cfg["mean"], dtype=x.dtype)
        std = np.array(cfg["std"], dtype=x.dtype)
        x = (x - mean) / std
    x = np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32)
    return x, np.ascontiguousarray(u8)


def lut_for(cfg):
    """Per channel, what preprocessing makes of each uint8 value (the same numpy ops, on 0..255)."""
    v = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)
    x = v
    if cfg["do_rescale"]:
        x = (x.astype(np.float64) * cfg["rescale"]).astype(np.float32)
    if cfg["do_normalize"]:
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        x = (x - np.array(cfg["mean"], dtype=x.dtype)) / np.array(cfg["std"], dtype=x.dtype)
    return np.ascontiguousarray(x.astype(np.float32)[0].T)  # (3, 256)


def preset(name):
    base = dict(do_resize=True, shortest_edge=0, resize_w=224, resize_h=224, do_center_crop=False,
                crop_w=224, crop_h=224, do_rescale=True, rescale=1 / 255, do_normalize=True,
                mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    if name == "clip":
        base.update(shortest_edge=224, filter=BICUBIC, do_center_crop=True, mean=CLIP_CONFIG["image_mean"],
                    std=CLIP_CONFIG["image_std"])
    elif name == "vit":
        base.update(filter=BILINEAR)
    elif name == "siglip":
        base.update(filter=BICUBIC)
    return base


def custom(**kw):
    c = preset("clip")
    c.update(kw)
    return c


class Blob:
    def __init__(self):
        self.data = bytearray()

    def add(self, b):
        off = len(self.data)
        self.data += b
        self.data += b"\0" * (-len(self.data) % 8)
        return off


def main():
    # Pillow warns that palette_trns_18x14.png's byte-string transparency has no RGB equivalent;
    # convert("RGB") drops it either way.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    os.chdir(HERE)
    names = make_images()
    make_bad()
    write_configs()
    blob = Blob()
    refs = {"pillow": PIL.__version__, "numpy": np.__version__, "decode": [], "resize": [], "preprocess": []}
    decoded = {}
    for name in names:
        with Image.open(name) as im:
            mode = im.mode
            rgb = np.ascontiguousarray(np.array(im.convert("RGB")))
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        decoded[name] = rgb
        refs["decode"].append({"file": name, "pillow_mode": mode, "width": rgb.shape[1], "height": rgb.shape[0],
                               "offset": blob.add(rgb.tobytes()), "size": rgb.nbytes})

    resize_cases = []
    for src in ("rgb_37x23.png", "rgb420_31x45.jpg"):
        h, w = decoded[src].shape[:2]
        sizes = [(round(w * 0.3), round(h * 0.3)), (w // 2, h // 2), (round(w * 1.7), round(h * 1.7)),
                 (w * 2 + 1, h // 3), (1, 1), (w, h * 3), (7, h)]
        for size in sizes:
            for f in (NEAREST, BILINEAR, BICUBIC):
                resize_cases.append((src, size, f))
    for f in (NEAREST, BILINEAR, BICUBIC):
        resize_cases += [("photo_160x120.jpg", (48, 36), f), ("photo_160x120.jpg", (53, 160), f),
                         ("tall_1x40.png", (16, 640), f), ("wide_40x1.png", (9, 5), f),
                         ("portrait_90x150.png", (27, 45), f), ("small_20x12.png", (96, 80), f)]
    for src, (w, h), f in resize_cases:
        out = np.ascontiguousarray(np.array(Image.fromarray(decoded[src], "RGB").resize((w, h), resample=f)))
        assert out.shape == (h, w, 3)
        refs["resize"].append({"source": src, "width": w, "height": h, "filter": FILTER_NAMES[f],
                               "offset": blob.add(out.tobytes()), "size": out.nbytes})

    pre_cases = [
        ("photo_160x120.jpg", "clip", preset("clip")),
        ("photo_160x120.jpg", "vit", preset("vit")),
        ("photo_160x120.jpg", "siglip", preset("siglip")),
        ("portrait_90x150.png", "clip", preset("clip")),
        # Crop larger than the resized image: zero padding on both axes (odd differences).
        ("rgb_37x23.png", None, custom(shortest_edge=20, crop_w=27, crop_h=38, filter=NEAREST)),
        # No resize, crop larger than the image.
        ("small_20x12.png", None, custom(do_resize=False, crop_w=32, crop_h=17)),
        # No resize, crop inside the image with odd margins.
        ("rgb_23x41.png", None, custom(do_resize=False, crop_w=10, crop_h=30)),
        # 1-pixel-high image: the long side becomes 16 * 40 = 640 before the crop.
        ("wide_40x1.png", None, custom(shortest_edge=16, crop_w=16, crop_h=16)),
        ("tall_1x40.png", None, custom(shortest_edge=12, crop_w=8, crop_h=12, filter=BILINEAR)),
        # Exact size without crop, normalize without rescale, rescale without normalize, neither.
        ("rgb420_31x45.jpg", None, custom(shortest_edge=0, resize_w=17, resize_h=23, filter=BILINEAR,
                                          do_center_crop=False, do_rescale=False)),
        ("gray_29x17.jpg", None, custom(shortest_edge=0, resize_w=40, resize_h=9, do_center_crop=False,
                                        do_normalize=False)),
        ("palette_40x30.png", None, custom(shortest_edge=13, do_center_crop=False, do_rescale=False,
                                           do_normalize=False, filter=BICUBIC)),
        ("rgba_29x31.png", None, custom(shortest_edge=18, crop_w=18, crop_h=18, rescale=0.5,
                                        mean=[0.1, 0.2, 0.3], std=[2.0, 0.7, 0.25])),
    ]
    for src, name, cfg in pre_cases:
        px, u8 = hf_preprocess(decoded[src], cfg)
        lut = lut_for(cfg)
        rebuilt = np.stack([lut[c][u8[:, :, c]] for c in range(3)])
        assert rebuilt.shape == px.shape and rebuilt.dtype == px.dtype
        assert np.array_equal(rebuilt.view(np.uint32), px.view(np.uint32)), f"factorisation fails for {src}"
        entry = {"source": src, "preset": name, "out_h": px.shape[1], "out_w": px.shape[2],
                 "config": {k: (FILTER_NAMES[v] if k == "filter" else v) for k, v in cfg.items()},
                 "u8_offset": blob.add(u8.tobytes()), "u8_size": u8.nbytes,
                 "lut_offset": blob.add(lut.astype("<f4").tobytes())}
        refs["preprocess"].append(entry)

    with open("refs.bin", "wb") as f:
        f.write(bytes(blob.data))
    with open("refs.json", "w") as f:
        json.dump(refs, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(HERE) for fn in fns)
    print(f"{len(refs['decode'])} images, {len(refs['resize'])} resize cases, "
          f"{len(refs['preprocess'])} preprocess cases; folder {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
