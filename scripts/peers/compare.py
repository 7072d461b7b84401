#!/usr/bin/env python3
"""Facelens side by side with its peers, in one go, on the same dev images.

    python3 scripts/peers/compare.py --work DIR [--data ../shared/evaldata] [--peers ../shared/peers]
        [--models ../shared/models] [--facelens target/release/facelens] [--steps ...] [--out results.md]
        [--wider-limit N] [--attrs-limit N]      (smoke runs: a few images per step, see --help)

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

Raw outputs go to --work/runs (full run) or --work/runs-smoke-w<N>-a<M> (with limits), so a smoke
run never mixes into the full run's table. With --wider-limit, WIDER AP is scored against the
same first N images only (a filtered manifest under the runs folder; the images are not copied).
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


ORT_PKGS = ['numpy==1.26.4', 'onnxruntime==1.26.0', 'opencv-python-headless==4.11.0.86']
MP_PKGS = ['numpy<2', 'protobuf>=4.25.3,<5', 'absl-py', 'attrs', 'flatbuffers>=2.0', 'opencv-python-headless', 'matplotlib']


def installed(marker, spec):
    """True when `marker` records exactly this install spec (so a changed pin reinstalls)."""
    return os.path.exists(marker) and open(marker).read() == spec


def setup(work):
    ort = os.path.join(work, 'ortvenv', 'bin', 'python')
    spec = json.dumps(ORT_PKGS)
    if not installed(os.path.join(work, 'ortvenv', '.compare-installed'), spec):
        if not os.path.exists(ort):
            sh([sys.executable, '-m', 'venv', os.path.join(work, 'ortvenv')])
        sh([ort, '-m', 'pip', 'install', '-q', *ORT_PKGS])
        open(os.path.join(work, 'ortvenv', '.compare-installed'), 'w').write(spec)
    mp = os.path.join(work, 'mpvenv', 'bin', 'python')
    spec = json.dumps(['mediapipe==0.10.14', *MP_PKGS])
    if not installed(os.path.join(work, 'mpvenv', '.compare-installed'), spec):
        if not os.path.exists(mp):
            sh([sys.executable, '-m', 'venv', os.path.join(work, 'mpvenv')])
        # without its heavy optional deps (jax, opencv-contrib, sounddevice): pip warns about them, harmless
        sh([mp, '-m', 'pip', 'install', '-q', '--no-deps', 'mediapipe==0.10.14'])
        sh([mp, '-m', 'pip', 'install', '-q', *MP_PKGS])
        open(os.path.join(work, 'mpvenv', '.compare-installed'), 'w').write(spec)
    node = os.path.join(work, 'node')
    spec = json.dumps(NODE_PKGS)
    if not installed(os.path.join(node, '.compare-installed'), spec):
        os.makedirs(node, exist_ok=True)
        with open(os.path.join(node, 'package.json'), 'w') as f:
            f.write('{"private": true}\n')
        sh(['npm', 'install', '--no-audit', '--no-fund', *NODE_PKGS], cwd=node)
        open(os.path.join(node, '.compare-installed'), 'w').write(spec)
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


def attr_selection(data, limit=0):
    """The labelled attribute items every attrs step runs, and the peer options that select them.

    Full run: every 3rd UTKFace item (manifest order, 500) + all FER2013 (654), as the Node peers ran.
    Smoke (limit N): about N UTKFace items spread over all 1500 (every S-th, S = ceil(1500/N), so
    the ages vary) + the first N FER2013 items. The peers filter with --utk-stride, then cut with
    --limit, so the same stride and limit = (UTKFace items) + N give them exactly these items.
    """
    man = [json.loads(l) for l in open(os.path.join(data, 'attributes', 'manifest.jsonl'))]
    utk_all = [m['file'] for m in man if m['file'].startswith('attributes/utkface/')]
    fer = [m['file'] for m in man if m['file'].startswith('attributes/fer2013/')]
    stride = 3 if not limit else max(1, -(-len(utk_all) // limit))
    utk = utk_all[::stride]
    if not limit:
        return utk + fer, ['--sources', 'utkface,fer2013', '--utk-stride', '3']
    items = utk + fer[:limit]
    return items, ['--sources', 'utkface,fer2013', '--utk-stride', str(stride), '--limit', str(len(items))]


def facelens_run(binary, backend, data, files, log, face_num):
    """Run `facelens detect` on `files` in one process, single stream (--jobs 1: one image at a
    time, like every peer), after two untimed warm-up images (the peers warm up twice too).

    Returns (records in `files` order, per-record ms between output lines, wall s, peak RSS MiB).
    The CLI flushes one line per image and, with one job, starts the next image right after, so
    the gap between two lines is that image's whole time (read + decode + pipeline + JSON). It is
    the fallback for records without `timings` (no face found, unreadable), which carry none.
    """
    paths = [os.path.join(data, x) for x in files]
    cmd = [binary, '--backend', backend, '--threads', '2', 'detect', '--jobs', '1', '--face-num', str(face_num), paths[0], paths[0], *paths]
    print('+', ' '.join(cmd[:10]), f'... ({len(paths)} images + 2 warm-up)', flush=True)
    raw, stamps = [], []
    t = time.time()
    with open(log, 'w') as lf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=lf)
        for line in iter(p.stdout.readline, b''):
            if line.strip():
                stamps.append(time.perf_counter())
                raw.append(json.loads(line))
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.time() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):       # 1 = no image had a face: still a result
        raise SystemExit(f'failed ({code}): facelens detect; see {log}')
    if len(raw) != len(paths) + 2:
        raise SystemExit(f'facelens printed {len(raw)} records for {len(paths) + 2} images; see {log}')
    gaps = [(b - a) * 1000 for a, b in zip(stamps[1:], stamps[2:])]
    lines = raw[2:]
    for path, rec in zip(paths, lines):
        if rec.get('file') != path:
            raise SystemExit(f'facelens output out of order: {rec.get("file")} for {path}')
    return lines, gaps, wall, ru.ru_maxrss / 1024


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


def write_run(path, files, lines, gaps, wall, rss, mode, backend):
    """Facelens output -> the peers' run schema (one item per file + a summary line)."""
    times, from_gap = [], 0
    with open(path, 'w') as out:
        for rel, rec, gap in zip(files, lines, gaps):
            total = (rec.get('timings') or {}).get('total_ms')
            ms = float(total) if total is not None else gap
            from_gap += total is None
            times.append(ms)
            faces = (rec.get('result') or {}).get('face_list') or []
            item = {'file': rel, 'ms': round(ms, 2), 'line_gap_ms': round(gap, 2), 'n_faces': len(faces)}
            if rec.get('error_code'):
                item['error_code'] = rec['error_code']
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
            'wall_images_per_s': len(times) / wall, 'backend': backend, 'jobs': 1, 'threads': 2,
            'timed': 'decode + whole pipeline (timings.total_ms); records without timings (no face): gap between output lines',
            'ms_from_line_gap': from_gap}}) + '\n')


