/**
 * A kernel worker: waits on its control slot, runs its share of a gemm on
 * the named memory shard, and signals done. It leaves its wait loop only
 * when told to (to take in a new shard by message) or to exit.
 *
 * @module
 */

import {
  C,
  CMD,
  instantiateShard,
  type SgemmExports,
  SLOT,
} from "./protocol.ts";

interface Init {
  ctrl: SharedArrayBuffer;
  index: number;
}
interface AddShard {
  memory: WebAssembly.Memory;
  stackTop: number;
}

let ctrl: Int32Array;
let ctrlF: Float32Array;
let base = 0;
const shards: SgemmExports[] = [];

// The last command taken; kept across returns to the event loop so a
// command posted meanwhile is not missed.
let seen = 0;

function loop(): void {
  for (;;) {
    Atomics.wait(ctrl, base + C.seq, seen);
    seen = Atomics.load(ctrl, base + C.seq);
    const cmd = ctrl[base + C.cmd];
    if (cmd === CMD.gemm) {
      const a = base + C.args;
      const ex = shards[ctrl[base + C.shard]];
      ex.gemm(
        ctrl[a] >>> 0,
        ctrl[a + 1],
        ctrl[a + 2],
        ctrl[a + 3] >>> 0,
        ctrl[a + 4],
        ctrl[a + 5],
        ctrl[a + 6],
        ctrl[a + 7],
        ctrl[a + 8] >>> 0,
        ctrl[a + 9],
        ctrl[a + 10],
        ctrl[a + 11],
        ctrl[a + 12] >>> 0,
        ctrlF[a + 13],
        ctrl[a + 14] >>> 0,
        ctrl[a + 15],
      );
      Atomics.store(ctrl, base + C.done, seen);
      Atomics.notify(ctrl, base + C.done);
    } else if (cmd === CMD.attn) {
      const a = base + C.args;
      const ex = shards[ctrl[base + C.shard]];
      ex.attn_heads(
        ctrl[a] >>> 0,
        ctrl[a + 1],
        ctrl[a + 2] >>> 0,
        ctrl[a + 3] >>> 0,
        ctrl[a + 4],
        ctrl[a + 5],
        ctrl[a + 6],
        ctrl[a + 7],
        ctrl[a + 8],
        ctrl[a + 9],
        ctrl[a + 10],
        ctrl[a + 11],
        ctrl[a + 12],
        ctrl[a + 13],
        ctrlF[a + 14],
        ctrl[a + 15] >>> 0,
        ctrl[a + 16] >>> 0,
        ctrl[a + 17],
        ctrl[a + 18] >>> 0,
      );
      Atomics.store(ctrl, base + C.done, seen);
      Atomics.notify(ctrl, base + C.done);
    } else if (cmd === CMD.yield) {
      // Back to the event loop, where the next message (a shard) waits.
      Atomics.store(ctrl, base + C.done, seen);
      Atomics.notify(ctrl, base + C.done);
      return;
    } else if (cmd === CMD.exit) {
      Atomics.store(ctrl, base + C.done, seen);
      Atomics.notify(ctrl, base + C.done);
      (self as unknown as { close(): void }).close();
      return;
    }
  }
}

(self as unknown as {
  onmessage: (event: MessageEvent<Init | AddShard>) => void;
}).onmessage = (event) => {
  const data = event.data;
  if ("ctrl" in data) {
    ctrl = new Int32Array(data.ctrl);
    ctrlF = new Float32Array(data.ctrl);
    base = data.index * SLOT;
    seen = Atomics.load(ctrl, base + C.seq);
  } else {
    shards.push(instantiateShard(data.memory, data.stackTop));
  }
  Atomics.store(ctrl, base + C.shards, shards.length);
  Atomics.notify(ctrl, base + C.shards);
  loop();
};
