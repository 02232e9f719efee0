// An official @x402/express resource server with one paid route, GET /paid, settled through FACILITATOR_URL.
// env: PORT (0 = any), FACILITATOR_URL, AMOUNT, ASSET, TOKEN_NAME, TOKEN_VERSION, PAY_TO.
// stdout: {"listening": port} once up; runs until killed.
import express from "express";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { registerExactEvmScheme } from "@x402/evm/exact/server";

const NETWORK = "eip155:31337";

function need(name) {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is not set`);
  return value;
}

try {
  const facilitator = new HTTPFacilitatorClient({ url: need("FACILITATOR_URL") });
  const server = registerExactEvmScheme(new x402ResourceServer(facilitator), { networks: [NETWORK] });
  const routes = {
    "GET /paid": {
      accepts: {
        scheme: "exact",
        network: NETWORK,
        payTo: need("PAY_TO"),
        price: {
          amount: need("AMOUNT"),
          asset: need("ASSET"),
          extra: { name: need("TOKEN_NAME"), version: need("TOKEN_VERSION") },
        },
      },
      description: "interop test resource",
      mimeType: "application/json",
    },
  };
  const app = express();
  app.use(paymentMiddleware(routes, server));
  app.get("/paid", (_req, res) => res.json({ ok: true, paid: true }));
  app.get("/health", (_req, res) => res.json({ ok: true }));
  const listener = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", (err) => {
    if (err) {
      process.stderr.write(`express_server: ${err?.stack ?? err}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ listening: listener.address().port }) + "\n");
  });
  const stop = () => listener.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (err) {
  process.stderr.write(`express_server: ${err?.stack ?? err}\n`);
  process.exit(1);
}
