#!/usr/bin/env python3
"""Facelens side by side with its peers, in one go, on the same dev images.

    python3 scripts/peers/compare.py --work DIR [--data ../shared/evaldata] [--peers ../shared/peers]
        [--models ../shared/models] [--facelens target/release/facelens] [--steps ...] [--out results.md]

Runs, one after another so that timings never overlap (the box has 2 cores):
  facelens   `facelens detect` over the WIDER dev images (every face, every attribute: the same
             work Human does on WIDER) and over the labelled attribute items (UTKFace every 3rd
             item + FER2013, the items the Node peers ran), single stream;
  human      @vladmandic/human on Node, tfjs WASM backend (../shared/peers/peer_node.js);
  onnx_ref   the same ONNX models run by Python onnxruntime (../shared/peers/peer_onnx.py);
  mediapipe  MediaPipe face detection in Python (../shared/peers/peer_mediapipe.py).
then scores every output with the peers' own scorer (../shared/peers/collect.py), so Facelens is
measured by exactly the code that measured the peers, and prints one table: images/s, median ms,
peak RSS, WIDER AP, and age MAE / gender / emotion accuracy on the same labelled items.

Setting up (once, cached under --work): two Python venvs and a node_modules folder with the
versions the peers' README names, installed from the package registries. Nothing of the peers is
committed to this repository.
"""
import argparse, json, os, resource, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
STEPS = ['facelens_wider', 'facelens_attrs', 'human_wider', 'human_attrs', 'onnx_wider', 'onnx_attrs', 'mp_wider']
NODE_PKGS = ['@vladmandic/human@3.3.6', '@tensorflow/tfjs@4.22.0', '@tensorflow/tfjs-core@4.22.0',
             '@tensorflow/tfjs-converter@4.22.0', '@tensorflow/tfjs-backend-wasm@4.22.0', 'sharp@0.33.5',
             '@vladmandic/face-api@1.7.15']
RACE = {'yellow': 'asian', 'white': 'white', 'black': 'black', 'arabs': 'indian'}


def sh(cmd, **kw):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def setup(work):
    ort = os.path.join(work, 'ortvenv', 'bin', 'python')
    if not os.path.exists(ort):
        sh([sys.executable, '-m', 'venv', os.path.join(work, 'ortvenv')])
        sh([ort, '-m', 'pip', 'install', '-q', 'numpy<2', 'onnxruntime', 'opencv-python-headless'])
    mp = os.path.join(work, 'mpvenv', 'bin', 'python')
    if not os.path.exists(mp):
        sh([sys.executable, '-m', 'venv', os.path.join(work, 'mpvenv')])
        sh([mp, '-m', 'pip', 'install', '-q', '--no-deps', 'mediapipe==0.10.14'])
        sh([mp, '-m', 'pip', 'install', '-q', 'numpy<2', 'protobuf>=4.25.3,<5', 'absl-py', 'attrs', 'flatbuffers>=2.0',
            'opencv-python-headless', 'matplotlib'])
    node = os.path.join(work, 'node')
    if not os.path.isdir(os.path.join(node, 'node_modules', '@vladmandic', 'human')):
        os.makedirs(node, exist_ok=True)
        with open(os.path.join(node, 'package.json'), 'w') as f:
            f.write('{"private": true}\n')
        sh(['npm', 'install', '--no-audit', '--no-fund', *NODE_PKGS], cwd=node)
    return ort, mp, os.path.join(node, 'node_modules')


def timed(cmd, log, stdout=None):
    """Run a command; return (wall seconds, peak RSS MiB of the process tree's largest child)."""
    print('+', ' '.join(cmd), flush=True)
    t = time.time()
    with open(log, 'w') as lf:
        p = subprocess.Popen(cmd, stdout=stdout or lf, stderr=lf)
        _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f'failed ({status}): {" ".join(cmd)}; see {log}')
    return time.time() - t, ru.ru_maxrss / 1024


def attr_items(data):
    man = [json.loads(l) for l in open(os.path.join(data, 'attributes', 'manifest.jsonl'))]
    utk = [m for m in man if m['file'].startswith('attributes/utkface/')][::3]
    fer = [m for m in man if m['file'].startswith('attributes/fer2013/')]
    return utk + fer


