// Decodes SPICE LZ and QUIC streams with spice-html5's own lz.js and quic.js.
//
// Usage: node html5_decode.js SPICE_HTML5_DIR IN OUT
// IN holds records: kind (u8: 1 = LZ, 2 = QUIC), length (u32 LE), stream.
// OUT gets, per record: status (u8: 0 ok, 1 error), then for ok: width and
// height (u32 LE each) and the RGBA pixels the browser would paint; for an
// error: a u32 LE length and the message.
//
// The two files are browser ES modules: they are evaluated here as scripts
// in a vm context, with their import lines dropped (the globals they need are
// provided instead) and their export list turned into a plain object.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

function loadModule(file, globals) {
  let src = fs.readFileSync(file, "utf8");
  src = src.replace(/^\s*import\s+[^;]*;\s*$/gm, "");
  src = src.replace(/^export\s+var\s+/gm, "var ");
  src = src.replace(/^export\s*\{([^}]*)\};?/m, "__exports = {$1};");
  const context = vm.createContext(Object.assign({ __exports: null, console }, globals));
  vm.runInContext(src, context, { filename: file });
  return context.__exports || context; // enums.js exports a var, not a list
}

// What the decoders ask of a canvas 2D context.
const canvas = {
  createImageData(width, height) {
    return { width, height, data: new Uint8ClampedArray(width * height * 4) };
  },
};

function decodeLz(u8) {
  if (u8.length < 28) throw new Error("LZ stream shorter than its header");
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  // spicetype.js reads the magic as 4 bytes reversed and the rest big-endian.
  let magic = "";
  for (let i = 3; i >= 0; i--) magic += String.fromCharCode(dv.getUint8(i));
  if (magic !== "LZ  ") throw new Error("bad LZ magic " + JSON.stringify(magic));
  const image = {
    version: dv.getUint32(4), type: dv.getUint32(8), width: dv.getUint32(12),
    height: dv.getUint32(16), stride: dv.getUint32(20), top_down: dv.getUint32(24),
  };
  if (image.version !== 0x00010001) throw new Error("bad LZ version " + image.version);
  image.data = u8.slice(28).buffer;
  const out = lz.convert_spice_lz_to_web(canvas, image);
  if (!out) throw new Error("lz.js refused type " + image.type);
  return out;
}

function decodeQuic(u8) {
  // SpiceQuic.from_dv reads a u32 data_size first, then hands the rest to the decoder.
  const framed = new Uint8Array(4 + u8.length);
  new DataView(framed.buffer).setUint32(0, u8.length, true);
  framed.set(u8, 4);
  const q = new quic.SpiceQuic();
  q.from_dv(new DataView(framed.buffer), 0, framed.buffer);
  if (!q.outptr) throw new Error("quic.js returned no image");
  return quic.convert_spice_quic_to_web(canvas, q);
}

const [dir, inFile, outFile] = process.argv.slice(2);
const enums = loadModule(path.join(dir, "enums.js"), {});
const lz = loadModule(path.join(dir, "lz.js"), { Constants: enums.Constants });
const quic = loadModule(path.join(dir, "quic.js"), {});

const input = fs.readFileSync(inFile);
const chunks = [];
for (let at = 0; at < input.length;) {
  const kind = input[at];
  const len = input.readUInt32LE(at + 1);
  const stream = new Uint8Array(input.buffer, input.byteOffset + at + 5, len);
  at += 5 + len;
  try {
    const img = kind === 1 ? decodeLz(stream) : decodeQuic(stream);
    const head = Buffer.alloc(9);
    head.writeUInt32LE(img.width, 1);
    head.writeUInt32LE(img.height, 5);
    chunks.push(head, Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength));
  } catch (e) {
    const msg = Buffer.from(String(e && e.stack ? e.stack : e));
    const head = Buffer.alloc(5);
    head[0] = 1;
    head.writeUInt32LE(msg.length, 1);
    chunks.push(head, msg);
  }
}
fs.writeFileSync(outFile, Buffer.concat(chunks));
