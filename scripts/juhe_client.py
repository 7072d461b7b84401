#!/usr/bin/env python3
"""A minimal Juhe faceDetect client, written from the original Juhe document only.

It does what the original asks of a caller: read an image file, base64-encode it (no
"data:" header), url-encode it into an application/x-www-form-urlencoded body with the
other fields, POST it to /faceDetect/index and print the JSON answer. Python stdlib only.

    scripts/juhe_client.py --base http://127.0.0.1:8080 --key KEY photo.jpg [--face-num 3]
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser(description="POST an image to a Juhe-style /faceDetect/index")
    ap.add_argument("image", help="image file (jpg, png or bmp)")
    ap.add_argument("--key", required=True, help="API key")
    ap.add_argument("--base", default="http://127.0.0.1:8080", help="service base URL")
    ap.add_argument("--face-num", type=int, default=1, help="1..10 (default 1)")
    ap.add_argument("--face-type", type=int, default=1, help="1 live, 2 ID card, 3 watermarked ID, 4 certificate")
    args = ap.parse_args()

    with open(args.image, "rb") as f:
        image_b64 = base64.b64encode(f.read()).decode("ascii")
    body = urllib.parse.urlencode(
        {
            "image": image_b64,
            "face_num": args.face_num,
            "face_type": args.face_type,
            "image_type": 1,
            "key": args.key,
        }
    ).encode("ascii")
    req = urllib.request.Request(
        args.base.rstrip("/") + "/faceDetect/index",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as e:
        print(f"HTTP {e.code}: {e.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 2
    except urllib.error.URLError as e:
        print(f"cannot reach {args.base}: {e.reason}", file=sys.stderr)
        return 2
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if answer.get("error_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
