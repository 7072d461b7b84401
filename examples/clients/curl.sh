#!/usr/bin/env bash
# Call /faceDetect/index the Juhe way with curl: a form body, the image base64-encoded and then
# url-encoded (curl --data-urlencode does the second step), the key as a field.
#
#   examples/clients/curl.sh BASE_URL KEY IMAGE [FACE_NUM]
#   examples/clients/curl.sh http://127.0.0.1:8080 "$KEY" photo.jpg 3
#
# Prints the answer (JSON) and one line per face; exits 0 only on error_code 0.
set -euo pipefail
base="${1:?usage: curl.sh BASE_URL KEY IMAGE [FACE_NUM]}"
key="${2:?usage: curl.sh BASE_URL KEY IMAGE [FACE_NUM]}"
image="${3:?usage: curl.sh BASE_URL KEY IMAGE [FACE_NUM]}"
face_num="${4:-1}"

b64=$(mktemp)
trap 'rm -f "$b64"' EXIT
base64 -w0 "$image" > "$b64"

answer=$(curl -sS --fail-with-body -X POST "${base%/}/faceDetect/index" \
  -H "Content-Type: application/x-www-form-urlencoded" \
  --data-urlencode "key=$key" \
  --data-urlencode "image@$b64" \
  --data-urlencode "image_type=1" \
  --data-urlencode "face_num=$face_num")
echo "$answer"

# One line per face, with python3's json module (no jq needed).
python3 - "$answer" <<'PY'
import json, sys
a = json.loads(sys.argv[1])
if a.get("error_code") != 0:
    print("error", a.get("error_code"), a.get("reason"))
    sys.exit(1)
for i, f in enumerate(a["result"]["face_list"]):
    loc = f["location"]
    gender = (f.get("gender") or {}).get("type")
    print(f"face {i}: age {f.get('age')}, gender {gender}, "
          f"box {loc['left']},{loc['top']} {loc['width']}x{loc['height']}, score {f['face_probability']}")
PY
