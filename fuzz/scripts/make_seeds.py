#!/usr/bin/env python3
"""Write the hand-made seed corpora under fuzz/corpus/<target>/ (needs Pillow).

Run from the repository root: python3 fuzz/scripts/make_seeds.py
Every seed is synthetic: the development data may never be committed, nor anything derived
from it (fuzzer mutants of a dev image included). The pipeline's "face" seed is a drawn face.
"""
import base64
import io
import os
import struct
import zlib

from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gradient(w, h, mode="RGB"):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), 128) for y in range(h) for x in range(w)])
    return img.convert(mode)


def enc(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(w, h):
    """A PNG whose IHDR claims w x h, with one tiny IDAT (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")


def jpeg_claiming(w, h, small_jpeg):
    """Patch the SOF0 of a real small JPEG to claim w x h."""
    b = bytearray(small_jpeg)
    i = 2
    while i < len(b):
        assert b[i] == 0xFF
        m = b[i + 1]
        ln = struct.unpack(">H", b[i + 2 : i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            b[i + 5 : i + 9] = struct.pack(">HH", h, w)
            return bytes(b)
        i += 2 + ln
    raise ValueError("no SOF")


def bmp_claiming(w, h):
    hdr = b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return hdr + info + b"\x00" * 16


def exif_orientation(o):
    """A minimal EXIF block (big-endian TIFF) with one Orientation entry."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, o, 0) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + tiff


def main():
    img = gradient(24, 16)
    jpeg = enc(img, "JPEG", quality=70)
    png = enc(img, "PNG")
    bmp = enc(img, "BMP")
    grey_jpeg = enc(gradient(20, 20, "L"), "JPEG", quality=70)
    exif6 = enc(gradient(32, 18), "JPEG", quality=70, exif=exif_orientation(6))
    png16 = enc(Image.frombytes("I;16", (16, 16), bytes(range(256)) * 2), "PNG")
    rgba_png = enc(gradient(16, 20, "RGBA"), "PNG")
    pal_png = enc(gradient(16, 16).convert("P"), "PNG")
    progressive = enc(gradient(20, 20), "JPEG", quality=60, progressive=True)
    images = {
        "tiny.jpg": jpeg,
        "tiny.png": png,
        "tiny.bmp": bmp,
        "grey.jpg": grey_jpeg,
        "exif6.jpg": exif6,
        "png16.png": png16,
        "rgba.png": rgba_png,
        "palette.png": pal_png,
        "progressive.jpg": progressive,
        "bomb60000.png": png_header_only(60000, 60000),
        "bomb60000.jpg": jpeg_claiming(60000, 60000, jpeg),
        "bomb60000.bmp": bmp_claiming(60000, 60000),
        "small10.png": enc(gradient(10, 10), "PNG"),
    }
    for name, data in images.items():
        put("decode", name, data)

    # pipeline: a few decodable images and a drawn face (skin ellipse, eyes, brows, nose, mouth).
    for name in ("tiny.jpg", "exif6.jpg", "grey.jpg", "png16.png"):
        put("pipeline", name, images[name])
    from PIL import ImageDraw
    face = Image.new("RGB", (96, 96), (200, 205, 210))
    d = ImageDraw.Draw(face)
    d.ellipse((22, 14, 74, 84), fill=(224, 180, 150))
    for x in (36, 60):
        d.ellipse((x - 6, 38, x + 6, 46), fill=(250, 250, 250))
        d.ellipse((x - 3, 39, x + 3, 45), fill=(40, 30, 25))
        d.line((x - 8, 32, x + 8, 31), fill=(70, 50, 40), width=2)
    d.line((48, 44, 45, 60), fill=(170, 120, 100), width=2)
    d.arc((36, 58, 60, 74), 20, 160, fill=(150, 60, 60), width=3)
    put("pipeline", "drawn_face96.jpg", enc(face, "JPEG", quality=85))
    put("pipeline", "drawn_face48.png", enc(face.resize((48, 48)), "PNG"))

    # base64: two bytes of limit (little-endian, +1), then the field's text.
    lim = lambda n: struct.pack("<H", n - 1)
    b64 = base64.b64encode(jpeg)
    for name, data in {
        "jpeg_std": lim(4096) + b64,
        "jpeg_urlsafe_nopad": lim(4096) + base64.urlsafe_b64encode(jpeg).rstrip(b"="),
        "jpeg_wrapped": lim(4096) + b"\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)),
        "jpeg_dataurl": lim(4096) + b"data:image/jpeg;base64," + b64,
        "jpeg_spaces": lim(4096) + b64.replace(b"+", b" "),
        "over_limit": lim(8) + base64.b64encode(b"0123456789"),
        "hello_pad1": lim(100) + b"aGVsbG8=",
        "bad_dataurl": lim(100) + b"data:image/jpeg,abc",
        "short": lim(100) + b"a",
    }.items():
        put("base64", name, data)

    # request_fields: a selector byte (0 form, 1 JSON, 2 multipart, 3 none, 4 GET; +8 = 512-byte
    # body limit; +0x10 = a Content-Length header with the real length, +0x30 = one claiming 1),
    # then the body or the query string.
    small = base64.b64encode(b"\xff\xd8\xff hello").decode()
    mp = (
        b"--FuzzBoundary\r\n"
        b'Content-Disposition: form-data; name="key"\r\n\r\n'
        b"abc\r\n"
        b"--FuzzBoundary\r\n"
        b'Content-Disposition: form-data; name="face_num"\r\n\r\n'
        b"2\r\n"
        b"--FuzzBoundary\r\n"
        b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
        b"--FuzzBoundary--\r\n"
    )
    mp_field = (
        b"--FuzzBoundary\r\n"
        b'Content-Disposition: form-data; name="image"\r\n\r\n' + small.encode() + b"\r\n"
        b"--FuzzBoundary\r\n"
        b'Content-Disposition: form-data; name="image_type"\r\n\r\n'
        b"1\r\n"
        b"--FuzzBoundary--\r\n"
    )
    from urllib.parse import quote
    form = f"key=abc&image={quote(small, safe='')}&face_num=3&face_type=2&image_type=1".encode()
    for name, data in {
        "form": b"\x00" + form,
        "form_unencoded_plus": b"\x00" + f"key=abc&image={small}".encode(),
        "form_url": b"\x00key=abc&image=http%3A%2F%2Fexample.com%2Fa.jpg&image_type=2",
        "form_small_limit": b"\x08" + form,
        "json": b"\x01" + f'{{"key":"abc","image":"{small}","face_num":1,"face_type":"4","flag":true,"n":null}}'.encode(),
        "json_nested": b"\x01" + b'{"key":"abc","image":{"a":[1,2]}}',
        "json_array": b"\x01[1,2,3]",
        "multipart_file": b"\x02" + mp,
        "multipart_fields": b"\x02" + mp_field,
        "none_json": b"\x03" + f'{{"image":"{small}"}}'.encode(),
        "none_form": b"\x03" + form,
        "form_content_length": b"\x10" + form,
        "multipart_declared_over_limit": b"\x1a" + mp,
        "json_content_length_lie": b"\x31" + f'{{"image":"{small}"}}'.encode(),
        "get_query": b"\x04" + form,
        "get_token": b"\x04key=abc&image=0123456789abcdef0123456789abcdef&image_type=3",
    }.items():
        put("request_fields", name, data)


if __name__ == "__main__":
    main()
