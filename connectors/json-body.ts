/**
 * JSON request bodies that carry a file as base64: Greenhouse's attachments, Workable's inline
 * resume, a generic receiver's `resume.contentBase64`. A resume may be RESUME_MAX_BYTES (10 MiB);
 * as `bytes.toString('base64')` and again inside JSON.stringify's result it becomes two heap strings
 * of 4/3 its size in V8's large-object space, freed only by a full collection — at hundreds of
 * deliveries in flight that, not the deliveries themselves, is what presses on the heap ceiling
 * (deploy/k8s/base/dispatcher.yaml). Here a file is written into the body Buffer in 48 KiB pieces
 * (short-lived young strings); the rest of the body is serialised as usual, byte for byte the same.
 */
import { randomBytes } from 'node:crypto';

/** The files met by the jsonBody running now (JSON.stringify is synchronous: one at a time). */
let collecting: Buffer[] | undefined;

/** A file in a JSON body, serialised as a base64 string (by plain JSON.stringify too, through one big string). */
export class Base64 {
  constructor(readonly bytes: Buffer) {}

  // Inside jsonBody a marker, not the file: JSON.stringify calls toJSON before any replacer would
  // see the value, so a replacer cannot spare the one big string.
  toJSON(): string {
    return collecting ? `${MARKER}${collecting.push(this.bytes) - 1}` : this.bytes.toString('base64');
  }
}

/** Bytes per base64 piece: a multiple of 3, so pieces join without padding in between. */
const PIECE = 48 * 1024;

/** Stands in for a file in the serialised skeleton; random per process, so no data can contain it. */
const MARKER = `ats-relay-base64-${randomBytes(12).toString('hex')}-`;

/** JSON.stringify(value) as UTF-8, with every Base64 in it as a base64 string. */
export function jsonBody(value: unknown): Buffer {
  const files: Buffer[] = [];
  collecting = files;
  let skeleton: string;
  try {
    skeleton = JSON.stringify(value);
  } finally {
    collecting = undefined;
  }
  if (files.length === 0) return Buffer.from(skeleton, 'utf8');
  // The skeleton split around each `"MARKERi"`: text, file 0, text, file 1, …, text (in file order).
  const texts: string[] = [];
  let from = 0;
  for (let i = 0; i < files.length; i++) {
    const quoted = `"${MARKER}${i}"`;
    const at = skeleton.indexOf(quoted, from);
    texts.push(skeleton.slice(from, at));
    from = at + quoted.length;
  }
  texts.push(skeleton.slice(from));
  let size = 0;
  for (const t of texts) size += Buffer.byteLength(t, 'utf8');
  for (const f of files) size += 2 + 4 * Math.ceil(f.length / 3);
  const out = Buffer.allocUnsafe(size);
  let at = out.write(texts[0]!, 0, 'utf8');
  files.forEach((file, i) => {
    at += out.write('"', at, 'latin1');
    for (let p = 0; p < file.length; p += PIECE) at += out.write(file.toString('base64', p, Math.min(p + PIECE, file.length)), at, 'latin1');
    at += out.write('"', at, 'latin1');
    at += out.write(texts[i + 1]!, at, 'utf8');
  });
  return out;
}
