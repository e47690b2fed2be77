import assert from "node:assert/strict";
import { PIECE_STEP, pieceColumns, PieceSpeed } from "../src/cublas/piece_sizing.ts";

const perColumn = 2 * 8192 * 8192;

Deno.test("pieces follow the FLOP budget until a speed is measured, then the target duration", () => {
  assert.equal(pieceColumns(8192, perColumn, 2.8e11), 2048);
  assert.equal(pieceColumns(8192, perColumn, 2.8e11, 300), 2048, "no speed yet: the FLOP budget");
  const speed = new PieceSpeed();
  speed.add(449, 2048 * perColumn); // 2048 columns took 449 µs
  assert.equal(pieceColumns(8192, perColumn, 2.8e11, 300, speed.usPerFlop), 1280);
  assert.equal(pieceColumns(8192, perColumn, 2.8e11, 1e9, speed.usPerFlop), 8192, "at most n");
  assert.equal(
    pieceColumns(8192, perColumn, 2.8e11, 1, speed.usPerFlop),
    PIECE_STEP,
    "at least one step",
  );
  assert.equal(pieceColumns(8192, perColumn, 0), 8192, "no budget: whole");
  assert.equal(pieceColumns(100, perColumn, 1), 100, "a GEMM narrower than a step stays whole");
  for (const bad of [NaN, -1, 0, Infinity]) {
    assert.equal(pieceColumns(8192, perColumn, 2.8e11, 300, bad), 2048, `usPerFlop ${bad}: budget`);
  }
  assert.equal(pieceColumns(8192, 0, 2.8e11), 8192, "no FLOPs per column: whole");
});

Deno.test("the measured speed is smoothed and ignores what is not a measurement", () => {
  const speed = new PieceSpeed();
  assert.equal(speed.usPerFlop, undefined);
  for (const [us, flops] of [[0, 1], [-5, 1], [NaN, 1], [1, 0], [Infinity, 1], [1, Infinity]]) {
    speed.add(us!, flops!);
  }
  assert.equal(speed.usPerFlop, undefined, "nothing counted");
  speed.add(100, 1e9);
  assert.equal(speed.usPerFlop, 1e-7);
  speed.add(200, 1e9); // one slow piece moves it 30% of the way
  assert.ok(Math.abs(speed.usPerFlop! - 1.3e-7) < 1e-15);
});
