import { describe, expect, it, vi } from 'vitest';
import { Base64, jsonBody } from '../../connectors/json-body.ts';

describe('jsonBody', () => {
  it('is JSON.stringify byte for byte, files as base64 strings, at any size and in any place', () => {
    const files = [0, 1, 2, 3, 49_151, 49_152, 49_153, 200_001].map((n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)));
    const value = {
      name: 'Zoë "Quoted" Ñandú \u2028 😀',
      attachments: files.map((bytes, i) => ({ filename: `f${i}.pdf`, content: new Base64(bytes), content_type: 'application/pdf' })),
      nested: { data: new Base64(files[7]!), after: [1, null, 'x'] },
      top: new Base64(files[1]!),
    };
    const expected = JSON.stringify(value, (_k, v: unknown) => v);
    expect(expected).toContain(files[7]!.toString('base64'));
    expect(jsonBody(value).equals(Buffer.from(expected, 'utf8'))).toBe(true);
    expect(JSON.parse(jsonBody(value).toString('utf8')).attachments[6].content).toBe(files[6]!.toString('base64'));
  });

  it('serialises a body without files, and a file alone', () => {
    expect(jsonBody({ a: 1, b: ['é'] }).toString('utf8')).toBe('{"a":1,"b":["é"]}');
    expect(jsonBody(new Base64(Buffer.from('hi'))).toString('utf8')).toBe('"aGk="');
  });

  it('leaves data that looks like a marker alone', () => {
    const value = { text: 'ats-relay-base64-0', file: new Base64(Buffer.from([1, 2, 3])) };
    expect(JSON.parse(jsonBody(value).toString('utf8'))).toEqual({ text: 'ats-relay-base64-0', file: 'AQID' });
  });

  it('never turns a file into one base64 string: only pieces', () => {
    const bytes = Buffer.alloc(120_000, 7);
    const toString = vi.spyOn(bytes, 'toString');
    const body = jsonBody({ a: [{ content: new Base64(bytes) }] });
    expect(JSON.parse(body.toString('utf8')).a[0].content).toBe(Buffer.alloc(120_000, 7).toString('base64'));
    expect(toString.mock.calls.map((args) => args.length)).toEqual([3, 3, 3]);
    // Outside jsonBody a Base64 is still a plain JSON value.
    expect(JSON.stringify({ f: new Base64(Buffer.from('hi')) })).toBe('{"f":"aGk="}');
  });
});
