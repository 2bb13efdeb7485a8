import WebSocket from 'ws';

// Child process of ws-fanout.bench.ts: opens COUNT WebSocket clients to URL, prints "ready N",
// then "got K" once every client has received the message whose first 8 bytes are K. "quit" on
// stdin ends it. The parent times publish → "got K"; clients live in their own process so their
// parsing does not run on the sidecar's event loop.

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (url === undefined || !Number.isInteger(count) || count <= 0) {
  console.error('usage: ws-fanout-clients URL COUNT');
  process.exit(2);
}

const received = new Map<number, number>();

async function main(): Promise<void> {
  const clients: WebSocket[] = [];
  for (let done = 0; done < count; done += 250) {
    const batch = Array.from({ length: Math.min(250, count - done) }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url as string);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.on('message', (data: Buffer) => {
        const k = Number(data.toString('latin1', 0, 8));
        const n = (received.get(k) ?? 0) + 1;
        received.set(k, n);
        if (n === count) {
          process.stdout.write(`got ${k}\n`);
          received.delete(k);
        }
      });
    }));
    clients.push(...(await Promise.all(batch)));
  }
  process.stdout.write(`ready ${clients.length}\n`);
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      if (line === 'quit') {
        for (const c of clients) c.terminate();
        process.exit(0);
      }
    }
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
