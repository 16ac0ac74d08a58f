// www/src/node/files.js on its own: paths as file: URLs (also without process.getBuiltinModule,
// as on Node 20 before 20.16) and which strings are paths.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const { fileUrlOfPath, isFilePath } = await import('../../www/src/node/files.js');

const NAMES = ['/abs/model.gguf', 'rel/model.gguf', './a b#c?d%41e.gguf', '../up/x.gguf', 'dir/', 'back\\slash.gguf', 'tab\there.gguf', 'über/模型.gguf'];

test('a path becomes the file: URL pathToFileURL gives, with getBuiltinModule and with the written-out fallback', () => {
  for (const name of NAMES) assert.equal(fileUrlOfPath(name).href, pathToFileURL(name).href, name);
  const getBuiltinModule = process.getBuiltinModule;
  process.getBuiltinModule = undefined;
  try {
    for (const name of NAMES) assert.equal(fileUrlOfPath(name).href, pathToFileURL(name).href, `fallback: ${name}`);
  } finally {
    process.getBuiltinModule = getBuiltinModule;
  }
});

test('strings with a scheme of two letters or more are URLs; others (C:\\ too) are paths', () => {
  for (const url of ['http://h/m.gguf', 'https://h/m.gguf', 'file:///m.gguf', 'blob:x']) assert.equal(isFilePath(url), false, url);
  for (const path of ['/m.gguf', 'm.gguf', './m.gguf', 'C:\\models\\m.gguf', 'c:/m.gguf']) assert.equal(isFilePath(path), true, path);
  assert.equal(isFilePath(''), false);
  assert.equal(isFilePath(new URL('file:///m.gguf')), false);
});
