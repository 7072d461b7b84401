#!/usr/bin/env python3
"""Deterministic synthetic WIDER predictions for cross-checking the Rust port with wider_eval.py.

Generates, for every image of detection/manifest.jsonl, ground-truth boxes jittered with a
SplitMix64 stream (some dropped, some duplicated, plus random false positives, a few images
without predictions or with an empty list). `tests/wider_crosscheck.rs` generates the very same
predictions in Rust (same PRNG, same float operations in the same order), so the expected AP
numbers stored there can be regenerated with:

    EV=../shared/evaldata   # or wherever the evaluation data lives
    for s in a b; do
      python3 crates/facelens-eval/tests/wider_crosscheck.py --manifest $EV/detection/manifest.jsonl \
          --scenario $s > /tmp/wider_preds_$s.jsonl
      python3 ../shared/peers/wider_eval.py --manifest $EV/detection/manifest.jsonl \
          --preds /tmp/wider_preds_$s.jsonl --json /tmp/wider_expected_$s.json
    done

Scenario a: scores quantised to steps of 0.02 in [0, 1) (many ties: exercises the stable sort).
Scenario b: scores 2 + 3u (all above 1: exercises the norm_score quirk lo = 1) plus one prediction
            with score 9.0 for a file that is not in the manifest (it still sets hi).
"""
import argparse, json, math

M64 = (1 << 64) - 1
SEEDS = {'a': 20240601, 'b': 777}


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def f64(self):
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)


def score(scenario, u):
    if scenario == 'a':
        return math.floor(u * 50.0) / 50.0
    return 2.0 + 3.0 * u


def generate(manifest, scenario):
    rng = SplitMix64(SEEDS[scenario])
    out = []
    for m in manifest:
        W, H = float(m['width']), float(m['height'])
        r = rng.f64()
        if r < 0.05:
            continue  # no entry at all
        boxes = []
        if r >= 0.08:  # else: entry with an empty list
            for b in m['boxes']:
                x, y, w, h = (float(v) for v in b)
                if rng.f64() < 0.25:
                    continue  # missed face
                jx = (rng.f64() - 0.5) * 0.4 * w
                jy = (rng.f64() - 0.5) * 0.4 * h
                sw = 1.0 + (rng.f64() - 0.5) * 0.4
                sh = 1.0 + (rng.f64() - 0.5) * 0.4
                s = score(scenario, rng.f64())
                p = [x + jx, y + jy, w * sw, h * sh, s]
                boxes.append(p)
                if rng.f64() < 0.1:  # duplicate detection, lower score
                    boxes.append([p[0] + 1.0, p[1] + 1.0, p[2], p[3], s * 0.5])
            nfp = math.floor(rng.f64() * 4.0)
            for _ in range(nfp):
                fw = 8.0 + rng.f64() * 60.0
                fh = fw * (0.8 + rng.f64() * 0.6)
                fx = rng.f64() * (W - fw)
                fy = rng.f64() * (H - fh)
                s = score(scenario, rng.f64() * 0.7)
                boxes.append([fx, fy, fw, fh, s])
        out.append((m['file'], boxes))
    if scenario == 'b':
        out.append(('extra/not_in_manifest.jpg', [[0.0, 0.0, 10.0, 10.0, 9.0]]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--manifest', required=True)
    ap.add_argument('--scenario', choices=sorted(SEEDS), required=True)
    a = ap.parse_args()
    manifest = [json.loads(l) for l in open(a.manifest) if l.strip()]
    for f, boxes in generate(manifest, a.scenario):
        print(json.dumps({'file': f, 'boxes': boxes}))


if __name__ == '__main__':
    main()
