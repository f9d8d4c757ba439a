// send.js - a test client nobody on weft wrote the exporters of: makes one small trace
// with the OpenTelemetry JS SDK and exports it to weft with one of the SDK's exporters,
// then prints the spans as the SDK holds them (JSON on stdout) for the test to compare
// with what weft's query APIs answer.
//
//   node send.js otlp-proto|otlp-http|zipkin URL SERVICE
//
// Exit status: 0 when the exporter reported success, 1 otherwise.
'use strict';

const api = require('@opentelemetry/api');
const {
  BasicTracerProvider,
  SimpleSpanProcessor,
  InMemorySpanExporter,
} = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { ExportResultCode } = require('@opentelemetry/core');

const [kind, url, service] = process.argv.slice(2);
if (!kind || !url || !service) {
  console.error('usage: node send.js otlp-proto|otlp-http|zipkin URL SERVICE');
  process.exit(2);
}

let exporter;
if (kind === 'otlp-proto') {
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
  exporter = new OTLPTraceExporter({ url });
} else if (kind === 'otlp-http') {
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
  exporter = new OTLPTraceExporter({ url });
} else if (kind === 'zipkin') {
  const { ZipkinExporter } = require('@opentelemetry/exporter-zipkin');
  exporter = new ZipkinExporter({ url, serviceName: service });
} else {
  console.error(`unknown exporter ${kind}`);
  process.exit(2);
}

// The spans are exported one call at a time, and the outcome of each is kept.
const outcomes = [];
const checked = {
  export(spans, done) {
    exporter.export(spans, (r) => {
      outcomes.push(r);
      done(r);
    });
  },
  shutdown() {
    return exporter.shutdown();
  },
};
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({
    'service.name': service,
    'service.version': '1.2.3',
    'deployment.environment': 'test',
  }),
  spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(checked)],
});
const tracer = provider.getTracer('weft-test-client', '0.1.0');

async function main() {
  const root = tracer.startSpan('GET /orders/:id', {
    kind: api.SpanKind.SERVER,
    attributes: {
      'http.request.method': 'GET',
      'http.route': '/orders/:id',
      'http.response.status_code': 200,
      'server.port': 8080,
      'sampling.ratio': 0.25,
      'user.vip': true,
    },
  });
  root.addEvent('cache miss', { 'cache.key': 'order:42', 'cache.ttl': 30 });
  const ctx = api.trace.setSpan(api.context.active(), root);
  const child = tracer.startSpan(
    'SELECT orders',
    {
      kind: api.SpanKind.CLIENT,
      attributes: { 'db.system': 'postgresql', 'peer.service': 'orders-db', 'db.rows': 1 },
    },
    ctx,
  );
  await new Promise((r) => setTimeout(r, 5));
  child.setStatus({ code: api.SpanStatusCode.ERROR, message: 'deadlock detected' });
  child.end();
  const internal = tracer.startSpan('render', {}, ctx);
  internal.end();
  root.end();
  await provider.forceFlush();
  await new Promise((r) => setTimeout(r, 50));
  const hr = (t) => (BigInt(t[0]) * 1000000000n + BigInt(t[1])).toString();
  const spans = memory.getFinishedSpans().map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext ? s.parentSpanContext.spanId : '',
    name: s.name,
    kind: s.kind,
    startNs: hr(s.startTime),
    endNs: hr(s.endTime),
    attributes: s.attributes,
    events: s.events.map((e) => ({ name: e.name, timeNs: hr(e.time), attributes: e.attributes })),
    status: s.status,
    scope: s.instrumentationScope,
  }));
  await provider.shutdown();
  const ok = outcomes.length > 0 && outcomes.every((r) => r.code === ExportResultCode.SUCCESS);
  process.stdout.write(
    JSON.stringify({ ok, errors: outcomes.filter((r) => r.error).map((r) => String(r.error)), spans }),
  );
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
