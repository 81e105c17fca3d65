/**
 * tokens.mjs: the fake's token arithmetic.
 *
 * A "token" is a whitespace-separated word of the input (or one token id when
 * the input is given as ids), and the generated text is `n` pieces "tok0 ",
 * "tok1 "..., so usage numbers are predictable from the request alone.
 */

/** @param {string} text */
export function countWords(text) {
  return text.split(/\s+/).filter(Boolean).length;
}

/**
 * Words in a message `content`: a string, or an array of parts whose text parts count.
 * @param {unknown} content
 */
export function countContentWords(content) {
  if (typeof content === 'string') return countWords(content);
  if (!Array.isArray(content)) return 0;
  let words = 0;
  for (const part of content) {
    if (typeof part === 'string') words += countWords(part);
    else if (part && typeof part.text === 'string') words += countWords(part.text);
  }
  return words;
}

/**
 * Tokens of a legacy completions `prompt`: a string, or a list of prompts, of
 * token ids, or of lists of token ids.
 * @param {unknown} prompt
 * @returns {number}
 */
export function countPromptTokens(prompt) {
  if (typeof prompt === 'string') return countWords(prompt);
  if (!Array.isArray(prompt)) return 0;
  return prompt.reduce((n, p) => n + (typeof p === 'number' ? 1 : countPromptTokens(p)), 0);
}

/** The generated text as `n` streamable pieces. @param {number} n */
export function tokenPieces(n) {
  return Array.from({ length: n }, (_, i) => `tok${i} `);
}
