import test from 'ava';
import fc from 'fast-check';
import { itemsDue, lastIds, stormEvent, stormItem } from '../../../../bench/wire/storm-ids.js';

test('ids run 1, 2, 3, … on every channel, and lastIds is the highest id each channel got', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 20 }), (published, channels) => {
      const highest = new Array<number>(channels).fill(0);
      for (let k = 0; k < published; k++) {
        const { channelIndex, id } = stormItem(k, channels);
        if (id !== highest[channelIndex]! + 1) return false;
        highest[channelIndex] = id;
      }
      t.deepEqual(lastIds(published, channels), highest);
      return true;
    }),
  );
});

test('itemsDue grows with time at the rate, never below zero', (t) => {
  t.is(itemsDue(0, 200), 0);
  t.is(itemsDue(1000, 200), 200);
  t.is(itemsDue(1499, 2), 2);
  t.is(itemsDue(-5, 200), 0);
});

test('an item is an SSE event whose id: is its id', (t) => {
  t.is(stormEvent(42), 'id: 42\ndata: 42\n\n');
});
