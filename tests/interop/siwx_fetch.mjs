// Sign in to a URL with the official @x402/extensions Sign-In-With-X fetch wrapper (no payment): the key (env
// PAYER_KEY) must have paid for the resource before. usage: node siwx_fetch.mjs URL; stdout: {status, body, error}.
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { wrapFetchWithSIWx } from "@x402/extensions/sign-in-with-x";
import { privateKeyToAccount } from "viem/accounts";

try {
  const url = process.argv[2];
  if (!url) throw new Error("usage: node siwx_fetch.mjs URL");
  const key = process.env.PAYER_KEY;
  if (!key) throw new Error("PAYER_KEY is not set");
  const signIn = wrapFetchWithSIWx(fetch, privateKeyToAccount(key));
  const res = await signIn(url);
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const required = res.headers.get("PAYMENT-REQUIRED");
  const error = required ? decodePaymentRequiredHeader(required).error ?? null : null;
  process.stdout.write(JSON.stringify({ status: res.status, body, error }) + "\n");
} catch (err) {
  process.stderr.write(`siwx_fetch: ${err?.stack ?? err}\n`);
  process.exit(1);
}
