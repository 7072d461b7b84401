#!/usr/bin/env node
// Call /faceDetect/index the Juhe way with Node's built-in fetch (Node 18+; no packages).
// URLSearchParams makes the form body and url-encodes the base64 text, as the Juhe document
// asks.
//
//   node examples/clients/fetch.mjs BASE_URL KEY IMAGE [FACE_NUM]
//
// Prints one line per face; exits 0 only when error_code is 0.
import { readFile } from "node:fs/promises";

const [baseUrl, key, imagePath, faceNum = "1"] = process.argv.slice(2);
if (!baseUrl || !key || !imagePath) {
  console.error("usage: node fetch.mjs BASE_URL KEY IMAGE [FACE_NUM]");
  process.exit(2);
}

const image = (await readFile(imagePath)).toString("base64");
const body = new URLSearchParams({ key, image, image_type: "1", face_num: faceNum });
const resp = await fetch(baseUrl.replace(/\/$/, "") + "/faceDetect/index", {
  method: "POST",
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
  body,
  signal: AbortSignal.timeout(60_000),
});
if (!resp.ok) {
  // The contract answers HTTP 200 for errors too; anything else is a proxy or network fault.
  console.error(`HTTP ${resp.status}: ${await resp.text()}`);
  process.exit(2);
}
const answer = await resp.json();
if (answer.error_code !== 0) {
  console.log(`error ${answer.error_code}: ${answer.reason}`);
  process.exit(1);
}
const faces = answer.result.face_list;
console.log(`${faces.length} face(s)`);
faces.forEach((f, i) => {
  const { left, top, width, height } = f.location;
  console.log(
    `face ${i}: age ${f.age}, gender ${f.gender?.type}, emotion ${f.emotion?.type}, ` +
      `box ${left},${top} ${width}x${height}, score ${f.face_probability}, token ${f.token_id}`,
  );
});
