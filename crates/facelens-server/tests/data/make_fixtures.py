"""Regenerates the small image fixtures of tests/hostile.rs (python3 with Pillow).

They are synthetic (flat colours, no faces): formats and variants the `image` crate cannot
write itself (CMYK JPEG, progressive JPEG, animated GIF / APNG, palette and 1-bit PNG / BMP,
TIFF).
"""
from PIL import Image

base = Image.new("RGB", (64, 48), (120, 130, 140))
for x in range(32):
    for y in range(48):
        base.putpixel((x, y), (250, 240, 230))
base.convert("CMYK").save("cmyk.jpg", quality=80)
base.save("progressive.jpg", quality=80, progressive=True)
f2 = base.transpose(Image.FLIP_LEFT_RIGHT)
base.save("animated.gif", save_all=True, append_images=[f2], duration=100, loop=0)
base.save("animated.png", save_all=True, append_images=[f2], duration=100, loop=0)
base.convert("P").save("palette.png", transparency=0)
base.convert("1").save("bilevel.png")
base.convert("LA").save("grey_alpha.png")
base.convert("RGBA").save("rgba32.bmp")
base.convert("P").save("palette8.bmp")
base.convert("1").save("bilevel.bmp")
base.save("image.tiff")
