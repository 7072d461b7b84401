"""Re-create the committed test images from scikit-image's bundled sample data.

    python3 -m venv /tmp/ti && /tmp/ti/bin/pip install scikit-image==0.25.2 pillow==13.0.0
    /tmp/ti/bin/python test-data/make_images.py

Sources, licences and checksums: test-data/README.md. The checksums there are of the files this
script wrote with those versions; another Pillow (libjpeg) may encode slightly different bytes,
and then the goldens that read them must be re-blessed (docs/testing.md).
"""
import hashlib
import os

from PIL import Image
from skimage import data

OUT = os.path.dirname(os.path.abspath(__file__))


def save(img, name):
    path = os.path.join(OUT, name)
    img.save(path, quality=90)
    with open(path, "rb") as f:
        print(f"{hashlib.sha256(f.read()).hexdigest()}  {name}")


astronaut = Image.fromarray(data.astronaut())
# One clear frontal face, 512x512.
save(astronaut, "astronaut.jpg")
# The face and some background, 200x200 colour, like a UTKFace crop: small enough for a GET
# query string once base64- and url-encoded (the HTTP tests send it every way the API takes).
save(astronaut.crop((115, 5, 335, 225)).resize((200, 200), Image.LANCZOS), "astronaut_crop200.jpg")
# The face cut out, grey, 64x64: like the FER2013 crops (the detector's retry chain).
save(astronaut.crop((160, 50, 290, 180)).convert("L").resize((64, 64), Image.LANCZOS),
     "astronaut_grey64.jpg")
# Three faces of three sizes: the astronaut at 380, 270 and 190 px on a grey canvas, for
# face_num, ordering by area and annotation.
trio = Image.new("RGB", (880, 400), (128, 128, 128))
x = 10
for side in (380, 270, 190):
    trio.paste(astronaut.resize((side, side), Image.LANCZOS), (x, 400 - side - 10))
    x += side + 10
save(trio, "astronaut_trio.jpg")
# A greyscale photo of a man with a camera (one face, turned a little).
save(Image.fromarray(data.camera()), "camera.jpg")
# No face at all.
save(Image.fromarray(data.coffee()), "coffee.jpg")
