/**
 * Python preamble that imports the guide's reference client function from
 * tests/_seed_client.py, so tests that run it share one copy.
 *
 * @module
 */

const folder = new URL(".", import.meta.url).pathname;

/**
 * Lines to put at the top of a `python3 -c` script: afterwards
 * `extract_attention_from_response` is the seed client's function.
 */
export const SEED_CLIENT_IMPORT = `import sys
sys.path.insert(0, ${JSON.stringify(folder)})
from _seed_client import extract_attention_from_response
`;
