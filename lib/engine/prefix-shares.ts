/**
 * Which prompts of one forward job can take the keys and values of their first tokens from an earlier prompt
 * instead of running them (native/core/forward/shared_prefix.h): every prompt shares a chat template's system turn
 * and role header, and the behaviour scorer's rows are each prompt once per signature sequence, so most of a
 * forced pass's tokens are ones an earlier row has already run.
 */
export interface PrefixShares {
  /** Per prompt: the earlier prompt its shared tokens come from (0 where it shares none). */
  source: Uint32Array;
  /** Per prompt: how many of its first tokens it shares (always fewer than its length). */
  length: Uint32Array;
  /** Tokens that do not run: the sum of `length`. */
  sharedTokens: number;
}

interface TrieNode {
  /** The first prompt through this node: it runs these tokens, or takes them from its own source. */
  prompt: number;
  children: Map<number, TrieNode>;
}

/**
 * For each prompt, the longest run of first tokens it has in common with any earlier prompt, leaving it at least
 * its last token to run (its own logits and next-token row). A trie over the prompts' tokens finds it in one walk
 * per prompt, where comparing every pair would cost prompts² × length.
 */
export function prefixShares(prompts: readonly (readonly number[])[]): PrefixShares {
  const source = new Uint32Array(prompts.length);
  const length = new Uint32Array(prompts.length);
  const root: TrieNode = { prompt: 0, children: new Map() };
  let sharedTokens = 0;
  prompts.forEach((tokens, p) => {
    let node = root;
    let depth = 0;
    while (depth < tokens.length - 1) {
      const next = node.children.get(tokens[depth]);
      if (!next) break;
      node = next;
      depth += 1;
    }
    if (depth > 0) {
      source[p] = node.prompt;
      length[p] = depth;
      sharedTokens += depth;
    }
    // The rest of the prompt, for later prompts to share (its last token may already be there).
    for (let i = depth; i < tokens.length; i += 1) {
      let child = node.children.get(tokens[i]);
      if (!child) {
        child = { prompt: p, children: new Map() };
        node.children.set(tokens[i], child);
      }
      node = child;
    }
  });
  return { source, length, sharedTokens };
}
