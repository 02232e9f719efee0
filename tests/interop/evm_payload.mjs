// Create a v2 PaymentPayload with the official x402 client for the first `accepts` entry of a PaymentRequired.
// stdin: {"paymentRequired": <v2 PaymentRequired>, "privateKey": "0x..."}; stdout: one JSON line, the PaymentPayload.
import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm";
import { privateKeyToAccount } from "viem/accounts";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

try {
  const { paymentRequired, privateKey } = JSON.parse(await readStdin());
  if (!paymentRequired || !privateKey) throw new Error("stdin needs paymentRequired and privateKey");
  const first = paymentRequired.accepts?.[0];
  if (!first) throw new Error("paymentRequired.accepts is empty");
  const client = new x402Client()
    .register("eip155:*", new ExactEvmScheme(privateKeyToAccount(privateKey)))
    .setSpendControls(false);
  // The default selector takes the first acceptable entry; offer only the first so that is what gets paid.
  const payload = await client.createPaymentPayload({ ...paymentRequired, accepts: [first] });
  process.stdout.write(JSON.stringify(payload) + "\n");
} catch (err) {
  process.stderr.write(`evm_payload: ${err?.stack ?? err}\n`);
  process.exit(1);
}
