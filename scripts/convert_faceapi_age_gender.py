#!/usr/bin/env python3
"""Convert face-api's age/gender network (AgeGenderNet on a TinyXception trunk) to ONNX.

Where the weights come from
---------------------------
The npm package @vladmandic/face-api 1.7.15 (package.json "license": "MIT", LICENSE file
"MIT License, Copyright (c) Vladimir Mandic") ships the model as
``model/age_gender_model-weights_manifest.json`` + ``model/age_gender_model.bin``.
The weights were trained and first published by Vincent Mühler (justadudewhohacks) in
face-api.js, also under the MIT licence.  Both licences permit redistribution of the
converted weights as long as the copyright notice and the permission notice are kept.

What this script does
---------------------
1. Reads the tfjs weights manifest and its .bin shard(s) and dequantizes every tensor
   exactly as tfjs-core's ``io.decodeWeights`` does (uint8/uint16: ``q * scale + min``
   computed in double precision and stored as float32; float16 -> float32).
2. Re-builds the graph of ``src/xception/TinyXception.ts`` (2 main blocks) and
   ``src/ageGenderNet/AgeGenderNet.ts`` with ONNX operators (opset 13), converting the
   NHWC/HWIO TensorFlow layout to ONNX's NCHW/OIHW.  TensorFlow 'SAME' padding is written
   out as explicit pads computed for the actual spatial sizes (TF puts the odd extra pixel
   at the bottom/right, e.g. a 3x3 stride-2 conv on 112x112 pads (0,1) not (1,1)).
3. Writes a deterministic ONNX file (same inputs -> byte-identical output).

Graph
-----
input  "input"  float32 [N, 3, 112, 112]  RGB pixel values in 0..255 (NCHW), dynamic N.
output "age"    float32 [N]               age regression (years), the raw fc/age output.
output "gender" float32 [N, 2]            softmax probabilities, index 0 = male, index 1 =
                                          female (face-api reads probMale = gender[0] and
                                          reports 'male' when probMale > 0.5).
The mean subtraction (R,G,B = 122.782, 117.001, 104.298) and the division by 255 are done
inside the graph.

Preprocessing a caller must do (what face-api's NetInput.toBatchTensor(112, true) does for
a tensor input; for a detected face face-api first crops the box, clipped to the image
borders and rounded to integers, with tf.slice):
  * RGB channel order, values 0..255 as floats (no other normalisation).
  * Pad to square with zeros (black) along the shorter side.  With d = |H - W|,
    face-api appends round(d / 2) zero rows/columns after the image (bottom/right) and
    prepends the remaining d - round(d / 2) before it (top/left), where round() is
    JavaScript Math.round (halves round up); i.e. the image is centred, and when d is odd
    the extra pixel of padding goes after the image.
  * If the square side is not 112, resize to 112x112 with TensorFlow's bilinear resize,
    alignCorners=false, halfPixelCenters=false (the legacy TF1 mapping
    src = dst * in_size / 112, no half-pixel offset, edge-clamped neighbour).
  * Transpose HWC -> CHW and stack into a float32 batch.

Usage
-----
python3 convert_faceapi_age_gender.py --package-dir node_modules/@vladmandic/face-api \
    --out faceapi_age_gender.onnx
Needs numpy and onnx (tested with onnx 1.17.0).
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
NUM_MAIN_BLOCKS = 2
OPSET = 13

_DTYPES = {'float32': np.float32, 'int32': np.int32, 'uint8': np.uint8, 'uint16': np.uint16,
           'float16': np.float16, 'bool': np.bool_}


def load_tfjs_weights(model_dir, name='age_gender_model'):
    """Return {name: float32 ndarray} decoded like tfjs-core io.decodeWeights."""
    with open(os.path.join(model_dir, name + '-weights_manifest.json'), 'r', encoding='utf-8') as f:
        manifest = json.load(f)
    weights = {}
    for group in manifest:
        buf = b''.join(open(os.path.join(model_dir, p), 'rb').read() for p in group['paths'])
        offset = 0
        for spec in group['weights']:
            shape = [int(s) for s in spec['shape']]
            count = int(np.prod(shape)) if shape else 1
            q = spec.get('quantization')
            if q is not None:
                qtype = _DTYPES[q['dtype']]
                nbytes = count * np.dtype(qtype).itemsize
                raw = np.frombuffer(buf, dtype=np.dtype(qtype).newbyteorder('<'), count=count, offset=offset)
                if q['dtype'] in ('uint8', 'uint16'):
                    vals = (raw.astype(np.float64) * float(q['scale']) + float(q['min'])).astype(np.float32)
                elif q['dtype'] == 'float16':
                    vals = raw.astype(np.float32)
                else:
                    raise ValueError(f"unsupported quantization {q['dtype']} for {spec['name']}")
            else:
                dt = _DTYPES[spec['dtype']]
                nbytes = count * np.dtype(dt).itemsize
                vals = np.frombuffer(buf, dtype=np.dtype(dt).newbyteorder('<'), count=count, offset=offset).astype(np.float32)
            offset += nbytes
            weights[spec['name']] = vals.reshape(shape).copy()
        if offset != len(buf):
            raise ValueError(f'weights group used {offset} of {len(buf)} bytes')
    return weights


def tf_same_pads(size, k, s):
    """TensorFlow 'SAME' padding for one spatial axis: (out, pad_before, pad_after)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


