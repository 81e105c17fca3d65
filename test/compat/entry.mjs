// Copied by install.mjs into COMPAT_DIR as clients.mjs, so that the client libraries resolve
// from COMPAT_DIR/node_modules (they are not the project's dependencies). The suite imports
// that copy; nothing in the repository imports this file directly.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import * as ai from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';

export const NAMES = ['openai', 'ai', '@ai-sdk/openai', '@langchain/openai', '@langchain/core'];

/** Installed version and declared `engines.node` of each library, read from its package.json. */
export const packages = Object.fromEntries(
  NAMES.map((name) => {
    const pkg = JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8'));
    return [name, { version: pkg.version, node: pkg.engines?.node ?? null }];
  }),
);

export { OpenAI, ai, createOpenAI, ChatOpenAI, OpenAIEmbeddings };
