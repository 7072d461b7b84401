#!/usr/bin/env python3
"""A minimal Baidu Face Detect v3 client, written from Baidu's documented request format only.

It does what Baidu's documentation asks of a caller: trade the API Key and Secret Key for an
access token (GET /oauth/2.0/token?grant_type=client_credentials&client_id=...&client_secret=...),
then POST a JSON body (image as base64, image_type BASE64, face_field, max_face_num, face_type)
to /rest/2.0/face/v3/detect?access_token=... and print the JSON answer. Python stdlib only.

Against Facelens: the API Key is the key's id (or name), the Secret Key is the Facelens key.

    scripts/baidu_client.py --host http://127.0.0.1:8080 --api-key 1 --secret-key KEY photo.jpg \
        [--face-field age,gender,landmark] [--max-face-num 3]
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def fetch(req: urllib.request.Request) -> dict:
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        # The OAuth step answers its errors with a 4xx status and a JSON body.
        body = e.read().decode("utf-8", "replace")
        print(f"HTTP {e.code}: {body}", file=sys.stderr)
        raise SystemExit(2)
    except urllib.error.URLError as e:
        print(f"cannot reach {req.full_url}: {e.reason}", file=sys.stderr)
        raise SystemExit(2)


def main() -> int:
    ap = argparse.ArgumentParser(description="Baidu-style face detection (v3) on one image")
    ap.add_argument("image", help="image file (jpg, png or bmp)")
    ap.add_argument("--host", default="http://127.0.0.1:8080", help="service base URL")
    ap.add_argument("--api-key", required=True, help="API Key (client_id)")
    ap.add_argument("--secret-key", required=True, help="Secret Key (client_secret)")
    ap.add_argument("--face-field", default="", help="comma list, e.g. age,gender,landmark")
    ap.add_argument("--max-face-num", type=int, default=1, help="1..120 (default 1)")
    ap.add_argument("--face-type", default="LIVE", help="LIVE, IDCARD, WATERMARK or CERT")
    args = ap.parse_args()
    host = args.host.rstrip("/")

    query = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": args.api_key,
            "client_secret": args.secret_key,
        }
    )
    auth = fetch(urllib.request.Request(f"{host}/oauth/2.0/token?{query}", method="GET"))
    token = auth.get("access_token")
    if not token:
        print(f"no access token: {json.dumps(auth, ensure_ascii=False)}", file=sys.stderr)
        return 2

    with open(args.image, "rb") as f:
        image_b64 = base64.b64encode(f.read()).decode("ascii")
    params = {
        "image": image_b64,
        "image_type": "BASE64",
        "max_face_num": args.max_face_num,
        "face_type": args.face_type,
    }
    if args.face_field:
        params["face_field"] = args.face_field
    url = f"{host}/rest/2.0/face/v3/detect?" + urllib.parse.urlencode({"access_token": token})
    req = urllib.request.Request(
        url,
        data=json.dumps(params).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    answer = fetch(req)
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if answer.get("error_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