class Builder:
    def __init__(self, w):
        self.w = w
        self.used = set()
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f'{base}_{self.n}'

    def get(self, key):
        if key not in self.w:
            raise KeyError(f'missing weight {key}')
        self.used.add(key)
        return self.w[key]

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def relu(self, x):
        return self.node('Relu', [x], self.name('relu'))

    def conv(self, x, hw, prefix, stride):
        """tf.add(tf.conv2d(x, filters, stride, 'same'), bias)."""
        filt = self.get(prefix + '/filters')          # [kh, kw, in, out]
        bias = self.get(prefix + '/bias')
        kh, kw = filt.shape[:2]
        oh, pt, pb = tf_same_pads(hw[0], kh, stride)
        ow, pl, pr = tf_same_pads(hw[1], kw, stride)
        wn = self.const(prefix + '/W', filt.transpose(3, 2, 0, 1))
        bn = self.const(prefix + '/B', bias)
        y = self.node('Conv', [x, wn, bn], prefix, kernel_shape=[kh, kw], strides=[stride, stride],
                      pads=[pt, pl, pb, pr], dilations=[1, 1], group=1)
        return y, (oh, ow)

    def sep_conv(self, x, hw, prefix):
        """tf.separableConv2d(x, dw, pw, [1,1], 'same') + bias (stride 1 everywhere here)."""
        dw = self.get(prefix + '/depthwise_filter')   # [kh, kw, C, 1]
        pw = self.get(prefix + '/pointwise_filter')   # [1, 1, C, O]
        bias = self.get(prefix + '/bias')
        kh, kw, c, mult = dw.shape
        assert mult == 1
        oh, pt, pb = tf_same_pads(hw[0], kh, 1)
        ow, pl, pr = tf_same_pads(hw[1], kw, 1)
        dwn = self.const(prefix + '/depthwise_W', dw.transpose(2, 3, 0, 1))
        y = self.node('Conv', [x, dwn], prefix + '/depthwise', kernel_shape=[kh, kw], strides=[1, 1],
                      pads=[pt, pl, pb, pr], dilations=[1, 1], group=int(c))
        pwn = self.const(prefix + '/pointwise_W', pw.transpose(3, 2, 0, 1))
        bn = self.const(prefix + '/B', bias)
        y = self.node('Conv', [y, pwn, bn], prefix + '/pointwise', kernel_shape=[1, 1], strides=[1, 1],
                      pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
        return y, (oh, ow)

    def max_pool_same(self, x, hw, k, s, name):
        oh, pt, pb = tf_same_pads(hw[0], k, s)
        ow, pl, pr = tf_same_pads(hw[1], k, s)
        # ONNX MaxPool ignores padded cells (as TF does for 'SAME' max pooling).
        y = self.node('MaxPool', [x], name, kernel_shape=[k, k], strides=[s, s], pads=[pt, pl, pb, pr])
        return y, (oh, ow)

    def add(self, a, b):
        return self.node('Add', [a, b], self.name('add'))

    def reduction_block(self, x, hw, prefix, activate_input=True):
        out = self.relu(x) if activate_input else x
        out, hw1 = self.sep_conv(out, hw, prefix + '/separable_conv0')
        out, hw1 = self.sep_conv(self.relu(out), hw1, prefix + '/separable_conv1')
        out, hw2 = self.max_pool_same(out, hw1, 3, 2, prefix + '/max_pool')
        exp, hw3 = self.conv(x, hw, prefix + '/expansion_conv', 2)
        assert hw2 == hw3
        return self.add(out, exp), hw2

    def main_block(self, x, hw, prefix):
        out, _ = self.sep_conv(self.relu(x), hw, prefix + '/separable_conv0')
        out, _ = self.sep_conv(self.relu(out), hw, prefix + '/separable_conv1')
        out, _ = self.sep_conv(self.relu(out), hw, prefix + '/separable_conv2')
        return self.add(out, x), hw


def build_model(weights):
    b = Builder(weights)
    # normalize(x, meanRgb).div(255)
    mean = b.const('mean_rgb', np.array(MEAN_RGB, dtype=np.float32).reshape(1, 3, 1, 1))
    d255 = b.const('div_255', np.array(255.0, dtype=np.float32))
    x = b.node('Sub', ['input', mean], 'normalize/sub_mean')
    x = b.node('Div', [x, d255], 'normalize/div_255')
    hw = (INPUT_SIZE, INPUT_SIZE)

    x, hw = b.conv(x, hw, 'entry_flow/conv_in', 2)
    x = b.relu(x)
    x, hw = b.reduction_block(x, hw, 'entry_flow/reduction_block_0', activate_input=False)
    x, hw = b.reduction_block(x, hw, 'entry_flow/reduction_block_1')
    for i in range(NUM_MAIN_BLOCKS):
        x, hw = b.main_block(x, hw, f'middle_flow/main_block_{i}')
    x, hw = b.reduction_block(x, hw, 'exit_flow/reduction_block')
    x, hw = b.sep_conv(x, hw, 'exit_flow/separable_conv')
    x = b.relu(x)

    # tf.avgPool(x, [7,7], [2,2], 'valid'): 7x7 -> 1x1
    assert hw[0] >= 7 and hw[1] >= 7
    ph, pw = (hw[0] - 7) // 2 + 1, (hw[1] - 7) // 2 + 1
    assert (ph, pw) == (1, 1), 'flatten order below assumes a 1x1 pooled map'
    x = b.node('AveragePool', [x], 'avg_pool', kernel_shape=[7, 7], strides=[2, 2], pads=[0, 0, 0, 0])
    x = b.node('Flatten', [x], 'flatten', axis=1)  # [N, 512]

    aw = b.const('fc/age/W', b.get('fc/age/weights'))
    ab = b.const('fc/age/B', b.get('fc/age/bias'))
    age = b.node('Gemm', [x, aw, ab], 'fc/age')            # [N, 1]
    shp = b.const('age_shape', np.array([-1], dtype=np.int64))
    b.nodes.append(helper.make_node('Reshape', [age, shp], ['age'], name='age_as1D'))

    gw = b.const('fc/gender/W', b.get('fc/gender/weights'))
    gb = b.const('fc/gender/B', b.get('fc/gender/bias'))
    g = b.node('Gemm', [x, gw, gb], 'fc/gender')           # [N, 2] logits (male, female)
    b.nodes.append(helper.make_node('Softmax', [g], ['gender'], name='gender_softmax', axis=1))

    unused = sorted(set(weights) - b.used)
    if unused:
        raise ValueError(f'unused weights: {unused}')

    graph = helper.make_graph(
        b.nodes, 'faceapi_age_gender',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info('age', TensorProto.FLOAT, ['N']),
         helper.make_tensor_value_info('gender', TensorProto.FLOAT, ['N', 2])],
        initializer=b.inits)
    model = helper.make_model(graph, producer_name='convert_faceapi_age_gender.py', producer_version='1',
                              opset_imports=[helper.make_opsetid('', OPSET)])
    model.ir_version = 8
    model.doc_string = ('face-api AgeGenderNet (TinyXception, 2 main blocks), weights from '
                        '@vladmandic/face-api 1.7.15 / face-api.js (MIT). Input RGB 0..255 NCHW 112x112 '
                        '(zero-padded to square, centred, bilinear alignCorners=false). '
                        'Outputs: age [N]; gender [N,2] softmax, index 0 = male, 1 = female.')
    for k, v in (('source', '@vladmandic/face-api@1.7.15 model/age_gender_model'), ('license', 'MIT'),
                 ('gender_labels', 'male,female'), ('mean_rgb', ','.join(str(m) for m in MEAN_RGB)),
                 ('scale', '1/255')):
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--package-dir', required=True, help='node_modules/@vladmandic/face-api')
    ap.add_argument('--out', required=True, help='output .onnx file')
    a = ap.parse_args()
    pkg = os.path.join(a.package_dir, 'package.json')
    if os.path.exists(pkg):
        with open(pkg, 'r', encoding='utf-8') as f:
            meta = json.load(f)
        if meta.get('version') != '1.7.15':
            print(f"warning: package version {meta.get('version')}, expected 1.7.15")
    weights = load_tfjs_weights(os.path.join(a.package_dir, 'model'))
    model = build_model(weights)
    onnx.save(model, a.out)
    n = sum(int(np.prod(v.shape)) for v in weights.values())
    print(f'wrote {a.out}: {len(weights)} tensors, {n} parameters, {os.path.getsize(a.out)} bytes')


if __name__ == '__main__':
    main()
