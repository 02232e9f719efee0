// Pay a URL with the official @x402/fetch wrapper on eip155:31337 (key from env PAYER_KEY, spend controls off):
// `exact` (EIP-3009, or Permit2 where the offer says assetTransferMethod "permit2") and `upto` (Permit2).
// With env PAYMENT_ID the official payment-identifier helper adds that id where the server declares the extension.
// usage: node fetch_pay.mjs URL; stdout: one JSON line {status, body, paymentResponse}.
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { appendPaymentIdentifierToExtensions } from "@x402/extensions/payment-identifier";
import { privateKeyToAccount } from "viem/accounts";

try {
  const url = process.argv[2];
  if (!url) throw new Error("usage: node fetch_pay.mjs URL");
  const key = process.env.PAYER_KEY;
  if (!key) throw new Error("PAYER_KEY is not set");
  const account = privateKeyToAccount(key);
  const client = new x402Client()
    .register("eip155:31337", new ExactEvmScheme(account))
    .register("eip155:31337", new UptoEvmScheme(account))
    .setSpendControls(false);
  const paymentId = process.env.PAYMENT_ID;
  if (paymentId) {
    client.onBeforePaymentCreation(async ({ paymentRequired }) => {
      if (paymentRequired.extensions) appendPaymentIdentifierToExtensions(paymentRequired.extensions, paymentId);
    });
  }
  const pay = wrapFetchWithPayment(fetch, client);
  const res = await pay(url);
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const header = res.headers.get("PAYMENT-RESPONSE") ?? res.headers.get("X-PAYMENT-RESPONSE");
  const paymentResponse = header ? decodePaymentResponseHeader(header) : null;
  process.stdout.write(JSON.stringify({ status: res.status, body, paymentResponse }) + "\n");
} catch (err) {
  process.stderr.write(`fetch_pay: ${err?.stack ?? err}\n`);
  process.exit(1);
}