def facelens_run(binary, data, files, out_path, log, face_num):
    """Run `facelens detect` on `files` (one process, single stream) and return its parsed lines."""
    raw = out_path + '.raw'
    with open(raw, 'w') as f:
        wall, rss = timed([binary, '--threads', '2', 'detect', '--face-num', str(face_num),
                           *[os.path.join(data, x) for x in files]], log, stdout=f)
    lines = [json.loads(l) for l in open(raw) if l.strip()]
    return lines, wall, rss


def to_schema(face):
    d = {}
    if 'age' in face:
        d['age:facelens'] = float(face['age'])
    if face.get('gender'):
        d['gender:facelens'] = face['gender']['type']
    if face.get('emotion'):
        d['emotion:facelens'] = {face['emotion']['type']: face['emotion']['probability']}
    if face.get('race'):
        d['race:facelens'] = {RACE.get(face['race']['type'], 'others'): face['race']['probability']}
    return d


def write_run(path, data, files, lines, wall, rss, mode):
    times = []
    with open(path, 'w') as out:
        for rel, rec in zip(files, lines):
            ms = float(rec.get('timings', {}).get('total_ms', 0.0))
            times.append(ms)
            faces = (rec.get('result') or {}).get('face_list') or []
            item = {'file': rel, 'ms': ms, 'n_faces': len(faces)}
            if mode == 'wider':
                item['boxes'] = [[f['location']['left'], f['location']['top'], f['location']['width'],
                                  f['location']['height'], f['face_probability']] for f in faces]
            elif faces:
                item['pipe'] = to_schema(faces[0])
            out.write(json.dumps(item) + '\n')
        s = sorted(times)
        out.write(json.dumps({'summary': {
            'peer': 'facelens', 'mode': mode, 'n': len(times), 'images_per_s': len(times) / (sum(times) / 1000),
            'median_ms': s[len(s) // 2] if s else None, 'peak_rss_mb': rss, 'wall_s': wall,
            'wall_images_per_s': len(times) / wall, 'timed': 'decode + whole pipeline (timings.total_ms)'}}) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', required=True, help='cache for venvs, node_modules and raw outputs')
    ap.add_argument('--data', default=os.environ.get('FACELENS_EVALDATA', os.path.join(ROOT, '..', 'shared', 'evaldata')))
    ap.add_argument('--peers', default=os.path.join(ROOT, '..', 'shared', 'peers'))
    ap.add_argument('--models', default=os.path.join(ROOT, '..', 'shared', 'models'))
    ap.add_argument('--facelens', default=os.path.join(ROOT, 'target', 'release', 'facelens'))
    ap.add_argument('--steps', default=','.join(STEPS))
    ap.add_argument('--wider-limit', type=int, default=0, help='first N WIDER images only (0 = all 300)')
    ap.add_argument('--out', help='write the table (markdown) here too')
    a = ap.parse_args()
    steps = a.steps.split(',')
    work = os.path.abspath(a.work)
    runs = os.path.join(work, 'runs')
    os.makedirs(runs, exist_ok=True)
    ort, mp, nm = setup(work)
    wider = [json.loads(l)['file'] for l in open(os.path.join(a.data, 'detection', 'manifest.jsonl'))]
    if a.wider_limit:
        wider = wider[:a.wider_limit]
    items = [m['file'] for m in attr_items(a.data)]
    log = lambda n: os.path.join(runs, n + '.log')
    if 'facelens_wider' in steps:
        lines, wall, rss = facelens_run(a.facelens, a.data, wider, os.path.join(runs, 'facelens_wider'), log('facelens_wider'), 100)
        write_run(os.path.join(runs, 'facelens_wider.jsonl'), a.data, wider, lines, wall, rss, 'wider')
    if 'facelens_attrs' in steps:
        lines, wall, rss = facelens_run(a.facelens, a.data, items, os.path.join(runs, 'facelens_attrs'), log('facelens_attrs'), 1)
        write_run(os.path.join(runs, 'facelens_attrs.jsonl'), a.data, items, lines, wall, rss, 'attrs')
    node = ['node', os.path.join(a.peers, 'peer_node.js'), '--peer', 'human', '--node-modules', nm, '--data', a.data]
    if 'human_wider' in steps:
        timed(node + ['--mode', 'wider', '--min-conf', '0.1', '--max-faces', '100', '--out', os.path.join(runs, 'human_wider.jsonl')]
              + (['--limit', str(a.wider_limit)] if a.wider_limit else []), log('human_wider'))
    if 'human_attrs' in steps:
        timed(node + ['--mode', 'attrs', '--sources', 'utkface,fer2013', '--utk-stride', '3', '--no-whole',
                      '--out', os.path.join(runs, 'human_attrs.jsonl')], log('human_attrs'))
    onnx = [ort, os.path.join(a.peers, 'peer_onnx.py')]
    if 'onnx_wider' in steps:
        timed(onnx + ['wider', '--models', a.models, '--data', a.data, '--detector', 'retina_mnet025', '--max-side', '640',
                      '--thr', '0.02', '--out', os.path.join(runs, 'onnx_ref_wider.jsonl')]
              + (['--limit', str(a.wider_limit)] if a.wider_limit else []), log('onnx_wider'))
    if 'onnx_attrs' in steps:
        timed(onnx + ['attrs', '--models', a.models, '--data', a.data, '--sources', 'utkface,fer2013', '--utk-stride', '3',
                      '--no-whole', '--out', os.path.join(runs, 'onnx_ref_attrs.jsonl')], log('onnx_attrs'))
    if 'mp_wider' in steps:
        timed([mp, os.path.join(a.peers, 'peer_mediapipe.py'), '--data', a.data, '--model', 'full', '--min-conf', '0.1',
               '--out', os.path.join(runs, 'mediapipe_wider.jsonl')], log('mp_wider'))
    scored = os.path.join(runs, 'scored.json')
    sh([ort, os.path.join(a.peers, 'collect.py'), '--data', a.data, '--runs', runs, '--json', scored])
    table = render(json.load(open(scored)))
    print(table)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(table + '\n')


def fmt(v, spec='{:.2f}'):
    return '-' if v is None else spec.format(v)


def render(res):
    """One row per peer: WIDER speed and AP, attribute accuracy on the same items."""
    wider = res.get('wider', {})
    attrs = res.get('attributes', {})
    rows = ['| peer | WIDER images/s | median ms | peak RSS MB | AP easy/med/hard | UTKFace age MAE (found/n) | gender | FER2013 emotion | attribute items/s |',
            '|---|---|---|---|---|---|---|---|---|']
    peers = [('facelens', 'facelens', 'facelens', 'facelens', 'facelens'),
             ('human', 'human', 'human', 'human', 'human'),
             ('onnx_ref', 'onnx_ref', 'onnx_ref', 'ref_fused', 'human_minixception'),
             ('mediapipe', 'mediapipe', None, None, None)]
    for label, wname, aname, agekey, emokey in peers:
        w = wider.get(wname) or {}
        s = w.get('summary') or {}
        ap = w.get('as_reported') or {}
        at = attrs.get(aname) or {} if aname else {}
        ps = at.get('per_source') or {}
        utk = (ps.get('utkface') or {})
        utk = utk.get('utk_every3rd') or utk.get('all') or {}
        fer = (ps.get('fer2013') or {}).get('all') or {}
        age = (utk.get('pipe') or {}).get(f'age:{agekey}') or {}
        gen = (utk.get('pipe') or {}).get(f'gender:{agekey}') or {}
        emo = (fer.get('pipe') or {}).get(f'emotion:{emokey}') or {}
        asum = at.get('summary') or {}
        rows.append('| {} | {} | {} | {} | {} | {} | {} | {} | {} |'.format(
            label, fmt(s.get('images_per_s')), fmt(s.get('median_ms'), '{:.1f}'), fmt(s.get('peak_rss_mb'), '{:.0f}'),
            '/'.join(fmt(ap.get(x), '{:.3f}') for x in ('easy', 'medium', 'hard')) if ap else '-',
            f"{fmt(age.get('mae'))} ({age.get('found', '-')}/{age.get('n', '-')})" if age else '-',
            fmt(gen.get('acc'), '{:.1%}') if gen else '-', fmt(emo.get('acc'), '{:.1%}') if emo else '-',
            fmt(asum.get('images_per_s'))))
    return '\n'.join(rows)

if __name__ == '__main__':
    main()
