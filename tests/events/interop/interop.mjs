// The other side of the events interoperability test, with the official
// JavaScript client (@nats-io/transport-node + @nats-io/jetstream):
//
//   node interop.mjs consume <server> <stream> <subject> <durable> <count>
//     reads <count> events through a durable pull consumer, acks them, and
//     prints one JSON line per event: its CloudEvents attributes and headers
//   node interop.mjs publish <server> <subject> <count>
//     publishes <count> structured-mode CloudEvents with a traceparent
//     header, waiting for each acknowledgement; prints "published <count>"
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, AckPolicy } from "@nats-io/jetstream";

const [mode, server, ...rest] = process.argv.slice(2);
const nc = await connect({ servers: server, timeout: 5000 });
const js = jetstream(nc);

if (mode === "consume") {
  const [stream, subject, durable, countText] = rest;
  const count = Number(countText);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    filter_subject: subject,
  });
  const consumer = await js.consumers.get(stream, durable);
  let seen = 0;
  while (seen < count) {
    const m = await consumer.next({ expires: 5000 });
    if (m === null) throw new Error(`only ${seen} of ${count} events arrived`);
    const ce = JSON.parse(new TextDecoder().decode(m.data));
    console.log(JSON.stringify({
      specversion: ce.specversion, id: ce.id, source: ce.source, type: ce.type,
      datacontenttype: ce.datacontenttype, data: ce.data, subject: m.subject,
      traceparent: m.headers?.get("traceparent") ?? null,
    }));
    m.ack();
    seen++;
  }
} else if (mode === "publish") {
  const [subject, countText] = rest;
  const count = Number(countText);
  for (let i = 0; i < count; i++) {
    const h = headers();
    h.set("traceparent", `00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0${i % 2}`);
    const event = {
      specversion: "1.0", id: `node-${i}`, source: "/node-interop", type: subject,
      time: new Date().toISOString(), datacontenttype: "application/json",
      data: { order_id: i, status: "authorized" },
    };
    await js.publish(subject, JSON.stringify(event), { headers: h, msgID: event.id });
  }
  console.log(`published ${count}`);
} else {
  throw new Error(`unknown mode ${mode}`);
}
await nc.drain();
