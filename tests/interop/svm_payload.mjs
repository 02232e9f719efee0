// Create a v2 PaymentPayload with the official x402 SVM client for the first `accepts` entry of a PaymentRequired.
// stdin: {"paymentRequired": <v2 PaymentRequired>, "secretKey": [64 bytes], "rpcUrl": "http://..."}
// stdout: one JSON line, the PaymentPayload. The network must be a known Solana CAIP-2 id (devnet, testnet,
// mainnet): the client only builds RPC clients for those, here pointed at `rpcUrl` (a local test chain).
import { createKeyPairSignerFromBytes } from "@solana/kit";
import { x402Client } from "@x402/core/client";
import { ExactSvmScheme } from "@x402/svm/exact/client";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

try {
  const { paymentRequired, secretKey, rpcUrl } = JSON.parse(await readStdin());
  if (!paymentRequired || !Array.isArray(secretKey) || !rpcUrl) {
    throw new Error("stdin needs paymentRequired, secretKey (64-byte array) and rpcUrl");
  }
  const first = paymentRequired.accepts?.[0];
  if (!first) throw new Error("paymentRequired.accepts is empty");
  const signer = await createKeyPairSignerFromBytes(Uint8Array.from(secretKey));
  const client = new x402Client()
    .register("solana:*", new ExactSvmScheme(signer, { rpcUrl }))
    .setSpendControls(false); // the local mint is not a default stablecoin
  // The default selector takes the first acceptable entry; offer only the first so that is what gets paid.
  const payload = await client.createPaymentPayload({ ...paymentRequired, accepts: [first] });
  process.stdout.write(JSON.stringify(payload) + "\n");
} catch (err) {
  process.stderr.write(`svm_payload: ${err?.stack ?? err}\n`);
  process.exit(1);
}
