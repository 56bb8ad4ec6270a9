// A grpc-js client of the vRPC gateway: it loads example/demo/demo.proto at
// run time (no generated code), calls demo.Demo/Ping through the gateway at
// the address given, and prints what it got as one JSON object.
//
//   cd vgateway/testdata/node && npm ci && node client.js 127.0.0.1:9000
//
// vgateway's TestNodeClient runs it against a gateway in front of a test
// target and checks the JSON.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const addr = process.argv[2] || '127.0.0.1:9000';
const protoFile = path.join(__dirname, '..', '..', '..', 'example', 'demo', 'demo.proto');
const def = protoLoader.loadSync(protoFile, { keepCase: true, defaults: true });
const demo = grpc.loadPackageDefinition(def).demo;
const client = new demo.Demo(addr, grpc.credentials.createInsecure());

// ping calls Ping and resolves with its reply or error, its response
// header and its trailer; it never rejects.
function ping(message, md, options) {
  return new Promise((resolve) => {
    const out = {};
    const call = client.Ping({ message }, md || new grpc.Metadata(), options || {}, (err, reply) => {
      if (err) {
        out.code = err.code;
        out.details = err.details;
      } else {
        out.reply = reply;
      }
    });
    call.on('metadata', (header) => { out.header = header.getMap(); });
    call.on('status', (st) => {
      out.trailer = st.metadata.getMap();
      resolve(out);
    });
  });
}

async function main() {
  const deadline = () => new Date(Date.now() + 10000);
  const md = new grpc.Metadata();
  md.set('x-echo', 'from-node');
  const result = {
    ok: await ping('hello from node', md, { deadline: deadline() }),
    error: await ping('error', null, { deadline: deadline() }),
    deadline: await ping('block', null, { deadline: new Date(Date.now() + 300) }),
  };
  client.close();
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