def scoring_data(data, runs, wider):
    """Where collect.py reads the manifests: the data itself, or (WIDER limited) a folder with the
    first N images' detection manifest and a link to the real attributes/ (images stay put)."""
    man = [l for l in open(os.path.join(data, 'detection', 'manifest.jsonl')) if l.strip()]
    if len(wider) == len(man):
        return data
    sub = os.path.join(runs, 'score_data')
    os.makedirs(os.path.join(sub, 'detection'), exist_ok=True)
    keep = set(wider)
    with open(os.path.join(sub, 'detection', 'manifest.jsonl'), 'w') as f:
        f.writelines(l for l in man if json.loads(l)['file'] in keep)
    link = os.path.join(sub, 'attributes')
    if os.path.islink(link):
        os.remove(link)
    os.symlink(os.path.abspath(os.path.join(data, 'attributes')), link)
    return sub


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', required=True, help='cache for venvs, node_modules and raw outputs')
    ap.add_argument('--data', default=os.environ.get('FACELENS_EVALDATA', os.path.join(ROOT, '..', 'shared', 'evaldata')))
    ap.add_argument('--peers', default=os.path.join(ROOT, '..', 'shared', 'peers'))
    ap.add_argument('--models', default=os.path.join(ROOT, '..', 'shared', 'models'))
    ap.add_argument('--facelens', default=os.path.join(ROOT, 'target', 'release', 'facelens'))
    ap.add_argument('--backend', default='rten', help='facelens inference backend (explicit, so FACELENS_BACKEND in the shell cannot change it)')
    ap.add_argument('--steps', default=','.join(STEPS), help='comma list of: ' + ','.join(STEPS))
    ap.add_argument('--wider-limit', type=int, default=0, help='first N WIDER images only (0 = all 300); AP is then scored on those N')
    ap.add_argument('--attrs-limit', type=int, default=0,
                    help='smoke: about N UTKFace items (spread) + the first N FER2013 items (0 = every 3rd UTKFace + all FER2013)')
    ap.add_argument('--out', help='write the table (markdown) here too')
    a = ap.parse_args()
    steps = [x for x in a.steps.split(',') if x]
    unknown = [x for x in steps if x not in STEPS]
    if unknown:
        ap.error(f'unknown steps {unknown}; known: {STEPS}')
    a.data, a.peers, a.models = (os.path.abspath(x) for x in (a.data, a.peers, a.models))
    work = os.path.abspath(a.work)
    smoke = bool(a.wider_limit or a.attrs_limit)
    runs = os.path.join(work, f'runs-smoke-w{a.wider_limit}-a{a.attrs_limit}' if smoke else 'runs')
    os.makedirs(runs, exist_ok=True)
    t0 = time.time()
    ort, mp, nm = setup(work)
    print(f'setup: {time.time() - t0:.0f} s', flush=True)
    wider = [json.loads(l)['file'] for l in open(os.path.join(a.data, 'detection', 'manifest.jsonl')) if l.strip()]
    if a.wider_limit:
        wider = wider[:a.wider_limit]
    wlim = ['--limit', str(a.wider_limit)] if a.wider_limit else []
    items, sel = attr_selection(a.data, a.attrs_limit)
    log = lambda n: os.path.join(runs, n + '.log')
    took = {}

    def step(name, fn):
        if name in steps:
            t = time.time()
            fn()
            took[name] = time.time() - t
            print(f'{name}: {took[name]:.1f} s', flush=True)

    def facelens(mode, files, face_num):
        lines, gaps, wall, rss = facelens_run(a.facelens, a.backend, a.data, files, log(f'facelens_{mode}'), face_num)
        write_run(os.path.join(runs, f'facelens_{mode}.jsonl'), files, lines, gaps, wall, rss, mode, a.backend)

    step('facelens_wider', lambda: facelens('wider', wider, 100))
    step('facelens_attrs', lambda: facelens('attrs', items, 1))
    node = ['node', os.path.join(a.peers, 'peer_node.js'), '--peer', 'human', '--node-modules', nm, '--data', a.data]
    step('human_wider', lambda: timed(node + ['--mode', 'wider', '--min-conf', '0.1', '--max-faces', '100',
                                              '--out', os.path.join(runs, 'human_wider.jsonl')] + wlim, log('human_wider')))
    step('human_attrs', lambda: timed(node + ['--mode', 'attrs', *sel, '--no-whole',
                                              '--out', os.path.join(runs, 'human_attrs.jsonl')], log('human_attrs')))
    onnx = [ort, os.path.join(a.peers, 'peer_onnx.py')]
    step('onnx_wider', lambda: timed(onnx + ['wider', '--models', a.models, '--data', a.data, '--detector', 'retina_mnet025',
                                             '--max-side', '640', '--thr', '0.02', '--out', os.path.join(runs, 'onnx_ref_wider.jsonl')]
                                     + wlim, log('onnx_wider')))
    step('onnx_attrs', lambda: timed(onnx + ['attrs', '--models', a.models, '--data', a.data, *sel, '--no-whole',
                                             '--out', os.path.join(runs, 'onnx_ref_attrs.jsonl')], log('onnx_attrs')))
    step('mp_wider', lambda: timed([mp, os.path.join(a.peers, 'peer_mediapipe.py'), '--data', a.data, '--model', 'full',
                                    '--min-conf', '0.1', '--out', os.path.join(runs, 'mediapipe_wider.jsonl')] + wlim, log('mp_wider')))
    # Scored by collect.py's own wider()/attrs() (same code as the peers' results). Not through its
    # main(): its markdown table() raises KeyError 'anime_faces' for an ORT attrs run without the
    # anime items (the reference pipeline always emits anime:anime_or_not), after writing the JSON.
    scored = os.path.join(runs, 'scored.json')
    sh([ort, '-c', 'import json, sys; sys.path.insert(0, sys.argv[1]); import collect; '
        'json.dump({"wider": collect.wider(sys.argv[2], sys.argv[3]), "attributes": collect.attrs(sys.argv[2], sys.argv[3])}, '
        'open(sys.argv[4], "w"), indent=1)', a.peers, scoring_data(a.data, runs, wider), runs, scored])
    table = render(json.load(open(scored)))
    if smoke:
        n_utk = sum(1 for x in items if x.startswith('attributes/utkface/'))
        table += (f'\n\nSmoke run, not for quoting: WIDER first {len(wider)} images (AP scored on those only); '
                  f'attributes {n_utk} UTKFace + {len(items) - n_utk} FER2013 items.')
    print('step wall s: ' + ', '.join(f'{k} {v:.1f}' for k, v in took.items()))
    print(table)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(table + '\n')


def fmt(v, spec='{:.2f}'):
    return '-' if v is None else spec.format(v)


def shrunk(w):
    """Human's box is its detector box x1.4 (squarified), so its AP as reported is near zero; the
    peers' scorer also scores the box shrunk back by 1/1.4 with the detector score: shown too."""
    v = w.get('shrunk_1.4_box_score')
    return f" (box/1.4: {'/'.join(fmt(v.get(x), '{:.3f}') for x in ('easy', 'medium', 'hard'))})" if v else ''


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
            ('/'.join(fmt(ap.get(x), '{:.3f}') for x in ('easy', 'medium', 'hard')) if ap else '-') + shrunk(w),
            f"{fmt(age.get('mae'))} ({age.get('found', '-')}/{age.get('n', '-')})" if age else '-',
            fmt(gen.get('acc'), '{:.1%}') if gen else '-', fmt(emo.get('acc'), '{:.1%}') if emo else '-',
            fmt(asum.get('images_per_s'))))
    return '\n'.join(rows)

if __name__ == '__main__':
    main()
