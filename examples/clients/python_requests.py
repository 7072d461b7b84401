#!/usr/bin/env python3
"""Call /faceDetect/index the Juhe way with `requests` (pip install requests).

The body is a form (application/x-www-form-urlencoded): `requests` url-encodes the base64 text,
which is what the Juhe document asks for.

    examples/clients/python_requests.py BASE_URL KEY IMAGE [FACE_NUM]

Prints one line per face; exits 0 only when error_code is 0.
"""

import base64
import sys

import requests


def detect(base_url: str, key: str, image_path: str, face_num: int = 1) -> dict:
    with open(image_path, "rb") as f:
        image_b64 = base64.b64encode(f.read()).decode("ascii")
    resp = requests.post(
        base_url.rstrip("/") + "/faceDetect/index",
        data={"key": key, "image": image_b64, "image_type": 1, "face_num": face_num},
        timeout=60,
    )
    # The contract answers HTTP 200 for errors too; anything else is a proxy or network fault.
    resp.raise_for_status()
    return resp.json()


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    base_url, key, image = sys.argv[1:4]
    face_num = int(sys.argv[4]) if len(sys.argv) == 5 else 1
    answer = detect(base_url, key, image, face_num)
    if answer.get("error_code") != 0:
        print(f"error {answer.get('error_code')}: {answer.get('reason')}")
        return 1
    faces = answer["result"]["face_list"]
    print(f"{len(faces)} face(s)")
    for i, face in enumerate(faces):
        loc = face["location"]
        gender = (face.get("gender") or {}).get("type")
        emotion = (face.get("emotion") or {}).get("type")
        print(
            f"face {i}: age {face.get('age')}, gender {gender}, emotion {emotion}, "
            f"box {loc['left']},{loc['top']} {loc['width']}x{loc['height']}, "
            f"score {face['face_probability']}, token {face['token_id']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
